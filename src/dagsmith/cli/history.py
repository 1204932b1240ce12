"""Cheap run history for ``dagsmith run``: JSON files in an inbox the metadata DB ingests later.

Opening the metadata DB (SQLAlchemy, migrations) would cost a CLI run more than a small
pipeline takes, so the CLI writes two small files instead::

    <data_dir>/inbox/<run_id>.start.json   when the run starts (a crash leaves it behind)
    <data_dir>/inbox/<run_id>.json         when it ends: the run result and block log lines

``dagsmith.orchestration`` ingests the inbox into its tables whenever it opens the DB
(server start, API queries), so CLI runs appear in the run history and the UI. A start file
with no end file from a process that is gone is recorded as a failed run.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

INBOX = "inbox"


def inbox_dir(project_root: str | os.PathLike[str]) -> Path:
    from dagsmith.project.layout import data_dir

    return data_dir(Path(project_root).resolve()) / INBOX


def _write(path: Path, data: Any) -> None:
    from dagsmith.util.fs import write_text_atomic

    write_text_atomic(path, json.dumps(data, default=str))


class InboxRecorder:
    """A RunObserver writing the start and the end of a CLI run into the inbox."""

    def __init__(self, project_root: str | os.PathLike[str], pipeline_uuid: str, *, variables: dict | None = None) -> None:
        self.folder = inbox_dir(project_root)
        self.pipeline_uuid = pipeline_uuid
        self.variables = variables or {}
        self.logs: dict[str, list[dict]] = {}
        self.lock = threading.Lock()
        self.run_id: str | None = None

    def on_run_start(self, *, run_id: str, blocks: list[str], **kw: Any) -> None:
        self.run_id = run_id
        _write(
            self.folder / f"{run_id}.start.json",
            {
                "run_id": run_id,
                "pipeline_uuid": self.pipeline_uuid,
                "source": "cli",
                "pid": os.getpid(),
                "started_at": datetime.now(timezone.utc).isoformat(),
                "variables": self.variables,
                "blocks": blocks,
            },
        )

    def on_block_start(self, **kw: Any) -> None:
        pass

    def on_block_log(self, *, block_uuid: str, record: dict, **kw: Any) -> None:
        with self.lock:
            self.logs.setdefault(block_uuid, []).append(record)

    def on_block_end(self, **kw: Any) -> None:
        pass

    def on_run_end(self, *, run_id: str, result: Any, **kw: Any) -> None:
        data = result.to_dict()
        data.update(source="cli", variables=self.variables, logs=self.logs)
        _write(self.folder / f"{run_id}.json", data)
        try:
            (self.folder / f"{run_id}.start.json").unlink()
        except FileNotFoundError:
            pass
