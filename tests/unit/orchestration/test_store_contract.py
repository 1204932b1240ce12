"""The store's contract, run on SQLite and on a real PostgreSQL alike.

Every test takes the ``db`` below, parametrised on both backends: migrations, the
exactly-once key, claiming with limits (``FOR UPDATE SKIP LOCKED`` and the claim's
advisory lock really run on PostgreSQL), heartbeats and their fencing, recovery, retry,
cancel, secrets at rest, retention, the SLA flag. PostgreSQL is the machine's at
127.0.0.1:5432 (or a throwaway cluster the session fixture starts); the suite uses one
fresh database per test run, emptied before each test and dropped at the end.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text

from dagsmith.orchestration.store import repo
from tests.fixtures.orch_projects import create_pg_database

UTC = timezone.utc
T0 = datetime(2024, 3, 10, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg_store_url(pg_dsn):
    """One fresh PostgreSQL database for this test run's store tests, dropped afterwards."""
    url, drop = create_pg_database(pg_dsn)
    yield url
    drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(request, backend, project):
    from dagsmith.orchestration.settings import OrchestrationSettings

    url = request.getfixturevalue("pg_store_url") if backend == "postgresql" else None
    return OrchestrationSettings.from_env(
        project, heartbeat_timeout=30.0, poll_interval=0.02, heartbeat_interval=0.05, database_url=url
    )


@pytest.fixture
def db(settings, backend):
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.store.models import Base

    database = Database(settings)
    database.migrate()
    assert database.dialect == backend
    if backend == "postgresql":  # the database lives for the whole run: each test starts from empty tables
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with database.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    yield database
    database.dispose()


def test_migrations_create_every_table_in_wal_mode(db, settings):
    tables = set(inspect(db.engine).get_table_names())
    assert {"triggers", "pipeline_runs", "block_runs", "backfills", "secrets", "audit_events", "workers", "alembic_version"} <= tables
    db.migrate()  # idempotent
    if db.is_postgres:
        from dagsmith.orchestration.db import Database

        again = Database(settings)  # a second process's view: already at head, nothing to do
        assert again.is_current()
        again.dispose()
    else:
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
    if db.is_postgres:
        with db.engine.connect() as conn:
            raw = b"".join(bytes(v) for (v,) in conn.execute(text("SELECT value FROM secrets")))
        assert raw  # the row is there, as ciphertext
    else:
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


@pytest.fixture
def two_new_databases(request, backend, tmp_path):
    """Two empty metadata DBs of this backend (PostgreSQL: two fresh databases, dropped afterwards)."""
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.settings import OrchestrationSettings

    made, drops = [], []
    for name in ("a", "b"):
        url = None
        if backend == "postgresql":
            url, drop = create_pg_database(request.getfixturevalue("pg_dsn"))
            drops.append(drop)
        (tmp_path / name).mkdir()
        made.append(Database(OrchestrationSettings.from_env(tmp_path / name, database_url=url)))
    yield made
    for database in made:
        database.dispose()
    for drop in drops:
        drop()


