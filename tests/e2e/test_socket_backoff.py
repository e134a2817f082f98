"""A page whose socket the server refuses for a reason that trying again will not change (too many
sockets for the user: 4429) waits minutes before its next attempt, instead of knocking again every
few seconds. The second page's clock is Playwright's: minutes pass without waiting for them."""

import pytest

from tests import live
from tests.factories import UserFactory

pytestmark = pytest.mark.e2e


@pytest.fixture
def server_settings():
    return {"WS_MAX_SOCKETS_PER_USER": "1"}


def _page(chromium, server, cookie):
    name, value = cookie.split("=", 1)
    context = chromium.new_context(base_url=server.url, locale="fr-FR")
    context.add_cookies([{"name": name, "value": value, "url": server.url}])
    context.set_default_timeout(10_000)
    return context, context.new_page()


def test_a_page_over_the_socket_cap_waits_minutes_before_trying_again(server, chromium):
    cookie = live.session_for(UserFactory())
    # The first page takes the user's only place: its socket opens and says hello.
    first_context, first = _page(chromium, server, cookie)
    with first.expect_websocket() as opened:
        first.goto("/notifications/")
    opened.value.wait_for_event("framesent")

    context, page = _page(chromium, server, cookie)
    page.clock.install()
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket))
    with page.expect_websocket() as refused:
        page.goto("/notifications/")
    refused.value.wait_for_event("close")
    # What the server told it (a probe of the same page, refused the same way): 4429.
    code = page.evaluate("""() => new Promise((resolve) => {
        const probe = new WebSocket("ws://" + location.host + document.body.dataset.notificationsUrl);
        probe.addEventListener("close", (event) => resolve(event.code));
    })""")
    assert code == 4429
    attempts = len(sockets)
    page.clock.run_for(60_000)  # a minute: past every other back-off (1 to 30 s)
    page.wait_for_timeout(300)
    assert len(sockets) == attempts, "the page tried again within a minute of a 4429"
    with page.expect_websocket(timeout=5_000):
        page.clock.run_for(6 * 60_000)  # and within six minutes it does
    context.close()
    first_context.close()
