"""Every query of the metadata database. Callers pass a ``Session``; nothing else writes SQL.

Functions are grouped by table: triggers, pipeline runs (create, claim, heartbeat,
recover, finish, retry, cancel), block runs, backfills, secrets, audit events,
workers. Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (plus a short
advisory lock while concurrency limits are counted) and SQLite's single writer
(``BEGIN IMMEDIATE``) otherwise. Schedule and backfill runs are inserted with
``ON CONFLICT DO NOTHING`` on their unique (trigger|backfill, schedule_date) key.
"""

from __future__ import annotations

import secrets as _secrets
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import String, cast, delete, func, literal, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from dagsmith.errors import DagsmithError
from dagsmith.orchestration.store.models import (
    RUN_CANCELLED,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_FINISHED,
    RUN_INITIAL,
    RUN_RUNNING,
    AuditEvent,
    Backfill,
    BlockRun,
    PipelineRun,
    Secret,
    Trigger,
    Worker,
    utcnow,
)

_CLAIM_LOCK_KEY = 7_351_218_045
BLOCK_DONE = ("completed", "failed", "cancelled", "upstream_failed", "condition_failed")


class NotFound(DagsmithError):
    """A row the caller asked for does not exist."""


class Conflict(DagsmithError):
    """The request clashes with the current state (e.g. retrying a running run)."""


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert(session: Session):
    if _dialect(session) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def new_token() -> str:
    return _secrets.token_hex(16)


# ---------------------------------------------------------------- triggers

TRIGGER_FIELDS = (
    "name", "description", "schedule_type", "schedule_interval", "start_time", "timezone", "status",
    "variables", "sla", "settings", "catchup", "envs", "in_code", "hidden",
)


def create_trigger(session: Session, pipeline_uuid: str, name: str, *, now: datetime | None = None, **fields: Any) -> Trigger:
    now = now or utcnow()
    trigger = Trigger(pipeline_uuid=pipeline_uuid, name=name, token=fields.pop("token", None) or new_token())
    for key, value in fields.items():
        if key not in TRIGGER_FIELDS:
            raise TypeError(f"unknown trigger field {key!r}")
        if value is not None:
            setattr(trigger, key, value)
    trigger.variables = trigger.variables or {}
    trigger.settings = trigger.settings or {}
    trigger.envs = trigger.envs or []
    if trigger.status == "active":
        trigger.last_enabled_at = now
    session.add(trigger)
    session.flush()
    return trigger


def get_trigger(session: Session, trigger_id: int) -> Trigger:
    trigger = session.get(Trigger, trigger_id)
    if trigger is None:
        raise NotFound(f"trigger {trigger_id} does not exist", hint="list triggers with GET /api/pipeline_schedules")
    return trigger


def find_trigger(session: Session, pipeline_uuid: str, name: str) -> Trigger | None:
    return session.scalars(select(Trigger).where(Trigger.pipeline_uuid == pipeline_uuid, Trigger.name == name)).first()


def list_triggers(session: Session, pipeline_uuid: str | None = None, *, include_hidden: bool = False) -> list[Trigger]:
    stmt = select(Trigger).order_by(Trigger.id)
    if pipeline_uuid:
        stmt = stmt.where(Trigger.pipeline_uuid == pipeline_uuid)
    if not include_hidden:
        stmt = stmt.where(Trigger.hidden.is_(False))
    return list(session.scalars(stmt))


def update_trigger(session: Session, trigger: Trigger, *, now: datetime | None = None, **fields: Any) -> Trigger:
    """Change fields; switching to active (re)starts the schedule from ``now`` (no catch-up of the off time)."""
    now = now or utcnow()
    was_active = trigger.status == "active"
    schedule_changed = False
    for key, value in fields.items():
        if key not in TRIGGER_FIELDS:
            raise TypeError(f"unknown trigger field {key!r}")
        if key in ("schedule_interval", "timezone", "start_time") and getattr(trigger, key) != value:
            schedule_changed = True
        setattr(trigger, key, value)
    if trigger.status == "active" and (not was_active or schedule_changed):
        trigger.last_enabled_at = now
        trigger.last_execution_date = None
    trigger.updated_at = now
    session.flush()
    return trigger


def delete_trigger(session: Session, trigger: Trigger) -> None:
    session.delete(trigger)
    session.flush()


