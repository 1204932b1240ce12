"""Benchmark: soak of 1,000 API-triggered runs from several threads, a worker SIGKILLed now and then.

Same scenario as ``tests/integration/test_orch_soak.py`` (server + scheduler process, two
worker processes, killed and restarted every ``--kill-every`` seconds), at full size.
Passes when every accepted call ended as exactly one completed run. Mage 0.9.80: 6 of 35
triggered runs stalled forever.

    .venv/bin/python benchmarks/orchestration_soak.py [--calls 1000] [--threads 8] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project  # noqa: E402
from tests.fixtures.orch_soak import check_exactly_once, soak  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--kill-every", type=float, default=1.0)
    parser.add_argument("--pg", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dagsmith-soak-"))
    project = make_project(tmp / "proj")
    url, drop = (create_pg_database(args.pg) if args.pg else (None, None))
    try:
        started = time.perf_counter()
        outcome = soak(project, tmp, calls=args.calls, threads=args.threads, kill_every=args.kill_every, database_url=url)
        elapsed = time.perf_counter() - started
        check_exactly_once(project, outcome, args.calls)
        resumed = sum(1 for r in outcome["runs"] if r["claims"] > 1)
        print(f"{'PostgreSQL' if url else 'SQLite':10s} {args.calls} calls, {args.threads} threads, {outcome['kills']} worker kills: "
              f"all {args.calls} runs completed exactly once ({resumed} resumed after a kill) in {elapsed:.1f} s")
    finally:
        if drop:
            drop()


if __name__ == "__main__":
    main()
