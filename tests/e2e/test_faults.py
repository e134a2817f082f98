"""Fault injection, as users would live it (issue « Prove it as users would », §2): real browsers on a
real daphne while Redis stops, while the server restarts, while a user is away, and across two
servers. The database is the source of truth and the channel layer only a doorbell
(docs/architecture.md): whatever happens to the bell, every browser ends up showing what it missed,
without a reload, and no write fails.

Each test runs its own Redis (tests/e2e/faults.py: a `redis-server` on a free port, never the shared
one) and its own daphne(s) pointed at it; the `server` fixture below replaces the harness's for this
module, so `open_as` and `run_command` (tests/e2e/conftest.py) use them."""

import re
import shutil
import time
from dataclasses import dataclass

import pytest
from django.db import connection
from playwright.sync_api import expect

from notifications.models import Notification
from tests import live
from tests.e2e.conftest import IN_CI, Server
from tests.e2e.faults import Daphne, RedisServer, ServerErrors
from tests.e2e.helpers import open_request
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from tests.test_services_backends import REQUIRE_SERVICES, _require
from workflows import services as request_services

pytestmark = pytest.mark.e2e

OUTAGE = 10.0  # seconds Redis stays down (the figure): the one wait that is not a condition
LIVE = 40_000  # ms: a browser catches up within this, its reconnection's back-off included


@dataclass
class FaultServer(Server):
    daphne: Daphne
    redis_server: RedisServer


@pytest.fixture
def redis_server(tmp_path):
    """A Redis of this test's own, on a free port: stopping it disturbs nobody else."""
    if not shutil.which("redis-server"):
        if IN_CI or REQUIRE_SERVICES:
            pytest.fail("redis-server absent (required in CI and with REQUIRE_SERVICES=1)")
        pytest.skip("redis-server absent: apt-get install redis-server")
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    yield redis
    redis.stop()


def _server_env(port: int, redis: RedisServer) -> dict:
    return live.server_env(
        SITE_URL=f"http://127.0.0.1:{port}", ALLOWED_HOSTS="127.0.0.1,localhost", REDIS_URL=redis.url
    )


@pytest.fixture
def server(transactional_db, tmp_path, redis_server):
    """Replaces the harness's `server`: a daphne on this test's Redis, which the test may stop and
    start again on the same port (`server.daphne`). Its logs are printed if the test fails."""
    port = live.free_port()
    daphne = Daphne(port, _server_env(port, redis_server), tmp_path)
    daphne.start()
    try:
        yield FaultServer(
            port=port,
            env=daphne.env,
            log=daphne.log,
            redis=redis_server.url,
            daphne=daphne,
            redis_server=redis_server,
        )
    finally:
        daphne.stop()
        print(daphne.logs())


@pytest.fixture
def errors():
    """Every 5xx answer the watched browsers receive; a test ends with none."""
    return ServerErrors()


@pytest.fixture
def world(site, referent, animator):
    """A case of the referent on the animator's site, a transport partner with its agent, and an
    open transport request of the case in the partner's queue."""
    case = CaseFactory(site=site, referent=referent, active=True, company__name="Transports Loire Ouest")
    provider = OrganisationFactory(name="Mobilité Solidaire 44", territories=[site.territory])
    ToolboxServiceFactory(
        name="Location de scooters", category="mobility", provider=provider, territories=[site.territory]
    )
    agent = UserFactory(username="agent.mobilite", first_name="Yann", last_name="Bodin")
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    need = NeedFactory(
        case=case, created_by=referent, category="mobility", description="Trajets domicile-travail"
    )
    request = request_services.request_open(
        actor=referent, case=case, need=need, brief="Deux scooters pour les recrues", category="mobility"
    )
    return case, request, agent


def _unread(user) -> int:
    return Notification.objects.filter(recipient=user, read_at=None).count()


def _case_path(case) -> str:
    return f"/dossiers/{case.public_id}/"


def _request_path(request) -> str:
    return f"/demandes/{request.public_id}/"