def active_schedule_triggers(session: Session) -> list[Trigger]:
    return list(
        session.scalars(
            select(Trigger).where(Trigger.status == "active", Trigger.schedule_type == "time").order_by(Trigger.id)
        )
    )


def advance_cursor(session: Session, trigger_id: int, cursor: datetime | None, *, deactivate: bool = False) -> None:
    """Move a trigger's schedule cursor forward (never backwards), and switch off an @once trigger."""
    values: dict[str, Any] = {}
    if cursor is not None:
        values["last_execution_date"] = cursor
    if deactivate:
        values["status"] = "inactive"
    if not values:
        return
    stmt = update(Trigger).where(Trigger.id == trigger_id)
    if cursor is not None and not deactivate:
        stmt = stmt.where(or_(Trigger.last_execution_date.is_(None), Trigger.last_execution_date < cursor))
    session.execute(stmt.values(**values))


# ---------------------------------------------------------------- pipeline runs


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
    run = PipelineRun(
        idempotency_key=idempotency_key,
        pipeline_uuid=pipeline_uuid,
        source=source,
        trigger_id=trigger_id,
        backfill_id=backfill_id,
        execution_date=execution_date or now,
        schedule_date=schedule_date,
        variables=dict(variables or {}),
        event=dict(event or {}),
        timezone=timezone_name,
        interval_start=interval[0] if interval else None,
        interval_end=interval[1] if interval else None,
        status=status,
        allow_blocks_to_fail=allow_blocks_to_fail,
        timeout=timeout,
        created_at=now,
        updated_at=now,
    )
    if status == RUN_RUNNING:
        run.worker_id = worker_id
        run.started_at = now
        run.heartbeat_at = now
        run.claims = 1
    session.add(run)
    session.flush()
    run.partition = str(run.id)
    session.flush()
    return run


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
    insert = _insert(session)
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
    return inserted


def advance_cursors(session: Session, changes: Sequence[tuple[int, datetime | None, bool]]) -> None:
    """Bulk form of ``advance_cursor``: ``(trigger_id, cursor, deactivate)`` per trigger (one statement)."""
    params = []
    for trigger_id, cursor, deactivate in changes:
        row: dict[str, Any] = {"id": trigger_id}
        if cursor is not None:
            row["last_execution_date"] = cursor
        if deactivate:
            row["status"] = "inactive"
        if len(row) > 1:
            params.append(row)
    by_keys: dict[tuple, list[dict]] = {}
    for row in params:
        by_keys.setdefault(tuple(sorted(row)), []).append(row)
    for rows in by_keys.values():
        session.execute(update(Trigger), rows)


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


def _limit_of(settings: dict | None, key: str = "pipeline_run_limit") -> int | None:
    value = (settings or {}).get(key)
    try:
        value = int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value and value > 0 else None


