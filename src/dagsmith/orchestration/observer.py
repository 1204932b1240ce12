"""``DbObserver``: the engine's ``RunObserver`` that records block runs and writes logs.

Each event is one short write transaction (block status, attempts, times, rows, error,
test counts); log records go to the run's JSON-lines files, never to the database.
Dynamic children appear as ``initial`` block runs as soon as their parent fans out
(``on_blocks_added``). The observer is called from the engine's threads; it keeps no mutable shared state
besides the thread-safe ``RunLogWriter``.

Given a ``RunRecorder`` (workers do), block changes are queued to it instead: it writes
the changes of many runs in one transaction, retries through database outages, and
writes nothing for a run this worker no longer holds.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from dagsmith.orchestration.logs import RunLogWriter


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


class DbObserver:
    """Records one pipeline run's block events in the metadata DB and its logs on disk."""

    def __init__(self, db, run_id: int, pipeline_uuid: str, *, log_writer: RunLogWriter, partition: str | None = None,
                 recorder: Any = None) -> None:
        self.db = db
        self.run_id = int(run_id)
        self.pipeline_uuid = pipeline_uuid
        self.logs = log_writer
        self.partition = partition
        self.recorder = recorder

    def _ensure(self, blocks: list[str]) -> None:
        if self.recorder is not None:
            self.recorder.ensure_blocks(self.run_id, blocks, partition=self.partition, log_dir=str(self.logs.directory))
            return
        from dagsmith.orchestration.store import repo

        with self.db.session() as session:
            repo.ensure_block_runs(session, self.run_id, blocks, partition=self.partition, log_dir=str(self.logs.directory))

    def _set(self, block_uuid: str, values: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder.block(self.run_id, block_uuid, values)
            return
        from dagsmith.orchestration.store import repo

        with self.db.session() as session:
            repo.update_block_run(session, self.run_id, block_uuid, **values)

    def on_run_start(self, *, run_id=None, pipeline_uuid=None, blocks=(), **kw: Any) -> None:
        names = list(blocks)
        self._ensure(names)
        self.logs.write(None, {"level": "INFO", "message": f"run started: {len(names)} block(s)"})

    def on_blocks_added(self, *, run_id=None, parent: str | None = None, blocks=(), **kw: Any) -> None:
        """Dynamic children of ``parent`` were created: record them as ``initial`` block runs at once."""
        children = [str(b) for b in blocks or ()]
        if not children:
            return
        self._ensure(children)
        self.logs.write(parent, {"level": "INFO", "message": f"block {parent} fanned out into {len(children)} dynamic block(s)"})

    def on_block_start(self, *, run_id=None, block_uuid: str, attempt: int = 1, started_at=None, **kw: Any) -> None:
        values: dict[str, Any] = {"status": "running", "attempts": attempt, "error": None, "completed_at": None}
        if attempt <= 1 or started_at is not None:
            values["started_at"] = _utc(started_at) or datetime.now(timezone.utc)
        values["partition"] = self.partition
        values["log_path"] = str(self.logs.block_path(block_uuid))
        self._set(block_uuid, values)
        self.logs.write(block_uuid, {"level": "INFO", "message": f"block {block_uuid} started (attempt {attempt})"})

    def on_block_log(self, *, run_id=None, block_uuid: str | None = None, record: dict | None = None, **kw: Any) -> None:
        self.logs.write(block_uuid or (record or {}).get("block_uuid"), dict(record or {}))

    def on_block_end(self, *, run_id=None, block_uuid: str, status: str, result: Any = None, **kw: Any) -> None:
        values: dict[str, Any] = {"status": status}
        if result is not None:
            for attr, key in (("attempts", "attempts"), ("rows", "rows"), ("error", "error"), ("tests_passed", "tests_passed"), ("tests_total", "tests_total")):
                value = getattr(result, attr, None)
                if value is not None:
                    values[key] = value
            if _utc(getattr(result, "started_at", None)):
                values["started_at"] = _utc(result.started_at)
            values["completed_at"] = _utc(getattr(result, "ended_at", None)) or datetime.now(timezone.utc)
        else:
            values["completed_at"] = datetime.now(timezone.utc)
        if isinstance(values.get("error"), str) and self.logs._secrets:
            values["error"] = self.logs._mask(values["error"])
        self._set(block_uuid, values)
        level = "ERROR" if status == "failed" else "INFO"
        message = f"block {block_uuid} {status}"
        if values.get("error") and status == "failed":
            message += f": {values['error']}"
        self.logs.write(block_uuid, {"level": level, "message": message})

    def on_run_end(self, *, run_id=None, status: str = "", result: Any = None, **kw: Any) -> None:
        self.logs.write(None, {"level": "ERROR" if status == "failed" else "INFO", "message": f"run {status}"})
