"""``/api/pipeline_runs`` and ``/api/block_runs``: run history, retry, cancel, logs."""

from __future__ import annotations

from fastapi import APIRouter

from dagsmith.server.api.common import listing
from dagsmith.server.deps import DbDep, RuntimeDep, SettingsDep, notify
from dagsmith.server.schemas import (
    BlockRunEnvelope,
    BlockRunList,
    BlockRunOut,
    PipelineRunDetail,
    PipelineRunDetailEnvelope,
    PipelineRunEnvelope,
    PipelineRunList,
    PipelineRunOut,
    RunBody,
)

router = APIRouter(tags=["runs"])


@router.get("/pipeline_runs", response_model=PipelineRunList, summary="List runs (newest first)")
def list_runs(
    db: DbDep,
    pipeline_uuid: str | None = None,
    status: str | None = None,
    pipeline_schedule_id: int | None = None,
    backfill_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict:
    from dagsmith.orchestration.inbox import ingest_inbox
    from dagsmith.orchestration.store import repo

    ingest_inbox(db, db.settings)  # `dagsmith run` leaves its runs in an inbox; show them too
    limit = max(1, min(limit, 1000))
    statuses = [s for s in (status or "").split(",") if s] or None
    with db.read() as session:
        runs, total = repo.list_runs(
            session, pipeline_uuid=pipeline_uuid, trigger_id=pipeline_schedule_id, backfill_id=backfill_id,
            status=statuses, limit=limit, offset=offset,
        )
        return listing("pipeline_runs", [PipelineRunOut.of(r) for r in runs], total, limit=limit, offset=offset)


@router.get("/pipeline_runs/{run_id}", response_model=PipelineRunDetailEnvelope, summary="Read a run with its block runs")
def get_run(run_id: int, db: DbDep) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        run = repo.get_run(session, run_id)
        blocks = [BlockRunOut.of(b) for b in repo.list_block_runs(session, run_id)]
        out = PipelineRunDetail(**dict(PipelineRunOut.of(run)), block_runs=blocks)
    return {"pipeline_run": out}


@router.put("/pipeline_runs/{run_id}", response_model=PipelineRunEnvelope, summary="Retry (pipeline_run_action: retry_blocks [from_block_uuid]) or cancel (status: cancelled)")
def update_run(run_id: int, body: RunBody, db: DbDep, settings: SettingsDep, runtime: RuntimeDep) -> dict:
    from dagsmith.errors import ConfigError
    from dagsmith.orchestration import service

    fields = body.pipeline_run
    if fields.status == "cancelled":
        run = service.cancel(db, run_id, local_cancel=runtime.cancel_local if runtime is not None else None)
    elif fields.pipeline_run_action == "retry_blocks":
        run = service.retry(db, settings.project_root, run_id, from_block=fields.from_block_uuid)
        notify(runtime)
    else:
        raise ConfigError(
            "nothing to do: send a status or a pipeline_run_action",
            hint='{"pipeline_run": {"status": "cancelled"}} or {"pipeline_run": {"pipeline_run_action": "retry_blocks", "from_block_uuid": "<block>"}}',
        )
    return {"pipeline_run": PipelineRunOut.of(run)}


@router.get("/pipeline_runs/{run_id}/logs", summary="Log records of a run (JSON lines), optionally of one block")
def run_logs(run_id: int, db: DbDep, block_uuid: str | None = None, level: str | None = None, offset: int = 0, limit: int = 1000) -> dict:
    from dagsmith.orchestration.logs import read_logs, run_log_dir
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        run = repo.get_run(session, run_id)
        directory = run.log_dir or str(run_log_dir(db.settings.logs_dir, run.pipeline_uuid, run.id))
        purged = run.logs_purged
    records = read_logs(directory, block_uuid=block_uuid, level=level, offset=max(0, offset), limit=max(1, min(limit, 10000)))
    return {"logs": records, "metadata": {"count": len(records), "purged": purged}}


@router.get("/block_runs", response_model=BlockRunList, summary="List block runs (of a run with ?pipeline_run_id=)")
def list_block_runs(db: DbDep, pipeline_run_id: int | None = None, pipeline_uuid: str | None = None, limit: int = 500) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        if pipeline_run_id is not None:
            repo.get_run(session, pipeline_run_id)
        rows = repo.list_block_runs(session, pipeline_run_id, pipeline_uuid=pipeline_uuid, limit=max(1, min(limit, 5000)))
        return listing("block_runs", [BlockRunOut.of(b) for b in rows])


@router.get("/block_runs/{block_run_id}", response_model=BlockRunEnvelope, summary="Read a block run")
def get_block_run(block_run_id: int, db: DbDep) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        return {"block_run": BlockRunOut.of(repo.get_block_run(session, block_run_id))}


@router.get("/block_runs/{block_run_id}/logs", summary="Log records of one block run")
def block_run_logs(block_run_id: int, db: DbDep, level: str | None = None, offset: int = 0, limit: int = 1000) -> dict:
    from dagsmith.orchestration.logs import read_logs, run_log_dir
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        row = repo.get_block_run(session, block_run_id)
        run = repo.get_run(session, row.pipeline_run_id)
        directory = run.log_dir or str(run_log_dir(db.settings.logs_dir, run.pipeline_uuid, run.id))
        block_uuid = row.block_uuid
    records = read_logs(directory, block_uuid=block_uuid, level=level, offset=max(0, offset), limit=max(1, min(limit, 10000)))
    return {"logs": records, "metadata": {"count": len(records)}}
