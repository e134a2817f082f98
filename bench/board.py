"""Status board benchmark (`make bench`, key "board"): the board of every pilot site (the regional
view of an administrator, the largest one) at 75, 10,000 and 100,000 cases on PostgreSQL.

At each size, in the same run:
- `p50_ms`, `p95_ms`: the board's data, server-side (cockpit.selectors.board: counters by state and
  light, the referents of the filter, the most urgent cards of each column with their company,
  referent and site), the user's roles included;
- `page_p95_ms`: the whole page through Django (middlewares, the same selectors, the HTML);
- `baseline_p95_ms`: a bare SQL `GROUP BY state` over the same open cases of the same sites;
- `queries`: the number of SQL queries of the whole page (the same at every size).

The cases are created by `seed_demo --companies N` (bulk insertion beyond the curated ones) in the
bench database (by default `territoires_bench`, emptied first).

    python -m bench.board [--sizes 75,10000,100000] [--samples 40]
"""

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from bench.notify import (
    RESULTS,
    percentile,
    service_arguments,
    start_django,
)
from bench.write_path import git_commit, machine

TARGET_RATIO = 3.0  # at the largest size
TARGET_RATIO_SMALL = 5.0  # at the smallest (75 cases: a real site), where the fixed cost dominates
TARGET_P95_MS = 300.0


def timed(function, samples):
    durations = []
    for _ in range(samples):
        start = time.perf_counter()
        function()
        durations.append((time.perf_counter() - start) * 1000)
    return durations


def measure(size, samples, client, admin):
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from casework.enums import OPEN_CASE_STATES
    from casework.rules import forget_roles
    from cockpit import selectors

    sites = selectors.board_sites(admin)
    site_ids = [site.pk for site in sites]

    def board_data():
        forget_roles(admin)
        return selectors.board(admin, sites)

    def page():
        response = client.get("/pilotage/")
        assert response.status_code == 200, response.status_code

    def baseline():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT state, count(*) FROM casework_case"
                " WHERE site_id = ANY(%s) AND state = ANY(%s) GROUP BY state",
                [site_ids, list(OPEN_CASE_STATES)],
            )
            cursor.fetchall()

    for function in (board_data, page, baseline):  # warm-up: plans, caches, session
        timed(function, 3)
    with CaptureQueriesContext(connection) as queries:
        page()
    query_count = len(queries)  # read now: the context reads the connection's log lazily
    reset_queries()
    data, pages, bare = timed(board_data, samples), timed(page, samples), timed(baseline, samples)
    board = board_data()
    return {
        "p50_ms": percentile(data, 0.50),
        "p95_ms": percentile(data, 0.95),
        "page_p95_ms": percentile(pages, 0.95),
        "baseline_p95_ms": percentile(bare, 0.95),
        "ratio_p95": round(percentile(data, 0.95) / max(percentile(bare, 0.95), 0.1), 2),
        "queries": query_count,
        "open_cases": board.count,
        "cases": size,
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="75,10000,100000")
    parser.add_argument("--samples", type=int, default=40)
    service_arguments(parser)
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))

    start_django(args)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from casework.models import User
    from casework.services import charter_accept

    name = connection.settings_dict["NAME"]
    if "bench" not in str(name):
        sys.exit(f"Refusing to empty database {name!r}: its name must contain 'bench'.")
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    figures = {}
    for size in sizes:
        start = time.perf_counter()
        call_command("seed_demo", companies=size, verbosity=0)
        with connection.cursor() as cursor:
            # The steady state of a live database, which autovacuum maintains: statistics, and the
            # visibility map that lets both the board and the baseline read the index alone.
            cursor.execute("VACUUM ANALYZE")
        print(f"board: {size} cases seeded in {time.perf_counter() - start:.0f} s", flush=True)
        admin = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if not admin.has_accepted_current_charter:
            charter_accept(actor=admin)
        client = Client()
        client.force_login(admin)
        figures[str(size)] = measure(size, args.samples, client, admin)
        print(f"board {size}: {json.dumps(figures[str(size)])}", flush=True)

    figures["context"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "database": connection.vendor,
        "view": "regional board of an administrator (every pilot site), no filter",
        **machine(),
        "targets": {
            "p95_ms": TARGET_P95_MS,
            "ratio_p95": TARGET_RATIO,
            "ratio_p95_smallest": TARGET_RATIO_SMALL,
            "same_queries": True,
        },
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["board"] = figures
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    largest, smallest = figures[str(sizes[-1])], figures[str(sizes[0])]
    queries = {figures[str(size)]["queries"] for size in sizes}
    missed = []
    if smallest["ratio_p95"] > TARGET_RATIO_SMALL:
        missed.append(f"ratio at {sizes[0]} cases {smallest['ratio_p95']} > {TARGET_RATIO_SMALL}")
    if largest["p95_ms"] > TARGET_P95_MS:
        missed.append(f"p95 {largest['p95_ms']} ms > {TARGET_P95_MS} ms")
    if largest["ratio_p95"] > TARGET_RATIO:
        missed.append(f"ratio {largest['ratio_p95']} > {TARGET_RATIO}")
    if len(queries) != 1:
        missed.append(f"query counts differ across sizes: {sorted(queries)}")
    print("board: " + ("targets met" if not missed else "TARGETS MISSED: " + "; ".join(missed)), flush=True)


if __name__ == "__main__":
    main()
