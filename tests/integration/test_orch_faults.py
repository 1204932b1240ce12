"""Fault injection on PostgreSQL: the windows in which a run could run twice or be lost, forced open.

Each test opens one window deterministically and checks, from the blocks' own marker
files and the run rows, that every block ran exactly once (or, where a worker is cut
off mid-block, that the run completed once and nothing another worker recorded was
overwritten):

- a claim that waited for the claim's advisory lock, or behind a table lock, for longer
  than the heartbeat timeout is not stale when it commits (issue 12, item 2);
- a run handed back to the queue while its worker still runs it is not claimed again by
  that worker, which takes it back; one claimed by another worker is stopped here and
  nothing of this copy is written over the other's;
- a database outage (connections refused and dropped with ``pg_terminate_backend``) at
  the end of a run delays its ``completed`` but never lets another worker re-run it
  (item 4).

Workers run in this process with the real engine; the database is a fresh PostgreSQL
database per test.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project, marks, wait_until  # noqa: E402

pytestmark = pytest.mark.integration
UTC = timezone.utc
from dagsmith.orchestration.store.repo import CLAIM_LOCK_KEY  # noqa: E402  (the key the claim query takes)
TIMEOUT = 2.0  # heartbeat timeout of every worker here


@pytest.fixture
def pg(tmp_path, pg_dsn, monkeypatch):
    url, drop = create_pg_database(pg_dsn)
    monkeypatch.setenv("DAGSMITH_DATABASE_URL", url)
    project = make_project(tmp_path / "proj")
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.settings import OrchestrationSettings

    settings = OrchestrationSettings.from_env(project, heartbeat_timeout=TIMEOUT, heartbeat_interval=0.2, poll_interval=0.05)
    dbs = []

    def database():
        db = Database(settings)
        db.migrate()
        dbs.append(db)
        return db

    yield project, settings, database, url.rsplit("/", 1)[1]
    for db in dbs:
        db.dispose()
    drop()


class Running:
    """A worker with its poll and heartbeat loops going; stopped by ``close``."""

    def __init__(self, settings, db) -> None:
        from dagsmith.orchestration.worker import Worker

        self.worker = Worker(settings, db)
        self.stop = threading.Event()

    def start(self) -> "Running":
        self.worker.start(self.stop)
        return self

    def close(self) -> None:
        self.stop.set()
        self.worker.shutdown(1)


def new_run(db, pipeline="slow", **variables) -> int:
    from dagsmith.orchestration.store import repo

    with db.session() as s:
        return repo.create_run(s, pipeline, source="api", variables=variables).id


def state(db, run_id):
    from dagsmith.orchestration.store import repo

    with db.read() as s:
        run = repo.get_run(s, run_id)
        return run, {b.block_uuid: b.status for b in repo.list_block_runs(s, run_id)}


def finished(db, run_id, timeout=60):
    return wait_until(lambda: (r := state(db, run_id))[0].status in ("completed", "failed", "cancelled") and r, timeout, 0.05, "run finished")


def ran(project, block, run_id) -> int:
    return marks(project, block).count(str(run_id))


def requeue(db, run_id) -> None:
    """What another scheduler does when it finds the run's heartbeat stale: back to the queue."""
    from dagsmith.orchestration.store import repo

    def once():
        with db.session() as s:  # SKIP LOCKED: the row may be locked by its worker's heartbeat this instant
            return repo.recover_stale_runs(s, now=datetime.now(UTC) + timedelta(hours=1), timeout=TIMEOUT)

    assert wait_until(once, 10, 0.01, "run requeued") == [run_id]


@pytest.mark.parametrize("lock", ["advisory", "table"])
def test_a_claim_that_waited_for_a_lock_is_not_stale_when_it_commits(pg, pg_dsn, lock):
    import dataclasses

    from dagsmith.orchestration.worker import Worker

    project, settings, database, name = pg
    if lock == "advisory":  # only a claim that counts running runs for a limit takes the claim lock
        settings = dataclasses.replace(settings, global_run_limit=50)
    db = database()
    run_id = new_run(db, SLEEP_SECONDS=1)
    holder = psycopg.connect(pg_dsn.rsplit("/", 1)[0] + "/" + name, autocommit=lock == "advisory")
    if lock == "advisory":
        holder.execute("SELECT pg_advisory_lock(%s)", (CLAIM_LOCK_KEY,))
    else:
        holder.execute("LOCK TABLE pipeline_runs IN EXCLUSIVE MODE")  # SELECT … FOR UPDATE waits behind it
    worker = Worker(settings, db)
    claimed: list[int] = []
    claimer = threading.Thread(target=lambda: claimed.extend(worker.step()))
    claimer.start()
    time.sleep(TIMEOUT * 1.5)  # the claim waits longer than the heartbeat timeout
    assert claimer.is_alive() and not claimed
    if lock == "advisory":
        holder.execute("SELECT pg_advisory_unlock(%s)", (CLAIM_LOCK_KEY,))
    else:
        holder.commit()
    holder.close()
    claimer.join(30)
    assert claimed == [run_id]
    # another process looks for stale runs the moment the claim committed: this one is fresh
    assert Worker(settings, database()).recover() == []
    loops = Running(settings, db)
    loops.worker = worker
    loops.start()
    try:
        run, blocks = finished(db, run_id)
    finally:
        loops.close()
    assert run.status == "completed" and run.claims == 1
    assert blocks == {"first": "completed", "sleeper": "completed", "last": "completed"}
    assert [ran(project, b, run_id) for b in ("first", "sleeper", "last")] == [1, 1, 1]


