"""Benchmark: 1,000 due schedules turned into runs (one scheduler tick), on SQLite and PostgreSQL.

1,000 active triggers (a mix of ``*/5`` cron, ``@hourly`` and ``@daily`` in several time
zones) are all due at the measured instant; the time is one ``Scheduler.tick`` — reading
the triggers, computing due dates, inserting the runs with their unique key and moving
the cursors. A second tick at the same instant must create nothing (exactly once).
Goal: under 5 s.

    .venv/bin/python benchmarks/orchestration_schedules.py [--triggers 1000] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project  # noqa: E402

SCHEDULES = [("*/5 * * * *", "UTC"), ("@hourly", "UTC"), ("@daily", "UTC"), ("@daily", "Europe/Berlin"), ("0 * * * *", "America/New_York")]


def bench(url: str | None, n: int) -> None:
    import os

    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.scheduler.loop import Scheduler
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo

    project = make_project(Path(tempfile.mkdtemp(prefix="dagsmith-sched-")) / "proj")
    os.environ.pop("DAGSMITH_DATABASE_URL", None)
    if url:
        os.environ["DAGSMITH_DATABASE_URL"] = url
    settings = OrchestrationSettings.from_env(project)
    db = Database(settings)
    db.migrate()
    enabled = datetime(2024, 6, 1, 0, 30, tzinfo=timezone.utc)
    with db.session() as s:
        for i in range(n):
            interval, tz = SCHEDULES[i % len(SCHEDULES)]
            repo.create_trigger(s, "one", f"t{i:04d}", schedule_interval=interval, timezone=tz, status="active", now=enabled)
            # already handled up to the previous period: the measured tick finds exactly one due period each
    sched = Scheduler(settings, db)
    sched.tick(enabled)  # first tick: the current periods
    at = datetime(2024, 6, 2, 0, 0, 1, tzinfo=timezone.utc)  # every schedule above has a tick at 2 June 00:00 UTC… or nearby
    started = time.perf_counter()
    report = sched.tick(at)
    elapsed = time.perf_counter() - started
    again = sched.tick(at)
    with db.read() as s:
        total = repo.list_runs(s, limit=1)[1]
    print(f"{'PostgreSQL' if url else 'SQLite':10s} {n} triggers: tick created {report.created} runs in {elapsed:.2f} s "
          f"({report.created / elapsed:.0f} runs/s); repeat tick created {again.created}; runs in DB {total}; errors {len(report.errors)}")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--pg", default=None)
    args = parser.parse_args()
    bench(None, args.triggers)
    if args.pg:
        url, drop = create_pg_database(args.pg)
        try:
            bench(url, args.triggers)
        finally:
            drop()


if __name__ == "__main__":
    main()
