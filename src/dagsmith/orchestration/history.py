"""The one run-history writer: engine events → block-run rows and run log lines.

Server and CLI runs are recorded by the same code, ``RunHistory`` (the engine's
``RunObserver``):

* a worker gives each run it executes a ``RunHistory`` whose block changes go to the
  worker's ``RunRecorder`` (batched with other runs, fenced by the claim, retried through
  outages); without a recorder each event is one short transaction;
* ``dagsmith run`` does not open the database (it would cost a small run more than the run
  itself): ``cli.history.InboxRecorder`` leaves the run's record in the inbox, and
  ``record_cli_run`` — called by ``orchestration.inbox`` — creates the run row and replays
  the record as the same events through a ``RunHistory`` writing in that transaction.

How an event becomes column values (``block_start_values``, ``block_end_values``) and
the text of a failed run's error (``run_error``) are functions here, shared by every path.
Log records go to the run's JSON-lines files (``logs.RunLogWriter``), never to the
database. The observer is called from the engine's threads; it keeps no mutable shared
state besides the thread-safe log writer.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Protocol

from dagsmith.orchestration.logs import RunLogWriter
from dagsmith.util.clock import parse_iso, utcnow

#: block statuses a finished block can have (what ``on_block_end`` reports)
FINAL_BLOCK_STATUSES = ("completed", "failed", "cancelled", "upstream_failed", "condition_failed")
CLI_ABANDONED = "the `dagsmith run` process ended before the run finished"


def utc(value: Any) -> datetime | None:
    """A datetime (naive means UTC) or ISO 8601 text → tz-aware datetime; anything else → None."""
    if isinstance(value, str) and value:
        try:
            value = parse_iso(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def block_start_values(*, attempt: int, started_at: Any, partition: str | None, log_path: str) -> dict[str, Any]:
    """Columns of a block run when an attempt starts (a retry keeps the first start unless told)."""
    values: dict[str, Any] = {"status": "running", "attempts": attempt, "error": None, "completed_at": None}
    if attempt <= 1 or started_at is not None:
        values["started_at"] = utc(started_at) or utcnow()
    values["partition"] = partition
    values["log_path"] = log_path
    return values


def block_end_values(status: str, result: Any = None) -> dict[str, Any]:
    """Columns of a block run when it ends; ``result`` is the engine's ``BlockResult`` (or alike)."""
    values: dict[str, Any] = {"status": status}
    if result is not None:
        for key in ("attempts", "rows", "error", "tests_passed", "tests_total"):
            value = getattr(result, key, None)
            if value is not None:
                values[key] = value
        if utc(getattr(result, "started_at", None)):
            values["started_at"] = utc(result.started_at)
        values["completed_at"] = utc(getattr(result, "ended_at", None)) or utcnow()
    else:
        values["completed_at"] = utcnow()
    return values


def run_error(status: str, blocks: Any) -> str | None:
    """The error recorded for a failed run: which blocks failed (``blocks``: uuid → result or dict)."""
    if status != "failed":
        return None
    failed = [uuid for uuid, b in (blocks or {}).items() if (b.get("status") if isinstance(b, dict) else getattr(b, "status", "")) == "failed"]
    return f"block(s) failed: {', '.join(failed)}" if failed else "the run failed"


class BlockSink(Protocol):
    """Where block-run changes go."""

    def ensure(self, run_id: int, blocks: list[str], *, partition: str | None, log_dir: str) -> None: ...

    def set(self, run_id: int, block_uuid: str, values: dict[str, Any]) -> None: ...