def claim_runs(
    session: Session,
    worker_id: str,
    *,
    limit: int,
    now: datetime | None = None,
    clock: Callable[[], datetime] | None = None,
    global_limit: int | None = None,
    backfill_id: int | None = None,
    pipeline_limits: Callable[[str], Any] | None = None,
    exclude_ids: Iterable[int] = (),
    logs_root: str | None = None,
    trigger_info: dict[int, tuple[str, int | None]] | None = None,
) -> list[PipelineRun]:
    """Atomically take up to ``limit`` waiting runs for ``worker_id``, honouring concurrency limits.

    Limits: a trigger's ``settings.pipeline_run_limit``, a backfill's ``concurrency``,
    ``global_limit`` (running runs across all workers) and, when ``pipeline_limits`` is
    given, each pipeline's ``concurrency_config`` (``pipeline_limits(uuid)`` returns an
    object with ``per_trigger`` — applied to every trigger and backfill of the pipeline
    together with their own limit — and ``all_triggers`` — running runs of the pipeline).

    ``heartbeat_at`` is stamped with ``now`` or, when it is not given, ``clock()`` read
    after every lock was taken: a claim that waited 40 s for the claim lock must not look
    stale (and be taken over) the moment it commits. ``exclude_ids`` are runs the caller
    still executes — a run handed back to the queue while its worker still holds it must
    never be claimed a second time by that worker. With ``logs_root`` the run's ``log_dir``
    is set to ``<logs_root>/<pipeline>/<id>`` unless it has one. The returned rows carry
    their new state (status, worker, claims, heartbeat, start, log dir) without a reload;
    ``trigger_info`` is filled with ``{trigger id: (name, sla)}`` of the triggers read.
    """
    if limit <= 0:
        return []
    info = trigger_info if trigger_info is not None else {}
    pg = _dialect(session) == "postgresql"
    if pg:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK_KEY})
    running = session.execute(
        select(PipelineRun.pipeline_uuid, PipelineRun.trigger_id, PipelineRun.backfill_id, func.count())
        .where(PipelineRun.status == RUN_RUNNING)
        .group_by(PipelineRun.pipeline_uuid, PipelineRun.trigger_id, PipelineRun.backfill_id)
    ).all()
    total_running = sum(n for _, _, _, n in running)
    if global_limit is not None:
        limit = min(limit, global_limit - total_running)
        if limit <= 0:
            return []
    pipe_cache: dict[str, tuple[int | None, int | None]] = {}

    def pipe_limits(uuid: str) -> tuple[int | None, int | None]:
        """(per-trigger, all-triggers) limits of a pipeline's concurrency_config."""
        if pipeline_limits is None:
            return None, None
        if uuid not in pipe_cache:
            found = pipeline_limits(uuid)
            pipe_cache[uuid] = (getattr(found, "per_trigger", None), getattr(found, "all_triggers", None))
        return pipe_cache[uuid]

    by_trigger: dict[int, int] = {}
    by_backfill: dict[int, int] = {}
    by_pipeline: dict[str, int] = {}
    trig_pipeline: dict[int, str] = {}
    back_pipeline: dict[int, str] = {}
    for pipe, trig, back, n in running:
        by_pipeline[pipe] = by_pipeline.get(pipe, 0) + n
        if trig is not None:
            by_trigger[trig] = by_trigger.get(trig, 0) + n
            trig_pipeline[trig] = pipe
        if back is not None:
            by_backfill[back] = by_backfill.get(back, 0) + n
            back_pipeline[back] = pipe
    trig_limits: dict[int, int | None] = {}
    if by_trigger:
        for tid, settings, name, sla in session.execute(select(Trigger.id, Trigger.settings, Trigger.name, Trigger.sla).where(Trigger.id.in_(by_trigger))):
            trig_limits[tid] = _tighter(_limit_of(settings), pipe_limits(trig_pipeline[tid])[0])
            info[tid] = (name, sla)
    back_limits: dict[int, int | None] = {}
    if by_backfill:
        for bid, conc in session.execute(select(Backfill.id, Backfill.concurrency).where(Backfill.id.in_(by_backfill))):
            back_limits[bid] = _tighter(conc if conc and conc > 0 else None, pipe_limits(back_pipeline[bid])[0])
    saturated_t = [t for t, n in by_trigger.items() if trig_limits.get(t) and n >= trig_limits[t]]
    saturated_b = [b for b, n in by_backfill.items() if back_limits.get(b) and n >= back_limits[b]]
    saturated_p = [p for p, n in by_pipeline.items() if pipe_limits(p)[1] and n >= pipe_limits(p)[1]]

    stmt = select(PipelineRun).where(PipelineRun.status == RUN_INITIAL, PipelineRun.cancel_requested.is_(False))
    held = list(exclude_ids)
    if held:
        stmt = stmt.where(PipelineRun.id.not_in(held))
    if backfill_id is not None:
        stmt = stmt.where(PipelineRun.backfill_id == backfill_id)
    if saturated_t:
        stmt = stmt.where(or_(PipelineRun.trigger_id.is_(None), PipelineRun.trigger_id.not_in(saturated_t)))
    if saturated_b:
        stmt = stmt.where(or_(PipelineRun.backfill_id.is_(None), PipelineRun.backfill_id.not_in(saturated_b)))
    if saturated_p:
        stmt = stmt.where(PipelineRun.pipeline_uuid.not_in(saturated_p))
    stmt = stmt.order_by(PipelineRun.id).limit(limit * 4 + 8)
    if pg:
        stmt = stmt.with_for_update(skip_locked=True)
    candidates = list(session.scalars(stmt))
    if not candidates:
        return []
    # limits of triggers/backfills that appear only among the candidates
    need_t = {c.trigger_id: c.pipeline_uuid for c in candidates if c.trigger_id is not None and c.trigger_id not in trig_limits}
    if need_t:
        for tid, settings, name, sla in session.execute(select(Trigger.id, Trigger.settings, Trigger.name, Trigger.sla).where(Trigger.id.in_(need_t))):
            trig_limits[tid] = _tighter(_limit_of(settings), pipe_limits(need_t[tid])[0])
            info[tid] = (name, sla)
    need_b = {c.backfill_id: c.pipeline_uuid for c in candidates if c.backfill_id is not None and c.backfill_id not in back_limits}
    if need_b:
        for bid, conc in session.execute(select(Backfill.id, Backfill.concurrency).where(Backfill.id.in_(need_b))):
            back_limits[bid] = _tighter(conc if conc and conc > 0 else None, pipe_limits(need_b[bid])[0])
    chosen: list[PipelineRun] = []
    for run in candidates:
        if len(chosen) >= limit:
            break
        if run.trigger_id is not None:
            lim = trig_limits.get(run.trigger_id)
            if lim and by_trigger.get(run.trigger_id, 0) >= lim:
                continue
        if run.backfill_id is not None:
            lim = back_limits.get(run.backfill_id)
            if lim and by_backfill.get(run.backfill_id, 0) >= lim:
                continue
        lim = pipe_limits(run.pipeline_uuid)[1]
        if lim and by_pipeline.get(run.pipeline_uuid, 0) >= lim:
            continue
        if run.trigger_id is not None:
            by_trigger[run.trigger_id] = by_trigger.get(run.trigger_id, 0) + 1
        if run.backfill_id is not None:
            by_backfill[run.backfill_id] = by_backfill.get(run.backfill_id, 0) + 1
        by_pipeline[run.pipeline_uuid] = by_pipeline.get(run.pipeline_uuid, 0) + 1
        chosen.append(run)
    if not chosen:
        return []
    stamp = now if now is not None else (clock or utcnow)()  # after the locks, see above
    stamp_value = literal(stamp, PipelineRun.__table__.c.heartbeat_at.type)
    values: dict[str, Any] = {
        "status": RUN_RUNNING, "worker_id": worker_id, "heartbeat_at": stamp, "claims": PipelineRun.claims + 1,
        "updated_at": stamp, "started_at": func.coalesce(PipelineRun.started_at, stamp_value),
    }
    if logs_root is not None:
        prefix = str(logs_root).rstrip("/") + "/"
        values["log_dir"] = func.coalesce(PipelineRun.log_dir, literal(prefix) + PipelineRun.pipeline_uuid + "/" + cast(PipelineRun.id, String))
    rows = session.connection().execute(  # Core, not the ORM's bulk-update path: this runs for every claim
        update(PipelineRun.__table__)
        .where(PipelineRun.id.in_([r.id for r in chosen]), PipelineRun.status == RUN_INITIAL)
        .values(**values)
        .returning(PipelineRun.id, PipelineRun.claims, PipelineRun.started_at, PipelineRun.log_dir)
    ).all()
    fresh = {rid: (claims, started, log_dir) for rid, claims, started, log_dir in rows}
    out = []
    for run in chosen:
        if run.id not in fresh:
            continue
        claims, started, log_dir = fresh[run.id]
        for key, value in (("status", RUN_RUNNING), ("worker_id", worker_id), ("heartbeat_at", stamp), ("updated_at", stamp),
                           ("claims", claims), ("started_at", started), ("log_dir", log_dir)):
            set_committed_value(run, key, value)
        out.append(run)
    return out


