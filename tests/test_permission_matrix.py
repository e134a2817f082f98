"""Every named URL × every role, for GET and POST, with the answer each role must get.

The matrix is checked against the URLconf: a named URL that is not listed here fails the suite,
so every new URL has to declare who may reach it. Objects a role may not see answer 404 — the
same answer as an object that does not exist (checked at the end).
"""

import re
import uuid

import pytest
from channels.testing import WebsocketCommunicator
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from cockpit import services as review_services
from config.asgi import application
from notifications.routing import websocket_urlpatterns
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    SiteAnimatorFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from tests.test_notifications_live import HOST, ORIGIN, run_async, session_cookie
from workflows import services as request_services

ROLES = [
    "anonymous",
    "no_charter",  # signed in, has not accepted the confidentiality charter
    "case_referent",
    "other_referent",  # referent of a case on another site
    "agent",  # member of an organisation not involved in the case
    "involved_agent",  # member of the organisation a request of the case is routed to
    "site_animator",
    "other_animator",
    "observer",
    "admin",
]
SEES_CASE = {"case_referent", "site_animator", "admin", "involved_agent"}
SIGNED_IN = set(ROLES) - {"anonymous", "no_charter"}
LOGIN = "login"  # 302 to the login page
CHARTER = "charter"  # 302 to the charter page


def _by_role(allowed: dict[str, object], default) -> dict[str, object]:
    """Answers for every role: anonymous goes to login, no_charter to the charter, the others get
    `allowed[role]` or `default`."""
    answers = {"anonymous": LOGIN, "no_charter": CHARTER}
    for role in SIGNED_IN:
        answers[role] = allowed.get(role, default)
    return answers


def _everyone_signed_in(get, post):
    return {"GET": _by_role({}, get), "POST": _by_role({}, post)}


def _case_readers(get_ok, post_ok, method_not_allowed=None):
    """Visible roles get `get_ok`/`post_ok`; the others 404 (as for a missing case)."""
    result = {}
    for method, ok in (("GET", get_ok), ("POST", post_ok)):
        if method_not_allowed == method:
            result[method] = _by_role({}, 405)
        else:
            result[method] = _by_role({role: ok for role in SEES_CASE}, 404)
    return result


# url name -> expected answers per method and role (an int status, LOGIN or CHARTER)
MATRIX = {
    "login": {"GET": dict.fromkeys(ROLES, 200), "POST": dict.fromkeys(ROLES, 200)},
    "logout": {
        "GET": {**dict.fromkeys(ROLES, 405), "anonymous": LOGIN},
        "POST": dict.fromkeys(ROLES, LOGIN),
    },
    "set_language": {"GET": dict.fromkeys(ROLES, 302), "POST": dict.fromkeys(ROLES, 302)},
    "charter": {
        "GET": {**_by_role({}, 200), "no_charter": 200},
        "POST": {**_by_role({}, 200), "no_charter": 200},
    },
    "home": _everyone_signed_in(200, 405),
    "case_list": _everyone_signed_in(200, 405),
    "case_propose": {
        "GET": _by_role({"case_referent": 200, "other_referent": 200}, 302),
        "POST": _by_role({"case_referent": 200, "other_referent": 200}, 302),
    },
    "case_detail": _case_readers(200, 405),
    "case_history": _case_readers(200, 405),
    "case_consent": _case_readers(None, 302, method_not_allowed="GET"),
    "case_transition": _case_readers(None, 302, method_not_allowed="GET"),
    # Administrators read every case but do not edit needs: they are sent back to the case.
    "need_create": _case_readers(200, 200),
    "need_edit": _case_readers(200, 200),
    # Whoever sees the case takes part in its comments (an empty form is shown again, with its error).
    "comment_add": _case_readers(200, 200),
    "company_detail": _case_readers(200, 405),
    "toolbox": _everyone_signed_in(200, 405),
    # Django's admin: staff only; everyone else is sent to the (single) login page.
    "admin:index": {
        "GET": {**_by_role({"admin": 200}, 302), "anonymous": 302, "no_charter": CHARTER},
        "POST": {**_by_role({"admin": 200}, 302), "anonymous": 302, "no_charter": CHARTER},
    },
    "admin_login_redirect": {"GET": _by_role({}, LOGIN), "POST": _by_role({}, LOGIN)},
}
# Read-only pages answer 405 to POST, whoever asks (before any lookup: no existence oracle).
for _name in ("need_create", "need_edit"):
    for _method in ("GET", "POST"):
        MATRIX[_name][_method]["admin"] = 302
        MATRIX[_name][_method]["involved_agent"] = 302  # the partner sees the case, edits no need
