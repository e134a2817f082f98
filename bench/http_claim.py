"""HTTP claims at once over two servers (`make bench`, key "http_claim"): sixteen agents of a partner
organisation claim four review tasks through two daphne processes, 32 claims released at the same
instant, round after round, as a PostgreSQL role capped at ROLE_LIMIT connections (the situation
of issue 16, where the application's role was capped at 40).

The logic is the one of tests/test_connection_pool.py, reused as is (`claim_at_once`,
`judge_claims`, `PeakConnections`): each claim is a browser tab that opened the request page,
posts the claim and follows the redirect to the page. Measured:
- `peak_connections`: the role's connections in pg_stat_activity, sampled every 10 ms during the
  rounds, against the two pools' ceiling (2 × DATABASE_POOL_MAX_SIZE);
- `p50_ms`, `p95_ms`, `p99_ms`: one claim, from its POST to the server's answer (the redirect),
  while the 31 others run; `page_p95_ms` adds the page it redirects to;
- `server_errors` (target 0), `tasks_one_winner` (target: every task), `losers_told` (target:
  every loser is shown who took the task).
The baseline is the same load without the pool (`DATABASE_POOL=0`: each request opens and closes
its own connection).

    python -m bench.http_claim [--rounds 6]
"""

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.notify import RESULTS, percentile, service_arguments, start_django
from bench.write_path import empty_bench_database, git_commit, machine

ROLE_LIMIT = 40
AGENTS = 16
TASKS = 4
SERVERS = 2
# A burst of 32 claims, each followed by its page, on two processes: they queue for the CPU (and for
# a connection of the pool). Bounded well below the pool's timeout (10 s), at what a person clicking
# a button accepts.
TARGET_P95_MS = 2000.0


def build_world():
    from casework.models import PilotSite
    from tests.factories import MembershipFactory, OrganisationFactory, UserFactory
    from tests.test_connection_pool import claim_world

    site = PilotSite.objects.order_by("pk").first()
    organisation = OrganisationFactory(name="France Travail (banc)", territories=[site.territory])
    referent = UserFactory(first_name="Claire", last_name="Banc")
    MembershipFactory(user=referent, organisation=organisation, can_be_referent=True)
    world, agents = claim_world(site, referent, agents=AGENTS)
    return world, referent, agents


