"""Backfills: create, read, progress (run counts), cancel their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dagsmith.orchestration.store.models import (
    RUN_CANCELLED,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_INITIAL,
    RUN_RUNNING,
    Backfill,
    PipelineRun,
    utcnow,
)
from dagsmith.orchestration.store.repo._common import NotFound
from dagsmith.orchestration.store.repo.runs import count_runs


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

