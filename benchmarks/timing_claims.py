"""The speed claims the tests no longer assert (issue 14 item 9), each against a baseline of this run.

Tests prove the behaviour (what happens); how fast it happens is measured here, as ratios:

* catch-up ``latest`` of a per-minute trigger idle for 14 months vs one whose cursor is one
  tick old (goal: about 1×; walking every missed tick would be thousands ×);
* a dynamic block's 8 children under ``block_run_limit: 4`` (0.2 s each) vs two waves
  of 0.2 s (goal: about 1×; one at a time would be 4×);
* a sensor with a 0.6 s timeout that never becomes true: time to fail vs 0.6 s (goal ≤ 2×);
* PostgreSQL with ``POSTGRES_CONNECT_TIMEOUT=1`` against a peer that never answers: time to
  fail vs 1 s (goal ≤ 3×; libpq may try the address twice).

    .venv/bin/python benchmarks/timing_claims.py [--repeat 5] [--no-pg]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

UTC = timezone.utc


def timed(fn, repeat: int) -> float:
    fn()  # warm-up: imports and caches are not the claim
    walls = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def catchup(repeat: int) -> str:
    from dagsmith.orchestration.scheduler.triggers import ScheduleState, due_dates

    now = datetime(2024, 3, 10, 10, 0, 30, tzinfo=UTC)
    far = timed(lambda: due_dates(ScheduleState("* * * * *", cursor=datetime(2023, 1, 1, tzinfo=UTC), catchup="latest"), now), repeat)
    near = timed(lambda: due_dates(ScheduleState("* * * * *", cursor=datetime(2024, 3, 10, 9, 59, tzinfo=UTC), catchup="latest"), now), repeat)
    return f"catch-up latest, cursor 14 months old: {far * 1000:.2f} ms vs cursor 1 tick old {near * 1000:.2f} ms = {far / near:.2f}× (goal ≈ 1×)"


def dynamic_waves(repeat: int) -> str:
    from dagsmith.engine.runner import run_pipeline
    from tests.projects import add_pipeline, make_project

    root = make_project(Path(tempfile.mkdtemp(prefix="dagsmith-claims-")))
    add_pipeline(root, "par", [
        {"uuid": "src", "type": "data_loader", "configuration": {"dynamic": True}, "code": """
            @data_loader
            def load(*args, **kwargs):
                return list(range(8))
        """},
        {"uuid": "sleepy", "upstream": ["src"], "code": """
            import time

            @transformer
            def t(x, **kwargs):
                time.sleep(0.2)
        """},
    ], extra={"concurrency_config": {"block_run_limit": 4}})
    wall = timed(lambda: run_pipeline(root, "par", persist=False), repeat)
    return f"8 dynamic children of 0.2 s, limit 4: {wall:.3f} s vs two waves 0.400 s = {wall / 0.4:.2f}× (goal ≈ 1×; serial would be 4×)"


def sensor_timeout(repeat: int) -> str:
    from dagsmith.blocks.templates import render_block_template
    from dagsmith.engine.runner import run_pipeline
    from tests.projects import add_pipeline, make_project

    tmp = Path(tempfile.mkdtemp(prefix="dagsmith-claims-"))
    root = make_project(tmp)
    code = render_block_template("sensor", "python", "local_file", "wait").replace(
        "'data/incoming/green_{ds}.parquet'", repr(str(tmp / "never.csv")))
    add_pipeline(root, "sensing", [
        {"uuid": "wait", "type": "sensor", "configuration": {"poke_interval": 0.1, "sensor_timeout": 0.6}},
        {"uuid": "after", "upstream": ["wait"], "code": textwrap.dedent("""
            @transformer
            def after(*args, **kwargs):
                return 1
        """)},
    ])
    (root / "sensors").mkdir(exist_ok=True)
    (root / "sensors" / "wait.py").write_text(code)
    wall = timed(lambda: run_pipeline(root, "sensing", persist=False), repeat)
    return f"sensor with a 0.6 s timeout, never true: fails after {wall:.3f} s = {wall / 0.6:.2f}× its timeout (goal ≤ 2×)"


def pg_connect_timeout(repeat: int) -> str:
    from dagsmith.errors import ConnectorError
    from dagsmith.project.io_config import ConfigFileLoader
    from dagsmith.io.postgres import Postgres

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    profile = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": silent.getsockname()[1], "POSTGRES_USER": "postgres",
               "POSTGRES_DBNAME": "test", "POSTGRES_CONNECT_TIMEOUT": 1}

    def attempt():
        try:
            Postgres.with_config(ConfigFileLoader(config=profile)).load("SELECT 1")
        except ConnectorError:
            return
        raise AssertionError("a silent peer answered")

    try:
        wall = timed(attempt, repeat)
    finally:
        silent.close()
    return f"PostgreSQL peer that never answers, POSTGRES_CONNECT_TIMEOUT=1: fails after {wall:.3f} s = {wall:.2f}× the timeout (goal ≤ 3×)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL connect-timeout case")
    args = ap.parse_args()
    print("## speed claims moved out of the tests (ratios against this run's baselines)")
    for case in (catchup, dynamic_waves, sensor_timeout) + (() if args.no_pg else (pg_connect_timeout,)):
        print("  " + case(args.repeat))


if __name__ == "__main__":
    main()