def test_a_claim_no_limit_applies_to_does_not_wait_for_the_claim_lock(pg, pg_dsn):
    """Counting running runs (under the claim lock) is only for limits: with none, claims go on
    while another process holds the lock, and a limited claim waits behind it."""
    import dataclasses

    from dagsmith.orchestration.worker import Worker

    project, settings, database, name = pg
    db = database()
    first, second = new_run(db, pipeline="one"), new_run(db, pipeline="one")
    holder = psycopg.connect(pg_dsn.rsplit("/", 1)[0] + "/" + name, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (CLAIM_LOCK_KEY,))
    try:
        free = Worker(settings, db, concurrency=1)
        assert free.step() == [first]
        free.wait_idle(30)
        limited = Worker(dataclasses.replace(settings, global_run_limit=50), db, concurrency=1)
        claimed: list[int] = []
        claimer = threading.Thread(target=lambda: claimed.extend(limited.step()))
        claimer.start()
        time.sleep(0.5)
        assert claimer.is_alive() and not claimed  # counting waits for the lock
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", (CLAIM_LOCK_KEY,))
        holder.close()
    claimer.join(30)
    assert claimed == [second]
    limited.wait_idle(30)
    assert state(db, first)[0].status == "completed" and state(db, second)[0].status == "completed"


def test_a_run_requeued_while_it_runs_is_taken_back_not_claimed_again(pg):
    from dagsmith.orchestration.store import repo

    project, settings, database, _ = pg
    db = database()
    run_id = new_run(db, SLEEP_SECONDS=2)
    a = Running(settings, db).start()
    try:
        wait_until(lambda: ran(project, "sleeper", run_id) == 1, 30, 0.02, "sleeper running")
        requeue(db, run_id)  # its worker keeps polling every 50 ms while the run waits in the queue
        run, blocks = finished(db, run_id)
    finally:
        a.close()
    assert run.status == "completed" and run.claims == 1  # never claimed a second time
    assert [ran(project, b, run_id) for b in ("first", "sleeper", "last")] == [1, 1, 1]
    assert blocks == {"first": "completed", "sleeper": "completed", "last": "completed"}
    with db.read() as s:
        assert [e.action for e in repo.list_audit(s) if e.object_id == str(run_id)] == ["run.retaken", "run.recovered"]


def test_a_copy_claimed_by_another_worker_stops_and_overwrites_nothing(pg):
    from dagsmith.orchestration.worker import Worker

    project, settings, database, _ = pg
    db = database()
    run_id = new_run(db, SLEEP_SECONDS=3)
    a = Running(settings, db).start()
    try:
        b = Worker(settings, database())
        wait_until(lambda: ran(project, "sleeper", run_id) == 1, 30, 0.02, "sleeper running")
        beat = a.worker.heartbeat
        a.worker.heartbeat = lambda: None  # hold the first worker's beats: the window where another claims it
        time.sleep(0.5)  # a beat already under way is written by now
        assert a.worker._pending_beat is None or a.worker._pending_beat.done()
        try:
            requeue(db, run_id)
            assert b.step() == [run_id]
        finally:
            a.worker.heartbeat = beat
        assert b.wait_idle(30)
        run, _ = finished(db, run_id)
        assert run.status == "completed" and run.claims == 2
        assert a.worker.wait_idle(30)  # the first copy noticed and stopped
        time.sleep(0.5)  # anything it still had queued would be written by now
    finally:
        a.close()
    run, blocks = state(db, run_id)
    assert run.status == "completed" and run.worker_id == b.worker_id
    assert blocks == {"first": "completed", "sleeper": "completed", "last": "completed"}  # not "cancelled" by the stopped copy
    assert ran(project, "first", run_id) == 1 and ran(project, "last", run_id) == 1
    assert ran(project, "sleeper", run_id) == 2  # interrupted in the first copy, run again by the second


def test_a_db_outage_at_the_end_of_a_run_never_makes_another_worker_rerun_it(pg, pg_dsn):
    project, settings, database, name = pg
    db = database()
    run_id = new_run(db, SLEEP_SECONDS=1.5)
    a = Running(settings, db).start()
    standby = Running(settings, database()).start()  # polls and looks for stale runs all along
    admin = psycopg.connect(pg_dsn, autocommit=True)
    try:
        wait_until(lambda: ran(project, "sleeper", run_id) == 1, 30, 0.02, "sleeper running")
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        # the run ends during the outage: its block results and its end cannot be written
        wait_until(lambda: ran(project, "last", run_id) == 1, 30, 0.02, "last block ran")
        time.sleep(TIMEOUT * 1.5)  # every heartbeat in the database is now older than the timeout
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        run, blocks = finished(db, run_id)
        time.sleep(TIMEOUT * 1.5)  # the standby had time to take the run over, if it were going to
    finally:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
        standby.close()
        a.close()
    run, blocks = state(db, run_id)
    assert run.status == "completed" and run.claims == 1 and run.worker_id == a.worker.worker_id
    assert blocks == {"first": "completed", "sleeper": "completed", "last": "completed"}
    assert [ran(project, b, run_id) for b in ("first", "sleeper", "last")] == [1, 1, 1]
