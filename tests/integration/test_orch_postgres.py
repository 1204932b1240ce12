"""The metadata DB on PostgreSQL: migrations, two schedulers and several workers sharing one database.

Schedulers are separate processes ticking through the same injected instants at the
same time; the unique (trigger, execution date) key must leave exactly one run per
period. Workers are separate ``dagsmith start --role worker`` processes claiming with
``FOR UPDATE SKIP LOCKED``; every run must be executed exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project, run_worker_processes, marks  # noqa: E402

pytestmark = pytest.mark.integration
UTC = timezone.utc

SCHEDULER_SCRIPT = r"""
import sys, time
from datetime import datetime, timedelta, timezone
from dagsmith.orchestration.db import Database
from dagsmith.orchestration.settings import OrchestrationSettings
from dagsmith.orchestration.scheduler.loop import Scheduler
project, start_at = sys.argv[1], float(sys.argv[2])
settings = OrchestrationSettings.from_env(project)
db = Database(settings)
db.migrate()
sched = Scheduler(settings, db)
base = datetime(2024, 1, 1, tzinfo=timezone.utc)
while time.time() < start_at:
    time.sleep(0.001)
errors = 0
for minute in range(0, 121, 3):
    report = sched.tick(base + timedelta(minutes=minute, seconds=1))
    errors += len(report.errors)
    if report.errors:
        print(report.errors, file=sys.stderr)
print("errors", errors)
sys.exit(1 if errors else 0)
"""


@pytest.fixture
def pg_project(tmp_path, pg_dsn, monkeypatch):
    url, drop = create_pg_database(pg_dsn)
    monkeypatch.setenv("DAGSMITH_DATABASE_URL", url)
    project = make_project(tmp_path / "proj")
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.settings import OrchestrationSettings

    settings = OrchestrationSettings.from_env(project)
    db = Database(settings)
    db.migrate()
    yield project, url, settings, db
    db.dispose()
    drop()


def test_migrations_on_postgres_are_idempotent_and_concurrent(pg_project):
    from sqlalchemy import inspect

    project, url, settings, db = pg_project
    procs = [
        subprocess.Popen([sys.executable, "-c", "import sys; from dagsmith.orchestration.db import Database; from dagsmith.orchestration.settings import OrchestrationSettings; Database(OrchestrationSettings.from_env(sys.argv[1])).migrate()", str(project)], env=dict(os.environ))
        for _ in range(3)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert {"triggers", "pipeline_runs", "block_runs", "backfills", "secrets", "audit_events", "workers"} <= set(inspect(db.engine).get_table_names())


def test_two_scheduler_processes_create_no_duplicate_runs(pg_project, tmp_path):
    import time

    from sqlalchemy import text

    from dagsmith.orchestration.store import repo

    project, url, settings, db = pg_project
    with db.session() as s:
        for i in range(150):
            repo.create_trigger(s, "one", f"t{i:03d}", schedule_interval="*/5 * * * *", status="active", catchup="all", now=datetime(2024, 1, 1, tzinfo=UTC))
        for i in range(50):
            repo.create_trigger(s, "one", f"h{i:03d}", schedule_interval="@hourly", status="active", catchup="latest", now=datetime(2024, 1, 1, tzinfo=UTC))
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-c", SCHEDULER_SCRIPT, str(project), str(start_at)], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with db.read() as s:
        dupes = s.execute(text("SELECT trigger_id, schedule_date, count(*) FROM pipeline_runs GROUP BY 1, 2 HAVING count(*) > 1")).all()
        per_trigger = dict(s.execute(text("SELECT t.name, count(r.id) FROM triggers t LEFT JOIN pipeline_runs r ON r.trigger_id = t.id GROUP BY t.name")).all())
    assert dupes == []
    # every 5 minutes from 00:00 to 02:00 inclusive = 25 runs; hourly = 00:00, 01:00, 02:00
    assert {per_trigger[f"t{i:03d}"] for i in range(150)} == {25}
    assert {per_trigger[f"h{i:03d}"] for i in range(50)} == {3}


def test_worker_processes_execute_each_run_exactly_once(pg_project, tmp_path):
    from dagsmith.orchestration.store import repo

    project, url, settings, db = pg_project
    n = 120
    with db.session() as s:
        ids = [repo.create_run(s, "counted", source="api", variables={"key": f"k{i}"}).id for i in range(n)]
    run_worker_processes(project, db, 3, n, tmp_path)
    with db.read() as s:
        runs = [repo.get_run(s, i) for i in ids]
    assert {r.status for r in runs} == {"completed"}
    assert {r.claims for r in runs} == {1}
    assert len({r.worker_id for r in runs}) >= 2  # the work was shared
    keys = marks(project, "counted")
    assert sorted(keys) == sorted(f"k{i}" for i in range(n))  # each run's block ran exactly once


def test_a_worker_process_is_woken_by_runs_queued_elsewhere_not_by_its_poll(pg_project):
    """LISTEN/NOTIFY: a worker polling once an hour still claims a run another process queued."""
    import threading

    from tests.fixtures.orch_projects import wait_until
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.store import repo
    from dagsmith.orchestration.wakeup import QueueListener
    from dagsmith.orchestration.worker import Worker

    project, url, settings, db = pg_project
    stop = threading.Event()
    wakes = threading.Event()
    listener = QueueListener(db.url, wakes.set)
    listener.start(stop)
    worker = Worker(settings.with_(poll_interval=3600.0), db)
    other = Database(settings)  # the API or scheduler of another process
    try:
        assert listener.listening.wait(30) and wakes.wait(30)  # the wake given on (re)connect
        wakes.clear()
        with other.session() as s:
            run_id = repo.create_run(s, "one", source="api").id
        assert wakes.wait(30), "no notification reached the listener"

        worker.start(stop)
        assert worker.listener is not None and worker.listener.listening.wait(30)
        with other.session() as s:
            second = repo.create_run(s, "one", source="api").id
        for rid in (run_id, second):
            wait_until(lambda rid=rid: _status(other, rid) == "completed", 120, 0.05, f"run {rid} completed")
    finally:
        stop.set()
        worker.shutdown(grace=5)
        other.dispose()


def _status(db, run_id):
    from dagsmith.orchestration.store import repo

    with db.read() as s:
        return repo.get_run(s, run_id).status
