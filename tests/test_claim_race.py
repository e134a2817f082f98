"""The claim of a review task is atomic: when several agents of the provider organisation claim it
at the same instant, exactly one wins and every other one is told who took it.

Each contender is a thread with its own database connection, released together by a barrier.
The number of trials comes from CLAIM_RACE_TRIALS (20 by default, CI sets 200).

On SQLite the test database of pytest-django is a shared-cache in-memory database, which threads
cannot use concurrently (table locks fail at once instead of waiting); the `_sqlite_file_database`
fixture copies it to a file for this module only, so that WAL and BEGIN IMMEDIATE (the settings)
serialise the writers as in production.
"""

import functools
import os
import queue
import sqlite3
import threading
import time
from collections import Counter

import pytest
from django.db import connection, connections
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from casework.models import User
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import EventKind, RequestEvent

TRIALS = max(1, int(os.environ.get("CLAIM_RACE_TRIALS", "20")))
BARRIER_TIMEOUT = 60  # seconds: a contender that never reaches the barrier fails the trial


@pytest.fixture(scope="module", autouse=True)
def _sqlite_file_database(django_db_setup, django_db_blocker, tmp_path_factory):
    """On SQLite, run this module on a file copy of the (in-memory) test database.

    The copy holds the migrated schema and its rows (content types...). New connections of every
    thread read `connections.settings`, so pointing it at the file reaches the contenders; the
    main thread gets a new connection to the file. The in-memory database and its connection are
    left untouched (closing that connection would destroy it) and restored afterwards.
    """
    alias = "default"
    memory = connections[alias]
    if memory.vendor != "sqlite" or not memory.is_in_memory_db():
        yield
        return
    path = tmp_path_factory.mktemp("claim_race") / "test.sqlite3"
    with django_db_blocker.unblock():
        memory.ensure_connection()
        target = sqlite3.connect(path)
        try:
            memory.connection.backup(target)
        finally:
            target.close()
    original_settings = connections.settings[alias]
    file_settings = {**original_settings, "NAME": str(path)}
    connections.settings[alias] = file_settings
    connections[alias] = connections.create_connection(alias)
    try:
        yield
    finally:
        with django_db_blocker.unblock():
            connections[alias].close()
        connections[alias] = memory
        connections.settings[alias] = original_settings


@pytest.fixture
def race_world(site, referent):
    """A diagnosed case with a need, a toolbox service of a provider organisation serving the
    site's territory, and eight agents of that organisation: built once per test."""
    return build_race_world(site, referent)


def build_race_world(site, referent) -> dict:
    """The world of `race_world` (also used by `make bench`, bench/claim_race.py)."""
    case = CaseFactory(site=site, referent=referent, diagnosed=True)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    provider = OrganisationFactory(name="Plateforme mobilité")
    service = ToolboxServiceFactory(
        name="Location de scooters",
        category="mobility",
        provider=provider,
        territories=[site.territory],
        response_time_days=3,
    )
    agents = []
    for index in range(8):
        agent = UserFactory(first_name=f"Agent{index}", last_name=f"Nom{index}")
        MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
        agents.append(agent)
    return {"case": case, "need": need, "service": service, "agents": agents}


def open_review_task(world, referent) -> Task:
    """A new request on the service (the need stays in progress) and its review task."""
    request = services.request_open(
        actor=referent,
        case=world["case"],
        need=world["need"],
        service=world["service"],
        brief="Mobilité pour 3 recrues",
    )
    return Task.objects.get(process_id=request.pk, flow_task=FLOW.review, status=STATUS.NEW)


class Contenders:
    """One thread per agent, each with its own database connection, kept for all the trials of a
    test (opening eight connections per trial would cost more than the race itself). For each
    trial every thread is handed the task, waits at the barrier, then claims; the connections are
    closed when the threads end, before the test's teardown empties the database."""

    def __init__(self, user_ids: list[int]):
        self.barrier = threading.Barrier(len(user_ids), timeout=BARRIER_TIMEOUT)
        self.jobs = {user_id: queue.SimpleQueue() for user_id in user_ids}
        self.outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self.contend, args=(user_id,), daemon=True) for user_id in user_ids
        ]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        for jobs in self.jobs.values():
            jobs.put(None)
        for thread in self.threads:
            thread.join(timeout=BARRIER_TIMEOUT)

    def contend(self, user_id: int) -> None:
        try:
            user = User.objects.get(pk=user_id)  # this thread's own instance (roles cached on it)
            while (task_id := self.jobs[user_id].get()) is not None:
                try:
                    self.barrier.wait()
                    services.task_claim(actor=user, task_id=task_id)
                except BaseException as error:  # noqa: B036 - every outcome is recorded, then judged
                    self.outcomes.put((user_id, error))
                else:
                    self.outcomes.put((user_id, None))
        finally:
            connection.close()

    def race(self, task_id: int) -> dict[int, BaseException | None]:
        """Every agent claims the task at the same instant. The outcome of each: None when the
        claim succeeded, else the exception it raised."""
        for jobs in self.jobs.values():
            jobs.put(task_id)
        outcomes = {}
        for _ in self.jobs:
            try:
                user_id, error = self.outcomes.get(timeout=2 * BARRIER_TIMEOUT)
            except queue.Empty:
                break
            outcomes[user_id] = error
        if self.barrier.broken:
            self.barrier.reset()
        return outcomes


