"""Run logs: structured JSON lines per run and per block under the data folder, and retention.

Layout: ``<data dir>/logs/<pipeline_uuid>/<run_id>/pipeline.jsonl`` (every record of the
run) and ``<block_uuid>.jsonl`` (that block's records). A record is one JSON object
per line: ``timestamp`` (ISO 8601, UTC), ``level``, ``message``, ``block_uuid`` and
``pipeline_run_id``, plus whatever the engine added. Known secret values are masked
before anything is written. ``purge_expired_logs`` deletes the folders of runs that
finished longer ago than the retention period.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from dagsmith.project.masking import MASK  # noqa: F401 - the one mask, re-exported for callers


def run_log_dir(logs_root: Path, pipeline_uuid: str, run_id: int | str) -> Path:
    from dagsmith.project.names import check_name

    return Path(logs_root) / check_name(pipeline_uuid, "pipeline") / check_name(str(run_id), "partition")


def _private_dirs(directory: Path) -> None:
    """Create the run's log folder and its missing parents with mode 0700 (logs hold what blocks print)."""
    missing = []
    current = Path(directory)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass


def _safe_name(block_uuid: str) -> str:
    return block_uuid.replace("/", "__").replace("\\", "__").replace("..", "_")


class RunLogWriter:
    """Appends JSON-line records for one run; safe to call from several threads."""

    def __init__(self, directory: Path, run_id: int | str, *, secrets: Iterable[str] = (), refresh: bool = True) -> None:
        from dagsmith.project.masking import MASKER

        self.directory = Path(directory)
        self.run_id = run_id
        MASKER.add(*secrets)
        # the masking source is asked again at every run start: a secret set a moment ago in
        # another process is masked in this run's first line already (``refresh=False``: the
        # caller has just handed the source what it holds, as a worker does in its claim)
        if refresh:
            MASKER.refresh()
        self._masker = MASKER
        self._handles: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def _secrets(self) -> tuple[str, ...]:
        return self._masker.values()

    def block_path(self, block_uuid: str | None) -> Path:
        return self.directory / (f"{_safe_name(block_uuid)}.jsonl" if block_uuid else "pipeline.jsonl")

    def _mask(self, text: str) -> str:
        return self._masker.mask(text)

    def write(self, block_uuid: str | None, record: dict[str, Any]) -> None:
        rec = dict(record)
        ts = rec.get("timestamp")
        if isinstance(ts, datetime):
            rec["timestamp"] = ts.astimezone(timezone.utc).isoformat()
        elif not ts:
            rec["timestamp"] = datetime.now(timezone.utc).isoformat()
        rec["level"] = str(rec.get("level") or "INFO").upper()  # one case in stored logs (blocks log 'info')
        rec.setdefault("message", "")
        rec["block_uuid"] = block_uuid
        rec["pipeline_run_id"] = self.run_id
        line = self._mask(json.dumps(rec, default=str, ensure_ascii=False)) + "\n"
        with self._lock:
            targets = ["pipeline.jsonl"] + ([f"{_safe_name(block_uuid)}.jsonl"] if block_uuid else [])
            for name in targets:
                handle = self._handles.get(name)
                if handle is None:
                    _private_dirs(self.directory)
                    fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    handle = os.fdopen(fd, "a", encoding="utf-8")
                    self._handles[name] = handle
                handle.write(line)
                handle.flush()

    def info(self, message: str, **extra: Any) -> None:
        self.write(None, {"level": "INFO", "message": message, **extra})

    def close(self) -> None:
        with self._lock:
            for handle in self._handles.values():
                try:
                    handle.close()
                except OSError:  # pragma: no cover
                    pass
            self._handles.clear()


def read_logs(
    directory: Path | str | None,
    *,
    block_uuid: str | None = None,
    level: str | None = None,
    offset: int = 0,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Records of a run (or one block of it), oldest first; unreadable lines come back as text."""
    if not directory:
        return []
    path = Path(directory) / (f"{_safe_name(block_uuid)}.jsonl" if block_uuid else "pipeline.jsonl")
    if not path.is_file():
        return []
    out: list[dict[str, Any]] = []
    wanted = level.upper() if level else None
    index = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            rec = _record_of(line)
            if wanted and str(rec.get("level", "")).upper() != wanted:
                continue
            if index >= offset:
                out.append(rec)
                if len(out) >= limit:
                    break
            index += 1
    return out


class LogTail(NamedTuple):
    """What ``tail_logs`` read: the records, the byte offset to read from next time, whether the
    file was shorter than the offset asked for (rewritten: the records start from its beginning),
    and how many earlier records ``keep`` left out."""

    records: list[dict[str, Any]]
    next: int
    reset: bool = False
    dropped: int = 0


def tail_logs(directory: Path | str | None, *, block_uuid: str | None = None, after: int = 0, keep: int | None = None) -> LogTail:
    """The records written to a run's log (or one block's) after byte offset ``after``, oldest first,
    the last ``keep`` of them when given. Only whole lines are read: a line still being written
    is left for the next call, which starts from ``next``. A live page polls with it, so each poll
    reads only what is new."""
    if not directory:
        return LogTail([], 0)
    path = Path(directory) / (f"{_safe_name(block_uuid)}.jsonl" if block_uuid else "pipeline.jsonl")
    try:
        handle = open(path, "rb")
    except OSError:  # not written yet
        return LogTail([], 0, reset=after > 0)
    with handle:
        size = os.fstat(handle.fileno()).st_size
        reset = after > size
        start = 0 if reset else max(after, 0)
        handle.seek(start)
        data = handle.read(size - start)
    whole = data.rfind(b"\n") + 1
    lines = [line for line in data[:whole].splitlines() if line.strip()]
    dropped = 0
    if keep is not None and len(lines) > keep:
        dropped = len(lines) - keep
        lines = lines[dropped:]
    records: list[dict[str, Any]] = []
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").strip()
        if line:
            records.append(_record_of(line))
    return LogTail(records, start + whole, reset, dropped)


def _record_of(line: str) -> dict[str, Any]:
    """A log line's record; a line that is not a JSON object is shown as its text."""
    try:
        rec = json.loads(line)
    except ValueError:
        rec = None
    return rec if isinstance(rec, dict) else {"message": line, "level": "INFO"}


def purge_expired_logs(db, logs_root: Path, *, now: datetime, retention_days: float | None) -> int:
    """Delete log folders of runs finished more than ``retention_days`` ago; returns how many."""
    if not retention_days or retention_days <= 0:
        return 0
    from dagsmith.orchestration.store import repo

    before = now - timedelta(days=retention_days)
    purged = 0
    while True:
        with db.session() as session:
            runs = repo.runs_with_expired_logs(session, before=before)
            if not runs:
                break
            for run in runs:
                directory = Path(run.log_dir) if run.log_dir else run_log_dir(logs_root, run.pipeline_uuid, run.id)
                shutil.rmtree(directory, ignore_errors=True)
            repo.mark_logs_purged(session, [r.id for r in runs])
            purged += len(runs)
    return purged
