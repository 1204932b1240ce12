"""Run limits and retention on PostgreSQL: worker processes honour a pipeline's concurrency_config,
``on_pipeline_run_limit_reached: skip`` cancels periods over the limit, old runs are deleted."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project, run_worker_processes  # noqa: E402

pytestmark = pytest.mark.integration
UTC = timezone.utc


@pytest.fixture
def pg_project(tmp_path, pg_dsn, monkeypatch):
    url, drop = create_pg_database(pg_dsn)
    monkeypatch.setenv("DAGSMITH_DATABASE_URL", url)
    monkeypatch.delenv("CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT", raising=False)
    project = make_project(tmp_path / "proj")
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.settings import OrchestrationSettings

    settings = OrchestrationSettings.from_env(project)
    db = Database(settings)
    db.migrate()
    yield project, settings, db
    db.dispose()
    drop()


def _concurrency(project: Path, pipeline: str, config: dict) -> None:
    path = project / "pipelines" / pipeline / "metadata.yaml"
    meta = yaml.safe_load(path.read_text())
    meta["concurrency_config"] = config
    path.write_text(yaml.safe_dump(meta, sort_keys=False))


def test_worker_processes_never_run_more_than_the_pipeline_limit_at_once(pg_project, tmp_path):
    from dagsmith.orchestration.store import repo

    project, settings, db = pg_project
    _concurrency(project, "slow", {"pipeline_run_limit_all_triggers": 1})
    with db.session() as s:
        ids = []
        for t in range(2):
            trig = repo.create_trigger(s, "slow", f"api{t}", schedule_type="api")
            ids += [repo.create_run(s, "slow", source="api", trigger_id=trig.id, variables={"SLEEP_SECONDS": 0.4}).id for _ in range(2)]
    run_worker_processes(project, db, 2, len(ids), tmp_path)
    with db.read() as s:
        runs = sorted((repo.get_run(s, i) for i in ids), key=lambda r: r.started_at)
    assert {r.status for r in runs} == {"completed"}
    assert {r.claims for r in runs} == {1}  # each run claimed once: no takeover muddles the order below
    for before, after in zip(runs, runs[1:]):
        assert after.started_at >= before.completed_at  # one at a time across both workers


def test_skip_policy_and_run_retention_on_postgres(pg_project):
    from dagsmith.orchestration.scheduler.loop import Scheduler
    from dagsmith.orchestration.store import repo

    project, settings, db = pg_project
    t0 = datetime(2024, 3, 1, 0, 30, tzinfo=UTC)
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "hourly", schedule_interval="@hourly", status="active", now=t0,
                                   settings={"pipeline_run_limit": 1, "on_pipeline_run_limit_reached": "skip"})
        trig.last_execution_date = datetime(2024, 3, 1, tzinfo=UTC)
        trig_id = trig.id
        old = repo.create_run(s, "one", source="ui", now=t0 - timedelta(days=60))
        old.status, old.completed_at = "completed", t0 - timedelta(days=60)
        repo.ensure_block_runs(s, old.id, ["one_loader"], partition=old.partition, log_dir=None)
        old_id = old.id
    sched = Scheduler(settings.with_(run_retention_days=30), db, clock=lambda: t0)
    for hour in (1, 2):
        report = sched.tick(datetime(2024, 3, 1, hour, 0, 5, tzinfo=UTC))
        assert not report.errors
    with db.read() as s:
        runs = sorted(repo.list_runs(s, trigger_id=trig_id)[0], key=lambda r: r.execution_date)
        assert [(r.execution_date.hour, r.status) for r in runs] == [(1, "initial"), (2, "cancelled")]
        assert repo.list_runs(s, pipeline_uuid="one", status="completed")[1] == 0  # the 60-day-old run is gone
        assert repo.list_block_runs(s, old_id) == []
