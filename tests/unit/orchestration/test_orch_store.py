"""The metadata DB on SQLite: migrations, the exactly-once key, claiming with limits, recovery, secrets, retention."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect

from dagsmith.orchestration.store import repo

UTC = timezone.utc
T0 = datetime(2024, 3, 10, tzinfo=UTC)


def test_migrations_create_every_table_in_wal_mode(db, settings):
    tables = set(inspect(db.engine).get_table_names())
    assert {"triggers", "pipeline_runs", "block_runs", "backfills", "secrets", "audit_events", "workers", "alembic_version"} <= tables
    db.migrate()  # idempotent
    with sqlite3.connect(settings.data_dir / "dagsmith.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_trigger_and_date_make_one_run_even_when_inserted_twice(db):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "daily", schedule_interval="@daily", status="active")
    row = {"pipeline_uuid": "one", "trigger_id": trig.id, "schedule_date": T0}
    with db.session() as s:
        assert repo.insert_keyed_runs(s, [row, dict(row)]) == 1
    with db.session() as s:
        assert repo.insert_keyed_runs(s, [dict(row), {**row, "schedule_date": T0 + timedelta(days=1)}]) == 1
    with db.read() as s:
        runs, total = repo.list_runs(s, trigger_id=trig.id)
    assert total == 2 and {r.execution_date for r in runs} == {T0, T0 + timedelta(days=1)}


def test_concurrent_threads_inserting_the_same_periods_create_each_once(db):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "hourly", schedule_interval="@hourly", status="active")
    rows = [{"pipeline_uuid": "one", "trigger_id": trig.id, "schedule_date": T0 + timedelta(hours=h)} for h in range(50)]
    errors = []

    def insert():
        try:
            with db.session() as s:
                repo.insert_keyed_runs(s, rows)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=insert) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors  # no "database is locked"
    with db.read() as s:
        assert repo.list_runs(s, trigger_id=trig.id)[1] == 50


def test_claim_respects_trigger_backfill_and_global_limits(db):
    with db.session() as s:
        limited = repo.create_trigger(s, "one", "limited", schedule_type="api", settings={"pipeline_run_limit": 1})
        backfill = repo.create_backfill(s, "one", "bf", start_datetime=T0, end_datetime=T0, concurrency=2)
        for _ in range(3):
            repo.create_run(s, "one", source="api", trigger_id=limited.id)
        for d in range(4):
            repo.insert_keyed_runs(s, [{"pipeline_uuid": "one", "backfill_id": backfill.id, "schedule_date": T0 + timedelta(days=d)}])
        repo.create_run(s, "one", source="ui")
    with db.session() as s:
        claimed = repo.claim_runs(s, "w1", limit=10)
    kinds = sorted("trigger" if r.trigger_id else "backfill" if r.backfill_id else "adhoc" for r in claimed)
    assert kinds == ["adhoc", "backfill", "backfill", "trigger"]
    with db.session() as s:
        assert repo.claim_runs(s, "w2", limit=10) == []  # everything else is at its limit
    with db.session() as s:
        repo.finish_run(s, claimed[0].id, "w1", "completed")
        again = repo.claim_runs(s, "w2", limit=10, global_limit=4)
    assert len(again) == 1


def test_stale_runs_are_requeued_and_resume_from_unfinished_blocks(db):
    with db.session() as s:
        run = repo.create_run(s, "slow", source="api")
    with db.session() as s:
        (claimed,) = repo.claim_runs(s, "dead-worker", limit=1, now=T0)
        repo.ensure_block_runs(s, claimed.id, ["first", "sleeper", "last"], partition="p", log_dir=None)
        repo.update_block_run(s, claimed.id, "first", status="completed")
        repo.update_block_run(s, claimed.id, "sleeper", status="running")
    with db.session() as s:
        assert repo.recover_stale_runs(s, now=T0 + timedelta(seconds=10), timeout=30) == []
        assert repo.recover_stale_runs(s, now=T0 + timedelta(seconds=31), timeout=30) == [run.id]
    with db.read() as s:
        states = {b.block_uuid: b.status for b in repo.list_block_runs(s, run.id)}
        assert repo.get_run(s, run.id).status == "initial"
    assert states == {"first": "completed", "sleeper": "initial", "last": "initial"}
    with db.session() as s:
        assert not repo.finish_run(s, run.id, "dead-worker", "completed")  # the old worker lost its lease
        (again,) = repo.claim_runs(s, "w2", limit=1, now=T0 + timedelta(seconds=40))
        assert again.claims == 2


def test_retry_resets_failed_blocks_or_a_block_and_its_descendants(db):
    with db.session() as s:
        run = repo.create_run(s, "slow", source="api")
        repo.claim_runs(s, "w", limit=1)
        repo.ensure_block_runs(s, run.id, ["first", "sleeper", "last"], partition=None, log_dir=None)
        repo.update_block_run(s, run.id, "first", status="completed")
        repo.update_block_run(s, run.id, "sleeper", status="failed", error="boom")
        repo.update_block_run(s, run.id, "last", status="upstream_failed")
        repo.finish_run(s, run.id, "w", "failed")
    with db.session() as s:
        repo.retry_run(s, repo.get_run(s, run.id))
    with db.read() as s:
        assert {b.block_uuid: b.status for b in repo.list_block_runs(s, run.id)} == {"first": "completed", "sleeper": "initial", "last": "initial"}
        assert repo.get_run(s, run.id).status == "initial"
    with db.session() as s:
        with pytest.raises(repo.Conflict, match="only a finished run"):
            repo.retry_run(s, repo.get_run(s, run.id))


def test_cancel_of_a_waiting_run_is_immediate_and_final(db):
    with db.session() as s:
        run = repo.create_run(s, "one", source="api")
    with db.session() as s:
        repo.request_cancel(s, repo.get_run(s, run.id))
    with db.session() as s:
        assert repo.get_run(s, run.id).status == "cancelled"
        assert repo.claim_runs(s, "w", limit=5) == []
        with pytest.raises(repo.Conflict, match="already finished"):
            repo.request_cancel(s, repo.get_run(s, run.id))


def test_secrets_are_encrypted_at_rest_and_key_file_is_private(db, settings):
    from dagsmith.orchestration.secrets import SecretStore, key_path

    store = SecretStore(db, settings.data_dir)
    store.set("db_password", "correct-horse-battery-staple")
    assert store.get("db_password") == "correct-horse-battery-staple"
    assert [n["name"] for n in store.names()] == ["db_password"]
    db.dispose()
    raw = b"".join(p.read_bytes() for p in settings.data_dir.glob("dagsmith.db*"))
    assert b"correct-horse-battery-staple" not in raw
    assert key_path(settings.data_dir).stat().st_mode & 0o077 == 0
    assert store.delete("db_password") and not store.delete("db_password")


def test_logs_past_retention_are_deleted(db, settings):
    from dagsmith.orchestration.logs import RunLogWriter, purge_expired_logs, read_logs, run_log_dir

    with db.session() as s:
        old = repo.create_run(s, "one", source="api", now=T0)
        new = repo.create_run(s, "one", source="api", now=T0)
        for run, done in ((old, T0), (new, T0 + timedelta(days=29))):
            run.status, run.completed_at = "completed", done
            run.log_dir = str(run_log_dir(settings.logs_dir, "one", run.id))
            writer = RunLogWriter(run_log_dir(settings.logs_dir, "one", run.id), run.id, secrets=["s3cr3t-value"])
            writer.write("one_loader", {"level": "INFO", "message": "token=s3cr3t-value"})
            writer.close()
    assert read_logs(run_log_dir(settings.logs_dir, "one", new.id), block_uuid="one_loader")[0]["message"] == "token=******"
    purged = purge_expired_logs(db, settings.logs_dir, now=T0 + timedelta(days=31), retention_days=30)
    assert purged == 1
    assert not run_log_dir(settings.logs_dir, "one", old.id).exists()
    assert run_log_dir(settings.logs_dir, "one", new.id).exists()
    with db.read() as s:
        assert repo.get_run(s, old.id).logs_purged


def test_models_and_migrations_agree(db):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from dagsmith.orchestration.store.models import Base

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models changed without a migration: add one in store/migrations/versions and MIGRATIONS.md"
