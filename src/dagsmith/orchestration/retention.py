"""Run retention: delete old finished runs and old block outputs (Mage's storage-bloat complaint).

Two periods, both off unless configured:

* runs — ``DAGSMITH_RUN_RETENTION_DAYS`` (``OrchestrationSettings.run_retention_days``):
  a finished run (completed, failed, cancelled) that ended longer ago is deleted with its
  block runs, its log folder and its variables-store partition;
* outputs — the project ``metadata.yaml`` key ``variables_retention_period`` (``'90d'``,
  ``'12h'``, ``'2w'``, ``'30m'``, ``'45s'``; a bare number is days): variables-store
  partitions not written to for longer are deleted; run rows stay.

What is never deleted: a waiting or running run, the partition of a waiting or running
run, a partition ``latest.json`` points to for some block (``dagsmith run --block`` reads
it), runs of a backfill that is still going. The scheduler calls ``purge`` now and then.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dagsmith.errors import ConfigError

log = logging.getLogger("dagsmith.retention")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PERIOD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
#: folder names under .variables that are not run partitions
_NOT_PARTITIONS = {"global"}


def parse_period(value: Any, *, source: str = "variables_retention_period") -> timedelta | None:
    """``'90d'`` → 90 days; None/empty/0 → None (keep forever); ``ConfigError`` if unreadable."""
    if value in (None, "", 0, False):
        return None
    if isinstance(value, (int, float)):
        return timedelta(days=float(value)) if value > 0 else None
    match = _PERIOD.match(str(value))
    if not match:
        raise ConfigError(
            f"{source} {value!r} is not a period",
            hint="write a number and a unit: '90d' (days), '12h', '2w', '30m', '45s'",
        )
    amount, unit = float(match.group(1)), (match.group(2) or "d").lower()
    return timedelta(seconds=amount * _UNITS[unit]) if amount > 0 else None


def outputs_retention(project_root: Path) -> timedelta | None:
    """The project's ``variables_retention_period`` (None when unset or the project cannot be read)."""
    from dagsmith.project.pipelines import load_project

    try:
        metadata = load_project(project_root).metadata
    except Exception:  # noqa: BLE001 - a broken metadata.yaml is reported by runs, not here
        return None
    return parse_period(metadata.get("variables_retention_period"))


@dataclass
class PurgeReport:
    runs: int = 0
    partitions: int = 0


def _latest_partitions(store, pipeline: str) -> set[str] | None:
    """Partitions ``latest.json`` points to; None if it exists but cannot be read (then keep everything)."""
    import json

    path = store.variables_dir(pipeline) / "latest.json"
    if not path.is_file():
        return set()
    try:
        latest = json.loads(path.read_text(encoding="utf-8")) or {}
        return {str(v) for v in latest.values() if v}
    except (OSError, ValueError, AttributeError):
        return None


def purge(db, settings, *, now: datetime) -> PurgeReport:
    """Delete runs older than the run retention and outputs older than the outputs retention."""
    from dagsmith.engine.storage import store_at
    from dagsmith.orchestration.logs import run_log_dir
    from dagsmith.orchestration.store import repo

    report = PurgeReport()
    store = store_at(settings.data_dir)
    days = getattr(settings, "run_retention_days", None)
    outputs_period = outputs_retention(settings.project_root)
    if not (days and days > 0) and outputs_period is None:
        return report
    with db.read() as session:
        busy = repo.unfinished_partitions(session)
    latest_cache: dict[str, set[str] | None] = {}

    def deletable(pipeline: str, partition: str | None) -> bool:
        if not partition or partition in _NOT_PARTITIONS or (pipeline, partition) in busy:
            return False
        if pipeline not in latest_cache:
            latest_cache[pipeline] = _latest_partitions(store, pipeline)
        pinned = latest_cache[pipeline]
        return pinned is not None and partition not in pinned

    if days and days > 0:
        before = now - timedelta(days=float(days))
        while True:
            with db.session() as session:
                runs = repo.expired_runs(session, before=before)
                if not runs:
                    break
                doomed = [
                    (r.pipeline_uuid, r.partition or str(r.id), r.log_dir or str(run_log_dir(settings.logs_dir, r.pipeline_uuid, r.id)))
                    for r in runs
                ]
                report.runs += repo.delete_runs(session, [r.id for r in runs])
            for pipeline, partition, log_dir in doomed:
                shutil.rmtree(log_dir, ignore_errors=True)
                if deletable(pipeline, partition):
                    report.partitions += store.delete_partitions(pipeline, [partition])
    if outputs_period is not None and store.root.is_dir():
        cutoff = (now - outputs_period).timestamp()
        for folder in sorted(p for p in store.root.iterdir() if p.is_dir()):
            pipeline = folder.name
            old = []
            for partition in store.partitions(pipeline):
                try:
                    mtime = (store.variables_dir(pipeline) / partition).stat().st_mtime
                except OSError:
                    continue
                if mtime < cutoff and deletable(pipeline, partition):
                    old.append(partition)
            if old:
                report.partitions += store.delete_partitions(pipeline, old)
    if report.runs or report.partitions:
        log.info("retention: deleted %d run(s) and %d output partition(s)", report.runs, report.partitions)
    return report
