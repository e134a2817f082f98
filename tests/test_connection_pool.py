"""Sixteen people at once must not exhaust PostgreSQL (issue 16, §0).

Two daphne processes connect as a role that PostgreSQL allows LIMIT connections, each with a
connection pool of POOL_MAX; sixteen partner agents claim four review tasks through them, 32 HTTP
claims released at the same instant. Every task has exactly one winner, every loser is shown who
took it (« Prise en charge par … »), no answer is a server error, and the role never holds more
connections than the two pools.

When no connection can be had (the pool exhausted for its whole timeout, PostgreSQL refusing a
new one), the answer is the 503 page with `Retry-After` (config/errors.py), never a 500: live with
a pool of one connection held by a request that waits on a lock, and through Django's error
handling with each kind of error.

The live tests need PostgreSQL: skipped locally without it, a failure in CI (REQUIRE_SERVICES=1).
"""

import concurrent.futures
import html
import http.client
import json
import re
import threading
import time
import urllib.parse

import psycopg
import psycopg.errors
import pytest
from django.contrib.auth.decorators import login_not_required
from django.db import connection, connections
from django.db.utils import IntegrityError, OperationalError
from django.test import Client
from django.urls import path, reverse
from psycopg_pool import PoolTimeout
from viewflow.workflow.status import STATUS

import config.urls
from config import errors
from tests import live
from tests.factories import MembershipFactory, UserFactory
from tests.test_claim_race import build_race_world, open_review_task
from tests.test_services_backends import _require
from workflows.models import EventKind, RequestEvent, ServiceRequest

LIMIT = 12  # connections PostgreSQL allows the role
POOL_MAX = 4  # per daphne process: the two pools stay under LIMIT
AGENTS = 16
TASKS = 4
# The live tests: daphne and the role see only what is committed.
live_database = pytest.mark.django_db(transaction=True)


@pytest.fixture
def limited_role():
    """A login role allowed LIMIT connections, with the application's rights on the test database;
    dropped at the end. Yields (name, URL)."""
    _require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    with live.limited_role(LIMIT) as role:
        yield role


def role_connections(admin, role: str) -> int:
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
        with psycopg.connect(live.admin_url(), autocommit=True) as admin:
            while not self._stop.is_set():
                self.peak = max(self.peak, role_connections(admin, self.role))
                time.sleep(0.01)

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=10)


class Browser:
    """One browser tab of a signed-in user on one server: its own cookies, redirects not followed."""

    def __init__(self, port: int, cookies: dict):
        self.port, self.cookies = port, dict(cookies)

    def send(self, method, path, form=None, headers=None):
        """Returns (status, headers, text)."""
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


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else ""


def claim_world(site, referent, agents=AGENTS):
    """The world of tests/test_claim_race (a case, its need, a provider's service) with `agents`
    agents of the provider. Returns (world, agents)."""
    world = build_race_world(site, referent)
    provider = world["service"].provider
    members = list(world["agents"])
    while len(members) < agents:
        agent = UserFactory(first_name=f"Agent{len(members)}", last_name=f"Nom{len(members)}")
        MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
        members.append(agent)
    return world, members


def request_page(task) -> str:
    public_id = ServiceRequest.objects.values_list("public_id", flat=True).get(pk=task.process_id)
    return reverse("request_detail", kwargs={"public_id": public_id})


def claims_of(agents, tasks) -> list:
    """Agent i claims tasks i and i+1 (modulo their number): two claims per agent, as many
    claimants on each task."""
    return [
        (agent, tasks[(index + shift) % len(tasks)]) for index, agent in enumerate(agents) for shift in (0, 1)
    ]


