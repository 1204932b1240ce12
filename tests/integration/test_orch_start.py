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

    try:
        wait_until(up, 60, 0.1, "server up")
    except BaseException:
        proc.kill()  # a server that never answered must not outlive the test
        proc.wait(30)
        raise
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


def _time_wait_on(port: int) -> None:
    """Leave a connection to 127.0.0.1:port in TIME_WAIT on the server side, as a restarted server finds it."""
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first: its end of the connection goes to TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()


def _time_wait_ports() -> set[int]:
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _remote, state = line.split()[1:4]
        if state == "06":  # TCP_TIME_WAIT
            out.add(int(local.split(":")[1], 16))
    return out


def test_restart_takes_back_a_port_in_time_wait(tmp_path):
    project = make_project(tmp_path / "proj")
    port = free_port()
    _time_wait_on(port)
    assert port in _time_wait_ports()  # the situation of a restart with an open browser tab
    proc = start(project, port, tmp_path / "start.log")  # waits for /api/health on exactly this port
    try:
        assert "busy" not in (tmp_path / "start.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_port_another_program_listens_on_fails_with_a_clear_message(tmp_path):
    import socket

    project = make_project(tmp_path / "proj")
    port = free_port()
    env = dict(os.environ)
    env.pop("DAGSMITH_DATABASE_URL", None)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        result = subprocess.run(
            [sys.executable, "-m", "dagsmith.cli.app", "start", str(project), "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=120,
        )
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, out
    assert f"port {port} on 127.0.0.1 is already in use" in out
    assert f"--port {port + 1}" in out  # the hint says how to choose another port
    assert "serving" not in out