def _claim_and_accept(page):
    page.get_by_role("button", name="Prendre en charge").click()
    page.get_by_role("button", name="Accepter").click()
    expect(page.locator("#live-request")).to_contain_text("Acceptée")


def _comment(page, text: str):
    page.get_by_role("textbox", name=re.compile("Votre commentaire")).fill(text)
    page.get_by_role("button", name="Publier le commentaire").click()
    expect(page.locator("#commentaires")).to_contain_text(text)


def test_redis_stopped_for_ten_seconds_while_users_work(server, open_as, world, referent, animator, errors):
    """Redis stops for 10 s and comes back empty (no persistence: every group membership forgotten).
    Meanwhile the agent takes and accepts the request, the referent comments (mentioning the agent)
    and opens a second request: every write succeeds. Once Redis is back, the browsers that stayed
    open catch up by themselves: toasts, bell, request page, board card; and the bell rings again."""
    case, request, agent = world
    watching = open_as(referent, _request_path(request))
    agent_page = open_as(agent, _request_path(request))
    board = open_as(animator, f"/pilotage/{case.site.slug}/")
    card = board.locator(f'[data-case="{case.public_id}"]')
    expect(card).to_contain_text("1 demande ouverte")
    for page in (watching, agent_page, board):
        errors.watch(page)

    server.redis_server.stop()
    down_since = time.monotonic()
    _claim_and_accept(agent_page)
    tab = open_as(referent, _case_path(case))  # the referent's second tab
    errors.watch(tab)
    _comment(tab, "@agent.mobilite les recrues commencent lundi.")
    tab.goto(_case_path(case))
    open_request(tab, "Un troisième scooter.")
    assert errors.seen == []
    expect(watching.locator("#live-request")).not_to_contain_text("Acceptée")  # the bell is down
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_since)))
    server.redis_server.start()

    expect(watching.locator("#notification-toasts")).to_contain_text("accept", timeout=LIVE)
    expect(watching.locator("#live-request")).to_contain_text("Acceptée", timeout=LIVE)
    expect(agent_page.locator("#notification-toasts")).to_contain_text("vous a mentionné", timeout=LIVE)
    expect(agent_page.locator("#notification-count")).to_have_text(str(_unread(agent)), timeout=LIVE)
    expect(card).to_contain_text("2 demandes ouvertes", timeout=LIVE)

    # The bell rings again: a new comment reaches the agent's open page at once.
    tab.goto(_case_path(case))
    _comment(tab, "@agent.mobilite merci !")
    expect(agent_page.locator("#notification-count")).to_have_text(str(_unread(agent)), timeout=LIVE)
    assert errors.seen == []


def test_server_restarted_browsers_reconnect_and_catch_up(server, open_as, world, referent, animator, errors):
    """daphne stops; while it is down a second request is opened (the services, in another process:
    its ring reaches nobody); a new daphne starts on the same port and database. The open pages
    reconnect by themselves and show it (agent's queue and bell, animator's board), then a change
    made through a browser right after the restart reaches the others live."""
    case, request, agent = world
    queue = open_as(agent, "/taches/?vue=file")
    board = open_as(animator, f"/pilotage/{case.site.slug}/")
    case_page = open_as(referent, _case_path(case))
    card = board.locator(f'[data-case="{case.public_id}"]')
    expect(card).to_contain_text("1 demande ouverte")
    expect(queue.locator("#live-tasks tbody tr")).to_have_count(1)
    for page in (queue, board, case_page):
        errors.watch(page)

    server.daphne.stop()
    need = NeedFactory(case=case, created_by=referent, category="mobility", description="Permis de conduire")
    request_services.request_open(
        actor=referent, case=case, need=need, brief="Une voiture sans permis", category="mobility"
    )
    server.daphne.start()

    expect(queue.locator("#live-tasks tbody tr")).to_have_count(2, timeout=LIVE)
    expect(queue.locator("#notification-count")).to_have_text(str(_unread(agent)), timeout=LIVE)
    expect(card).to_contain_text("2 demandes ouvertes", timeout=LIVE)

    # Right after the restart: the agent accepts the first request; the referent sees it live.
    agent_page = open_as(agent, _request_path(request))
    errors.watch(agent_page)
    _claim_and_accept(agent_page)
    expect(case_page.locator("#notification-toasts")).to_contain_text("accept", timeout=LIVE)
    expect(case_page.locator("#notification-count")).to_have_text(str(_unread(referent)), timeout=LIVE)
    assert errors.seen == []


