"""``/api/statuses`` and ``/api/health``: is the scheduler ticking, which workers are alive, queue sizes."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter

from dagsmith.server.deps import DbDep, RuntimeDep, SettingsDep

router = APIRouter(tags=["status"])


@router.get("/health", summary="Liveness")
def health() -> dict:
    return {"status": "ok"}


@router.get("/statuses", summary="Scheduler, workers and queue")
def statuses(db: DbDep, settings: SettingsDep, runtime: RuntimeDep) -> dict:
    from dagsmith.orchestration.store import repo

    now = datetime.now(timezone.utc)
    with db.read() as session:
        # a scheduler ticks every scheduler_interval; allow a few missed ticks before calling it stalled
        workers = repo.live_workers(session, now=now, timeout=max(settings.heartbeat_timeout, 10 * settings.scheduler_interval))
        counts = repo.count_runs(session)
        worker_list = [{"id": w.id, "role": w.role, "hostname": w.hostname, "pid": w.pid, "heartbeat_at": w.heartbeat_at} for w in workers]
    scheduler = getattr(runtime, "scheduler", None) if runtime is not None else None
    last_tick = getattr(scheduler, "last_tick_at", None)
    report = getattr(scheduler, "last_report", None)
    live_schedulers = [w for w in worker_list if w["role"] == "scheduler"]
    return {
        "statuses": [
            {
                "scheduler_status": "running" if live_schedulers else "not running",
                "schedulers": live_schedulers,
                "scheduler_last_tick_at": last_tick,
                "scheduler_errors": list(report.errors) if report else [],
                "trigger_file_errors": dict(scheduler.code_sync.errors) if scheduler is not None else {},
                "workers": worker_list,
                "runs_by_status": counts,
                "database": db.dialect,
            }
        ]
    }
