"""Workers with a stand-in engine: recording, resume, cancel, timeout, shutdown hand-back, retry from a block."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from dagsmith.orchestration import service
from dagsmith.orchestration.store import repo
from dagsmith.orchestration.worker import Worker

UTC = timezone.utc


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def run_state(db, run_id):
    with db.read() as s:
        run = repo.get_run(s, run_id)
        blocks = {b.block_uuid: b.status for b in repo.list_block_runs(s, run_id)}
        return run.status, blocks, run


def test_worker_runs_and_records_blocks_logs_and_dates(db, settings, fake_engine):
    with db.session() as s:
        trig = repo.create_trigger(s, "slow", "t", schedule_type="api", timezone="Asia/Tokyo")
        run = repo.create_run(s, "slow", source="api", trigger_id=trig.id, execution_date=datetime(2024, 1, 1, 15, tzinfo=UTC),
                              timezone_name="Asia/Tokyo", variables={"v": 1})
    worker = Worker(settings, db, run_fn=fake_engine)
    assert worker.step() == [run.id]
    worker.wait_idle(10)
    status, blocks, row = run_state(db, run.id)
    assert status == "completed" and blocks == {"first": "completed", "sleeper": "completed", "last": "completed"}
    call = fake_engine.calls[0]
    assert call["execution_date"].isoformat() == "2024-01-02T00:00:00+09:00"  # the trigger's zone
    assert call["variables"] == {"v": 1} and call["trigger_name"] == "t" and call["partition"] == str(run.id)
    from dagsmith.orchestration.logs import read_logs

    records = read_logs(row.log_dir, block_uuid="sleeper")
    assert any(r["message"] == "hello from sleeper" for r in records)
    with db.read() as s:
        br = {b.block_uuid: b for b in repo.list_block_runs(s, run.id)}
    assert br["first"].rows == 7 and br["first"].attempts == 1 and br["first"].tests_total == 1


def test_a_failed_block_fails_the_run_with_its_name(db, settings, fake_engine):
    fake_engine.fail = {"sleeper"}
    with db.session() as s:
        run = repo.create_run(s, "slow", source="ui")
    worker = Worker(settings, db, run_fn=fake_engine)
    worker.step()
    worker.wait_idle(10)
    status, blocks, row = run_state(db, run.id)
    assert status == "failed" and "sleeper" in row.error
    assert blocks == {"first": "completed", "sleeper": "failed", "last": "upstream_failed"}


def test_retry_reruns_only_failed_blocks_then_from_a_given_block(db, settings, fake_engine, project):
    fake_engine.fail = {"sleeper"}
    with db.session() as s:
        run = repo.create_run(s, "slow", source="ui")
    worker = Worker(settings, db, run_fn=fake_engine)
    worker.step()
    worker.wait_idle(10)
    fake_engine.fail = set()
    service.retry(db, project, run.id)
    worker.step()
    worker.wait_idle(10)
    assert run_state(db, run.id)[0] == "completed"
    assert fake_engine.calls[1]["completed"] == {"first": str(run.id)}
    service.retry(db, project, run.id, from_block="sleeper")
    worker.step()
    worker.wait_idle(10)
    assert fake_engine.calls[2]["completed"] == {"first": str(run.id)}  # sleeper and last run again
    with pytest.raises(Exception, match="not in pipeline"):
        service.retry(db, project, run.id, from_block="nope")


def test_cancel_stops_the_running_block_and_downstream(db, settings, fake_engine):
    fake_engine.hold = "sleeper"
    with db.session() as s:
        run = repo.create_run(s, "slow", source="ui")
    worker = Worker(settings, db, run_fn=fake_engine)
    stop = threading.Event()
    worker.start(stop)
    try:
        assert fake_engine.holding.wait(10)
        service.cancel(db, run.id)  # through the DB: reaches the worker at its next heartbeat
        wait_for(lambda: run_state(db, run.id)[0] == "cancelled")
    finally:
        stop.set()
        worker.shutdown(1)
    assert run_state(db, run.id)[1] == {"first": "completed", "sleeper": "cancelled", "last": "cancelled"}
    assert (str(run.id), "last") not in fake_engine.executed


def test_timeout_fails_the_run(db, settings, fake_engine):
    fake_engine.hold = "sleeper"
    with db.session() as s:
        run = repo.create_run(s, "slow", source="api", timeout=0.2)
    worker = Worker(settings, db, run_fn=fake_engine)
    worker.step()
    worker.wait_idle(10)
    status, _, row = run_state(db, run.id)
    assert status == "failed" and "timed out after 0.2 s" in row.error


def test_shutdown_hands_running_runs_back_and_next_worker_resumes(db, settings, fake_engine):
    fake_engine.hold = "sleeper"
    with db.session() as s:
        run = repo.create_run(s, "slow", source="ui")
    first = Worker(settings, db, run_fn=fake_engine)
    first.step()
    assert fake_engine.holding.wait(10)
    first.shutdown(grace=0.1)
    status, blocks, _ = run_state(db, run.id)
    assert status == "initial" and blocks["first"] == "completed" and blocks["sleeper"] == "initial"
    fake_engine.hold = None
    second = Worker(settings, db, run_fn=fake_engine)
    assert second.step() == [run.id]
    second.wait_idle(10)
    assert run_state(db, run.id)[0] == "completed"
    assert fake_engine.calls[-1]["completed"] == {"first": str(run.id)}
    assert [name for _, name in fake_engine.executed].count("first") == 1


def test_stale_run_of_a_vanished_worker_is_resumed(db, settings, fake_engine):
    with db.session() as s:
        run = repo.create_run(s, "slow", source="api")
        repo.claim_runs(s, "gone-host:1:x", limit=1, now=datetime.now(UTC) - timedelta(minutes=5))
        repo.ensure_block_runs(s, run.id, ["first", "sleeper", "last"], partition=str(run.id), log_dir=None)
        repo.update_block_run(s, run.id, "first", status="completed")
        repo.update_block_run(s, run.id, "sleeper", status="running")
    worker = Worker(settings, db, run_fn=fake_engine)
    assert worker.recover() == [run.id]
    worker.step()
    worker.wait_idle(10)
    assert run_state(db, run.id)[0] == "completed"
    assert fake_engine.calls[0]["completed"] == {"first": str(run.id)}


def test_engine_errors_fail_the_run_not_the_worker(db, settings):
    def broken(*args, **kwargs):
        raise RuntimeError("pipeline 'slow' has a cycle: a -> b -> a")

    with db.session() as s:
        run = repo.create_run(s, "slow", source="ui")
    worker = Worker(settings, db, run_fn=broken)
    worker.step()
    worker.wait_idle(10)
    status, _, row = run_state(db, run.id)
    assert status == "failed" and "cycle" in row.error


def test_the_engine_gets_the_parsed_pipeline_until_its_files_change(db, settings, fake_engine, project):
    """The worker parses a pipeline once and hands the spec to every run, until metadata.yaml or a block folder changes."""
    import os

    def one_run():
        with db.session() as s:
            run_id = repo.create_run(s, "one", source="api").id
        worker = Worker(settings, db, run_fn=fake_engine)
        worker._spec_cache = shared
        assert worker.step() == [run_id]
        worker.wait_idle(10)
        assert run_state(db, run_id)[0] == "completed"
        return fake_engine.calls[-1]["spec"]

    shared: dict = {}
    first = one_run()
    assert first is not None and first.uuid == "one" and [b.uuid for b in first.blocks] == ["one_loader"]
    assert one_run() is first
    (project / "transformers" / "new_block.py").write_text("x = 1\n")
    future = time.time() + 5  # a folder's mtime resolution must not hide the change
    os.utime(project / "transformers", (future, future))
    changed = one_run()
    assert changed is not first and changed.uuid == "one"
    meta = project / "pipelines" / "one" / "metadata.yaml"
    meta.write_text(meta.read_text().replace("name: one", "name: one renamed"))
    assert one_run().name == "one renamed"