def trigger_names(session: Session, trigger_ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
    """``{trigger id: (name, sla)}`` for the given ids (a run's worker passes both to the run)."""
    ids = {t for t in trigger_ids if t is not None}
    if not ids:
        return {}
    return {tid: (name, sla) for tid, name, sla in session.execute(select(Trigger.id, Trigger.name, Trigger.sla).where(Trigger.id.in_(ids)))}


def _tighter(*limits: int | None) -> int | None:
    present = [x for x in limits if x]
    return min(present) if present else None


def heartbeat_runs(
    session: Session, worker_id: str, run_ids: Iterable[int] | dict[int, int], *, now: datetime | None = None
) -> dict[int, str]:
    """Refresh this worker's runs; returns ``{run_id: 'ok'|'cancel'|'lost'}`` for ``run_ids``.

    Given ``{run_id: claims}`` (the claim count this worker saw when it claimed the run, a
    fencing token), a run that was handed back to the queue meanwhile — its heartbeat
    looked stale — but that nobody claimed since is taken back (``claims`` unchanged, so
    no other worker ran it); one claimed by anyone since is ``lost``, and the caller
    stops its copy.
    """
    now = now or utcnow()
    ids = list(run_ids)
    if not ids:
        return {}
    touched = dict(
        session.connection().execute(
            update(PipelineRun.__table__)
            .where(PipelineRun.id.in_(ids), PipelineRun.worker_id == worker_id, PipelineRun.status == RUN_RUNNING)
            .values(heartbeat_at=now)
            .returning(PipelineRun.id, PipelineRun.cancel_requested)
        ).all()
    )
    if isinstance(run_ids, dict):
        for rid in ids:
            if rid in touched:
                continue
            back = session.connection().execute(
                update(PipelineRun.__table__)
                .where(
                    PipelineRun.id == rid, PipelineRun.status == RUN_INITIAL, PipelineRun.worker_id.is_(None),
                    PipelineRun.claims == run_ids[rid], PipelineRun.cancel_requested.is_(False),
                )
                .values(status=RUN_RUNNING, worker_id=worker_id, heartbeat_at=now, updated_at=now)
                .returning(PipelineRun.id)
            ).first()
            if back is not None:
                touched[rid] = False
                audit(session, "run.retaken", "pipeline_run", rid, {"worker_id": worker_id}, now=now)
    return {rid: ("cancel" if touched[rid] else "ok") if rid in touched else "lost" for rid in ids}


def recover_stale_runs(session: Session, *, now: datetime, timeout: float, exclude_worker: str | None = None) -> list[int]:
    """Put runs whose worker stopped heart-beating back in the queue, to resume from unfinished blocks.

    ``exclude_worker``: a worker never takes back its own runs (its heartbeat is only late).
    """
    cutoff = now - timedelta(seconds=timeout)
    # CLI runs (`dagsmith run`) have no heartbeat: their own process records their end
    stmt = select(PipelineRun).where(
        PipelineRun.status == RUN_RUNNING, PipelineRun.heartbeat_at < cutoff, PipelineRun.source != "cli"
    )
    if exclude_worker is not None:
        stmt = stmt.where(PipelineRun.worker_id != exclude_worker)
    if _dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    stale = list(session.scalars(stmt))
    for run in stale:
        previous = run.worker_id
        run.status = RUN_INITIAL
        run.worker_id = None
        run.heartbeat_at = None
        session.execute(
            update(BlockRun)
            .where(BlockRun.pipeline_run_id == run.id, BlockRun.status.in_(("running", "queued")))
            .values(status="initial")
        )
        audit(session, "run.recovered", "pipeline_run", run.id, {"worker_id": previous}, now=now)
    session.flush()
    return [r.id for r in stale]


def recover_dead_local_runs(session: Session, hostname: str, *, now: datetime) -> list[int]:
    """Requeue running runs held by processes of this host that no longer exist (restart after a crash)."""
    import os

    prefix = f"{hostname}:"
    rows = list(
        session.scalars(
            select(PipelineRun).where(PipelineRun.status == RUN_RUNNING, PipelineRun.worker_id.like(prefix + "%"))
        )
    )
    out = []
    for run in rows:
        try:
            pid = int(str(run.worker_id)[len(prefix):].split(":", 1)[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        previous = run.worker_id
        if run.source == "cli":  # nobody else can finish an interrupted `dagsmith run`
            run.status = RUN_FAILED
            run.completed_at = now
            run.error = "the `dagsmith run` process ended before the run finished"
            session.execute(
                update(BlockRun)
                .where(BlockRun.pipeline_run_id == run.id, BlockRun.status.in_(("initial", "running", "queued")))
                .values(status="cancelled")
            )
            continue
        run.status = RUN_INITIAL
        run.worker_id = None
        run.heartbeat_at = None
        session.execute(
            update(BlockRun)
            .where(BlockRun.pipeline_run_id == run.id, BlockRun.status.in_(("running", "queued")))
            .values(status="initial")
        )
        audit(session, "run.recovered", "pipeline_run", run.id, {"worker_id": previous, "reason": "process gone"}, now=now)
        out.append(run.id)
    session.flush()
    return out


def finish_run(
    session: Session,
    run_id: int,
    worker_id: str,
    status: str,
    *,
    error: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the end of a run this worker holds; False if the run was taken away meanwhile."""
    now = now or utcnow()
    result = session.connection().execute(
        update(PipelineRun.__table__)
        .where(PipelineRun.id == run_id, PipelineRun.worker_id == worker_id, PipelineRun.status == RUN_RUNNING)
        .values(status=status, completed_at=now, error=error, updated_at=now, heartbeat_at=None)
    )
    if result.rowcount != 1:
        return False
    if status in (RUN_CANCELLED, RUN_FAILED):
        session.connection().execute(
            update(BlockRun.__table__)
            .where(BlockRun.pipeline_run_id == run_id, BlockRun.status.in_(("initial", "queued", "running")))
            .values(status="cancelled" if status == RUN_CANCELLED else "upstream_failed", completed_at=now)
        )
    return True


def release_run(session: Session, run_id: int, worker_id: str, *, now: datetime | None = None) -> bool:
    """Hand a run back to the queue (worker shutting down); it resumes from its unfinished blocks."""
    now = now or utcnow()
    result = session.connection().execute(
        update(PipelineRun.__table__)
        .where(PipelineRun.id == run_id, PipelineRun.worker_id == worker_id, PipelineRun.status == RUN_RUNNING)
        .values(status=RUN_INITIAL, worker_id=None, heartbeat_at=None, updated_at=now)
    )
    if result.rowcount:
        session.connection().execute(
            update(BlockRun.__table__)
            .where(BlockRun.pipeline_run_id == run_id, BlockRun.status.in_(("running", "queued", "cancelled")))
            .values(status="initial")
        )
    return bool(result.rowcount)


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
    return run


# ---------------------------------------------------------------- block runs


def ensure_block_runs(session: Session, run_id: int, block_uuids: Sequence[str], *, partition: str | None, log_dir: str | None) -> None:
    """Create the missing block-run rows of a run (existing rows keep their state)."""
    if not block_uuids:
        return
    now = utcnow()
    rows = [
        {
            "pipeline_run_id": run_id, "block_uuid": b, "status": "initial", "attempts": 0, "partition": partition,
            "log_path": f"{log_dir}/{b}.jsonl" if log_dir else None, "created_at": now, "updated_at": now,
        }
        for b in dict.fromkeys(block_uuids)
    ]
    if rows:  # rows that exist keep their state (ON CONFLICT DO NOTHING): no read first
        insert = _insert(session)
        session.connection().execute(insert(BlockRun.__table__).values(rows).on_conflict_do_nothing(index_elements=["pipeline_run_id", "block_uuid"]))


def update_block_run(session: Session, run_id: int, block_uuid: str, **values: Any) -> None:
    values.setdefault("updated_at", utcnow())
    result = session.execute(
        update(BlockRun).where(BlockRun.pipeline_run_id == run_id, BlockRun.block_uuid == block_uuid).values(**values)
    )
    if result.rowcount == 0:
        row = {"pipeline_run_id": run_id, "block_uuid": block_uuid, "status": "initial", "attempts": 0}
        row.update(values)
        session.add(BlockRun(**row))
        session.flush()


def upsert_block_runs(session: Session, rows: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
    """Set columns of many block runs at once, creating missing rows: ``(run_id, block_uuid, values)`` each.

    Rows that set the same columns share one ``INSERT … ON CONFLICT DO UPDATE`` executed
    for all of them (one round trip per column set, not one per block).
    """
    if not rows:
        return
    insert = _insert(session)
    table = BlockRun.__table__
    now = utcnow()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run_id, block_uuid, values in rows:
        params = {"updated_at": now, **values}
        groups.setdefault(tuple(sorted(params)), []).append({"pipeline_run_id": run_id, "block_uuid": block_uuid, **params})
    for keys, params in groups.items():
        stmt = insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=["pipeline_run_id", "block_uuid"], set_={k: stmt.excluded[k] for k in keys})
        session.connection().execute(stmt, params)


def list_block_runs(session: Session, run_id: int | None = None, *, pipeline_uuid: str | None = None, limit: int = 500) -> list[BlockRun]:
    stmt = select(BlockRun).order_by(BlockRun.id).limit(limit)
    if run_id is not None:
        stmt = stmt.where(BlockRun.pipeline_run_id == run_id)
    if pipeline_uuid:
        stmt = stmt.join(PipelineRun, PipelineRun.id == BlockRun.pipeline_run_id).where(PipelineRun.pipeline_uuid == pipeline_uuid)
    return list(session.scalars(stmt))


def get_block_run(session: Session, block_run_id: int) -> BlockRun:
    row = session.get(BlockRun, block_run_id)
    if row is None:
        raise NotFound(f"block run {block_run_id} does not exist", hint="list them with GET /api/block_runs?pipeline_run_id=<id>")
    return row


# ---------------------------------------------------------------- backfills


def create_backfill(session: Session, pipeline_uuid: str, name: str, **fields: Any) -> Backfill:
    backfill = Backfill(pipeline_uuid=pipeline_uuid, name=name, **fields)
    backfill.variables = backfill.variables or {}
    backfill.settings = backfill.settings or {}
    session.add(backfill)
    session.flush()
    return backfill


def get_backfill(session: Session, backfill_id: int) -> Backfill:
    backfill = session.get(Backfill, backfill_id)
    if backfill is None:
        raise NotFound(f"backfill {backfill_id} does not exist", hint="list backfills with GET /api/pipelines/<uuid>/backfills")
    return backfill


def list_backfills(session: Session, pipeline_uuid: str | None = None) -> list[Backfill]:
    stmt = select(Backfill).order_by(Backfill.id.desc())
    if pipeline_uuid:
        stmt = stmt.where(Backfill.pipeline_uuid == pipeline_uuid)
    return list(session.scalars(stmt))


def backfill_progress(session: Session, backfill_id: int) -> dict[str, int]:
    counts = count_runs(session, backfill_id=backfill_id)
    done = counts.get(RUN_COMPLETED, 0)
    failed = counts.get(RUN_FAILED, 0)
    cancelled = counts.get(RUN_CANCELLED, 0)
    return {
        "total": sum(counts.values()),
        "completed": done,
        "failed": failed,
        "cancelled": cancelled,
        "running": counts.get(RUN_RUNNING, 0),
        "waiting": counts.get(RUN_INITIAL, 0),
        "done": done + failed + cancelled,
    }


def cancel_backfill_runs(session: Session, backfill_id: int, *, now: datetime | None = None) -> int:
    now = now or utcnow()
    waiting = session.execute(
        update(PipelineRun)
        .where(PipelineRun.backfill_id == backfill_id, PipelineRun.status == RUN_INITIAL)
        .values(status=RUN_CANCELLED, cancel_requested=True, completed_at=now, updated_at=now)
    ).rowcount
    session.execute(
        update(PipelineRun)
        .where(PipelineRun.backfill_id == backfill_id, PipelineRun.status == RUN_RUNNING)
        .values(cancel_requested=True)
    )
    return waiting


# ---------------------------------------------------------------- secrets


def put_secret(session: Session, name: str, ciphertext: bytes, *, scope: str = "project") -> Secret:
    row = session.scalars(select(Secret).where(Secret.scope == scope, Secret.name == name)).first()
    if row is None:
        row = Secret(name=name, scope=scope, value=ciphertext)
        session.add(row)
    else:
        row.value = ciphertext
        row.updated_at = utcnow()
    session.flush()
    return row


def get_secret_row(session: Session, name: str, *, scope: str = "project") -> Secret | None:
    return session.scalars(select(Secret).where(Secret.scope == scope, Secret.name == name)).first()


def list_secrets(session: Session, scope: str | None = None) -> list[Secret]:
    stmt = select(Secret).order_by(Secret.scope, Secret.name)
    if scope:
        stmt = stmt.where(Secret.scope == scope)
    return list(session.scalars(stmt))


def delete_secret(session: Session, name: str, *, scope: str = "project") -> bool:
    return bool(session.execute(delete(Secret).where(Secret.scope == scope, Secret.name == name)).rowcount)


# ---------------------------------------------------------------- audit events


def audit(
    session: Session,
    action: str,
    object_type: str,
    object_id: Any = None,
    details: dict | None = None,
    *,
    actor: str = "system",
    now: datetime | None = None,
) -> None:
    session.add(
        AuditEvent(
            at=now or utcnow(),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            details=details or {},
        )
    )


def list_audit(session: Session, *, limit: int = 100) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))


# ---------------------------------------------------------------- workers


def register_worker(session: Session, worker_id: str, role: str, hostname: str, pid: int, *, now: datetime | None = None) -> None:
    now = now or utcnow()
    session.merge(Worker(id=worker_id, role=role, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now))


def worker_heartbeat(session: Session, worker_id: str, *, now: datetime | None = None) -> None:
    session.connection().execute(update(Worker.__table__).where(Worker.id == worker_id).values(heartbeat_at=now or utcnow()))


def remove_worker(session: Session, worker_id: str) -> None:
    session.execute(delete(Worker).where(Worker.id == worker_id))


def live_workers(session: Session, *, now: datetime, timeout: float) -> list[Worker]:
    cutoff = now - timedelta(seconds=timeout)
    return list(session.scalars(select(Worker).where(Worker.heartbeat_at >= cutoff).order_by(Worker.started_at)))


def prune_workers(session: Session, *, now: datetime, timeout: float) -> None:
    session.execute(delete(Worker).where(Worker.heartbeat_at < now - timedelta(seconds=timeout * 10)))


# ---------------------------------------------------------------- retention


def runs_with_expired_logs(session: Session, *, before: datetime, limit: int = 500) -> list[PipelineRun]:
    return list(
        session.scalars(
            select(PipelineRun)
            .where(
                PipelineRun.status.in_(RUN_FINISHED),
                PipelineRun.completed_at < before,
                PipelineRun.logs_purged.is_(False),
            )
            .limit(limit)
        )
    )


def mark_logs_purged(session: Session, run_ids: Sequence[int]) -> None:
    if run_ids:
        session.execute(update(PipelineRun).where(PipelineRun.id.in_(list(run_ids))).values(logs_purged=True))



def expired_runs(session: Session, *, before: datetime, limit: int = 500) -> list[PipelineRun]:
    """Finished runs that ended before ``before``; runs of a backfill still going are kept."""
    busy_backfills = select(Backfill.id).where(Backfill.status.in_((RUN_INITIAL, RUN_RUNNING)))
    return list(
        session.scalars(
            select(PipelineRun)
            .where(
                PipelineRun.status.in_(RUN_FINISHED),
                func.coalesce(PipelineRun.completed_at, PipelineRun.created_at) < before,
                or_(PipelineRun.backfill_id.is_(None), PipelineRun.backfill_id.not_in(busy_backfills)),
            )
            .order_by(PipelineRun.id)
            .limit(limit)
        )
    )


def delete_runs(session: Session, run_ids: Sequence[int]) -> int:
    """Delete runs and their block runs; returns how many runs were deleted."""
    ids = list(run_ids)
    if not ids:
        return 0
    session.execute(delete(BlockRun).where(BlockRun.pipeline_run_id.in_(ids)).execution_options(synchronize_session=False))
    return session.execute(
        delete(PipelineRun)
        .where(PipelineRun.id.in_(ids), PipelineRun.status.in_(RUN_FINISHED))
        .execution_options(synchronize_session=False)
    ).rowcount or 0


def unfinished_partitions(session: Session) -> set[tuple[str, str]]:
    """``(pipeline_uuid, partition)`` of every waiting or running run and of its block runs."""
    active = (RUN_INITIAL, RUN_RUNNING)
    out = {
        (p, part or str(rid))
        for rid, p, part in session.execute(
            select(PipelineRun.id, PipelineRun.pipeline_uuid, PipelineRun.partition).where(PipelineRun.status.in_(active))
        )
    }
    out |= {
        (p, part)
        for p, part in session.execute(
            select(PipelineRun.pipeline_uuid, BlockRun.partition)
            .join(PipelineRun, PipelineRun.id == BlockRun.pipeline_run_id)
            .where(PipelineRun.status.in_(active), BlockRun.partition.is_not(None))
        )
    }
    return out


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
