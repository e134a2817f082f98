"""Live updates respect a keyboard user: a part of the page refreshed by a live event gives the
focus back to the link that had it, and a notification toast stays until it is dismissed or has
been left alone for a while (it has its own « Masquer ce message » button)."""

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import open_request
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services as request_services

pytestmark = pytest.mark.e2e


def test_a_live_refresh_keeps_the_keyboard_focus_and_toasts_can_be_dismissed(server, open_as, site, referent):
    provider = OrganisationFactory(name="Mobilité Solidaire 44", territories=[site.territory])
    ToolboxServiceFactory(category="mobility", provider=provider, territories=[site.territory])
    agent = UserFactory(username="agent.mobilite")
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    cases = [
        CaseFactory(site=site, referent=referent, active=True, company__name=name)
        for name in ("Alpha", "Bêta")
    ]
    needs = [NeedFactory(case=case, created_by=referent, category="mobility") for case in cases]
    request_services.request_open(
        actor=referent, case=cases[0], need=needs[0], brief="Scooters", category="mobility"
    )

    queue = open_as(agent, "/taches/?vue=file")
    first = queue.locator("#live-tasks").get_by_role("link").first
    href = first.get_attribute("href")
    first.focus()

    # The referent opens a second request: the agent's queue is refreshed live.
    open_request(open_as(referent, f"/dossiers/{cases[1].public_id}/"), "Un scooter.")

    expect(queue.locator("#live-tasks")).to_contain_text("Bêta", timeout=15_000)
    expect(queue.locator(f'#live-tasks a[href="{href}"]')).to_be_focused()

    toast = queue.locator("#notification-toasts .fr-alert").last
    expect(toast).to_contain_text("Bêta")
    toast.get_by_role("button", name="Masquer ce message").click()
    expect(queue.locator("#notification-toasts .fr-alert")).to_have_count(0)
