"""Scale-out: two daphne processes on two ports share PostgreSQL and Redis. An agent accepts a request
through the first server; the referent's browser, connected to the second, is told at once, and the
animator's board there rings too.

Needs PostgreSQL and Redis: skipped locally without them, a failure in CI (REQUIRE_SERVICES=1)."""

import asyncio
import html
import json
import re
import urllib.parse
import urllib.request

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from notifications.models import Notification
from tests import live
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from tests.test_services_backends import _require
from workflows import services as request_services

pytestmark = pytest.mark.django_db(transaction=True)


class Browser:
    """A signed-in browser speaking HTTP to one server (cookies kept, CSRF token read from forms)."""

    def __init__(self, port: int, session_cookie: str):
        self.base = f"http://127.0.0.1:{port}"
        self.cookies = dict([session_cookie.split("=", 1)])

    def _open(self, path, data=None):
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Referer": self.base + path,
        }
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        response = urllib.request.urlopen(urllib.request.Request(self.base + path, body, headers), timeout=20)
        for header in response.headers.get_all("Set-Cookie") or []:
            name, value = header.split(";", 1)[0].split("=", 1)
            self.cookies[name] = value
        return response.read().decode()

    def get(self, path):
        return self._open(path)

    def post_form(self, page_path, action_path, data=None):
        page = self.get(page_path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        return self._open(action_path, {"csrfmiddlewaretoken": html.unescape(token), **(data or {})})


def _world(site, referent, animator):
    case = CaseFactory(site=site, referent=referent, active=True)
    provider = OrganisationFactory(name="Plateforme mobilité")
    ToolboxServiceFactory(category="mobility", provider=provider, territories=[site.territory])
    agent = UserFactory(username="agent.mobilite")
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    request = request_services.request_open(
        actor=referent, case=case, need=need, brief="Scooters pour 3 recrues", category="mobility"
    )
    return case, request, agent


async def _until(socket, predicate, timeout=10.0):
    """Read messages until one satisfies `predicate`; return it."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await socket.recv())
            if predicate(message):
                return message


def test_a_change_through_one_server_reaches_a_browser_on_the_other(site, referent, animator, tmp_path):
    _require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    _require(bool(settings.REDIS_URL), "REDIS_URL")
    case, service_request, agent = _world(site, referent, animator)
    last_id = Notification.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    cookies = {user: live.session_for(user) for user in (referent, animator, agent)}
    request_page = reverse("request_detail", kwargs={"public_id": service_request.public_id})

    def action(name):
        return reverse("request_action", kwargs={"public_id": service_request.public_id, "name": name})

    port_a, port_b = live.free_port(), live.free_port()
    env = live.server_env()

    async def scenario():
        async with (
            live.ws_connect(port_b, cookies[referent]) as referent_socket,
            live.ws_connect(port_b, cookies[animator]) as animator_socket,
        ):
            for socket in (referent_socket, animator_socket):
                await socket.send(json.dumps({"type": "hello", "last_id": last_id}))
            agent_browser = Browser(port_a, cookies[agent])
            await asyncio.to_thread(agent_browser.post_form, request_page, action("claim"))
            await asyncio.to_thread(agent_browser.post_form, request_page, action("accept"))
            accepted = await _until(
                referent_socket,
                lambda m: m.get("type") == "notification" and m["event"] == "request_accepted",
            )
            board = await _until(animator_socket, lambda m: m.get("type") == "board")
            return accepted, board

    with live.daphne(port_a, env, tmp_path / "a.log"), live.daphne(port_b, env, tmp_path / "b.log"):
        accepted, board = asyncio.run(scenario())

    assert accepted["url"] == request_page
    assert "accept" in accepted["text"]
    assert board == {"type": "board", "site": site.pk, "case": str(case.public_id)}
    service_request.refresh_from_db()
    assert service_request.accepted_at is not None
