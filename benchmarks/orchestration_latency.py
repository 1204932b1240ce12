"""Benchmark: API call → run completed, through a real ``dagsmith start`` (server + scheduler + worker).

Cases: the 1-block pipeline and a 20-block chain, each triggered ``--repeat`` times with
Mage's API-trigger URL; the time is from just before the POST to the moment the run reads
``completed`` (polled every 5 ms). Mage 0.9.80 in server mode took 14–20 s (1 block) and
209 s (20-block chain). Goals: 0.5 s and 1 s.

    .venv/bin/python benchmarks/orchestration_latency.py [--repeat 20] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project, wait_until  # noqa: E402
from tests.fixtures.services import free_port  # noqa: E402

MAGE = {"one": "14–20 s", "chain20": "209 s"}
GOAL = {"one": 0.5, "chain20": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pg", default=None, help="PostgreSQL DSN; a fresh database is created next to it")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dagsmith-latency-"))
    project = make_project(tmp / "proj")
    env = dict(os.environ)
    env.pop("DAGSMITH_DATABASE_URL", None)
    drop = None
    if args.pg:
        url, drop = create_pg_database(args.pg)
        env["DAGSMITH_DATABASE_URL"] = url
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    proc = subprocess.Popen([sys.executable, "-m", "dagsmith.cli.app", "start", str(project), "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=open(tmp / "start.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _ok(f"{api}/health"), 60, 0.1, "server up")
        print(f"metadata DB: {'PostgreSQL' if args.pg else 'SQLite'}; {args.repeat} runs per case")
        with httpx.Client(timeout=30) as client:
            for pipeline in ("one", "chain20"):
                trig = client.post(f"{api}/pipelines/{pipeline}/pipeline_schedules", json={"pipeline_schedule": {"name": "bench", "schedule_type": "api"}}).json()["pipeline_schedule"]
                url = f"{api}/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}"
                times = []
                for i in range(args.repeat + 1):
                    started = time.perf_counter()
                    run = client.post(url, json={"pipeline_run": {"variables": {"i": i}}}).json()["pipeline_run"]
                    while True:
                        status = client.get(f"{api}/pipeline_runs/{run['id']}").json()["pipeline_run"]["status"]
                        if status in ("completed", "failed", "cancelled"):
                            break
                        time.sleep(0.005)
                    elapsed = time.perf_counter() - started
                    assert status == "completed", status
                    if i:  # the first run warms imports up
                        times.append(elapsed)
                times.sort()
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                print(f"{pipeline:8s} median {statistics.median(times):.3f} s  p95 {p95:.3f} s  max {times[-1]:.3f} s  "
                      f"(goal {GOAL[pipeline]} s; Mage 0.9.80: {MAGE[pipeline]})")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if drop:
            drop()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
