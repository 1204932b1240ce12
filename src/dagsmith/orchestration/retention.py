"""Run retention: delete old finished runs and old block outputs (Mage's storage-bloat complaint).

Two periods, both off unless configured:

* runs — ``DAGSMITH_RUN_RETENTION_DAYS`` (``OrchestrationSettings.run_retention_days``):
  a finished run (completed, failed, cancelled) that ended longer ago is deleted with its
  block runs, its log folder and its variables-store partition;
* outputs — the project ``metadata.yaml`` key ``variables_retention_period`` (``'90d'``,
  ``'12h'``, ``'2w'``, ``'30m'``, ``'45s'``; a bare number is days): variables-store
  partitions not written to for longer are deleted; run rows stay.

Both act on the project's variables store wherever ``variables_dir`` puts it: the data folder,
another folder, or an object store (``s3://…``, ``gs://…``; a partition's age there is its
newest object's).

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


def _store(settings):
    """The project's variables store, wherever its ``variables_dir`` puts it (a folder, ``s3://``, ``gs://``)."""
    from dagsmith.engine.storage import project_store, store_at

    try:
        return project_store(settings.project_root)
    except Exception:  # noqa: BLE001 - a broken metadata.yaml is reported by runs; the data folder is still cleaned
        log.warning("retention: the project's variables_dir cannot be read; cleaning the data folder's store only")
        return store_at(settings.data_dir)


def purge(db, settings, *, now: datetime) -> PurgeReport:
    """Delete runs older than the run retention and outputs older than the outputs retention."""
    from dagsmith.orchestration.logs import run_log_dir
    from dagsmith.orchestration.store import repo

    report = PurgeReport()
    days = getattr(settings, "run_retention_days", None)
    outputs_period = outputs_retention(settings.project_root)
    if not (days and days > 0) and outputs_period is None:
        return report
    store = _store(settings)
    with db.read() as session:
        busy = repo.unfinished_partitions(session)
    latest_cache: dict[str, set[str] | None] = {}

    def deletable(pipeline: str, partition: str | None) -> bool:
        if not partition or partition in _NOT_PARTITIONS or (pipeline, partition) in busy:
            return False
        if pipeline not in latest_cache:
            latest_cache[pipeline] = store.latest_pins(pipeline)
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
    if outputs_period is not None:
        cutoff = (now - outputs_period).timestamp()
        for pipeline in store.pipelines():
            old = []
            for partition in store.partitions(pipeline):
                mtime = store.partition_mtime(pipeline, partition)
                if mtime is not None and mtime < cutoff and deletable(pipeline, partition):
                    old.append(partition)
            if old:
                report.partitions += store.delete_partitions(pipeline, old)
    if report.runs or report.partitions:
        log.info("retention: deleted %d run(s) and %d output partition(s)", report.runs, report.partitions)
    return report