def claim_at_once(ports, claims, cookies, threads) -> list[dict]:
    """Each (agent, task) of `claims`, in a tab of its own on server ports[i % 2], opens the task's
    request page (the claim button's form and CSRF token); then all claim at the same instant and
    follow the redirect to the page, as a browser does. For each claim: its answers
    [(what, status)], the claim's time in ms (the POST until its answer), with the page it
    redirects to (`page_ms`), and that page."""
    pages = {task.pk: request_page(task) for _agent, task in claims}
    barrier = threading.Barrier(len(claims), timeout=60)

    def prepare(index):
        agent, task = claims[index]
        tab = Browser(ports[index % len(ports)], cookies[agent.pk])
        status, _headers, page = tab.send("GET", pages[task.pk])
        return tab, csrf_token(page), [("page", status)]

    def claim(index, tab, token, answers):
        _agent, task = claims[index]
        outcome = {"answers": answers, "claim_ms": None, "page_ms": None, "page": ""}
        barrier.wait()
        started = time.perf_counter()
        status, headers, _text = tab.send(
            "POST", pages[task.pk] + "action/claim/", {"csrfmiddlewaretoken": token}
        )
        outcome["claim_ms"] = (time.perf_counter() - started) * 1000
        answers.append(("claim", status))
        if status == 302:
            status, _headers, page = tab.send("GET", headers["Location"])
            outcome["page_ms"] = (time.perf_counter() - started) * 1000
            answers.append(("page after the claim", status))
            outcome["page"] = html.unescape(page)
        return outcome

    prepared = list(threads.map(prepare, range(len(claims))))
    return list(threads.map(lambda index: claim(index, *prepared[index]), range(len(claims))))


def judge_claims(tasks, claims, outcomes) -> dict:
    """Server errors; and what went wrong besides: a claim not answered by a redirect, a task
    without exactly one winner, a loser not told who took it, not exactly one CLAIMED event."""
    answers = [answer for outcome in outcomes for answer in outcome["answers"]]
    verdict = {
        "answers": len(answers),
        "server_errors": [(what, status) for what, status in answers if status >= 500],
        "problems": [
            f"claim answered {status}" for what, status in answers if what == "claim" and status != 302
        ],
        "tasks_one_winner": 0,
        "losers": 0,
        "losers_told": 0,
    }
    for task in tasks:
        task.refresh_from_db()
        mine = [
            (agent, outcome["page"])
            for (agent, claimed), outcome in zip(claims, outcomes, strict=True)
            if claimed == task
        ]
        won = [agent.pk for agent, page in mine if "Vous avez pris en charge cette demande." in page]
        if task.status != STATUS.ASSIGNED or won != [task.owner_id]:
            verdict["problems"].append(
                f"task {task.pk} ({task.status}, owner {task.owner_id}): winners {won}"
            )
            continue
        claimed = RequestEvent.objects.filter(request_id=task.process_id, kind=EventKind.CLAIMED).count()
        if claimed != 1:
            verdict["problems"].append(f"task {task.pk}: {claimed} CLAIMED events")
            continue
        verdict["tasks_one_winner"] += 1
        winner = task.owner.get_full_name()
        for agent, page in mine:
            if agent.pk == task.owner_id:
                continue
            verdict["losers"] += 1
            if (
                f"{winner} a pris en charge cette tâche avant vous." in page
                and f"Prise en charge par {winner}." in page
            ):
                verdict["losers_told"] += 1
            else:
                verdict["problems"].append(f"task {task.pk}: {agent.get_full_name()} not told who took it")
    return verdict


@live_database
def test_thirty_two_claims_at_once_over_two_servers_stay_within_the_pools(
    site, referent, limited_role, tmp_path
):
    role, role_url = limited_role
    world, agents = claim_world(site, referent)
    tasks = [open_review_task(world, referent) for _ in range(TASKS)]
    claims = claims_of(agents, tasks)  # 32 claims, eight claimants per task
    cookies = {agent.pk: dict([live.session_for(agent).split("=", 1)]) for agent in agents}
    env = live.server_env(DATABASE_URL=role_url, DATABASE_POOL_MIN_SIZE=1, DATABASE_POOL_MAX_SIZE=POOL_MAX)
    ports = live.free_port(), live.free_port()
    with (
        live.daphne(ports[0], env, tmp_path / "a.log"),
        live.daphne(ports[1], env, tmp_path / "b.log"),
        psycopg.connect(live.admin_url(), autocommit=True) as admin,
        concurrent.futures.ThreadPoolExecutor(len(claims)) as threads,
        PeakConnections(role) as peak,
    ):
        outcomes = claim_at_once(ports, claims, cookies, threads)
        after = role_connections(admin, role)

    verdict = judge_claims(tasks, claims, outcomes)
    assert verdict["server_errors"] == [], f"{len(verdict['server_errors'])} of {verdict['answers']} answers"
    assert verdict["problems"] == []
    assert verdict["tasks_one_winner"] == TASKS
    assert verdict["losers_told"] == verdict["losers"] == len(claims) - TASKS
    assert peak.peak <= 2 * POOL_MAX, f"the role held {peak.peak} connections at peak"
    assert after <= 2 * POOL_MAX, f"the role still holds {after} connections"


