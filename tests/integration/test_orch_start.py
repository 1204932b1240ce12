"""``dagsmith start`` as a real process: API trigger → run, SIGTERM mid-run, resume on the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import make_project, marks, wait_until  # noqa: E402
from tests.fixtures.services import free_port  # noqa: E402

pytestmark = pytest.mark.integration


def start(project: Path, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, DAGSMITH_POLL_INTERVAL="0.05", DAGSMITH_HEARTBEAT_INTERVAL="0.2")
    env.pop("DAGSMITH_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagsmith.cli.app", "start", str(project), "--port", str(port), "--grace", "0.5"],
        env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
    )

    def up():
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 60, 0.1, "server up")
    return proc


def test_start_serves_runs_and_survives_sigterm(tmp_path):
    project = make_project(tmp_path / "proj")
    port = free_port()
    log = tmp_path / "start.log"
    api = f"http://127.0.0.1:{port}/api"
    proc = start(project, port, log)
    try:
        trig = httpx.post(f"{api}/pipelines/slow/pipeline_schedules", json={"pipeline_schedule": {"name": "hook", "schedule_type": "api"}}).json()["pipeline_schedule"]
        url = f"{api}/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}"
        bad = httpx.post(f"{api}/pipeline_schedules/{trig['id']}/pipeline_runs/not-the-token", json={})
        assert bad.status_code == 401
        run = httpx.post(url, json={"pipeline_run": {"variables": {"SLEEP_SECONDS": 60}}}).json()["pipeline_run"]

        def sleeper_running():
            blocks = httpx.get(f"{api}/pipeline_runs/{run['id']}").json()["pipeline_run"]["block_runs"]
            return any(b["block_uuid"] == "sleeper" and b["status"] == "running" for b in blocks)

        wait_until(sleeper_running, 30, 0.05, "sleeper running")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped" in log.read_text()

    proc = start(project, port, log)
    try:
        # the interrupted run was handed back and resumes from its unfinished blocks
        done = wait_until(lambda: (r := httpx.get(f"{api}/pipeline_runs/{run['id']}").json()["pipeline_run"])["status"] in ("completed", "failed") and r, 60, 0.05, "resumed run finished")
        assert done["status"] == "completed" and done["claims"] == 2
        assert marks(project, "first").count(str(run["id"])) == 1
        assert marks(project, "last").count(str(run["id"])) == 1
        quick = httpx.post(url, json={"pipeline_run": {"variables": {"SLEEP_SECONDS": 0}}}).json()["pipeline_run"]
        finished = wait_until(lambda: (r := httpx.get(f"{api}/pipeline_runs/{quick['id']}").json()["pipeline_run"])["status"] == "completed" and r, 30, 0.02, "quick run")
        assert [b["status"] for b in finished["block_runs"]] == ["completed"] * 3
        logs = httpx.get(f"{api}/pipeline_runs/{quick['id']}/logs").json()["logs"]
        assert any(r["message"] == "run completed" for r in logs)
        assert httpx.get(f"{api}/statuses").json()["statuses"][0]["workers"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
