"""Claim race benchmark (`make bench`, key "claim_race"): several agents of a partner organisation
claim the same review task at the same instant on PostgreSQL, trial after trial.

The logic is the one of tests/test_claim_race.py, reused as is: one thread per agent, each with
its own database connection, released together by a barrier; each claims through
`workflows.services.task_claim`. A trial counts in `one_winner` when exactly one claim succeeded,
and in `clean` when, besides, every loser was told who won (`TaskTakenError` naming the winner) and
the task is the winner's with one CLAIMED event (`judge` of the test). Target: both equal to
`trials`. `trial_p95_ms` is the time from the release of the barrier to the last outcome.

    python -m bench.claim_race [--trials 200] [--contenders 8]
"""

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime

from bench.notify import (
    RESULTS,
    percentile,
    service_arguments,
    start_django,
)
from bench.write_path import empty_bench_database, git_commit, machine


def build_world():
    from casework.models import PilotSite
    from tests.factories import MembershipFactory, OrganisationFactory, UserFactory
    from tests.test_claim_race import build_race_world

    site = PilotSite.objects.order_by("pk").first()
    organisation = OrganisationFactory(name="France Travail (banc)", territories=[site.territory])
    referent = UserFactory(first_name="Claire", last_name="Banc")
    MembershipFactory(user=referent, organisation=organisation, can_be_referent=True)
    return build_race_world(site, referent), referent


def race(trials, contenders):
    from tests.test_claim_race import Contenders, judge, open_review_task

    world, referent = build_world()
    agents = world["agents"][:contenders]
    names = {agent.pk: agent.get_full_name() for agent in agents}
    one_winner = clean = 0
    problems: Counter[str] = Counter()
    durations = []
    with Contenders(list(names)) as pool:
        for _ in range(trials):
            task = open_review_task(world, referent)
            started = time.perf_counter()
            outcomes = pool.race(task.pk)
            durations.append((time.perf_counter() - started) * 1000)
            winners = [user_id for user_id, error in outcomes.items() if error is None]
            one_winner += len(winners) == 1
            trial_problems = judge(task, outcomes, names)
            problems.update(trial_problems)
            clean += not trial_problems
    return one_winner, clean, problems, durations


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--contenders", type=int, default=8, choices=range(2, 9), metavar="2..8")
    service_arguments(parser)
    args = parser.parse_args()

    start_django(args)
    from django.db import connection

    started = time.perf_counter()
    print(
        f"claim_race: {args.trials} trials, {args.contenders} contenders on {connection.vendor} …", flush=True
    )
    empty_bench_database()
    one_winner, clean, problems, durations = race(args.trials, args.contenders)
    figures = {
        "trials": args.trials,
        "one_winner": one_winner,
        "clean": clean,
        "contenders": args.contenders,
        "trial_p50_ms": percentile(durations, 0.50),
        "trial_p95_ms": percentile(durations, 0.95),
        "problems": dict(problems.most_common(5)),
        "duration_s": round(time.perf_counter() - started, 1),
        "context": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "database": connection.vendor,
            **machine(),
            "logic": "tests/test_claim_race.py (Contenders, judge): threads, own connections, a barrier",
            "targets": {"one_winner": "= trials", "clean": "= trials"},
        },
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["claim_race"] = figures
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    met = one_winner == clean == args.trials
    print("claim_race: " + ("targets met" if met else "TARGETS MISSED"), flush=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
