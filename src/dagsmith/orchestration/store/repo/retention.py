"""What retention may delete: runs whose logs expired, old finished runs, and the partitions
that waiting or running runs still use (never deleted)."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from dagsmith.orchestration.store.models import (
    RUN_FINISHED,
    RUN_INITIAL,
    RUN_RUNNING,
    Backfill,
    BlockRun,
    PipelineRun,
)


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

