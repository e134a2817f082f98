"""Write path benchmark (`make bench`, keys "write_path" and "audit_overhead"): a partner agent
accepts a service request, through the product's own code, on PostgreSQL.

Each sample is `workflows.services.request_accept` on a request the agent has just claimed (the
claim and the opening are not timed), on its own case, as the view calls it: one transaction as in
production (not nested in a test transaction), the flow lock, viewflow moving the request to
delivery, the state machine, the audit entry chained under the chain's lock (its head row), the
timeline row, the case's board figures and activity stamp, the referent's notification row, and
after the commit the rings of the referent's socket and of the site's board through the Redis
channel layer. The service runs in a worker thread of an asyncio loop, as daphne runs a view, so
that the rings use the loop's Redis connections as they do in the server, in a process set up as
the server's (`config.asgi`: start-up objects frozen, the collector's thresholds raised). The
agent's roles are read beforehand, as the view's own reads of the request did.

- `write_path.p95_ms` (and p50): the accept, audit on;
- `write_path.baseline_p95_ms`: a bare transaction of the same four writes with psycopg directly,
  in the same run, interleaved with the samples: the task's state, the case's activity, one audit
  row, one notification row (its audit rows go to a chain of their own, `bench`, so the real
  chains stay verifiable);
- `write_path.queries`: the SQL statements of one accept as the database receives them (BEGIN and
  COMMIT included), read with Django's query log on a sample apart from the timed ones;
- `audit_overhead.ratio_p95`: the same accept with auditing on ÷ off, interleaved in the same run.
  "Off" is django-auditlog's `disable_auditlog()` (no entry, no diff read) and no chain lock (the
  lock of the chain's head row, `audit.chain._lock`, made a no-op for that call only).

At the end the audit chains are verified (`audit.chain.verify`): every "on" accept left its entry.

    python -m bench.write_path [--samples 200]
"""

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from unittest import mock

from bench.notify import (
    RESULTS,
    ROOT,
    percentile,
    service_arguments,
    start_django,
)

# Issue 16 §4: p95 within 5× the bare transaction, at most 12 statements, audit on ÷ off ≤ 1.15.
TARGET_RATIO = 5.0
TARGET_QUERIES = 12
TARGET_AUDIT_RATIO = 1.15
WARM_UP = 20


def machine() -> dict:
    import platform

    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "cores": os.cpu_count(),
    }


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def empty_bench_database():
    """Migrate and empty the bench database (its name must contain 'bench'), then the region."""
    from django.core.management import call_command
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if "bench" not in str(name):
        sys.exit(f"Refusing to empty database {name!r}: its name must contain 'bench'.")
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    call_command("seed_region", verbosity=0)


class World:
    """A pilot site, one referent, a provider organisation offering a mobility service in the site's
    territory with two agents; `claimed_task()` gives a new diagnosed case, its need, a request on
    the service and its review task claimed by the agent."""

    def __init__(self):
        from casework.models import PilotSite
        from tests.factories import (
            CaseFactory,
            MembershipFactory,
            OrganisationFactory,
            ToolboxServiceFactory,
            UserFactory,
        )

        self.site = PilotSite.objects.order_by("pk").first()
        first = CaseFactory(site=self.site, diagnosed=True)
        self.referent, self.referent_organisation = first.referent, first.referent_organisation
        self.provider = OrganisationFactory(name="Plateforme mobilité (banc)")
        self.service = ToolboxServiceFactory(
            name="Location de scooters (banc)",
            category="mobility",
            provider=self.provider,
            territories=[self.site.territory],
            response_time_days=3,
        )
        self.agents = []
        for index in range(2):
            agent = UserFactory(first_name=f"Agent{index}", last_name="Banc")
            MembershipFactory(user=agent, organisation=self.provider, can_be_referent=False)
            self.agents.append(agent)

    def claimed_task(self):
        """(task id, case id, request id) of a review task claimed by the first agent."""
        from viewflow.workflow.models import Task
        from viewflow.workflow.status import STATUS

        from tests.factories import CaseFactory, NeedFactory
        from workflows import services
        from workflows.flows import ServiceRequestFlow as FLOW

        case = CaseFactory(
            site=self.site,
            referent=self.referent,
            referent_organisation=self.referent_organisation,
            diagnosed=True,
        )
        need = NeedFactory(case=case, created_by=self.referent, category="mobility")
        request = services.request_open(
            actor=self.referent, case=case, need=need, service=self.service, brief="Mobilité pour 3 recrues"
        )
        task = Task.objects.get(process_id=request.pk, flow_task=FLOW.review, status=STATUS.NEW)
        services.task_claim(actor=self.agents[0], task_id=task.pk)
        return task.pk, case.pk, request.pk

    def actor(self):
        """The agent as a view has them: a fresh instance whose roles were already read."""
        from casework import rules
        from casework.models import User

        actor = User.objects.get(pk=self.agents[0].pk)
        rules.user_roles(actor)
        return actor


