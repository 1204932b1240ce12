"""Pipeline runs outside the queue: create (ad hoc, keyed by idempotency key or by schedule
date), read, count, retry, cancel, the SLA flag."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from dagsmith.orchestration.store.models import (
    RUN_CANCELLED,
    RUN_FINISHED,
    RUN_INITIAL,
    RUN_RUNNING,
    Backfill,
    BlockRun,
    PipelineRun,
    Trigger,
    utcnow,
)
from dagsmith.orchestration.store.repo._common import Conflict, NotFound, announce_queued, insert_for


def create_run(
    session: Session,
    pipeline_uuid: str,
    *,
    source: str,
    execution_date: datetime | None = None,
    trigger_id: int | None = None,
    backfill_id: int | None = None,
    schedule_date: datetime | None = None,
    variables: dict | None = None,
    event: dict | None = None,
    timezone_name: str = "UTC",
    interval: tuple[datetime, datetime] | None = None,
    status: str = RUN_INITIAL,
    allow_blocks_to_fail: bool = False,
    timeout: float | None = None,
    worker_id: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> PipelineRun:
    now = now or utcnow()
    values: dict[str, Any] = {
        "idempotency_key": idempotency_key, "pipeline_uuid": pipeline_uuid, "source": source, "trigger_id": trigger_id,
        "backfill_id": backfill_id, "execution_date": execution_date or now, "schedule_date": schedule_date,
        "variables": dict(variables or {}), "event": dict(event or {}), "timezone": timezone_name,
        "interval_start": interval[0] if interval else None, "interval_end": interval[1] if interval else None,
        "status": status, "allow_blocks_to_fail": allow_blocks_to_fail, "timeout": timeout, "created_at": now, "updated_at": now,
        "partition": None, "worker_id": None, "started_at": None, "heartbeat_at": None, "claims": 0, "cancel_requested": False,
        "error": None, "passed_sla": False, "log_dir": None, "logs_purged": False, "completed_at": None,
    }
    if status == RUN_RUNNING:
        values.update(worker_id=worker_id, started_at=now, heartbeat_at=now, claims=1)
    # Core INSERT and UPDATE, then the row joins the session as if loaded: the ORM's flush of a
    # new object cost an API call more than all its other database work together
    if session.new or session.dirty or session.deleted:
        session.flush()  # the caller's pending changes first (Core statements do not autoflush)
    conn = session.connection()
    run_id = conn.execute(_insert_run_stmt(), values).inserted_primary_key[0]
    values["id"], values["partition"] = run_id, str(run_id)
    conn.execute(_partition_stmt(), {"run_id": run_id, "part": values["partition"]})
    run = PipelineRun(**values)
    make_transient_to_detached(run)
    session.add(run)
    if status == RUN_INITIAL:
        announce_queued(session)
    return run


@functools.cache
def _insert_run_stmt():
    return insert(PipelineRun.__table__)


@functools.cache
def _partition_stmt():
    t = PipelineRun.__table__
    return update(t).where(t.c.id == bindparam("run_id")).values(partition=bindparam("part"))


def find_keyed_run(session: Session, trigger_id: int, key: str) -> PipelineRun | None:
    """The run a trigger made for an idempotency key, if any."""
    return session.scalars(select(PipelineRun).where(PipelineRun.trigger_id == trigger_id, PipelineRun.idempotency_key == key)).first()



def insert_keyed_runs(session: Session, rows: Sequence[dict]) -> int:
    """Insert schedule/backfill runs, ignoring any whose (trigger|backfill, schedule_date) exists.

    Each row needs ``pipeline_uuid``, ``schedule_date`` and ``trigger_id`` or ``backfill_id``.
    Returns the number of rows actually inserted.
    """
    if not rows:
        return 0
    insert = insert_for(session)
    now = utcnow()
    prepared = []
    for row in rows:
        full = {
            "source": "schedule", "status": RUN_INITIAL, "variables": {}, "event": {}, "timezone": "UTC",
            "claims": 0, "cancel_requested": False, "allow_blocks_to_fail": False, "passed_sla": False,
            "logs_purged": False, "created_at": now, "updated_at": now, "trigger_id": None, "backfill_id": None,
            "interval_start": None, "interval_end": None, "timeout": None, "error": None, "completed_at": None,
        }
        full.update(row)
        full.setdefault("execution_date", full["schedule_date"])
        prepared.append(full)
    inserted = 0
    # split by key kind so each statement has one conflict target
    for key in ("trigger_id", "backfill_id"):
        batch = [r for r in prepared if r[key] is not None]
        if batch:
            table = PipelineRun.__table__
            stmt = insert(table).on_conflict_do_nothing(index_elements=[key, "schedule_date"]).returning(table.c.id)
            # executemany with RETURNING ("insertmanyvalues"): compiled once, batched, counts only new rows
            inserted += len(session.connection().execute(stmt, batch).all())
    if inserted:
        announce_queued(session)
    return inserted



def get_run(session: Session, run_id: int) -> PipelineRun:
    run = session.get(PipelineRun, run_id)
    if run is None:
        raise NotFound(f"pipeline run {run_id} does not exist", hint="list runs with GET /api/pipeline_runs")
    return run



def list_runs(
    session: Session,
    *,
    pipeline_uuid: str | None = None,
    trigger_id: int | None = None,
    backfill_id: int | None = None,
    status: str | Sequence[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[PipelineRun], int]:
    cond = []
    if pipeline_uuid:
        cond.append(PipelineRun.pipeline_uuid == pipeline_uuid)
    if trigger_id is not None:
        cond.append(PipelineRun.trigger_id == trigger_id)
    if backfill_id is not None:
        cond.append(PipelineRun.backfill_id == backfill_id)
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        cond.append(PipelineRun.status.in_(statuses))
    total = session.scalar(select(func.count()).select_from(PipelineRun).where(*cond)) or 0
    rows = session.scalars(
        select(PipelineRun).where(*cond).order_by(PipelineRun.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total



def count_runs(session: Session, **filters: Any) -> dict[str, int]:
    """Run counts by status for the filters (pipeline_uuid, trigger_id, backfill_id)."""
    stmt = select(PipelineRun.status, func.count()).group_by(PipelineRun.status)
    for key, value in filters.items():
        if value is not None:
            stmt = stmt.where(getattr(PipelineRun, key) == value)
    return {status: n for status, n in session.execute(stmt)}



def has_unfinished_run(session: Session, trigger_id: int) -> bool:
    return (
        session.scalar(
            select(PipelineRun.id)
            .where(PipelineRun.trigger_id == trigger_id, PipelineRun.status.in_((RUN_INITIAL, RUN_RUNNING)))
            .limit(1)
        )
        is not None
    )



def unfinished_counts(session: Session, *, trigger_ids: Iterable[int] = (), pipeline_uuids: Iterable[str] = ()) -> tuple[dict[int, int], dict[str, int]]:
    """Waiting + running runs per trigger and per pipeline (for ``on_pipeline_run_limit_reached``)."""
    active = (RUN_INITIAL, RUN_RUNNING)
    by_trigger: dict[int, int] = {}
    by_pipeline: dict[str, int] = {}
    tids, pids = list(trigger_ids), list(pipeline_uuids)
    if tids:
        for tid, n in session.execute(
            select(PipelineRun.trigger_id, func.count())
            .where(PipelineRun.trigger_id.in_(tids), PipelineRun.status.in_(active))
            .group_by(PipelineRun.trigger_id)
        ):
            by_trigger[tid] = n
    if pids:
        for pid, n in session.execute(
            select(PipelineRun.pipeline_uuid, func.count())
            .where(PipelineRun.pipeline_uuid.in_(pids), PipelineRun.status.in_(active))
            .group_by(PipelineRun.pipeline_uuid)
        ):
            by_pipeline[pid] = n
    return by_trigger, by_pipeline



def request_cancel(session: Session, run: PipelineRun, *, now: datetime | None = None) -> PipelineRun:
    """Cancel a waiting run at once; ask the worker of a running run to stop it."""
    now = now or utcnow()
    if run.status in RUN_FINISHED:
        raise Conflict(f"pipeline run {run.id} already finished ({run.status}); there is nothing to cancel")
    if run.status == RUN_INITIAL:
        session.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run.id, PipelineRun.status == RUN_INITIAL)
            .values(status=RUN_CANCELLED, completed_at=now, cancel_requested=True, updated_at=now)
        )
        session.execute(
            update(BlockRun)
            .where(BlockRun.pipeline_run_id == run.id, BlockRun.status.in_(("initial", "queued", "running")))
            .values(status="cancelled")
        )
    session.execute(update(PipelineRun).where(PipelineRun.id == run.id).values(cancel_requested=True))
    session.refresh(run)
    return run



def retry_run(
    session: Session,
    run: PipelineRun,
    *,
    from_block: str | None = None,
    descendants: Iterable[str] = (),
    now: datetime | None = None,
) -> PipelineRun:
    """Queue a finished run again: its unfinished blocks, or ``from_block`` and its descendants."""
    now = now or utcnow()
    if run.status not in RUN_FINISHED:
        raise Conflict(
            f"pipeline run {run.id} is {run.status}; only a finished run can be retried",
            hint="cancel it first, or wait for it to finish",
        )
    if from_block:
        reset = {from_block, *descendants}
        session.execute(
            update(BlockRun)
            .where(BlockRun.pipeline_run_id == run.id, BlockRun.block_uuid.in_(reset))
            .values(status="initial", error=None, completed_at=None)
        )
    else:
        session.execute(
            update(BlockRun)
            .where(BlockRun.pipeline_run_id == run.id, BlockRun.status != "completed")
            .values(status="initial", error=None, completed_at=None)
        )
    run.status = RUN_INITIAL
    run.completed_at = None
    run.error = None
    run.cancel_requested = False
    run.worker_id = None
    run.updated_at = now
    if run.backfill_id is not None:
        session.execute(
            update(Backfill)
            .where(Backfill.id == run.backfill_id, Backfill.status.in_(("completed", "failed")))
            .values(status="running", completed_at=None)
        )
    session.flush()
    announce_queued(session)
    return run



def create_keyed_run(session: Session, trigger_id: int, key: str | None, create: Callable[[], PipelineRun]) -> tuple[PipelineRun, bool]:
    """``create()`` a run unless the trigger already made one for idempotency ``key``; returns (run, created).

    Two calls with one key at the same instant: the unique (trigger, key) index refuses
    the second insert inside a savepoint, and the second call finds the first one's run.
    """
    if key is None:
        return create(), True
    existing = find_keyed_run(session, trigger_id, key)
    if existing is None:
        try:
            with session.begin_nested():
                return create(), True
        except IntegrityError:
            existing = find_keyed_run(session, trigger_id, key)
            if existing is None:
                raise
    return existing, False


def set_execution_date(session: Session, run_id: int, execution_date: datetime) -> None:
    """Record the execution date a run really used (a CLI run learns it from the engine)."""
    session.execute(update(PipelineRun).where(PipelineRun.id == run_id).values(execution_date=execution_date))


def mark_passed_sla(session: Session, *, now: datetime) -> int:
    """Flag unfinished runs of triggers with an ``sla`` (seconds) still waiting or running that long
    after their execution date; returns how many runs were flagged."""
    flagged = 0
    for trigger_id, sla in session.execute(select(Trigger.id, Trigger.sla).where(Trigger.sla.is_not(None), Trigger.sla > 0)).all():
        cutoff = now - timedelta(seconds=int(sla))
        flagged += session.execute(
            update(PipelineRun)
            .where(
                PipelineRun.trigger_id == trigger_id,
                PipelineRun.status.in_((RUN_INITIAL, RUN_RUNNING)),
                PipelineRun.passed_sla.is_(False),
                PipelineRun.execution_date < cutoff,
            )
            .values(passed_sla=True)
        ).rowcount or 0
    return flagged
