"""Ingesting ``dagsmith run``'s history inbox into the metadata DB.

The CLI (``dagsmith.cli.history``) does not open the database; it leaves
``<data dir>/inbox/<run_id>.start.json`` when a run starts and ``<run_id>.json`` (the run
result with its block log lines) when it ends. ``ingest_inbox`` turns each end file into
a ``pipeline_runs`` row (source ``cli``) with its block runs and per-block JSON-lines
logs, and a start file whose process is gone into a failed run. A file is claimed by an
atomic rename before it is read, so concurrent ingesters (server, scheduler, another
process) never record a run twice. The engine's run id is kept as the run's ``partition``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagsmith.util.clock import parse_iso

INBOX = "inbox"


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        dt = parse_iso(str(value))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _claim(path: Path) -> Path | None:
    claimed = path.with_name(f".{path.name}.{os.getpid()}.ingesting")
    try:
        os.replace(path, claimed)
    except FileNotFoundError:
        return None  # another process took it
    return claimed


def ingest_inbox(db, settings, *, now: datetime | None = None) -> int:
    """Record every finished (or abandoned) CLI run waiting in the inbox; returns how many."""
    folder = settings.data_dir / INBOX
    if not folder.is_dir():
        return 0
    now = now or datetime.now(timezone.utc)
    count = 0
    names = sorted(os.listdir(folder))
    ended = {n[: -len(".json")] for n in names if n.endswith(".json") and not n.endswith(".start.json") and not n.startswith(".")}
    for name in names:
        if name.startswith("."):
            continue
        path = folder / name
        if name.endswith(".start.json"):
            run_id = name[: -len(".start.json")]
            if run_id in ended:
                continue
            try:
                start = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if _alive(start.get("pid")):
                continue
            claimed = _claim(path)
            if claimed is None:
                continue
            _record(db, settings, {**start, "status": "failed", "error": "the `dagsmith run` process ended before the run finished", "ended_at": now.isoformat()}, now=now)
            claimed.unlink(missing_ok=True)
            count += 1
        elif name.endswith(".json"):
            claimed = _claim(path)
            if claimed is None:
                continue
            try:
                data = json.loads(claimed.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                claimed.rename(folder / f"{name}.unreadable")
                continue
            _record(db, settings, data, now=now)
            claimed.unlink(missing_ok=True)
            start = folder / f"{name[: -len('.json')]}.start.json"
            start.unlink(missing_ok=True)
            count += 1
    return count


def _record(db, settings, data: dict, *, now: datetime) -> None:
    from dagsmith.orchestration.logs import RunLogWriter, run_log_dir
    from dagsmith.orchestration.store import repo

    pipeline_uuid = str(data.get("pipeline_uuid") or "unknown")
    status = str(data.get("status") or "failed")
    if status not in ("completed", "failed", "cancelled"):
        status = "failed"
    blocks = data.get("blocks") or {}
    error = data.get("error")
    if status == "failed" and not error:
        failed = [u for u, b in blocks.items() if isinstance(b, dict) and b.get("status") == "failed"] if isinstance(blocks, dict) else []
        error = f"block(s) failed: {', '.join(failed)}" if failed else "the run failed"
    started = _dt(data.get("started_at")) or now
    with db.session() as session:
        run = repo.create_run(
            session,
            pipeline_uuid,
            source=str(data.get("source") or "cli"),
            execution_date=_dt(data.get("execution_date")) or started,
            variables=data.get("variables") or {},
            status=status,
            now=started,
        )
        run.started_at = started
        run.completed_at = _dt(data.get("ended_at")) or now
        run.error = error
        run.partition = str(data.get("partition") or data.get("run_id") or run.id)
        log_dir = run_log_dir(settings.logs_dir, pipeline_uuid, run.id)
        run.log_dir = str(log_dir)
        run_id = run.id
        if isinstance(blocks, dict):
            repo.ensure_block_runs(session, run_id, list(blocks), partition=run.partition, log_dir=str(log_dir))
            for uuid, b in blocks.items():
                if not isinstance(b, dict):
                    continue
                repo.update_block_run(
                    session, run_id, uuid,
                    status=b.get("status") or "initial", attempts=int(b.get("attempts") or 0), rows=b.get("rows"),
                    error=b.get("error"), tests_passed=b.get("tests_passed"), tests_total=b.get("tests_total"),
                    started_at=_dt(b.get("started_at")), completed_at=_dt(b.get("ended_at")),
                    log_path=str(log_dir / f"{uuid}.jsonl"),
                )
        elif isinstance(blocks, list):  # a start file: only the block names are known
            repo.ensure_block_runs(session, run_id, [str(b) for b in blocks], partition=run.partition, log_dir=str(log_dir))
            session.flush()
            for uuid in blocks:
                repo.update_block_run(session, run_id, str(uuid), status="cancelled")
        repo.audit(session, "run.cli", "pipeline_run", run_id, {"engine_run_id": data.get("run_id")}, actor="cli", now=now)
    writer = RunLogWriter(log_dir, run_id)
    try:
        for uuid, records in (data.get("logs") or {}).items():
            for record in records or []:
                if isinstance(record, dict):
                    writer.write(uuid or None, record)
        writer.write(None, {"level": "ERROR" if status == "failed" else "INFO", "message": f"run {status} (recorded from `dagsmith run`)"})
    finally:
        writer.close()