@contextlib.contextmanager
def auditing_off():
    """The accept without its audit trail: no auditlog entry (nor its diff read), no chain lock."""
    from auditlog.context import disable_auditlog

    with disable_auditlog(), mock.patch("audit.chain._lock", lambda chain: None):
        yield


def rings_sent() -> None:
    """Wait, untimed, until the rings the last accept handed to the event loop have left: the
    next sample starts on an idle server, as a user's next click would, instead of sharing the
    interpreter with the previous sample's rings."""
    from notifications import delivery

    loop = delivery._server_loop()
    if loop is None:
        return

    async def rings():
        pending = [task for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "_deliver"]
        if pending:
            await asyncio.wait(pending)

    asyncio.run_coroutine_threadsafe(rings(), loop).result(timeout=30)


def accept(world, task_id) -> float:
    """One accept through the product's service, as the view calls it; milliseconds, from the call
    to its return (the commit included; the rings leave on the event loop, then are waited for)."""
    from workflows import services

    actor = world.actor()
    start = time.perf_counter()
    services.request_accept(actor=actor, task_id=task_id)
    elapsed = (time.perf_counter() - start) * 1000
    rings_sent()
    return elapsed


class Baseline:
    """The same four writes in a bare psycopg transaction, on the rows of an accepted sample."""

    def __init__(self, database_url, world):
        import psycopg
        from django.contrib.contenttypes.models import ContentType

        from workflows.models import ServiceRequest

        self.conn = psycopg.connect(database_url)
        self.seq = 0
        self.actor_id = world.agents[0].pk
        self.recipient_id = world.referent.pk
        self.content_type_id = ContentType.objects.get_for_model(ServiceRequest).pk

    def run(self, task_id, case_id, request_id) -> float:
        self.seq += 1
        start = time.perf_counter()
        with self.conn.transaction():
            cursor = self.conn.cursor()
            cursor.execute(
                "UPDATE viewflow_task SET status = 'DONE', finished = now() WHERE id = %s", [task_id]
            )
            cursor.execute("UPDATE casework_case SET last_activity_at = now() WHERE id = %s", [case_id])
            cursor.execute(
                "INSERT INTO audit_auditentry (content_type_id, object_pk, object_id, object_repr, action,"
                " changes_text, changes, actor_id, timestamp, chain, seq, prev_hash, entry_hash,"
                " content_digest, redaction_hash)"
                " VALUES (%s, %s, %s, 'banc', 1, '', %s, %s, now(), 'bench', %s, %s, %s, %s, '')",
                [
                    self.content_type_id,
                    str(request_id),
                    request_id,
                    json.dumps({"stage": ["claimed", "accepted"]}),
                    self.actor_id,
                    self.seq,
                    "0" * 64,
                    "1" * 64,
                    "2" * 64,
                ],
            )
            cursor.execute(
                "INSERT INTO notifications_notification (recipient_id, event_type, actor_id, case_id,"
                " service_request_id, text, created_at)"
                " VALUES (%s, 'request_accepted', %s, %s, %s, %s, now())",
                [self.recipient_id, self.actor_id, case_id, request_id, "Demande acceptée (banc)"],
            )
        return (time.perf_counter() - start) * 1000