@pytest.mark.django_db
def test_the_suite_reaches_postgresql_through_the_pool():
    """The test settings are the production ones: on PostgreSQL the suite itself runs on the pool."""
    _require(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    connection.ensure_connection()
    assert connection.pool is not None
    assert connection.connection._pool is connection.pool


# --- The 503 page ------------------------------------------------------------------------------

BUSY = "Trop de personnes utilisent le service en ce moment"


def _wrapped(driver_error):
    """The error as Django raises it: its own OperationalError, raised from the driver's."""
    try:
        try:
            raise driver_error
        except psycopg.Error as error:
            raise OperationalError(*error.args) from error
    except OperationalError as error:
        return error


SATURATED = {
    "pool exhausted": _wrapped(PoolTimeout("couldn't get a connection after 10.00 sec")),
    "SQLSTATE 53300": _wrapped(psycopg.errors.TooManyConnections("too many connections")),
    "role limit": _wrapped(
        psycopg.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            'FATAL:  too many connections for role "tds"'
        )
    ),
    "max_connections": _wrapped(psycopg.OperationalError("FATAL:  sorry, too many clients already")),
    "reserved slots": _wrapped(
        psycopg.OperationalError(
            "FATAL:  remaining connection slots are reserved for non-replication superuser connections"
        )
    ),
    "role limit, French server": _wrapped(
        psycopg.OperationalError("FATAL:  trop de connexions pour le rôle « tds »")
    ),
}
NOT_SATURATED = {
    "connection lost": _wrapped(psycopg.OperationalError("server closed the connection unexpectedly")),
    "constraint": IntegrityError("duplicate key value violates unique constraint"),
    "bug": ValueError("too many connections"),  # not a database error, whatever it says
}


@pytest.mark.parametrize("error", SATURATED.values(), ids=SATURATED.keys())
def test_no_connection_to_give_is_recognised(error):
    assert errors.database_saturated(error)


@pytest.mark.parametrize("error", NOT_SATURATED.values(), ids=NOT_SATURATED.keys())
def test_other_failures_are_not_taken_for_a_busy_database(error):
    assert not errors.database_saturated(error)


_raised = {}


@login_not_required
def _failing_view(request):
    raise _raised["error"]


urlpatterns = [path("test-failure/", _failing_view), *config.urls.urlpatterns]
handler500 = config.urls.handler500


@pytest.fixture
def failing(settings):
    """A page that raises the error `failing(error)` gives it, through the project's handlers."""
    settings.ROOT_URLCONF = __name__

    def set_error(error):
        _raised["error"] = error
        return Client(raise_request_exception=False)

    yield set_error
    _raised.clear()


