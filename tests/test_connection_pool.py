"""Sixteen people at once must not exhaust PostgreSQL (issue 16, §0).

Two daphne processes connect as a role that PostgreSQL allows LIMIT connections, each with a
connection pool of POOL_MAX; sixteen partner agents claim four review tasks through them, 32 HTTP
claims released at the same instant. Every task has exactly one winner, every loser is shown who
took it (« Prise en charge par … »), no answer is a server error, and the role never holds more
connections than the two pools.

Needs PostgreSQL: skipped locally without it, a failure in CI (REQUIRE_SERVICES=1).
"""

import concurrent.futures
import html
import http.client
import re
import secrets
import threading
import time
import urllib.parse

import psycopg
import pytest
from django.db import connection
from django.urls import reverse
from viewflow.workflow.status import STATUS

from tests import live
from tests.factories import MembershipFactory, UserFactory
from tests.test_claim_race import build_race_world, open_review_task
from tests.test_services_backends import _require
from workflows.models import EventKind, RequestEvent, ServiceRequest

LIMIT = 12  # connections PostgreSQL allows the role
POOL_MAX = 4  # per daphne process: the two pools stay under LIMIT
AGENTS = 16
TASKS = 4

pytestmark = pytest.mark.django_db(transaction=True)


def _admin_url() -> str:
    """The test database, as the test's own (administrative) user, for psycopg directly."""
    return live.database_url().replace("postgres://", "postgresql://", 1)


@pytest.fixture
def limited_role():
    """A login role allowed LIMIT connections, with the application's rights on the tables of the
    test database; dropped at the end. Yields (name, URL)."""
    _require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    db = connection.settings_dict
    name = f"{db['NAME']}_limited"[:63]
    quoted = connection.ops.quote_name(name)
    password = secrets.token_hex(16)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {quoted}")
        cursor.execute(f"CREATE ROLE {quoted} LOGIN PASSWORD '{password}' CONNECTION LIMIT {LIMIT}")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    try:
        yield name, f"postgres://{name}:{password}@{host}:{port}/{db['NAME']}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name]
            )
            cursor.execute(f"DROP OWNED BY {quoted}")
            cursor.execute(f"DROP ROLE {quoted}")


def _role_connections(admin, role: str) -> int:
    return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role]).fetchone()[0]


class PeakConnections:
    """Samples the role's connections every few milliseconds while the block runs."""

    def __init__(self, role: str):
        self.role, self.peak, self._stop = role, 0, threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        with psycopg.connect(_admin_url(), autocommit=True) as admin:
            while not self._stop.is_set():
                self.peak = max(self.peak, _role_connections(admin, self.role))
                time.sleep(0.01)

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=10)


class Browser:
    """One browser tab of a signed-in user on one server: its own cookies, redirects not followed."""

    def __init__(self, port: int, cookies: dict):
        self.port, self.cookies = port, dict(cookies)

    def send(self, method, path, form=None, headers=None):
        """Returns (status, headers, text); records every answer in `self.answers`."""
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **(headers or {})}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            client.request(method, path, body, sent)
            response = client.getresponse()
            text = response.read().decode()
        finally:
            client.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            key, value = header.split(";", 1)[0].split("=", 1)
            self.cookies[key] = value
        return response.status, response.headers, text


def _csrf_token(page: str) -> str:
    return html.unescape(re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1))


def _claim_world(site, referent):
    """TASKS review tasks of one provider organisation, and AGENTS agents of it."""
    world = build_race_world(site, referent)
    provider = world["service"].provider
    agents = list(world["agents"])
    while len(agents) < AGENTS:
        agent = UserFactory(first_name=f"Agent{len(agents)}", last_name=f"Nom{len(agents)}")
        MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
        agents.append(agent)
    tasks = [open_review_task(world, referent) for _ in range(TASKS)]
    return agents, tasks


