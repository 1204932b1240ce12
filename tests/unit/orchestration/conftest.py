"""Fixtures of the orchestration unit tests: a project on disk, settings, a migrated SQLite DB, a fake engine."""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import make_project  # noqa: E402

UTC = timezone.utc


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    monkeypatch.delenv("DAGSMITH_DATA_DIR", raising=False)
    monkeypatch.delenv("DAGSMITH_SECRET_KEY", raising=False)
    return make_project(tmp_path / "proj")


@pytest.fixture
def settings(project):
    from dagsmith.orchestration.settings import OrchestrationSettings

    return OrchestrationSettings.from_env(project, heartbeat_timeout=30.0, poll_interval=0.02, heartbeat_interval=0.05)


@pytest.fixture
def db(settings):
    from dagsmith.orchestration.db import Database

    database = Database(settings)
    database.migrate()
    yield database
    database.dispose()


class FakeEngine:
    """Stands in for ``dagsmith.engine.run_pipeline``: reports blocks to the observer like the engine does.

    ``blocks`` maps pipeline uuid → block uuids in order; ``fail`` names blocks that fail;
    ``hold`` names a block that waits until ``release`` is set (or the run is cancelled).
    Every call is recorded in ``calls``.
    """

    def __init__(self, blocks: dict[str, list[str]] | None = None) -> None:
        self.blocks = blocks or {"slow": ["first", "sleeper", "last"], "one": ["one_loader"], "counted": ["counted_loader"], "dated": ["dated_loader", "dated_export"]}
        self.fail: set[str] = set()
        self.hold: str | None = None
        self.release = threading.Event()
        self.holding = threading.Event()
        self.calls: list[dict] = []
        self.executed: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, project_root, pipeline_uuid, *, run_id, observer, cancel_event, completed=None, **kw):
        with self.lock:
            self.calls.append({"pipeline_uuid": pipeline_uuid, "run_id": run_id, "completed": dict(completed or {}), **kw})
        names = self.blocks.get(pipeline_uuid, ["only"])
        observer.on_run_start(run_id=run_id, pipeline_uuid=pipeline_uuid, blocks=names)
        results = {}
        status = "completed"
        for name in names:
            if completed and name in completed:
                continue
            if status != "completed":
                res = SimpleNamespace(status="upstream_failed" if status == "failed" else "cancelled", attempts=0, started_at=None, ended_at=None, rows=None, error=None, tests_passed=0, tests_total=0)
                observer.on_block_end(run_id=run_id, block_uuid=name, status=res.status, result=res)
                continue
            started = datetime.now(UTC)
            observer.on_block_start(run_id=run_id, block_uuid=name, attempt=1, started_at=started)
            observer.on_block_log(run_id=run_id, block_uuid=name, record={"timestamp": started.isoformat(), "level": "INFO", "message": f"hello from {name}", "block_uuid": name})
            with self.lock:
                self.executed.append((run_id, name))
            block_status, error = "completed", None
            if self.hold == name:
                self.holding.set()
                while not self.release.is_set() and not cancel_event.is_set():
                    self.release.wait(0.01)
                if cancel_event.is_set():
                    block_status, error = "cancelled", "cancelled"
            if name in self.fail:
                block_status, error = "failed", f"{name} broke"
            res = SimpleNamespace(status=block_status, attempts=1, started_at=started, ended_at=datetime.now(UTC), rows=7, error=error, tests_passed=1, tests_total=1)
            observer.on_block_end(run_id=run_id, block_uuid=name, status=block_status, result=res)
            results[name] = res
            if block_status != "completed":
                status = block_status
        result = SimpleNamespace(status=status, blocks=results, run_id=run_id, partition=kw.get("partition"))
        observer.on_run_end(run_id=run_id, status=status, result=result)
        return result


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()