# Service requests: only the case's referent opens one; the other readers of the case are sent back.
MATRIX["request_open"] = {
    "GET": _by_role({"case_referent": 200, "site_animator": 302, "admin": 302, "involved_agent": 302}, 404),
    "POST": _by_role({"case_referent": 200, "site_animator": 302, "admin": 302, "involved_agent": 302}, 404),
}
MATRIX["request_detail"] = _case_readers(200, None, method_not_allowed="POST")
MATRIX["request_action"] = _case_readers(None, 302, method_not_allowed="GET")
MATRIX["task_list"] = _everyone_signed_in(200, 405)
# The inbox: everyone reads and marks only their own notifications.
MATRIX["notification_list"] = _everyone_signed_in(200, 405)
MATRIX["notification_mark_read"] = {"GET": _by_role({}, 405), "POST": _by_role({}, 302)}
MATRIX["notification_preferences"] = {"GET": _by_role({}, 200), "POST": _by_role({}, 302)}
# Escalations and handovers: POST only, answered (302 with a message) to whoever sees the case.
for _name in ("escalation_raise", "escalation_decide", "handover_propose", "handover_answer"):
    MATRIX[_name] = _case_readers(None, 302, method_not_allowed="GET")
for _name in ("home", "case_list", "toolbox", "case_detail", "case_history", "company_detail"):
    MATRIX[_name]["POST"] = _by_role({}, 405)
# « Who saw what »: platform administrators only, a 404 for everyone else (as a missing page). The
# export without a valid query shows the form with its errors (200). Read-only: 405 to POST.
for _name in ("audit_access_report", "audit_access_report_csv"):
    MATRIX[_name] = {"GET": _by_role({"admin": 200}, 404), "POST": _by_role({}, 405)}
# Status boards: the site's animators and administrators; the regional view sends an animator of a
# single site to that site's board. Referents, agents and observers have no board (404).
MATRIX["board"] = {"GET": _by_role({"site_animator": 200, "admin": 200}, 404), "POST": _by_role({}, 405)}
MATRIX["review_agenda"] = {
    "GET": _by_role({"site_animator": 200, "admin": 200}, 404),
    "POST": _by_role({}, 405),
}
# The review's schedule: POST only, saved (302) by the site's animators and administrators.
MATRIX["review_schedule"] = {
    "GET": _by_role({}, 405),
    "POST": _by_role({"site_animator": 200, "admin": 200}, 404),
}
# The weekly review meeting: the site's animators and administrators; a 404 for everyone else. An
# empty entry is refused with the page shown again (200); opening or closing redirects (302).
for _name in ("review_list", "review_detail"):
    MATRIX[_name] = {"GET": _by_role({"site_animator": 200, "admin": 200}, 404), "POST": _by_role({}, 405)}
for _name, _ok in (("review_open", 302), ("review_entry_add", 200), ("review_close", 302)):
    MATRIX[_name] = {"GET": _by_role({}, 405), "POST": _by_role({"site_animator": _ok, "admin": _ok}, 404)}
