"""Ingesting ``dagsmith run``'s history inbox into the metadata DB.

The CLI (``dagsmith.cli.history``) does not open the database; it leaves
``<data dir>/inbox/<run_id>.start.json`` when a run starts and ``<run_id>.json`` (the run
result with its block log lines) when it ends. ``ingest_inbox`` turns each end file into
a ``pipeline_runs`` row (source ``cli``) with its block runs and per-block JSON-lines
logs, and a start file whose process is gone into a failed run — through the one
run-history writer (``orchestration.history.record_cli_run``) that records server runs
too. This module owns only the files: a file is claimed by an atomic rename before it is
read, so concurrent ingesters (server, scheduler, another process) never record a run
twice. The engine's run id is kept as the run's ``partition``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


INBOX = "inbox"


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
    from dagsmith.orchestration.history import record_cli_run

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
            record_cli_run(db, settings, start, now=now, abandoned=True)
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
            record_cli_run(db, settings, data, now=now)
            claimed.unlink(missing_ok=True)
            start = folder / f"{name[: -len('.json')]}.start.json"
            start.unlink(missing_ok=True)
            count += 1
    return count
