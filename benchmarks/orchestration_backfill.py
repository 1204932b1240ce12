"""Benchmark: a 365-day backfill of a trivial pipeline with ``dagsmith backfill`` (one process, one machine).

Wall time of the whole command (process start, DB migration, 365 runs through the real
engine, progress bar) for the 1-block pipeline and for the 2-block ``dated`` pipeline
that writes one file per date. Goal: under 60 s.

    .venv/bin/python benchmarks/orchestration_backfill.py [--days 365] [--concurrency 8] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project  # noqa: E402


def run(pipeline: str, days: int, concurrency: int, url: str | None) -> None:
    project = make_project(Path(tempfile.mkdtemp(prefix="dagsmith-backfill-")) / "proj")
    env = dict(os.environ)
    env.pop("DAGSMITH_DATABASE_URL", None)
    if url:
        env["DAGSMITH_DATABASE_URL"] = url
    start = date(2023, 1, 1)
    end = start + timedelta(days=days - 1)
    cmd = [sys.executable, "-m", "dagsmith.cli.app", "backfill", str(project), pipeline, "--start", start.isoformat(), "--end", end.isoformat(),
           "--interval", "day", "--concurrency", str(concurrency), "--json"]
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    summary = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {"status": "error", "stderr": out.stderr[-2000:]}
    files = len(list((project / "out").iterdir()))
    print(f"{'PostgreSQL' if url else 'SQLite':10s} {pipeline:6s} {days} days, concurrency {concurrency}: {elapsed:.1f} s "
          f"({days / elapsed:.0f} runs/s) status {summary.get('status')} completed {summary.get('progress', {}).get('completed')} files {files}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pg", default=None)
    args = parser.parse_args()
    for pipeline in ("one", "dated"):
        run(pipeline, args.days, args.concurrency, None)
    if args.pg:
        url, drop = create_pg_database(args.pg)
        try:
            run("dated", args.days, args.concurrency, url)
        finally:
            drop()


if __name__ == "__main__":
    main()