# An action item is marked done by its owner (the case's referent here) or the site's animators.
MATRIX["action_done"] = {
    "GET": _by_role({}, 405),
    "POST": _by_role({"case_referent": 302, "site_animator": 302, "admin": 302}, 404),
}
MATRIX["board_region"] = {
    "GET": _by_role({"site_animator": 302, "other_animator": 302, "admin": 200}, 404),
    "POST": _by_role({}, 405),
}
# The CLEFOP report and its exports: administrators (every site), animators (their sites) and
# observers (the sites of the territories they observe); a 404 for everyone else. Read-only: 405.
for _name in ("clefop_report", "clefop_report_xlsx", "clefop_report_csv"):
    MATRIX[_name] = {
        "GET": _by_role({"admin": 200, "site_animator": 200, "other_animator": 200, "observer": 200}, 404),
        "POST": _by_role({}, 405),
    }
# « Mon agenda »: everyone signed in manages their own link (POST: create → 200 with the link shown
# once; no action → 302 back with a message). The feed itself is read by calendar clients without a
# session: a wrong token is a 404 for everyone, signed in or not (its own test covers the right one).
MATRIX["calendar_settings"] = {"GET": _by_role({}, 200), "POST": _by_role({}, 302)}
# (A signed-in browser without the charter is sent to it first, as everywhere.)
MATRIX["calendar_feed"] = {
    "GET": {**dict.fromkeys(ROLES, 404), "no_charter": CHARTER},
    "POST": {**dict.fromkeys(ROLES, 405), "no_charter": CHARTER},
}


def _named_urls(resolver=None, namespace=""):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                yield "admin:index"  # Django's admin guards its own views (staff only)
                continue
            yield from _named_urls(
                pattern, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            )
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}"


def test_every_named_url_is_in_the_matrix():
    missing = set(_named_urls()) - set(MATRIX)
    assert not missing, f"URLs without an entry in the permission matrix: {sorted(missing)}"


@pytest.fixture
def world(site, other_site, referent, other_referent, agent, animator, observer, admin_user):
    case = CaseFactory(site=site, referent=referent, diagnosed=True)
    other_case = CaseFactory(site=other_site, referent=other_referent)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    provider = OrganisationFactory(name="Plateforme mobilité")
    ToolboxServiceFactory(category="mobility", provider=provider, territories=[site.territory])
    involved_agent = UserFactory()
    MembershipFactory(user=involved_agent, organisation=provider, can_be_referent=False)
    service_request = request_services.request_open(
        actor=referent, case=case, need=need, brief="Mobilité", category="mobility"
    )
    weekly = review_services.review_open(actor=animator, site=site)
    item = weekly.items.get(case=case)
    action = review_services.review_entry_add(
        actor=animator, item=item, kind="action", text="Relancer", owner=referent, due_on=timezone.localdate()
    )
    users = {
        "anonymous": None,
        "no_charter": UserFactory(charter=False),
        "case_referent": referent,
        "other_referent": other_referent,
        "agent": agent,
        "involved_agent": involved_agent,
        "site_animator": animator,
        "other_animator": SiteAnimatorFactory(site=other_site).user,
        "observer": observer,
        "admin": admin_user,
    }
    kwargs = {
        "case_detail": {"public_id": case.public_id},
        "case_history": {"public_id": case.public_id},
        "case_consent": {"public_id": case.public_id},
        "case_transition": {"public_id": case.public_id, "name": "withdraw"},
        "need_create": {"public_id": case.public_id},
        "comment_add": {"public_id": case.public_id},
        "need_edit": {"public_id": case.public_id, "need_id": need.pk},
        "company_detail": {"public_id": case.company.public_id},
        "request_open": {"public_id": case.public_id},
        "escalation_raise": {"public_id": case.public_id},
        "escalation_decide": {"public_id": case.public_id},
        "handover_propose": {"public_id": case.public_id},
        "handover_answer": {"public_id": case.public_id, "action": "annuler"},
        "request_detail": {"public_id": service_request.public_id},
        "request_action": {"public_id": service_request.public_id, "name": "cancel"},
        "board": {"slug": site.slug},
        "review_agenda": {"slug": site.slug},
        "review_schedule": {"slug": site.slug},
        "review_list": {"slug": site.slug},
        "review_open": {"slug": site.slug},
        "review_detail": {"slug": site.slug, "pk": weekly.pk},
        "review_entry_add": {"slug": site.slug, "pk": weekly.pk, "item": item.pk},
        "review_close": {"slug": site.slug, "pk": weekly.pk},
        "action_done": {"pk": action.pk},
        "calendar_feed": {"token": "jeton-inconnu"},
    }
    return {"users": users, "kwargs": kwargs, "case": case, "other_case": other_case}