def test_thirty_two_claims_at_once_over_two_servers_stay_within_the_pools(
    site, referent, limited_role, tmp_path
):
    role, role_url = limited_role
    agents, tasks = _claim_world(site, referent)
    pages = {
        task.pk: reverse(
            "request_detail", kwargs={"public_id": ServiceRequest.objects.get(pk=task.process_id).public_id}
        )
        for task in tasks
    }
    cookies = {agent.pk: dict([live.session_for(agent).split("=", 1)]) for agent in agents}
    # Agent i claims tasks i and i+1 (modulo TASKS): eight claimants per task, two claims per agent.
    claims = [
        (agent, tasks[(index + shift) % TASKS]) for index, agent in enumerate(agents) for shift in (0, 1)
    ]
    env = live.server_env(
        DATABASE_URL=role_url,
        DATABASE_POOL_MIN_SIZE=1,
        DATABASE_POOL_MAX_SIZE=POOL_MAX,
    )
    ports = live.free_port(), live.free_port()
    answers = []  # (what, status)
    barrier = threading.Barrier(len(claims), timeout=60)

    def prepare(index):
        """The agent opens the request page (the claim button's form and its CSRF token)."""
        agent, task = claims[index]
        tab = Browser(ports[index % 2], cookies[agent.pk])
        status, _headers, page = tab.send("GET", pages[task.pk])
        answers.append(("page", status))
        return tab, _csrf_token(page) if status == 200 else ""

    def claim(index, tab, token):
        agent, task = claims[index]
        barrier.wait()
        action = pages[task.pk] + "action/claim/"
        status, headers, _text = tab.send("POST", action, {"csrfmiddlewaretoken": token})
        answers.append(("claim", status))
        if status != 302:
            return ""
        status, _headers, page = tab.send("GET", headers["Location"])
        answers.append(("page after the claim", status))
        return html.unescape(page)

    with (
        live.daphne(ports[0], env, tmp_path / "a.log"),
        live.daphne(ports[1], env, tmp_path / "b.log"),
        psycopg.connect(_admin_url(), autocommit=True) as admin,
        concurrent.futures.ThreadPoolExecutor(len(claims)) as threads,
    ):
        prepared = list(threads.map(prepare, range(len(claims))))
        with PeakConnections(role) as peak:
            outcomes = list(threads.map(lambda i: claim(i, *prepared[i]), range(len(claims))))
        after = _role_connections(admin, role)

    server_errors = [(what, status) for what, status in answers if status >= 500]
    assert not server_errors, (
        f"{len(server_errors)} server errors out of {len(answers)} answers: {server_errors}"
    )
    assert sorted({status for what, status in answers if what == "claim"}) == [302]
    for task in tasks:
        task.refresh_from_db()
        assert task.status == STATUS.ASSIGNED
        winner = task.owner.get_full_name()
        mine = [
            (agent, page) for (agent, claimed), page in zip(claims, outcomes, strict=True) if claimed == task
        ]
        won = [agent for agent, page in mine if "Vous avez pris en charge cette demande." in page]
        assert [agent.pk for agent in won] == [task.owner_id], f"task {task.pk}: winners {won}"
        for agent, page in mine:
            if agent.pk != task.owner_id:
                assert f"{winner} a pris en charge cette tâche avant vous." in page
                assert f"Prise en charge par {winner}." in page
        claimed = RequestEvent.objects.filter(request_id=task.process_id, kind=EventKind.CLAIMED)
        assert claimed.count() == 1
    assert peak.peak <= 2 * POOL_MAX, f"the role held {peak.peak} connections at peak"
    assert after <= 2 * POOL_MAX, f"the role still holds {after} connections"


def test_the_suite_reaches_postgresql_through_the_pool():
    """The test settings are the production ones: on PostgreSQL the suite itself runs on the pool."""
    _require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    connection.ensure_connection()
    assert connection.pool is not None
    assert connection.connection._pool is connection.pool
