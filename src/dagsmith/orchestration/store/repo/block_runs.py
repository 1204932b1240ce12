"""Block runs: created with their run (or as dynamic children appear), updated from engine events."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dagsmith.orchestration.store.models import BlockRun, PipelineRun, utcnow
from dagsmith.orchestration.store.repo._common import NotFound, insert_for


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
        insert = insert_for(session)
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
    insert = insert_for(session)
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



def completed_blocks(session: Session, run_id: int, *, default_partition: str) -> dict[str, str]:
    """``{block uuid: partition of its stored output}`` of the run's completed blocks (a resumed run skips them)."""
    rows = session.execute(
        select(BlockRun.block_uuid, BlockRun.partition).where(BlockRun.pipeline_run_id == run_id, BlockRun.status == "completed")
    )
    return {uuid: partition or default_partition for uuid, partition in rows}