def count_queries(world, off=False) -> list[str]:
    """The statements of one accept, as the database receives them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    task_id, _, _ = world.claimed_task()
    actor = world.actor()
    from workflows import services

    with auditing_off() if off else contextlib.nullcontext(), CaptureQueriesContext(connection) as queries:
        services.request_accept(actor=actor, task_id=task_id)
    return [query["sql"] for query in queries.captured_queries]


def measure(world, baseline, samples):
    """Interleaved: per sample, the accept audited, the accept unaudited (alternating which goes
    first) and the bare transaction."""
    on, off, bare = [], [], []
    for index in range(WARM_UP + samples):
        audited, unaudited = world.claimed_task(), world.claimed_task()
        order = (True, False) if index % 2 == 0 else (False, True)
        timings = {}
        for audit in order:
            task_id = (audited if audit else unaudited)[0]
            with contextlib.nullcontext() if audit else auditing_off():
                timings[audit] = accept(world, task_id)
        bare_ms = baseline.run(*audited)
        if index >= WARM_UP:
            on.append(timings[True])
            off.append(timings[False])
            bare.append(bare_ms)
    return on, off, bare


async def run(args):
    from asgiref.sync import sync_to_async

    def prepare():
        empty_bench_database()
        return World()

    world = await sync_to_async(prepare)()
    baseline = await sync_to_async(Baseline)(args.database_url, world)
    on, off, bare = await sync_to_async(measure)(world, baseline, args.samples)
    statements = await sync_to_async(count_queries)(world)
    statements_off = await sync_to_async(count_queries)(world, True)

    def verify():
        from audit import chain

        return [str(problem) for problem in chain.verify()]

    problems = await sync_to_async(verify)()
    await sync_to_async(baseline.conn.close)()
    return on, off, bare, statements, statements_off, problems


def kinds(statements) -> dict:
    counted = {}
    for sql in statements:
        word = sql.split(None, 1)[0].upper()
        counted[word] = counted.get(word, 0) + 1
    return dict(sorted(counted.items()))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200)
    service_arguments(parser)
    args = parser.parse_args()

    start_django(args)
    # The process as the server sets it up (config/asgi.py: the start-up objects frozen, the
    # garbage collector's thresholds raised): a view runs the accept in daphne's process. With
    # CPython's defaults instead, collections landing in samples raised p95 by about a fifth.
    import config.asgi  # noqa: F401, I001 (after Django's start, as the server imports it)
    from django.db import connection

    started = time.perf_counter()
    print(f"write_path: {args.samples} samples (+{WARM_UP} warm-up) on {connection.vendor} …", flush=True)
    on, off, bare, statements, statements_off, problems = asyncio.run(run(args))
    context = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "database": connection.vendor,
        **machine(),
    }
    p95, bare_p95 = percentile(on, 0.95), percentile(bare, 0.95)
    write_path = {
        "p50_ms": percentile(on, 0.50),
        "p95_ms": p95,
        "baseline_p50_ms": percentile(bare, 0.50),
        "baseline_p95_ms": bare_p95,
        "ratio_p95": round(p95 / max(bare_p95, 0.1), 2),
        "queries": len(statements),
        "queries_by_kind": kinds(statements),
        "samples": len(on),
        "audit_chains_verified": not problems,
        "duration_s": round(time.perf_counter() - started, 1),
        "context": {
            **context,
            "path": "workflows.services.request_accept after task_claim, own transaction, rings after commit",
            "baseline": "psycopg: UPDATE task, UPDATE case, INSERT audit row, INSERT notification, COMMIT",
            "targets": {"ratio_p95": TARGET_RATIO, "queries": TARGET_QUERIES},
        },
    }
    audit_p95_off = percentile(off, 0.95)
    audit_overhead = {
        "ratio_p95": round(p95 / max(audit_p95_off, 0.1), 2),
        "ratio_p50": round(percentile(on, 0.50) / max(percentile(off, 0.50), 0.1), 2),
        "on_p95_ms": p95,
        "off_p95_ms": audit_p95_off,
        "on_p50_ms": percentile(on, 0.50),
        "off_p50_ms": percentile(off, 0.50),
        "queries_on": len(statements),
        "queries_off": len(statements_off),
        "samples": len(off),
        "context": {
            **context,
            "off": "auditlog disable_auditlog() and no audit chain lock, same run, interleaved",
            "targets": {"ratio_p95": TARGET_AUDIT_RATIO},
        },
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["write_path"] = write_path
    results["audit_overhead"] = audit_overhead
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(
        json.dumps({"write_path": write_path, "audit_overhead": audit_overhead}, indent=2, ensure_ascii=False)
    )
    if os.environ.get("BENCH_SHOW_QUERIES"):
        print("\n".join(f"{i:2} {sql[:160]}" for i, sql in enumerate(statements, 1)))
    missed = []
    if write_path["ratio_p95"] > TARGET_RATIO:
        missed.append(f"write_path ratio {write_path['ratio_p95']} > {TARGET_RATIO}")
    if write_path["queries"] > TARGET_QUERIES:
        missed.append(f"write_path queries {write_path['queries']} > {TARGET_QUERIES}")
    if audit_overhead["ratio_p95"] > TARGET_AUDIT_RATIO:
        missed.append(f"audit_overhead {audit_overhead['ratio_p95']} > {TARGET_AUDIT_RATIO}")
    if problems:
        missed.append(f"audit chains: {problems[:3]}")
    print(
        "write_path: " + ("targets met" if not missed else "TARGETS MISSED: " + "; ".join(missed)), flush=True
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