def test_a_user_away_finds_every_notification_on_return(server, open_as, world, referent, animator, errors):
    """The referent closes their browser. Meanwhile the agent takes and accepts the request and
    comments, the animator mentions the referent in a comment. Back in a new browser, the referent
    finds each of these notifications: counted by the bell, listed on the notifications page.

    (Playwright's `context.set_offline(True)` is not used: in Chromium it leaves an open WebSocket
    untouched, so the page would not be away at all; a closed browser is.)"""
    case, request, agent = world
    away = open_as(referent, _case_path(case))
    expect(away.locator("#notification-count")).to_have_text(str(_unread(referent)))
    away.context.close()

    agent_page = open_as(agent, _request_path(request))
    animator_page = open_as(animator, _case_path(case))
    for page in (agent_page, animator_page):
        errors.watch(page)
    _claim_and_accept(agent_page)
    agent_page.goto(_case_path(case))
    _comment(agent_page, "Les scooters seront prêts jeudi.")
    _comment(animator_page, "@referent pensez à prévenir l'entreprise.")
    assert errors.seen == []

    texts = list(Notification.objects.filter(recipient=referent).values_list("text", flat=True))
    assert len(texts) == 4, texts  # taken, accepted, commented on, mentioned
    back = open_as(referent, "/notifications/")
    expect(back.locator("#notification-count")).to_have_text(str(_unread(referent)))
    assert _unread(referent) == len(texts)
    expect(back.locator("#notification-list li")).to_have_count(len(texts))
    for text in texts:
        expect(back.locator("#notification-list")).to_contain_text(text)


@pytest.fixture
def second_server(server, tmp_path):
    """A second daphne on another port, on the same database and the same Redis. Needs PostgreSQL
    (SQLite is the embedded, one-process mode): skipped without it, a failure with REQUIRE_SERVICES=1.
    Requested before `open_as`, it stops after the browsers are closed."""
    _require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    port = live.free_port()
    second = Daphne(port, _server_env(port, server.redis_server), tmp_path, name="second")
    second.start()
    try:
        yield second
    finally:
        second.stop()
        print(second.logs())


def test_two_servers_share_postgresql_and_redis(
    server, second_server, open_as, world, referent, animator, errors
):
    """What the agent does through the first server reaches the referent's and the animator's
    browsers connected to the second; the referent's comment and new request through the second
    reach the agent's browser and the board."""
    case, request, agent = world
    second = second_server.url
    watching = open_as(referent, f"{second}{_request_path(request)}")
    board = open_as(animator, f"{second}/pilotage/{case.site.slug}/")
    agent_page = open_as(agent, _request_path(request))  # on the first server
    for page in (watching, board, agent_page):
        errors.watch(page)
    card = board.locator(f'[data-case="{case.public_id}"]')
    expect(card).to_contain_text("1 demande ouverte")

    _claim_and_accept(agent_page)
    expect(watching.locator("#notification-toasts")).to_contain_text("accept", timeout=LIVE)
    expect(watching.locator("#live-request")).to_contain_text("Acceptée", timeout=LIVE)

    watching.goto(f"{second}{_case_path(case)}")
    _comment(watching, "@agent.mobilite merci pour la réactivité.")
    expect(agent_page.locator("#notification-toasts")).to_contain_text("vous a mentionné", timeout=LIVE)
    open_request(watching, "Un troisième scooter.")
    expect(card).to_contain_text("2 demandes ouvertes", timeout=LIVE)
    assert errors.seen == []
