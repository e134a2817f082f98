"""`make bench`: every benchmark in one run, each with its baseline, then the summary table.

The parts run one after the other, each in its own process (each empties the bench database and
builds its own world): write_path (keys "write_path" and "audit_overhead"), claim_race,
http_claim, notify, board, pages. Each writes its key(s) to bench/results/latest.json; this runner
adds "make_bench" (the duration of each part) and rewrites the summary table of
docs/performance.md. The database and Redis are BENCH_DATABASE_URL and BENCH_REDIS_URL, as for
each part.

    python -m bench [--only write_path,claim_race]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import summary
from bench.notify import RESULTS, ROOT

PARTS = {
    "write_path": ["-m", "bench.write_path"],
    "claim_race": ["-m", "bench.claim_race"],
    "http_claim": ["-m", "bench.http_claim"],
    "notify": ["-m", "bench.notify"],
    "board": ["-m", "bench.board"],
    "pages": ["-m", "bench.pages"],
}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts, in this order")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    started, parts, failed = time.perf_counter(), {}, []
    for name in chosen:
        print(f"==> bench: {name}", flush=True)
        begin = time.perf_counter()
        done = subprocess.run([sys.executable, *PARTS[name]], cwd=ROOT, env=os.environ.copy())
        parts[name] = {"seconds": round(time.perf_counter() - begin, 1), "exit": done.returncode}
        print(f"==> bench: {name} took {parts[name]['seconds']} s (exit {done.returncode})", flush=True)
        if done.returncode:
            failed.append(name)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["make_bench"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "cores": os.cpu_count(),
        "total_s": round(time.perf_counter() - started, 1),
        "parts": parts,
    }
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    summary.write(results)
    print(summary.table(results))
    print(f"==> bench: {results['make_bench']['total_s']} s in all", flush=True)
    if failed:
        print(f"==> bench: targets missed or errors in: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