def _answer(client, world, url_name, role, method):
    """What the role actually gets, in the vocabulary of the matrix."""
    client.logout()
    user = world["users"][role]
    if user is not None:
        client.force_login(user)
    url = reverse(url_name, kwargs=world["kwargs"].get(url_name))
    response = client.get(url) if method == "GET" else client.post(url, {})
    if response.status_code == 302:
        if response.url.startswith(reverse("login")):
            return LOGIN
        if response.url.startswith(reverse("charter")):
            return CHARTER
    return response.status_code


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("url_name", sorted(MATRIX))
def test_permission_matrix(client, world, url_name, method):
    """One world, every role: collect every cell that differs from the matrix."""
    wrong = {}
    for role in ROLES:
        got = _answer(client, world, url_name, role, method)
        if got != MATRIX[url_name][method][role]:
            wrong[role] = f"expected {MATRIX[url_name][method][role]}, got {got}"
    assert not wrong, f"{method} {url_name}: {wrong}"


def _without_tokens(content: bytes, path: str) -> bytes:
    """CSRF tokens differ on every response, and the page repeats the requested path (language
    switch); everything else must be identical."""
    content = content.replace(path.encode(), b"<path>")
    return re.sub(rb'(csrfmiddlewaretoken" value="|X-CSRFToken": ")[^"]+', rb"\1", content)


@pytest.mark.parametrize(
    "url_name", ["case_detail", "case_history", "need_create", "comment_add", "company_detail"]
)
def test_forbidden_and_missing_give_the_same_404(client, world, url_name):
    """An outsider cannot tell an existing case from a missing one: same status, same page."""
    client.force_login(world["users"]["agent"])
    existing_url = reverse(url_name, kwargs=world["kwargs"][url_name])
    missing_url = reverse(url_name, kwargs={**world["kwargs"][url_name], "public_id": uuid.uuid4()})
    existing, missing = client.get(existing_url), client.get(missing_url)
    assert existing.status_code == missing.status_code == 404
    assert _without_tokens(existing.content, existing_url) == _without_tokens(missing.content, missing_url)


def test_outsiders_change_nothing_by_post(client, world):
    case = world["case"]
    case.refresh_from_db()
    state, transitions = case.state, case.transitions.count()
    service_request = case.requests.get()
    for role in ("other_referent", "agent", "other_animator", "observer", "involved_agent"):
        client.force_login(world["users"][role])
        client.post(
            reverse("case_transition", kwargs={"public_id": case.public_id, "name": "withdraw"}),
            {"withdraw-expected_state": state, "withdraw-reason": "x"},
        )
        client.post(
            reverse("request_action", kwargs={"public_id": service_request.public_id, "name": "cancel"}),
            {"cancel-reason": "x"},
        )
    case.refresh_from_db()
    service_request.refresh_from_db()
    assert case.state == state and case.transitions.count() == transitions
    assert service_request.is_open


# --- WebSocket routes ------------------------------------------------------------------------------
# Every route of notifications.routing × every role, through the whole stack of config.asgi (origin
# check, session cookie, consumer). ACCEPTED: the socket opens; REFUSED: the handshake is refused.
ACCEPTED, REFUSED = "accepted", "refused"

