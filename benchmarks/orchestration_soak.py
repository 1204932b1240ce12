"""Benchmark: the chaos run — load from three sources while processes are killed and the DB misbehaves.

Server, scheduler and two worker processes on one PostgreSQL metadata DB (``--sqlite`` for
SQLite, without DB faults). Work: ``--calls`` API-trigger calls from ``--threads`` threads
(each with an Idempotency-Key, retried with the same key on failure), a per-minute
schedule (catch-up ``all``) for about two minutes, and a ``--backfill-days`` daily
backfill. Chaos: every ``--kill-every`` s a random worker — or, one time in five, the
scheduler — is SIGKILLed once it is up, and restarted; every ``--fault-every`` s the DB
drops every connection (``pg_terminate_backend``) or the claim's advisory lock or a table
lock on ``pipeline_runs`` is held for 0.5 s, 1.5 s or past the heartbeat timeout.

Prints runs lost, runs completed twice and finished blocks re-run (goal 0 / 0 / 0), and
blocks re-run after their process was killed (allowed). Mage 0.9.80: 6 of 35 triggered
runs stalled forever without any chaos.

    .venv/bin/python benchmarks/orchestration_soak.py [--calls 1000] [--threads 8] [--kill-every 1.5]
        [--fault-every 5] [--backfill-days 60] [--pg postgresql://postgres@127.0.0.1:5432/test | --sqlite]
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
from tests.fixtures.orch_soak import chaos, summarise  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--kill-every", type=float, default=1.5)
    parser.add_argument("--fault-every", type=float, default=5.0)
    parser.add_argument("--backfill-days", type=int, default=60)
    parser.add_argument("--no-schedule", action="store_true", help="skip the per-minute schedule (it makes the run last 2 min)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dagsmith-soak-"))
    project = make_project(tmp / "proj")
    url, drop = (None, None) if args.sqlite else create_pg_database(args.pg)
    try:
        started = time.perf_counter()
        outcome = chaos(
            project, tmp, calls=args.calls, threads=args.threads, kill_every=args.kill_every, schedule=not args.no_schedule,
            backfill_days=args.backfill_days, database_url=url, admin_dsn=None if args.sqlite else args.pg,
            fault_every=0.0 if args.sqlite else args.fault_every,
        )
        elapsed = time.perf_counter() - started
        s = summarise(outcome)
        faults = ", ".join(f"{n} {k}" for k, n in sorted(s["faults"].items())) or "none"
        print(f"{'SQLite' if args.sqlite else 'PostgreSQL'}: {args.calls} API calls ({s['retries']} retried), "
              f"{s['schedule_runs']} schedule runs, {args.backfill_days} backfill dates; {s['runs']} runs, {s['completed']} completed "
              f"in {elapsed:.0f} s; {s['kills']} SIGKILLs (workers and scheduler, each once it was up; "
              f"{len(s['never_up'])} never came up); DB faults: {faults}")
        print(f"runs lost: {len(s['lost'])}   runs completed twice: {len(s['completed_twice'])}   "
              f"finished blocks re-run: {len(s['finished_rerun'])}   (goal 0 / 0 / 0)")
        print(f"blocks re-run after their process was killed: {s['interrupted_rerun']}   schedule periods doubled: {s['schedule_duplicates']}"
              f"   queue drained: {s['drained']}")
        for label, items in (("lost", s["lost"]), ("completed twice", s["completed_twice"]), ("finished block re-run", s["finished_rerun"])):
            for item in items[:5]:
                print(f"  {label}: {item}")
        print(f"logs: {tmp}")
    finally:
        if drop:
            drop()


if __name__ == "__main__":
    main()
