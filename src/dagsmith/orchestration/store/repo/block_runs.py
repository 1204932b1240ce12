"""Block runs: created with their run (or as dynamic children appear), updated from engine events.

The writes a worker makes for every block (``ensure_block_runs``, ``upsert_block_runs``)
are built once per dialect and column set and executed with a list of parameter sets:
building and compiling a statement costs more than the round trip it makes, and one
statement serves the blocks of many runs (the run recorder batches them).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dagsmith.orchestration.store.models import BlockRun, PipelineRun, utcnow
from dagsmith.orchestration.store.repo._common import NotFound, dialect, insert_for_dialect

_KEY = ["pipeline_run_id", "block_uuid"]


@functools.cache
def _ensure_stmt(dialect_name: str):
    """``INSERT … ON CONFLICT DO NOTHING`` of block-run rows (rows that exist keep their state: no read first)."""
    return insert_for_dialect(dialect_name)(BlockRun.__table__).on_conflict_do_nothing(index_elements=_KEY)


@functools.lru_cache(maxsize=256)
def _upsert_stmt(dialect_name: str, keys: tuple[str, ...]):
    """``INSERT … ON CONFLICT DO UPDATE`` setting ``keys`` (a row that exists keeps its other columns)."""
    stmt = insert_for_dialect(dialect_name)(BlockRun.__table__)
    return stmt.on_conflict_do_update(index_elements=_KEY, set_={k: stmt.excluded[k] for k in keys})


def ensure_rows(run_id: int, block_uuids: Sequence[str], *, partition: str | None, log_dir: str | None, now: Any = None) -> list[dict[str, Any]]:
    """The parameter sets ``ensure_block_runs`` inserts for one run (the recorder joins several runs' into one call)."""
    now = now or utcnow()
    return [
        {
            "pipeline_run_id": run_id, "block_uuid": b, "status": "initial", "attempts": 0, "partition": partition,
            "log_path": f"{log_dir}/{b}.jsonl" if log_dir else None, "created_at": now, "updated_at": now,
        }
        for b in dict.fromkeys(block_uuids)
    ]


def insert_missing_block_runs(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert block-run rows (``ensure_rows``' parameter sets, of any runs) unless they exist."""
    unique = list({(r["pipeline_run_id"], r["block_uuid"]): r for r in reversed(rows)}.values())  # the first of each wins
    if unique:
        session.connection().execute(_ensure_stmt(dialect(session)), unique)


def ensure_block_runs(session: Session, run_id: int, block_uuids: Sequence[str], *, partition: str | None, log_dir: str | None) -> None:
    """Create the missing block-run rows of a run (existing rows keep their state)."""
    if block_uuids:
        insert_missing_block_runs(session, ensure_rows(run_id, block_uuids, partition=partition, log_dir=log_dir))



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
    name = dialect(session)
    now = utcnow()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run_id, block_uuid, values in rows:
        params = {"updated_at": now, **values}
        groups.setdefault(tuple(sorted(params)), []).append({"pipeline_run_id": run_id, "block_uuid": block_uuid, **params})
    for keys, params in groups.items():
        session.connection().execute(_upsert_stmt(name, keys), params)



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
