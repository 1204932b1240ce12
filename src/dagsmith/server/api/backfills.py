"""``/api/backfills``: create, start, cancel, rerun failed dates, and progress."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter

from dagsmith.server.api.common import listing
from dagsmith.server.deps import DbDep, RuntimeDep, SettingsDep, notify
from dagsmith.server.schemas import BackfillBody, BackfillEnvelope, BackfillList, BackfillOut

router = APIRouter(tags=["backfills"])


def _dict(session, backfill) -> BackfillOut:
    from dagsmith.orchestration.store import repo

    return BackfillOut.of(backfill, repo.backfill_progress(session, backfill.id))


@router.get("/pipelines/{pipeline_uuid}/backfills", response_model=BackfillList, summary="List a pipeline's backfills")
def list_for_pipeline(pipeline_uuid: str, db: DbDep) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        return listing("backfills", [_dict(session, b) for b in repo.list_backfills(session, pipeline_uuid)])


@router.get("/backfills", response_model=BackfillList, summary="List all backfills")
def list_all(db: DbDep) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        return listing("backfills", [_dict(session, b) for b in repo.list_backfills(session)])


@router.post("/pipelines/{pipeline_uuid}/backfills", status_code=201, response_model=BackfillEnvelope, summary="Create a backfill (status 'initial' also starts it)")
def create(pipeline_uuid: str, body: BackfillBody, db: DbDep, settings: SettingsDep, runtime: RuntimeDep) -> dict:
    from dagsmith.errors import ConfigError
    from dagsmith.orchestration.service import create_backfill
    from dagsmith.orchestration.store import repo

    f = body.backfill
    if f.start_datetime is None or f.end_datetime is None:
        raise ConfigError("a backfill needs start_datetime and end_datetime", hint='e.g. {"backfill": {"start_datetime": "2024-01-01", "end_datetime": "2024-01-31", "interval_type": "day", "interval_units": 1}}')
    backfill_id = create_backfill(
        db, settings.project_root, pipeline_uuid,
        start=f.start_datetime, end=f.end_datetime, interval_type=f.interval_type or "day",
        interval_units=f.interval_units or 1, variables=f.variables, name=f.name, concurrency=f.concurrency,
        tz=f.timezone or "UTC", settings=f.settings, start_now=f.status == "initial",
    )
    notify(runtime)
    with db.read() as session:
        return {"backfill": _dict(session, repo.get_backfill(session, backfill_id))}


@router.get("/backfills/{backfill_id}", response_model=BackfillEnvelope, summary="Read a backfill with its progress")
def get(backfill_id: int, db: DbDep) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        return {"backfill": _dict(session, repo.get_backfill(session, backfill_id))}


@router.put("/backfills/{backfill_id}", response_model=BackfillEnvelope, summary="Start (status initial), cancel (status cancelled) or rerun failed dates (action rerun_failed)")
def update(backfill_id: int, body: BackfillBody, db: DbDep, runtime: RuntimeDep) -> dict:
    from dagsmith.errors import ConfigError
    from dagsmith.orchestration.scheduler import backfills as bf
    from dagsmith.orchestration.store import repo

    f = body.backfill
    now = datetime.now(timezone.utc)
    with db.session() as session:
        backfill = repo.get_backfill(session, backfill_id)
        if f.action == "rerun_failed":
            bf.rerun_failed(session, backfill, now=now)
        elif f.status == "cancelled":
            bf.cancel_backfill(session, backfill, now=now)
        elif f.status == "initial":
            bf.start_backfill(session, backfill, now=now)
        else:
            raise ConfigError(
                "nothing to do: send status 'initial' (start), 'cancelled', or action 'rerun_failed'",
                hint='{"backfill": {"status": "initial"}}',
            )
        out = _dict(session, backfill)
    if f.status == "cancelled" and runtime is not None:
        with db.read() as session:
            for run in repo.list_runs(session, backfill_id=backfill_id, status="running", limit=10000)[0]:
                runtime.cancel_local(run.id)
    notify(runtime)
    return {"backfill": out}