def describe(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}: {error}"


def judge(task: Task, outcomes: dict[int, BaseException | None], names: dict[int, str]) -> list[str]:
    """What went wrong in one trial: nothing when exactly one claim succeeded, every other one
    raised TaskTakenError naming the winner, and the task is the winner's with one CLAIMED event."""
    problems = []
    if len(outcomes) != len(names):
        problems.append(f"{len(names) - len(outcomes)} contenders without an outcome")
    winners = [user_id for user_id, error in outcomes.items() if error is None]
    if len(winners) != 1:
        problems.append(f"{len(winners)} winners")
    for error in outcomes.values():
        if error is None:
            continue
        if type(error) is not services.TaskTakenError:
            problems.append(describe(error))
        elif len(winners) == 1 and names[winners[0]] not in str(error):
            problems.append(f"loser not told the winner {names[winners[0]]!r}: {error}")
    if len(winners) == 1:
        task.refresh_from_db()
        if task.status != STATUS.ASSIGNED or task.owner_id != winners[0]:
            problems.append(f"task {task.status} owned by {task.owner_id}, not by the winner")
        claimed = RequestEvent.objects.filter(request_id=task.process_id, kind=EventKind.CLAIMED)
        if list(claimed.values_list("actor_id", flat=True)) != winners:
            problems.append(f"{claimed.count()} CLAIMED events")
    return problems


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("contenders", [2, 8])
def test_concurrent_claims_have_exactly_one_winner(race_world, referent, contenders):
    agents = race_world["agents"][:contenders]
    names = {agent.pk: agent.get_full_name() for agent in agents}
    successes = 0
    problems: Counter[str] = Counter()
    started = time.monotonic()
    with Contenders(list(names)) as pool:
        for _ in range(TRIALS):
            task = open_review_task(race_world, referent)
            trial_problems = judge(task, pool.race(task.pk), names)
            problems.update(trial_problems)
            successes += not trial_problems
    elapsed = time.monotonic() - started
    print(
        f"\nclaim race, {contenders} contenders on {connection.vendor}: {successes}/{TRIALS} trials clean "
        f"in {elapsed:.1f} s"
    )
    assert successes == TRIALS, (
        f"{successes}/{TRIALS} trials with exactly one winner and {contenders - 1} losers told who won "
        f"(on {connection.vendor}); problems by frequency: {dict(problems.most_common())}"
    )


@pytest.mark.django_db(transaction=True)
def test_a_comment_and_an_acceptance_on_the_same_case_at_once_both_succeed(race_world, referent):
    """Locks are always taken in one order (the audit chain first, then rows): a comment (case row
    first) and an acceptance (request, then the case's activity stamp) on the same case at the same
    instant used to deadlock on PostgreSQL. Both must succeed, in every trial."""
    from casework import services as case_services

    agent = race_world["agents"][0]
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    problems = []

    def run(function):
        try:
            barrier.wait()
            function()
        except BaseException as error:  # noqa: B036 - every outcome is recorded, then judged
            problems.append(describe(error))
        finally:
            connection.close()

    def comment(trial):
        case_services.comment_add(actor=referent, case=race_world["case"], body=f"Point {trial}")

    def accept(task_id):
        services.request_accept(actor=agent, task_id=task_id)

    for trial in range(max(10, TRIALS // 5)):
        task = open_review_task(race_world, referent)
        services.task_claim(actor=agent, task_id=task.pk)
        threads = [
            threading.Thread(target=run, args=(functools.partial(comment, trial),)),
            threading.Thread(target=run, args=(functools.partial(accept, task.pk),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=2 * BARRIER_TIMEOUT)
    assert problems == []


@pytest.mark.django_db(transaction=True)
def test_writers_at_once_keep_both_audit_chains_whole(race_world, referent):
    """Each chain's writers queue on its lock, which also returns the chain's head (PostgreSQL,
    `audit_chain_lock`), or on BEGIN IMMEDIATE (SQLite), and each entry follows the head the
    previous writer committed: services (change chain) and page accesses (access chain) from four
    threads at once leave both chains verifiable, without a gap or a position taken twice."""
    from audit import chain
    from audit.models import AuditEntry
    from casework import services as case_services

    case = race_world["case"]
    writers, rounds = 4, 8
    barrier = threading.Barrier(writers, timeout=BARRIER_TIMEOUT)
    problems = []

    def write(index):
        try:
            user = User.objects.get(pk=referent.pk)
            barrier.wait()
            for turn in range(rounds):
                case_services.comment_add(actor=user, case=case, body=f"Point {index}.{turn}")
                AuditEntry.objects.log_create(
                    case, force_log=True, action=AuditEntry.Action.ACCESS, actor=user
                )
        except BaseException as error:  # noqa: B036 - every outcome is recorded, then judged
            problems.append(describe(error))
        finally:
            connection.close()

    before = {c: AuditEntry.objects.filter(chain=c).count() for c in ("change", "access")}
    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * BARRIER_TIMEOUT)
    assert problems == []
    assert chain.verify() == []
    assert AuditEntry.objects.filter(chain="access").count() == before["access"] + writers * rounds
    assert AuditEntry.objects.filter(chain="change").count() >= before["change"] + writers * rounds
    for name, (seq, _hash) in chain.heads().items():
        assert AuditEntry.objects.filter(chain=name).count() == seq  # positions 1..seq, each once