def _schema(database) -> dict:
    """Tables with their columns (type, nullable), primary key, foreign keys, indexes and unique constraints."""
    found = inspect(database.engine)
    out = {}
    for table in sorted(found.get_table_names()):
        out[table] = {
            "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)),  # Alembic appends added columns
            "pk": found.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                          for f in found.get_foreign_keys(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(table)),
            "uniques": sorted((u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(table)),
        }
    return out


def test_models_migrations_and_a_new_database_agree(two_new_databases):
    """Alembic's upgrade from nothing, the models, and the schema a new database gets without Alembic are one schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from dagsmith.orchestration.db import head_revision
    from dagsmith.orchestration.store.models import Base

    by_alembic, created = two_new_databases
    by_alembic.upgrade()
    with by_alembic.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models changed without a migration: add one in store/migrations/versions and MIGRATIONS.md"
    assert created._create_if_empty() is True  # the path a new project's first start takes
    assert created.is_current() and by_alembic.is_current()
    assert _schema(created) == _schema(by_alembic)
    with created.engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))] == [head_revision()]
    assert created._create_if_empty() is False  # a database with tables is Alembic's to migrate
    created.migrate()
    assert created.is_current()


def test_concurrent_claims_take_every_run_exactly_once(db):
    """Eight workers claiming at once from one queue: no run is claimed twice, none is left."""
    with db.session() as s:
        ids = {repo.create_run(s, "one", source="api").id for _ in range(40)}
    claimed: dict[int, list[str]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(name: str) -> None:
        try:
            start.wait()
            while True:
                with db.session() as s:
                    runs = repo.claim_runs(s, name, limit=3)
                    got = [r.id for r in runs]
                if not got:
                    return
                with lock:
                    for rid in got:
                        claimed.setdefault(rid, []).append(name)
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(claimed) == ids
    assert {rid: len(names) for rid, names in claimed.items() if len(names) != 1} == {}
    with db.read() as s:
        runs, total = repo.list_runs(s, status="running", limit=100)
    assert total == 40 and {r.worker_id for r in runs} == {n for names in claimed.values() for n in names}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_claim_skips_a_run_another_transaction_holds_instead_of_waiting(db):
    """``FOR UPDATE SKIP LOCKED``: a row locked elsewhere (a recovery, a cancel in flight) is passed over.

    PostgreSQL only: SQLite has no row locks — its writers queue behind ``BEGIN IMMEDIATE``.
    """
    from dagsmith.orchestration.store.models import PipelineRun

    with db.session() as s:
        first = repo.create_run(s, "one", source="api").id
        second = repo.create_run(s, "one", source="api").id
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.session() as s:
            s.execute(select(PipelineRun.id).where(PipelineRun.id == first).with_for_update())
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        with db.session() as s:
            s.execute(text("SET LOCAL lock_timeout = '5s'"))  # a claim that waited for the row would fail here
            got = [r.id for r in repo.claim_runs(s, "w", limit=2)]
        assert got == [second]
    finally:
        release.set()
        holder.join()
    with db.session() as s:
        assert [r.id for r in repo.claim_runs(s, "w2", limit=2)] == [first]


def test_a_claim_honours_pipeline_concurrency_config_with_the_trigger_limit(db):
    """The tighter of a trigger's own limit and its pipeline's per-trigger limit wins; all_triggers caps the pipeline."""
    from types import SimpleNamespace

    with db.session() as s:
        loose = repo.create_trigger(s, "one", "loose", schedule_type="api", settings={"pipeline_run_limit": 5})
        other = repo.create_trigger(s, "one", "other", schedule_type="api")
        for _ in range(4):
            repo.create_run(s, "one", source="api", trigger_id=loose.id)
            repo.create_run(s, "one", source="api", trigger_id=other.id)
        repo.create_run(s, "slow", source="ui")
    limits = {"one": SimpleNamespace(per_trigger=2, all_triggers=3)}
    with db.session() as s:
        claimed = repo.claim_runs(s, "w", limit=20, pipeline_limits=lambda uuid: limits.get(uuid))
    by_trigger = {}
    for r in claimed:
        by_trigger[r.trigger_id] = by_trigger.get(r.trigger_id, 0) + 1
    # pipeline "one": at most 2 per trigger and 3 in all; "slow" has no limit
    assert by_trigger == {loose.id: 2, other.id: 1, None: 1}
    with db.session() as s:
        assert repo.claim_runs(s, "w", limit=20, pipeline_limits=lambda uuid: limits.get(uuid)) == []


def test_heartbeats_fence_the_run_with_its_claim_count(db):
    with db.session() as s:
        run_id = repo.create_run(s, "one", source="api").id
    with db.session() as s:
        (run,) = repo.claim_runs(s, "w1", limit=1, now=T0)
        claims = run.claims
    with db.session() as s:
        assert repo.heartbeat_runs(s, "w1", {run_id: claims}, now=T0 + timedelta(seconds=5)) == {run_id: "ok"}
        assert repo.recover_stale_runs(s, now=T0 + timedelta(seconds=40), timeout=30) == [run_id]
    with db.session() as s:  # handed back but claimed by nobody since: the worker takes it back
        assert repo.heartbeat_runs(s, "w1", {run_id: claims}, now=T0 + timedelta(seconds=41)) == {run_id: "ok"}
        assert repo.get_run(s, run_id).worker_id == "w1"
    with db.session() as s:
        assert repo.recover_stale_runs(s, now=T0 + timedelta(seconds=90), timeout=30) == [run_id]
        (again,) = repo.claim_runs(s, "w2", limit=1, now=T0 + timedelta(seconds=91))
        assert again.claims == claims + 1
    with db.session() as s:  # claimed by another worker since: this worker's copy is lost
        assert repo.heartbeat_runs(s, "w1", {run_id: claims}, now=T0 + timedelta(seconds=92)) == {run_id: "lost"}
        assert not repo.finish_run(s, run_id, "w1", "completed")
        repo.request_cancel(s, repo.get_run(s, run_id))
    with db.session() as s:
        assert repo.heartbeat_runs(s, "w2", [run_id], now=T0 + timedelta(seconds=93)) == {run_id: "cancel"}
        assert repo.finish_run(s, run_id, "w2", "cancelled")
    with db.read() as s:
        assert repo.get_run(s, run_id).status == "cancelled"
        assert [e.action for e in repo.list_audit(s)].count("run.recovered") == 2


def test_block_runs_upsert_in_batches_and_resume_reads_completed_blocks(db):
    with db.session() as s:
        run_id = repo.create_run(s, "slow", source="api").id
        repo.ensure_block_runs(s, run_id, ["first", "sleeper", "last"], partition="7", log_dir="/logs/slow/7")
        repo.ensure_block_runs(s, run_id, ["first", "child_0"], partition="7", log_dir="/logs/slow/7")  # existing rows keep their state
    with db.session() as s:
        repo.upsert_block_runs(s, [
            (run_id, "first", {"status": "completed", "rows": 3}),
            (run_id, "sleeper", {"status": "completed", "partition": "5"}),
            (run_id, "last", {"status": "failed", "error": "boom"}),
            (run_id, "new_child", {"status": "running"}),
        ])
    with db.read() as s:
        rows = {b.block_uuid: b for b in repo.list_block_runs(s, run_id)}
        assert repo.completed_blocks(s, run_id, default_partition="7") == {"first": "7", "sleeper": "5"}
    assert set(rows) == {"first", "sleeper", "last", "child_0", "new_child"}
    assert rows["first"].rows == 3 and rows["first"].log_path == "/logs/slow/7/first.jsonl"
    assert (rows["last"].status, rows["last"].error) == ("failed", "boom")
    assert rows["child_0"].status == "initial"


def test_runs_past_their_trigger_sla_are_flagged_once(db):
    with db.session() as s:
        timed = repo.create_trigger(s, "one", "timed", schedule_type="api", sla=600)
        untimed = repo.create_trigger(s, "one", "untimed", schedule_type="api")
        late = repo.create_run(s, "one", source="api", trigger_id=timed.id, execution_date=T0).id
        recent = repo.create_run(s, "one", source="api", trigger_id=timed.id, execution_date=T0 + timedelta(minutes=55)).id
        no_sla = repo.create_run(s, "one", source="api", trigger_id=untimed.id, execution_date=T0).id
    with db.session() as s:
        assert repo.mark_passed_sla(s, now=T0 + timedelta(hours=1)) == 1
        assert repo.mark_passed_sla(s, now=T0 + timedelta(hours=1)) == 0
    with db.read() as s:
        assert {rid: repo.get_run(s, rid).passed_sla for rid in (late, recent, no_sla)} == {late: True, recent: False, no_sla: False}


def test_an_idempotency_key_makes_one_run_per_trigger(db):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "api", schedule_type="api")
        other = repo.create_trigger(s, "one", "api2", schedule_type="api")

    def make(trigger_id):
        return lambda: repo.create_run(s, "one", source="api", trigger_id=trigger_id, idempotency_key="k-1")

    with db.session() as s:
        run, created = repo.create_keyed_run(s, trig.id, "k-1", make(trig.id))
        again, created_again = repo.create_keyed_run(s, trig.id, "k-1", make(trig.id))
        elsewhere, created_elsewhere = repo.create_keyed_run(s, other.id, "k-1", make(other.id))
        unkeyed = [repo.create_keyed_run(s, trig.id, None, lambda: repo.create_run(s, "one", source="api", trigger_id=trig.id))[0].id for _ in range(2)]
    assert (created, created_again, created_elsewhere) == (True, False, True)
    assert again.id == run.id and elsewhere.id != run.id and len(set(unkeyed)) == 2
    with db.read() as s:
        assert repo.list_runs(s, trigger_id=trig.id)[1] == 3


def test_a_cli_run_records_the_execution_date_the_engine_used(db):
    with db.session() as s:
        run_id = repo.create_run(s, "one", source="cli", status="running", worker_id="host:1:cli", now=T0).id
    with db.session() as s:
        repo.set_execution_date(s, run_id, T0 - timedelta(days=1))
        assert repo.finish_run(s, run_id, "host:1:cli", "completed", now=T0 + timedelta(seconds=2))
    with db.read() as s:
        run = repo.get_run(s, run_id)
    assert (run.execution_date, run.status, run.completed_at) == (T0 - timedelta(days=1), "completed", T0 + timedelta(seconds=2))


def test_retention_keeps_unfinished_runs_and_busy_backfills(db):
    with db.session() as s:
        backfill = repo.create_backfill(s, "one", "bf", start_datetime=T0, end_datetime=T0, status="running")
        done = repo.create_run(s, "one", source="api", now=T0)
        waiting = repo.create_run(s, "one", source="api", now=T0)
        of_backfill = repo.create_run(s, "one", source="backfill", backfill_id=backfill.id, now=T0)
        for run in (done, of_backfill):
            run.status, run.completed_at = "completed", T0
        repo.ensure_block_runs(s, waiting.id, ["one_loader"], partition="p-wait", log_dir=None)
        ids = (done.id, waiting.id, of_backfill.id)
    with db.read() as s:
        assert [r.id for r in repo.expired_runs(s, before=T0 + timedelta(days=1))] == [ids[0]]
        assert repo.unfinished_partitions(s) == {("one", str(ids[1])), ("one", "p-wait")}
    with db.session() as s:
        assert repo.delete_runs(s, list(ids)) == 2  # the waiting run is never deleted
    with db.read() as s:
        assert [r.id for r in repo.list_runs(s)[0]] == [ids[1]]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_queued_runs_are_announced_to_listeners_at_commit_only(db, settings):
    """``pg_notify`` on the queue channel: delivered when the run is committed, never for a rolled-back one."""
    import psycopg

    from dagsmith.orchestration.wakeup import libpq_url

    with psycopg.connect(libpq_url(db.url), autocommit=True) as listener:
        listener.execute(f'LISTEN "{repo.QUEUE_CHANNEL}"')

        def heard() -> list[str]:
            return [n.channel for n in listener.notifies(timeout=0.5)]

        with pytest.raises(RuntimeError):
            with db.session() as s:
                repo.create_run(s, "one", source="api")
                raise RuntimeError("rolled back")
        assert heard() == []
        with db.session() as s:
            for _ in range(3):
                repo.create_run(s, "one", source="api")
        assert heard() == [repo.QUEUE_CHANNEL]  # one transaction, one wake
        with db.session() as s:
            repo.create_run(s, "one", source="cli", status="running", worker_id="here")  # nothing to claim
        assert heard() == []
        with db.session() as s:
            (run,) = repo.claim_runs(s, "w", limit=1)
        assert heard() == []
        with db.session() as s:
            assert repo.release_run(s, run.id, "w")  # handed back: claimable again
        assert heard() == [repo.QUEUE_CHANNEL]
