"""The run queue: claim waiting runs, heartbeat, recover stale runs, finish, hand back.

Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (plus a short advisory lock while
concurrency limits are counted) and SQLite's single writer (``BEGIN IMMEDIATE``)
otherwise; which waiting runs fit under the limits is decided by the pure
``repo.limits`` module. Every write of a run's end is fenced by the worker that holds it.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from sqlalchemy import String, bindparam, cast, func, literal, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from dagsmith.orchestration.store.models import (
    RUN_CANCELLED,
    RUN_FAILED,
    RUN_INITIAL,
    RUN_RUNNING,
    Backfill,
    BlockRun,
    PipelineRun,
    Trigger,
    utcnow,
)
from dagsmith.orchestration.store.repo import limits as _limits
from dagsmith.orchestration.store.repo._common import announce_queued, dialect
from dagsmith.orchestration.store.repo.audits import audit

#: the PostgreSQL advisory lock held while a claim counts running runs (tests hold it to force a wait)
CLAIM_LOCK_KEY = 7_351_218_045


# The statements every run makes are built once (``functools.cache``) with bound parameters:
# building a statement and its cache key cost more CPU than the round trip it makes.
def _param(name: str, column) -> Any:
    return bindparam(name, type_=column.type)


@functools.cache
def _heartbeat_stmt():
    t = PipelineRun.__table__
    return (
        update(t)
        .where(t.c.id.in_(bindparam("ids", expanding=True)), t.c.worker_id == bindparam("worker"), t.c.status == RUN_RUNNING)
        .values(heartbeat_at=_param("now", t.c.heartbeat_at))
        .returning(t.c.id, t.c.cancel_requested)
    )


@functools.cache
def _finish_stmt():
    t = PipelineRun.__table__
    now = _param("now", t.c.completed_at)
    return (
        update(t)
        .where(t.c.id == bindparam("run_id"), t.c.worker_id == bindparam("worker"), t.c.status == RUN_RUNNING)
        .values(status=bindparam("new_status"), completed_at=now, error=_param("new_error", t.c.error), updated_at=now, heartbeat_at=None)
    )


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
    report: dict[str, Any] | None = None,
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

    Runs no limit applies to are claimed without counting running runs (no claim lock);
    ``report["limited"]`` is then False, and True when limits were counted — runs may
    then wait for a running one to end, though fewer than ``limit`` were claimed.
    """
    if limit <= 0:
        return []
    info = trigger_info if trigger_info is not None else {}
    pg = dialect(session) == "postgresql"
    pipe_cache: dict[str, tuple[int | None, int | None]] = {}

    def pipe_limits(uuid: str) -> tuple[int | None, int | None]:
        """(per-trigger, all-triggers) limits of a pipeline's concurrency_config."""
        if pipeline_limits is None:
            return None, None
        if uuid not in pipe_cache:
            found = pipeline_limits(uuid)
            pipe_cache[uuid] = (getattr(found, "per_trigger", None), getattr(found, "all_triggers", None))
        return pipe_cache[uuid]

    if global_limit is None:
        # Runs no limit applies to need no count of running runs, hence no claim lock: the oldest
        # waiting runs are locked (SKIP LOCKED) and read with their trigger's settings and
        # name in one statement, then taken in a second. When a limit applies to any of
        # them, the counted claim below runs in this transaction (the rows stay ours).
        fast = _claim_unlimited(session, limit, pg, exclude_ids, backfill_id, pipe_limits, info)
        if report is not None:
            report["limited"] = fast is None
        if fast is not None:
            if not fast:
                return []
            stamp = now if now is not None else (clock or utcnow)()  # after the selection, which may wait for a table lock
            return _take(session, worker_id, fast, stamp, logs_root)
    if report is not None:
        report["limited"] = True
    if pg:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK_KEY})
    running = _limits.Running.from_rows(
        session.execute(
            select(PipelineRun.pipeline_uuid, PipelineRun.trigger_id, PipelineRun.backfill_id, func.count())
            .where(PipelineRun.status == RUN_RUNNING)
            .group_by(PipelineRun.pipeline_uuid, PipelineRun.trigger_id, PipelineRun.backfill_id)
        ).all()
    )
    limit = _limits.room(limit, global_limit, running.total)
    if limit <= 0:
        return []

    limits = _limits.Limits(all_triggers=lambda uuid: pipe_limits(uuid)[1])

    def read_limits(triggers: dict[int, str], backfills: dict[int, str]) -> None:
        """Limits of these triggers and backfills (id → pipeline uuid) into ``limits``."""
        if triggers:
            for tid, settings, name, sla in session.execute(
                select(Trigger.id, Trigger.settings, Trigger.name, Trigger.sla).where(Trigger.id.in_(triggers))
            ):
                limits.triggers[tid] = _limits.trigger_limit(settings, pipe_limits(triggers[tid])[0])
                info[tid] = (name, sla)
        if backfills:
            for bid, conc in session.execute(select(Backfill.id, Backfill.concurrency).where(Backfill.id.in_(backfills))):
                limits.backfills[bid] = _limits.backfill_limit(conc, pipe_limits(backfills[bid])[0])

    read_limits(running.trigger_pipeline, running.backfill_pipeline)
    full = _limits.saturated(running, limits)

    stmt = select(PipelineRun).where(PipelineRun.status == RUN_INITIAL, PipelineRun.cancel_requested.is_(False))
    held = list(exclude_ids)
    if held:
        stmt = stmt.where(PipelineRun.id.not_in(held))
    if backfill_id is not None:
        stmt = stmt.where(PipelineRun.backfill_id == backfill_id)
    if full.triggers:
        stmt = stmt.where(or_(PipelineRun.trigger_id.is_(None), PipelineRun.trigger_id.not_in(full.triggers)))
    if full.backfills:
        stmt = stmt.where(or_(PipelineRun.backfill_id.is_(None), PipelineRun.backfill_id.not_in(full.backfills)))
    if full.pipelines:
        stmt = stmt.where(PipelineRun.pipeline_uuid.not_in(full.pipelines))
    stmt = stmt.order_by(PipelineRun.id).limit(limit * 4 + 8)
    if pg:
        stmt = stmt.with_for_update(skip_locked=True)
    candidates = list(session.scalars(stmt))
    if not candidates:
        return []
    # limits of triggers/backfills that appear only among the candidates
    read_limits(
        {c.trigger_id: c.pipeline_uuid for c in candidates if c.trigger_id is not None and c.trigger_id not in limits.triggers},
        {c.backfill_id: c.pipeline_uuid for c in candidates if c.backfill_id is not None and c.backfill_id not in limits.backfills},
    )
    chosen = _limits.choose(candidates, running, limits, limit)
    if not chosen:
        return []
    stamp = now if now is not None else (clock or utcnow)()  # after the locks, see above
    return _take(session, worker_id, chosen, stamp, logs_root)


