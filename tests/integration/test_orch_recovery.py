"""Crash recovery with real processes: a worker SIGKILLed mid-run; its run resumes from the unfinished blocks.

The worker is a real ``dagsmith start --role worker`` process running the real engine.
``first`` must run once, ``sleeper`` (interrupted) twice, ``last`` once, and the run
ends completed — on SQLite and on PostgreSQL, whether the run is picked up by a
worker that starts afterwards or by one that was already running (heartbeat timeout).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project, marks, wait_until  # noqa: E402

pytestmark = pytest.mark.integration


def _env(project: Path, url: str | None, **extra: str) -> dict:
    env = dict(os.environ)
    env.pop("DAGSMITH_DATABASE_URL", None)
    if url:
        env["DAGSMITH_DATABASE_URL"] = url
    env.update({"DAGSMITH_HEARTBEAT_INTERVAL": "0.2", "DAGSMITH_POLL_INTERVAL": "0.05", "DAGSMITH_HEARTBEAT_TIMEOUT": "3"})
    env.update(extra)
    return env


def start_worker(project: Path, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dagsmith.cli.app", "start", str(project), "--role", "worker", "--grace", "1"],
        env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path, monkeypatch):
    project = make_project(tmp_path / "proj")
    url = None
    drop = None
    if request.param == "postgres":
        url, drop = create_pg_database(request.getfixturevalue("pg_dsn"))
    if url:
        monkeypatch.setenv("DAGSMITH_DATABASE_URL", url)
    else:
        monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.settings import OrchestrationSettings

    settings = OrchestrationSettings.from_env(project, heartbeat_timeout=2.0)
    db = Database(settings)
    db.migrate()
    yield project, url, settings, db
    db.dispose()
    if drop:
        drop()


def _block_states(db, run_id):
    from dagsmith.orchestration.store import repo

    with db.read() as s:
        return repo.get_run(s, run_id), {b.block_uuid: b.status for b in repo.list_block_runs(s, run_id)}


@pytest.mark.parametrize("pickup", ["restart", "standby"])
def test_sigkilled_worker_run_is_resumed_from_unfinished_blocks(backend, tmp_path, pickup):
    from dagsmith.orchestration.store import repo

    project, url, settings, db = backend
    with db.session() as s:
        run_id = repo.create_run(s, "slow", source="api", variables={"SLEEP_SECONDS": 60}).id
    env = _env(project, url)
    victim = start_worker(project, env, tmp_path / "victim.log")
    standby = None
    try:
        wait_until(lambda: _block_states(db, run_id)[1].get("sleeper") == "running", 60, what="sleeper running")
        if pickup == "standby":
            standby = start_worker(project, env, tmp_path / "standby.log")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        if pickup == "restart":
            standby = start_worker(project, env, tmp_path / "restart.log")
        run = wait_until(lambda: (r := _block_states(db, run_id)[0]).status in ("completed", "failed") and r, 60, what="run finished")
    finally:
        for proc in (victim, standby):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)
    _, blocks = _block_states(db, run_id)
    assert run.status == "completed", (tmp_path / "victim.log").read_text()[-2000:]
    assert blocks == {"first": "completed", "sleeper": "completed", "last": "completed"}
    assert run.claims == 2
    assert marks(project, "first").count(str(run_id)) == 1  # completed blocks are never run again
    assert marks(project, "sleeper").count(str(run_id)) == 2  # the interrupted block ran again
    assert marks(project, "last").count(str(run_id)) == 1
    with db.read() as s:
        assert any(e.action == "run.recovered" and e.object_id == str(run_id) for e in repo.list_audit(s))