@pytest.mark.django_db
@pytest.mark.parametrize("error", SATURATED.values(), ids=SATURATED.keys())
def test_a_busy_database_is_a_french_503_page_with_retry_after(failing, error, django_assert_num_queries):
    with django_assert_num_queries(0):  # the handler and its page ask nothing of the database
        response = failing(error).get("/test-failure/?page=2")
    assert response.status_code == 503
    assert response["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
    assert response["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in response
    page = html.unescape(response.content.decode())
    assert "<title>Service momentanément indisponible — Territoires de solutions</title>" in page
    assert BUSY in page
    assert "rien n’a été enregistré" in page
    assert 'href="/test-failure/?page=2">Réessayer</a>' in page
    assert 'class="fr-header"' in page


@pytest.mark.django_db
def test_a_busy_database_after_a_form_asks_to_send_it_again(failing):
    response = failing(SATURATED["pool exhausted"]).post("/test-failure/", {"x": "1"})
    assert response.status_code == 503
    page = html.unescape(response.content.decode())
    assert "Revenez à la page précédente et renvoyez le formulaire" in page
    assert "Réessayer</a>" not in page


@pytest.mark.django_db
def test_a_busy_database_answers_htmx_with_a_fragment_and_json_clients_with_json(failing):
    client = failing(SATURATED["role limit"])
    fragment = client.get("/test-failure/", headers={"HX-Request": "true"})
    assert fragment.status_code == 503
    assert fragment["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
    text = html.unescape(fragment.content.decode())
    assert text.startswith('<div id="service-unavailable" class="fr-alert fr-alert--warning')
    assert BUSY in text
    assert "<html" not in text

    answer = client.get("/test-failure/", headers={"Accept": "application/json"})
    assert answer.status_code == 503
    assert answer["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
    body = json.loads(answer.content)
    assert body["error"] == "service_unavailable"
    assert body["retry_after"] == errors.RETRY_AFTER_SECONDS
    assert BUSY in body["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("error", NOT_SATURATED.values(), ids=NOT_SATURATED.keys())
def test_other_failures_keep_the_500_page(failing, error):
    response = failing(error).get("/test-failure/")
    assert response.status_code == 500
    assert "Retry-After" not in response
    assert "Une erreur inattendue s’est produite" in response.content.decode()


@live_database
def test_postgresql_refusing_a_connection_is_recognised(limited_role):
    """The real refusal of this server, through Django, without a pool (DATABASE_POOL=0): the role
    holds every connection it may open, Django asks for one more."""
    role, role_url = limited_role
    settings_dict = {
        **connection.settings_dict,
        "USER": role,
        "PASSWORD": role_url.split(":")[2].split("@")[0],
        "OPTIONS": {k: v for k, v in connection.settings_dict["OPTIONS"].items() if k != "pool"},
    }
    held = [psycopg.connect(role_url.replace("postgres://", "postgresql://", 1)) for _ in range(LIMIT)]
    wrapper = connections.create_connection("default").__class__(settings_dict, alias="refused")
    try:
        with pytest.raises(OperationalError) as refused:
            wrapper.ensure_connection()
    finally:
        wrapper.close()
        for held_connection in held:
            held_connection.close()
    assert "too many connections" in str(refused.value)
    assert errors.database_saturated(refused.value)


@live_database
def test_an_exhausted_pool_gives_the_503_page_with_retry_after(site, referent, limited_role, tmp_path):
    """A server with a pool of one connection: a first request holds it, waiting on a lock; the
    next ones find no connection within the pool's timeout (1 s) and get the 503 answer, as a
    page, an htmx fragment and JSON. The first one then ends normally."""
    role, role_url = limited_role
    cookie = dict([live.session_for(referent).split("=", 1)])
    env = live.server_env(
        DATABASE_URL=role_url, DATABASE_POOL_MIN_SIZE=1, DATABASE_POOL_MAX_SIZE=1, DATABASE_POOL_TIMEOUT=1
    )
    port = live.free_port()
    home = reverse("home")
    with (
        live.daphne(port, env, tmp_path / "server.log"),
        psycopg.connect(live.admin_url(), autocommit=True) as admin,
        psycopg.connect(live.admin_url()) as locker,
        concurrent.futures.ThreadPoolExecutor(4) as threads,
    ):
        # Every signed-in request reads its session first: it waits while the table is locked.
        locker.execute("LOCK TABLE django_session IN ACCESS EXCLUSIVE MODE")
        first = threads.submit(Browser(port, cookie).send, "GET", home)
        deadline = time.monotonic() + 20
        while not admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'", [role]
        ).fetchone():
            assert time.monotonic() < deadline, "the first request never reached the database"
            time.sleep(0.05)
        kinds = {"page": {}, "htmx": {"HX-Request": "true"}, "json": {"Accept": "application/json"}}
        busy = {
            kind: threads.submit(Browser(port, cookie).send, "GET", home, None, headers)
            for kind, headers in kinds.items()
        }
        busy = {kind: future.result(timeout=30) for kind, future in busy.items()}
        locker.commit()
        first_status, _headers, _page = first.result(timeout=30)

    for kind, (status, headers, text) in busy.items():
        assert status == 503, f"{kind}: {status}"
        assert headers["Retry-After"] == str(errors.RETRY_AFTER_SECONDS), kind
        assert BUSY in html.unescape(text), kind
    assert "<title>Service momentanément indisponible" in busy["page"][2]
    assert json.loads(busy["json"][2])["error"] == "service_unavailable"
    assert first_status == 200
