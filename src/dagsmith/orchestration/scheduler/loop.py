"""The scheduler loop: each tick turns due schedule periods into runs, exactly once.

A tick (``Scheduler.tick(now)``) does, in order:

1. read changed ``triggers.yaml`` files into the DB (``CodeTriggerSync``);
2. for every active time trigger, compute due execution dates (``triggers.due_dates``,
   pure) and insert one run per date with ``ON CONFLICT DO NOTHING`` on the unique
   (trigger, schedule_date) key — two schedulers on one database cannot double a period;
   ``skip_if_previous_running`` records the period as a cancelled run, and so does
   ``on_pipeline_run_limit_reached: skip`` when the trigger (or pipeline) has as many
   runs waiting or running as its ``pipeline_run_limit`` allows;
3. put runs whose worker stopped heart-beating back in the queue (crash recovery) —
   not within a heartbeat timeout of this scheduler's own loss of contact with the
   database (``orchestration.contact``);
4. mark finished backfills completed/failed, flag runs past their SLA;
5. now and then (every 10 minutes), delete logs past the retention period, and old
   finished runs and outputs (``orchestration.retention``).

Any error in a tick is logged and the next tick runs: a broken trigger or a lost
database connection never stops the loop (Mage's stalled-scheduler complaint).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from dagsmith.orchestration.scheduler.code_triggers import CodeTriggerSync
from dagsmith.orchestration.scheduler.triggers import ScheduleState, due_dates, next_tick
from dagsmith.util.clock import utcnow

log = logging.getLogger("dagsmith.scheduler")


@dataclass
class TickReport:
    created: int = 0
    skipped: int = 0
    recovered: int = 0
    purged: int = 0
    #: finished runs deleted by run retention, and output partitions deleted
    runs_deleted: int = 0
    partitions_deleted: int = 0
    synced: int = 0
    errors: list[str] = field(default_factory=list)


class Scheduler:
    """Creates due runs; call ``tick`` yourself (tests) or ``run_forever`` in a thread."""

    def __init__(self, settings, db, *, clock: Callable[[], datetime] = utcnow, on_created: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.on_created = on_created
        self.code_sync = CodeTriggerSync(settings.project_root, settings.env)
        import os
        import socket
        import uuid

        self.scheduler_id = f"{socket.gethostname()}:{os.getpid()}:sched-{uuid.uuid4().hex[:6]}"
        self._registered = False
        #: the worker sharing this process: alive whenever we are, so never taken over by us
        self.local_worker_id: str | None = None
        self._last_purge: datetime | None = None
        from dagsmith.orchestration.concurrency import PipelineLimitsCache

        #: each pipeline's concurrency_config (on_pipeline_run_limit_reached, limits)
        self.pipeline_limits = PipelineLimitsCache(settings.project_root)
        self.last_tick_at: datetime | None = None
        self.last_report: TickReport | None = None
        from dagsmith.orchestration.contact import DbContact

        #: whether this scheduler may judge workers' heartbeats (not right after it was cut off from the DB)
        self.contact = DbContact(settings.heartbeat_timeout)

    # ------------------------------------------------------------------ one tick
    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or self.clock()
        report = TickReport()
        steps = (
            ("heartbeat", self._heartbeat),
            ("sync triggers.yaml", self._sync_code),
            ("ingest CLI runs", self._ingest),
            ("create due runs", self._create_due_runs),
            ("recover stale runs", self._recover),
            ("backfills and SLAs", self._housekeeping),
            ("log and run retention", self._purge),
        )
        for name, fn in steps:
            try:
                fn(now, report)
                if fn == self._heartbeat:
                    self.contact.ok()
            except Exception as exc:  # noqa: BLE001 - one failing step must not stop the scheduler
                if fn == self._heartbeat:
                    self.contact.failed()
                log.exception("scheduler step %r failed", name)
                report.errors.append(f"{name}: {exc}")
        self.last_tick_at = now
        self.last_report = report
        if report.created and self.on_created:
            self.on_created()
        return report

    def _heartbeat(self, now: datetime, report: TickReport) -> None:
        """Record that this scheduler is alive (``/api/statuses`` shows stalled schedulers)."""
        import os
        import socket

        from dagsmith.orchestration.store import repo

        with self.db.session() as session:
            if not self._registered:
                repo.register_worker(session, self.scheduler_id, "scheduler", socket.gethostname(), os.getpid(), now=now)
                self._registered = True
            else:
                repo.worker_heartbeat(session, self.scheduler_id, now=now)
            repo.prune_workers(session, now=now, timeout=self.settings.heartbeat_timeout)

    def _ingest(self, now: datetime, report: TickReport) -> None:
        from dagsmith.orchestration.inbox import ingest_inbox

        ingest_inbox(self.db, self.settings, now=now)

    def _sync_code(self, now: datetime, report: TickReport) -> None:
        report.synced = self.code_sync.sync(self.db, now=now)

    def _create_due_runs(self, now: datetime, report: TickReport) -> None:
        from dagsmith.orchestration.store import repo

        with self.db.read() as session:
            triggers = repo.active_schedule_triggers(session)
            plans = []
            for trig in triggers:
                state = ScheduleState(
                    interval=trig.schedule_interval or "",
                    timezone=trig.timezone or "UTC",
                    start_time=trig.start_time,
                    enabled_at=trig.last_enabled_at or trig.created_at,
                    cursor=trig.last_execution_date,
                    catchup=trig.catchup or (trig.settings or {}).get("catchup") or self.settings.catchup,
                )
                try:
                    due = due_dates(state, now, grace=self.settings.catchup_grace, max_runs=self.settings.max_catchup_runs)
                except Exception as exc:  # noqa: BLE001 - a bad trigger is reported, the others still run
                    report.errors.append(f"trigger {trig.id} ({trig.pipeline_uuid}/{trig.name}): {exc}")
                    continue
                if due.dates or due.cursor != trig.last_execution_date or due.deactivate:
                    plans.append((trig, due))
        if not plans:
            return
        from dagsmith.orchestration import concurrency

        with self.db.session() as session:
            # on_pipeline_run_limit_reached: skip → a period over the limit is recorded as a cancelled run
            limits: dict[int, tuple[int | None, int | None]] = {}
            for trig, due in plans:
                if not due.dates:
                    continue
                pipe = self.pipeline_limits(trig.pipeline_uuid)
                if concurrency.on_limit_reached(trig.settings, pipe) == "skip":
                    limits[trig.id] = (concurrency.trigger_limit(trig.settings, pipe), pipe.all_triggers)
            waiting_t, waiting_p = repo.unfinished_counts(
                session,
                trigger_ids=[t for t, (lim, _a) in limits.items() if lim],
                pipeline_uuids={trig.pipeline_uuid for trig, _d in plans if limits.get(trig.id, (None, None))[1]},
            )
            rows = []
            for trig, due in plans:
                settings = trig.settings or {}
                skip = bool(settings.get("skip_if_previous_running")) and due.dates and repo.has_unfinished_run(session, trig.id)
                ends: list = [None] * len(due.dates)
                if due.dates and trig.schedule_interval and trig.schedule_interval.strip() != "@once":
                    # due dates are consecutive ticks: each period ends where the next begins
                    ends = list(due.dates[1:]) + [next_tick(trig.schedule_interval, trig.timezone, due.dates[-1])]
                for i, date in enumerate(due.dates):
                    interval_end = ends[i]
                    status = "cancelled" if skip or (settings.get("skip_if_previous_running") and i < len(due.dates) - 1) else "initial"
                    error = "skipped: the previous run of this trigger was still running" if status == "cancelled" else None
                    if status == "initial" and trig.id in limits:
                        error = _over_limit(trig, limits[trig.id], waiting_t, waiting_p)
                        if error:
                            status = "cancelled"
                        else:
                            waiting_t[trig.id] = waiting_t.get(trig.id, 0) + 1
                            waiting_p[trig.pipeline_uuid] = waiting_p.get(trig.pipeline_uuid, 0) + 1
                    if status == "cancelled":
                        report.skipped += 1
                    rows.append(
                        {
                            "pipeline_uuid": trig.pipeline_uuid,
                            "trigger_id": trig.id,
                            "schedule_date": date,
                            "execution_date": date,
                            "interval_start": date,
                            "interval_end": interval_end,
                            "timezone": trig.timezone or "UTC",
                            "variables": dict(trig.variables or {}),
                            "source": "schedule",
                            "status": status,
                            "completed_at": now if status == "cancelled" else None,
                            "error": error,
                            "allow_blocks_to_fail": bool(settings.get("allow_blocks_to_fail", False)),
                            "timeout": _float(settings.get("timeout")),
                        }
                    )
            report.created += repo.insert_keyed_runs(session, rows)
            repo.advance_cursors(
                session,
                [
                    (trig.id, due.cursor if (trig.last_execution_date is None or (due.cursor and due.cursor > trig.last_execution_date)) else None, due.deactivate)
                    for trig, due in plans
                ],
            )

    def _recover(self, now: datetime, report: TickReport) -> None:
        from dagsmith.orchestration.store import repo

        if not self.contact.may_judge():  # just cut off from the DB ourselves: give workers time to catch up
            return
        with self.db.session() as session:
            report.recovered = len(
                repo.recover_stale_runs(session, now=now, timeout=self.settings.heartbeat_timeout, exclude_worker=self.local_worker_id)
            )
        if report.recovered and self.on_created:
            self.on_created()

    def _housekeeping(self, now: datetime, report: TickReport) -> None:
        from dagsmith.orchestration.scheduler.backfills import refresh_status
        from dagsmith.orchestration.store import repo

        with self.db.session() as session:
            for backfill in repo.list_backfills(session):
                if backfill.status == "running":
                    refresh_status(session, backfill, now=now)
            # SLA: runs of triggers with an sla (seconds) still unfinished that long after their execution date
            repo.mark_passed_sla(session, now=now)

    def _purge(self, now: datetime, report: TickReport) -> None:
        from dagsmith.orchestration.logs import purge_expired_logs

        if self._last_purge is not None and now - self._last_purge < timedelta(minutes=10):
            return
        self._last_purge = now
        report.purged = purge_expired_logs(self.db, self.settings.logs_dir, now=now, retention_days=self.settings.log_retention_days)
        from dagsmith.orchestration.retention import purge

        removed = purge(self.db, self.settings, now=now)
        report.runs_deleted, report.partitions_deleted = removed.runs, removed.partitions

    # ------------------------------------------------------------------ loop
    def run_forever(self, stop: threading.Event) -> None:
        interval = max(0.05, float(self.settings.scheduler_interval))
        while not stop.is_set():
            started = time.monotonic()
            self.tick()
            stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, args=(stop,), name="dagsmith-scheduler", daemon=True)
        thread.start()
        return thread


def _over_limit(trig, limits: tuple[int | None, int | None], waiting_t: dict, waiting_p: dict) -> str | None:
    """Why a new run of ``trig`` is skipped under ``on_pipeline_run_limit_reached: skip``, or None."""
    per_trigger, all_triggers = limits
    if per_trigger and waiting_t.get(trig.id, 0) >= per_trigger:
        return (
            f"skipped: trigger '{trig.name}' already has {per_trigger} run(s) waiting or running "
            "(pipeline_run_limit reached, on_pipeline_run_limit_reached: skip)"
        )
    if all_triggers and waiting_p.get(trig.pipeline_uuid, 0) >= all_triggers:
        return (
            f"skipped: pipeline '{trig.pipeline_uuid}' already has {all_triggers} run(s) waiting or running "
            "(pipeline_run_limit_all_triggers reached, on_pipeline_run_limit_reached: skip)"
        )
    return None


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "", 0) else None
    except (TypeError, ValueError):
        return None