def run(world, referent, agents, role, env, rounds) -> dict:
    """Two servers with `env`; one warm-up round, then `rounds` measured ones."""
    import psycopg

    from tests import live
    from tests.test_claim_race import open_review_task
    from tests.test_connection_pool import (
        PeakConnections,
        claim_at_once,
        claims_of,
        judge_claims,
        role_connections,
    )

    cookies = {agent.pk: dict([live.session_for(agent).split("=", 1)]) for agent in agents}
    ports = [live.free_port() for _ in range(SERVERS)]
    logs = Path(tempfile.gettempdir())
    claim_ms, page_ms = [], []
    totals = {"answers": 0, "server_errors": 0, "problems": [], "tasks": 0, "tasks_one_winner": 0}
    totals.update(losers=0, losers_told=0)
    with (
        live.daphne(ports[0], env, logs / "bench-http-claim-a.log"),
        live.daphne(ports[1], env, logs / "bench-http-claim-b.log"),
        concurrent.futures.ThreadPoolExecutor(2 * AGENTS) as threads,
    ):
        for measured in [False] + [True] * rounds:
            tasks = [open_review_task(world, referent) for _ in range(TASKS)]
            claims = claims_of(agents, tasks)
            with PeakConnections(role) as peak:
                outcomes = claim_at_once(ports, claims, cookies, threads)
            if not measured:
                continue
            totals["peak_connections"] = max(totals.get("peak_connections", 0), peak.peak)
            verdict = judge_claims(tasks, claims, outcomes)
            totals["answers"] += verdict["answers"]
            totals["server_errors"] += len(verdict["server_errors"])
            totals["problems"] += verdict["problems"]
            totals["tasks"] += len(tasks)
            for key in ("tasks_one_winner", "losers", "losers_told"):
                totals[key] += verdict[key]
            for outcome in outcomes:
                if outcome["claim_ms"] is not None:
                    claim_ms.append(outcome["claim_ms"])
                if outcome.get("page_ms") is not None:
                    page_ms.append(outcome["page_ms"])
        with psycopg.connect(live.admin_url(), autocommit=True) as admin:
            totals["connections_after"] = role_connections(admin, role)
    totals["claims"] = len(claim_ms)
    totals["p50_ms"] = percentile(claim_ms, 0.50)
    totals["p95_ms"] = percentile(claim_ms, 0.95)
    totals["p99_ms"] = percentile(claim_ms, 0.99)
    totals["page_p95_ms"] = percentile(page_ms, 0.95) if page_ms else None
    totals["problems"] = totals["problems"][:5]
    return totals


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6, help="measured rounds of 32 claims")
    service_arguments(parser)
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        parser.error("PostgreSQL only (BENCH_DATABASE_URL)")

    start_django(args)
    from django.conf import settings
    from django.db import connection

    from tests import live

    started = time.perf_counter()
    print(f"http_claim: {args.rounds} rounds of {2 * AGENTS} claims over {SERVERS} servers …", flush=True)
    empty_bench_database()
    world, referent, agents = build_world()
    pool = {
        "min_size": settings.DATABASE_POOL_MIN_SIZE,
        "max_size": settings.DATABASE_POOL_MAX_SIZE,
        "timeout": settings.DATABASE_POOL_TIMEOUT,
    }
    with live.limited_role(ROLE_LIMIT) as (role, role_url):
        with_pool = run(
            world,
            referent,
            agents,
            role,
            live.server_env(DATABASE_URL=role_url, DATABASE_POOL=1),
            args.rounds,
        )
        print(f"http_claim: with the pool {json.dumps(with_pool)}", flush=True)
        without_pool = run(
            world,
            referent,
            agents,
            role,
            live.server_env(DATABASE_URL=role_url, DATABASE_POOL=0),
            args.rounds,
        )
        print(f"http_claim: without the pool {json.dumps(without_pool)}", flush=True)
        connection.close()

    ceiling = SERVERS * pool["max_size"]
    figures = {
        **with_pool,
        "rounds": args.rounds,
        "agents": AGENTS,
        "tasks_per_round": TASKS,
        "servers": SERVERS,
        "pool": pool,
        "role_connection_limit": ROLE_LIMIT,
        "connection_ceiling": ceiling,
        "baseline": {
            key: without_pool[key]
            for key in (
                "peak_connections",
                "connections_after",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "server_errors",
            )
        },
        "duration_s": round(time.perf_counter() - started, 1),
        "context": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "database": "postgresql",
            **machine(),
            "logic": "tests/test_connection_pool.py (claim_at_once, judge_claims, PeakConnections)",
            "baseline": "the same load with DATABASE_POOL=0 (a connection per request)",
            "targets": {
                "peak_connections": f"<= {ceiling} (servers x DATABASE_POOL_MAX_SIZE)",
                "p95_ms": TARGET_P95_MS,
                "server_errors": 0,
                "tasks_one_winner": "= tasks",
                "losers_told": "= losers",
            },
        },
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["http_claim"] = figures
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    missed = [
        name
        for name, ok in (
            ("peak_connections", figures["peak_connections"] <= ceiling),
            ("p95_ms", figures["p95_ms"] <= TARGET_P95_MS),
            ("server_errors", figures["server_errors"] == 0),
            ("tasks_one_winner", figures["tasks_one_winner"] == figures["tasks"]),
            ("losers_told", figures["losers_told"] == figures["losers"]),
        )
        if not ok
    ]
    print(
        "http_claim: " + ("targets met" if not missed else f"TARGETS MISSED: {', '.join(missed)}"), flush=True
    )
    return 1 if missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