@functools.cache
def _unlimited_stmt(pg: bool, by_backfill: bool):
    """The oldest waiting runs with their trigger's settings, name and SLA and their backfill's concurrency."""
    stmt = (
        select(PipelineRun, Trigger.settings, Trigger.name, Trigger.sla, Backfill.concurrency)
        .outerjoin(Trigger, Trigger.id == PipelineRun.trigger_id)
        .outerjoin(Backfill, Backfill.id == PipelineRun.backfill_id)
        .where(
            PipelineRun.status == RUN_INITIAL,
            PipelineRun.cancel_requested.is_(False),
            PipelineRun.id.not_in(bindparam("held", expanding=True)),
        )
    )
    if by_backfill:
        stmt = stmt.where(PipelineRun.backfill_id == bindparam("backfill_id"))
    stmt = stmt.order_by(PipelineRun.id).limit(bindparam("n"))
    if pg:
        stmt = stmt.with_for_update(skip_locked=True, of=PipelineRun)
    return stmt


def _claim_unlimited(session: Session, limit: int, pg: bool, exclude_ids: Iterable[int], backfill_id: int | None,
                     pipe_limits: Callable[[str], tuple[int | None, int | None]],
                     info: dict[int, tuple[str, int | None]]) -> list[PipelineRun] | None:
    """Up to ``limit`` waiting runs (locked on PostgreSQL) when no concurrency limit applies to any; else None."""
    params: dict[str, Any] = {"held": list(exclude_ids), "n": limit}
    if backfill_id is not None:
        params["backfill_id"] = backfill_id
    rows = session.execute(_unlimited_stmt(pg, backfill_id is not None), params).all()
    names: dict[int, tuple[str, int | None]] = {}
    for run, settings, name, sla, concurrency in rows:
        per_trigger, all_triggers = pipe_limits(run.pipeline_uuid)
        if all_triggers is not None:
            return None
        if run.trigger_id is not None:
            if _limits.trigger_limit(settings, per_trigger) is not None:
                return None
            names[run.trigger_id] = (name, sla)
        if run.backfill_id is not None and _limits.backfill_limit(concurrency, per_trigger) is not None:
            return None
    info.update(names)
    return [row[0] for row in rows]


@functools.cache
def _take_stmt(with_log_dir: bool):
    t = PipelineRun.__table__
    stamp = _param("stamp", t.c.heartbeat_at)
    values: dict[str, Any] = {
        "status": RUN_RUNNING, "worker_id": bindparam("worker"), "heartbeat_at": stamp, "claims": t.c.claims + 1,
        "updated_at": stamp, "started_at": func.coalesce(t.c.started_at, stamp),
    }
    if with_log_dir:
        values["log_dir"] = func.coalesce(t.c.log_dir, bindparam("prefix", type_=String()) + t.c.pipeline_uuid + "/" + cast(t.c.id, String))
    return (
        update(t)
        .where(t.c.id.in_(bindparam("ids", expanding=True)), t.c.status == RUN_INITIAL)
        .values(**values)
        .returning(t.c.id, t.c.claims, t.c.started_at, t.c.log_dir)
    )


def _take(session: Session, worker_id: str, chosen: list[PipelineRun], stamp: datetime, logs_root: str | None) -> list[PipelineRun]:
    """Mark ``chosen`` running for ``worker_id`` at ``stamp``; the rows come back with their new state, no reload."""
    params: dict[str, Any] = {"ids": [r.id for r in chosen], "worker": worker_id, "stamp": stamp}
    if logs_root is not None:
        params["prefix"] = str(logs_root).rstrip("/") + "/"
    rows = session.connection().execute(_take_stmt(logs_root is not None), params).all()  # Core: runs for every claim
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
    touched = dict(session.connection().execute(_heartbeat_stmt(), {"ids": ids, "worker": worker_id, "now": now}).all())
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
    if dialect(session) == "postgresql":
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
    if stale:
        announce_queued(session)
    return [r.id for r in stale]



def recover_dead_local_runs(session: Session, hostname: str, *, now: datetime) -> list[int]:
    """Requeue running runs held by processes of this host that no longer exist (restart after a crash)."""
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
    if out:
        announce_queued(session)
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
        _finish_stmt(), {"run_id": run_id, "worker": worker_id, "new_status": status, "now": now, "new_error": error}
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
        announce_queued(session)
    return bool(result.rowcount)