class RecorderSink:
    """Through a worker's ``RunRecorder`` (batched, fenced, retried)."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def ensure(self, run_id: int, blocks: list[str], *, partition: str | None, log_dir: str) -> None:
        self.recorder.ensure_blocks(run_id, blocks, partition=partition, log_dir=log_dir)

    def set(self, run_id: int, block_uuid: str, values: dict[str, Any]) -> None:
        self.recorder.block(run_id, block_uuid, values)


class SessionSink:
    """Into an open session (one transaction for a replayed record), or one short transaction per event."""

    def __init__(self, db: Any = None, *, session: Any = None) -> None:
        self.db = db
        self.session = session

    def _write(self, fn, *args: Any, **kw: Any) -> None:
        if self.session is not None:
            fn(self.session, *args, **kw)
            return
        with self.db.session() as session:
            fn(session, *args, **kw)

    def ensure(self, run_id: int, blocks: list[str], *, partition: str | None, log_dir: str) -> None:
        from dagsmith.orchestration.store import repo

        self._write(repo.ensure_block_runs, run_id, blocks, partition=partition, log_dir=log_dir)

    def set(self, run_id: int, block_uuid: str, values: dict[str, Any]) -> None:
        from dagsmith.orchestration.store import repo

        self._write(repo.update_block_run, run_id, block_uuid, **values)


class RunHistory:
    """Records one pipeline run's events: block runs in the metadata DB, log lines on disk.

    ``narrate`` (live runs) adds the lifecycle lines (``block X started``, ``run completed``)
    to the log; a replayed CLI record already holds the lines the CLI printed.
    """

    def __init__(self, db: Any, run_id: int, pipeline_uuid: str, *, log_writer: RunLogWriter, partition: str | None = None,
                 recorder: Any = None, sink: BlockSink | None = None, narrate: bool = True) -> None:
        self.run_id = int(run_id)
        self.pipeline_uuid = pipeline_uuid
        self.logs = log_writer
        self.partition = partition
        self.narrate = narrate
        self.sink: BlockSink = sink or (RecorderSink(recorder) if recorder is not None else SessionSink(db))

    def _say(self, block_uuid: str | None, level: str, message: str) -> None:
        if self.narrate:
            self.logs.write(block_uuid, {"level": level, "message": message})

    def on_run_start(self, *, run_id=None, pipeline_uuid=None, blocks=(), **kw: Any) -> None:
        names = list(blocks)
        self.sink.ensure(self.run_id, names, partition=self.partition, log_dir=str(self.logs.directory))
        self._say(None, "INFO", f"run started: {len(names)} block(s)")

    def on_blocks_added(self, *, run_id=None, parent: str | None = None, blocks=(), **kw: Any) -> None:
        """Dynamic children of ``parent`` were created: record them as ``initial`` block runs at once."""
        children = [str(b) for b in blocks or ()]
        if not children:
            return
        self.sink.ensure(self.run_id, children, partition=self.partition, log_dir=str(self.logs.directory))
        self._say(parent, "INFO", f"block {parent} fanned out into {len(children)} dynamic block(s)")

    def on_block_start(self, *, run_id=None, block_uuid: str, attempt: int = 1, started_at=None, **kw: Any) -> None:
        self.sink.set(self.run_id, block_uuid, block_start_values(
            attempt=attempt, started_at=started_at, partition=self.partition, log_path=str(self.logs.block_path(block_uuid)),
        ))
        self._say(block_uuid, "INFO", f"block {block_uuid} started (attempt {attempt})")

    def on_block_log(self, *, run_id=None, block_uuid: str | None = None, record: dict | None = None, **kw: Any) -> None:
        self.logs.write(block_uuid or (record or {}).get("block_uuid"), dict(record or {}))

    def on_block_end(self, *, run_id=None, block_uuid: str, status: str, result: Any = None, **kw: Any) -> None:
        values = block_end_values(status, result)
        if isinstance(values.get("error"), str) and self.logs._secrets:
            values["error"] = self.logs._mask(values["error"])
        self.sink.set(self.run_id, block_uuid, values)
        message = f"block {block_uuid} {status}"
        if values.get("error") and status == "failed":
            message += f": {values['error']}"
        self._say(block_uuid, "ERROR" if status == "failed" else "INFO", message)

    def on_run_end(self, *, run_id=None, status: str = "", result: Any = None, **kw: Any) -> None:
        self._say(None, "ERROR" if status == "failed" else "INFO", f"run {status}")


# ---------------------------------------------------------------- CLI runs (the inbox's records)


def _block_result(record: dict, run_ended: datetime | None) -> SimpleNamespace:
    """A block of a CLI run's record (``BlockResult.to_dict()``) as the result ``on_block_end`` takes.

    A block that never ran (``upstream_failed``, ``cancelled``) has no end of its own: it
    ended with the run, as the live observer would have recorded it.
    """
    return SimpleNamespace(
        attempts=int(record.get("attempts") or 0), rows=record.get("rows"), error=record.get("error"),
        tests_passed=record.get("tests_passed"), tests_total=record.get("tests_total"),
        started_at=utc(record.get("started_at")), ended_at=utc(record.get("ended_at")) or run_ended,
    )


def replay_blocks(history: RunHistory, blocks: dict | list, *, ended_at: datetime | None = None) -> None:
    """The block events of a CLI run's record: its blocks become rows, finished ones end.

    ``blocks`` is the end record's uuid → result mapping, or the start record's list of
    names (the process died: every block ends ``cancelled``); ``ended_at`` is the run's end.
    """
    if isinstance(blocks, dict):
        history.on_run_start(blocks=list(blocks))
        for uuid, record in blocks.items():
            if isinstance(record, dict) and record.get("status") in FINAL_BLOCK_STATUSES:
                history.on_block_end(block_uuid=uuid, status=record["status"], result=_block_result(record, ended_at))
    else:
        names = [str(b) for b in blocks]
        history.on_run_start(blocks=names)
        for uuid in names:
            history.on_block_end(block_uuid=uuid, status="cancelled", result=SimpleNamespace(ended_at=ended_at))


def record_cli_run(db: Any, settings: Any, data: dict, *, now: datetime, abandoned: bool = False) -> int:
    """Record a ``dagsmith run`` from its inbox record: the run row, its block runs, its logs; returns the run id.

    ``abandoned``: ``data`` is a start record whose process is gone — a failed run whose
    blocks are cancelled.
    """
    from dagsmith.orchestration.logs import run_log_dir
    from dagsmith.orchestration.store import repo

    pipeline_uuid = str(data.get("pipeline_uuid") or "unknown")
    status = "failed" if abandoned else str(data.get("status") or "failed")
    if status not in ("completed", "failed", "cancelled"):
        status = "failed"
    blocks = data.get("blocks") or {}
    error = CLI_ABANDONED if abandoned else (data.get("error") or run_error(status, blocks if isinstance(blocks, dict) else {}))
    started = utc(data.get("started_at")) or now
    with db.session() as session:
        run = repo.create_run(
            session, pipeline_uuid, source=str(data.get("source") or "cli"),
            execution_date=utc(data.get("execution_date")) or started, variables=data.get("variables") or {},
            status=status, now=started,
        )
        run.started_at = started
        run.completed_at = (now if abandoned else utc(data.get("ended_at"))) or now
        run.error = error
        run.partition = str(data.get("partition") or data.get("run_id") or run.id)
        log_dir = run_log_dir(settings.logs_dir, pipeline_uuid, run.id)
        run.log_dir = str(log_dir)
        run_id = run.id
        writer = RunLogWriter(log_dir, run_id)  # opens no file before the first line
        history = RunHistory(db, run_id, pipeline_uuid, log_writer=writer, partition=run.partition,
                             sink=SessionSink(session=session), narrate=False)
        if isinstance(blocks, (dict, list)):
            session.flush()
            replay_blocks(history, blocks, ended_at=run.completed_at)
        repo.audit(session, "run.cli", "pipeline_run", run_id, {"engine_run_id": data.get("run_id")}, actor="cli", now=now)
    try:  # logs after the commit: a run that could not be recorded leaves no log folder behind
        for uuid, records in (data.get("logs") or {}).items():
            for record in records or []:
                if isinstance(record, dict):
                    history.on_block_log(block_uuid=uuid or None, record=record)
        writer.write(None, {"level": "ERROR" if status == "failed" else "INFO", "message": f"run {status} (recorded from `dagsmith run`)"})
    finally:
        writer.close()
    return run_id