# route name -> the path to open and the answer of each role
WS_MATRIX = {
    # The personal channel (group user.<id>): every signed-in user who accepted the charter has one.
    "ws_notifications": {
        "path": "/ws/notifications/",
        "answers": {**dict.fromkeys(SIGNED_IN, ACCEPTED), "anonymous": REFUSED, "no_charter": REFUSED},
    },
}
# Pages that are not this site's, for the test server http://testserver: another host, another port
# of the same host, the other scheme.
FOREIGN_ORIGINS = [
    (b"origin", b"http://evil.example"),
    (b"origin", b"http://testserver:9999"),
    (b"origin", b"https://testserver"),
]


def test_every_websocket_route_is_in_the_matrix():
    names = [pattern.name for pattern in websocket_urlpatterns]
    assert all(names), "every WebSocket route needs a name, to have a line in WS_MATRIX"
    missing = set(names) - set(WS_MATRIX)
    assert not missing, f"WebSocket routes without an entry in WS_MATRIX: {sorted(missing)}"
    for pattern in websocket_urlpatterns:
        entry = WS_MATRIX[pattern.name]
        assert set(entry["answers"]) == set(ROLES), pattern.name
        # The path tried below is the route's own (not a stale one that a 404 would refuse).
        assert pattern.resolve(entry["path"].lstrip("/")) is not None, pattern.name


async def _ws_answer(path, user, origin=ORIGIN):
    headers = [origin, HOST]
    if user is not None:
        headers.append((b"cookie", await session_cookie(user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _code = await communicator.connect(timeout=3)
    if connected:
        await communicator.disconnect()
    return ACCEPTED if connected else REFUSED


@pytest.mark.django_db(transaction=True)  # the consumer reads the database from its own thread
@pytest.mark.parametrize("route", sorted(WS_MATRIX))
def test_websocket_matrix(world, route):
    """Every role opens the route with its session cookie from an allowed origin; then every
    signed-in role tries again from foreign origins (another host, port or scheme), always refused."""
    entry = WS_MATRIX[route]

    @run_async
    async def answers():
        got = {role: await _ws_answer(entry["path"], user) for role, user in world["users"].items()}
        foreign = {
            (role, origin[1]): await _ws_answer(entry["path"], user, origin=origin)
            for role, user in world["users"].items()
            if user is not None
            for origin in FOREIGN_ORIGINS
        }
        return got, foreign

    got, foreign = answers()
    wrong = {
        role: f"expected {entry['answers'][role]}, got {got[role]}"
        for role in ROLES
        if got[role] != entry["answers"][role]
    }
    assert not wrong, f"{route}: {wrong}"
    assert set(foreign.values()) == {REFUSED}, f"{route} from a foreign origin: {foreign}"


# --- No cache for what Django answers ---------------------------------------------------------------


@pytest.mark.parametrize("url_name", sorted(MATRIX))
def test_every_page_says_private_no_store(client, world, url_name):
    """Every answer of every named URL, to every role (pages of case or company data, exports,
    calendars, redirects, 404s alike): no browser, proxy or shared cache keeps it."""
    wrong = {}
    for role in ROLES:
        for method in ("GET", "POST"):
            client.logout()
            if world["users"][role] is not None:
                client.force_login(world["users"][role])
            url = reverse(url_name, kwargs=world["kwargs"].get(url_name))
            response = client.get(url) if method == "GET" else client.post(url, {})
            directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
            if not {"private", "no-store"} <= directives:
                wrong[f"{method} {role}"] = response.get("Cache-Control")
    assert not wrong, f"{url_name}: {wrong}"


def test_static_files_stay_cacheable(client, world):
    client.force_login(world["users"]["case_referent"])
    response = client.get("/static/js/notifications.js")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
