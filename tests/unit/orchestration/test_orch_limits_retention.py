"""Run limits (on_pipeline_run_limit_reached, pipeline concurrency_config), run retention, dynamic-child rows."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from fastapi.testclient import TestClient

from dagsmith.orchestration.scheduler.loop import Scheduler
from dagsmith.orchestration.store import repo
from dagsmith.orchestration.worker import Worker
from tests.fixtures.clock import Clock, utc

UTC = timezone.utc


@pytest.fixture
def client(settings, db):
    from dagsmith.server.app import create_app

    app = create_app(settings.project_root, settings)
    app.state.db = db
    return TestClient(app)


def _runs(db, trigger_id):
    with db.read() as s:
        runs, _ = repo.list_runs(s, trigger_id=trigger_id, limit=100)
        return sorted(((r.execution_date, r.status, r.error) for r in runs), key=lambda x: x[0])


def _hourly(db, name, settings_):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", name, schedule_interval="@hourly", status="active", settings=settings_, now=utc(2024, 3, 1, 0, 30))
        trig.last_execution_date = utc(2024, 3, 1, 0)
        return trig.id


def _set_concurrency(project, pipeline: str, config: dict) -> None:
    path = project / "pipelines" / pipeline / "metadata.yaml"
    meta = yaml.safe_load(path.read_text())
    meta["concurrency_config"] = config
    path.write_text(yaml.safe_dump(meta, sort_keys=False))
    later = time.time() + 5  # a new mtime even on coarse-grained file systems
    os.utime(path, (later, later))


# ---------------------------------------------------------------- on_pipeline_run_limit_reached


def test_skip_policy_records_the_period_over_the_limit_as_cancelled(db, settings):
    skip = _hourly(db, "skip", {"pipeline_run_limit": 1, "on_pipeline_run_limit_reached": "skip"})
    wait = _hourly(db, "wait", {"pipeline_run_limit": 1})
    clock = Clock(utc(2024, 3, 1, 1, 0, 5))
    sched = Scheduler(settings, db, clock=clock)
    sched.tick()
    clock.now = utc(2024, 3, 1, 2, 0, 5)  # the 01:00 runs are still waiting
    report = sched.tick()
    assert report.skipped == 1
    skipped = _runs(db, skip)
    assert [(d, s) for d, s, _e in skipped] == [(utc(2024, 3, 1, 1), "initial"), (utc(2024, 3, 1, 2), "cancelled")]
    assert "pipeline_run_limit" in skipped[1][2] and "skip" in skipped[1][2]
    # the default (wait) keeps the new run queued
    assert [(d, s) for d, s, _e in _runs(db, wait)] == [(utc(2024, 3, 1, 1), "initial"), (utc(2024, 3, 1, 2), "initial")]
    # once the trigger is under its limit again, the next period runs
    with db.session() as s:
        first = repo.list_runs(s, trigger_id=skip, status="initial")[0][0]
        first.status, first.completed_at = "completed", utc(2024, 3, 1, 2, 10)
    clock.now = utc(2024, 3, 1, 3, 0, 5)
    sched.tick()
    assert _runs(db, skip)[-1][:2] == (utc(2024, 3, 1, 3), "initial")


def test_skip_policy_and_limit_can_come_from_the_pipeline_concurrency_config(db, settings, project, client):
    _set_concurrency(project, "one", {"pipeline_run_limit": 1, "on_pipeline_run_limit_reached": "skip"})
    trig = _hourly(db, "plain", {})
    clock = Clock(utc(2024, 3, 1, 1, 0, 5))
    sched = Scheduler(settings, db, clock=clock)
    sched.tick()
    clock.now = utc(2024, 3, 1, 2, 0, 5)
    sched.tick()
    body = client.get("/api/pipeline_runs", params={"pipeline_schedule_id": trig}).json()
    statuses = sorted((r["execution_date"][:16], r["status"]) for r in body["pipeline_runs"])
    assert statuses == [("2024-03-01T01:00", "initial"), ("2024-03-01T02:00", "cancelled")]


# ---------------------------------------------------------------- pipeline-level limits when claiming


def _queue(db, triggers: int, runs_each: int) -> list[int]:
    ids = []
    with db.session() as s:
        for t in range(triggers):
            trig = repo.create_trigger(s, "one", f"api{t}", schedule_type="api")
            for _ in range(runs_each):
                ids.append(repo.create_run(s, "one", source="api", trigger_id=trig.id).id)
    return ids


def _running(db) -> int:
    with db.read() as s:
        return repo.count_runs(s, pipeline_uuid="one").get("running", 0)


@pytest.mark.parametrize(
    "config, env, expected",
    [
        ({"pipeline_run_limit": 1}, None, 2),  # one per trigger, two triggers
        ({"pipeline_run_limit_all_triggers": 1}, None, 1),
        ({"pipeline_run_limit": 2, "pipeline_run_limit_all_triggers": 3}, None, 3),
        ({}, "1", 2),  # CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT as Mage's default
        ({}, None, 6),
    ],
)
def test_workers_honour_the_pipeline_concurrency_config(db, settings, project, fake_engine, monkeypatch, config, env, expected):
    if env is not None:
        monkeypatch.setenv("CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT", env)
    else:
        monkeypatch.delenv("CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT", raising=False)
    _set_concurrency(project, "one", config)
    _queue(db, triggers=2, runs_each=3)
    fake_engine.hold = "one_loader"
    worker = Worker(settings, db, run_fn=fake_engine, concurrency=10)
    try:
        claimed = worker.step()
        assert len(claimed) == expected
        assert worker.step() == []  # nothing more fits while those run
        assert _running(db) == expected
    finally:
        fake_engine.release.set()
        worker.wait_idle(10)
    # the queue drains within the limits
    for _ in range(20):
        worker.step()
        worker.wait_idle(10)
    with db.read() as s:
        assert repo.count_runs(s, pipeline_uuid="one") == {"completed": 6}


def test_the_trigger_limit_and_the_pipeline_limit_combine(db, settings, project, fake_engine):
    _set_concurrency(project, "one", {"pipeline_run_limit": 3})
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "tight", schedule_type="api", settings={"pipeline_run_limit": 1})
        for _ in range(3):
            repo.create_run(s, "one", source="api", trigger_id=trig.id)
    fake_engine.hold = "one_loader"
    worker = Worker(settings, db, run_fn=fake_engine, concurrency=10)
    try:
        assert len(worker.step()) == 1
        assert _running(db) == 1
    finally:
        fake_engine.release.set()
        worker.wait_idle(10)


# ---------------------------------------------------------------- retention


def _finished_run(db, store, *, status="completed", ended: datetime, blocks=("one_loader",), logs_root=None):
    from dagsmith.orchestration.logs import RunLogWriter, run_log_dir

    with db.session() as s:
        run = repo.create_run(s, "one", source="ui", now=ended - timedelta(minutes=1))
        run.status = status
        run.completed_at = ended if status in ("completed", "failed", "cancelled") else None
        log_dir = run_log_dir(logs_root, "one", run.id)
        run.log_dir = str(log_dir)
        repo.ensure_block_runs(s, run.id, list(blocks), partition=run.partition, log_dir=str(log_dir))
        run_id, partition = run.id, run.partition
    writer = RunLogWriter(log_dir, run_id)
    writer.info("hello")
    writer.close()
    for b in blocks:
        store.write_outputs("one", partition, b, [{"n": run_id}], multi=False, update_latest=False)
    return run_id, partition, log_dir


def _store(settings):
    from dagsmith.data.store import VariableStore

    return VariableStore(settings.data_dir)


def test_old_finished_runs_are_deleted_with_their_block_runs_logs_and_outputs(db, settings, client):
    now = datetime.now(UTC)
    store = _store(settings)
    old, old_part, old_logs = _finished_run(db, store, ended=now - timedelta(days=40), logs_root=settings.logs_dir)
    failed, failed_part, _ = _finished_run(db, store, status="failed", ended=now - timedelta(days=35), logs_root=settings.logs_dir)
    pinned, pinned_part, _ = _finished_run(db, store, ended=now - timedelta(days=45), logs_root=settings.logs_dir)
    store.set_latest("one", {"one_loader": pinned_part})  # `dagsmith run --block` reads this one
    recent, recent_part, recent_logs = _finished_run(db, store, ended=now - timedelta(days=2), logs_root=settings.logs_dir)
    running, running_part, _ = _finished_run(db, store, status="running", ended=now - timedelta(days=50), logs_root=settings.logs_dir)
    waiting, waiting_part, _ = _finished_run(db, store, status="initial", ended=now - timedelta(days=50), logs_root=settings.logs_dir)

    sched = Scheduler(settings.with_(run_retention_days=30), db, clock=lambda: now)
    report = sched.tick()
    assert not report.errors and report.runs_deleted == 3

    for gone in (old, failed, pinned):
        assert client.get(f"/api/pipeline_runs/{gone}").status_code == 404
        with db.read() as s:
            assert repo.list_block_runs(s, gone) == []
    for kept in (recent, running, waiting):
        assert client.get(f"/api/pipeline_runs/{kept}").status_code == 200
        with db.read() as s:
            assert [b.block_uuid for b in repo.list_block_runs(s, kept)] == ["one_loader"]
    assert not old_logs.exists() and recent_logs.exists()
    partitions = set(store.partitions("one"))
    assert old_part not in partitions and failed_part not in partitions
    assert {pinned_part, recent_part, running_part, waiting_part} <= partitions
    assert store.read_block_value("one", pinned_part, "one_loader") == {"n": pinned}


def test_run_retention_is_off_by_default_and_reads_the_environment(db, settings, monkeypatch, project):
    now = datetime.now(UTC)
    store = _store(settings)
    old, _, _ = _finished_run(db, store, ended=now - timedelta(days=400), logs_root=settings.logs_dir)
    assert settings.run_retention_days is None
    Scheduler(settings, db, clock=lambda: now).tick()
    with db.read() as s:
        assert repo.get_run(s, old).status == "completed"
    from dagsmith.orchestration.settings import OrchestrationSettings

    monkeypatch.setenv("DAGSMITH_RUN_RETENTION_DAYS", "365")
    from_env = OrchestrationSettings.from_env(project)
    assert from_env.run_retention_days == 365
    Scheduler(from_env, db, clock=lambda: now).tick()
    with db.read() as s:
        assert repo.list_runs(s, pipeline_uuid="one")[1] == 0


def test_variables_retention_period_deletes_old_outputs_but_keeps_runs_latest_and_running(db, settings, project, client):
    now = datetime.now(UTC)
    (project / "metadata.yaml").write_text((project / "metadata.yaml").read_text() + "variables_retention_period: 90d\n")
    store = _store(settings)
    old, old_part, _ = _finished_run(db, store, ended=now - timedelta(days=100), logs_root=settings.logs_dir)
    pinned, pinned_part, _ = _finished_run(db, store, ended=now - timedelta(days=100), logs_root=settings.logs_dir)
    running, running_part, _ = _finished_run(db, store, status="running", ended=now - timedelta(days=100), logs_root=settings.logs_dir)
    fresh, fresh_part, _ = _finished_run(db, store, ended=now - timedelta(days=1), logs_root=settings.logs_dir)
    store.write_outputs("one", "cli-run", "one_loader", [1], multi=False, update_latest=False)  # a partition with no DB row
    store.set_latest("one", {"one_loader": pinned_part})
    aged = (now - timedelta(days=100)).timestamp()
    for part in (old_part, pinned_part, running_part, "cli-run"):
        os.utime(store.variables_dir("one") / part, (aged, aged))
        os.utime(store.variables_dir("one") / part / "_inline.jsonl", (aged, aged))  # small outputs live here

    report = Scheduler(settings, db, clock=lambda: now).tick()
    assert not report.errors and report.partitions_deleted == 2 and report.runs_deleted == 0
    assert set(store.partitions("one")) == {pinned_part, running_part, fresh_part}
    assert client.get(f"/api/pipeline_runs/{old}").json()["pipeline_run"]["status"] == "completed"  # the run stays


def test_retention_periods_are_parsed_like_mage(tmp_path):
    from dagsmith.errors import ConfigError
    from dagsmith.orchestration.retention import parse_period

    assert parse_period("90d") == timedelta(days=90)
    assert parse_period("12h") == timedelta(hours=12)
    assert parse_period("2w") == timedelta(weeks=2)
    assert parse_period(7) == timedelta(days=7)
    assert parse_period(None) is None and parse_period("0d") is None
    with pytest.raises(ConfigError, match="90 days"):
        parse_period("90 days")


# ---------------------------------------------------------------- dynamic children


def test_dynamic_children_are_initial_block_runs_as_soon_as_the_parent_fans_out(tmp_path, monkeypatch):
    from tests.projects import add_pipeline, make_project

    from dagsmith.engine import run_pipeline
    from dagsmith.engine.observer import Fanout, NullObserver
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.logs import RunLogWriter
    from dagsmith.orchestration.history import RunHistory
    from dagsmith.orchestration.settings import OrchestrationSettings

    root = make_project(tmp_path)
    add_pipeline(root, "fan", [
        {"uuid": "regions", "type": "data_loader", "configuration": {"dynamic": True},
         "code": "@data_loader\ndef l(*a, **k):\n    return ['north', 'south', 'east']\n"},
        {"uuid": "per_region", "upstream": ["regions"],
         "code": "@transformer\ndef t(region, *a, **k):\n    return region.upper()\n"},
    ])
    settings = OrchestrationSettings.from_env(root)
    db = Database(settings)
    db.migrate()
    try:
        with db.session() as s:
            run_id = repo.create_run(s, "fan", source="ui").id
        seen: dict = {}

        class Probe(NullObserver):
            def on_blocks_added(self, *, parent, blocks, **kw):
                with db.read() as s:
                    rows = {b.block_uuid: b.status for b in repo.list_block_runs(s, run_id)}
                seen[parent] = {b: rows.get(b) for b in blocks}

        writer = RunLogWriter(settings.logs_dir / "fan" / str(run_id), run_id)
        observer = Fanout([RunHistory(db, run_id, "fan", log_writer=writer, partition=str(run_id)), Probe()])
        result = run_pipeline(root, "fan", run_id=str(run_id), partition=str(run_id), observer=observer)
        writer.close()
        assert result.status == "completed"
        assert len(seen) == 1
        (children,) = seen.values()
        assert len(children) == 3 and set(children.values()) == {"initial"}
        with db.read() as s:
            final = {b.block_uuid: b.status for b in repo.list_block_runs(s, run_id)}
        assert all(final[c] == "completed" for c in children)
    finally:
        db.dispose()
