"""The runtime variables a block's ``**kwargs`` receive (Mage's names and precedence).

pipeline variables < run variables (CLI, API, trigger, backfill) < system keys.
Every run gets a tz-aware ``execution_date`` (UTC now for ad-hoc runs), unlike
``mage run``, where blocks calling ``kwargs['execution_date'].strftime`` crash.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from dagsmith.util.clock import parse_iso


def as_aware(value: datetime | str | None) -> datetime:
    """A tz-aware datetime (UTC assumed for naive values and ISO strings without offset)."""
    if value is None:
        return datetime.now(timezone.utc)
    if isinstance(value, str):
        value = parse_iso(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def run_variables(
    *,
    pipeline_uuid: str,
    pipeline_variables: Mapping[str, Any],
    variables: Mapping[str, Any] | None,
    execution_date: datetime | str | None,
    interval: tuple[datetime, datetime] | None,
    event: Mapping[str, Any] | None,
    env: str | None,
    run_id: str,
    trigger_name: str | None,
    repo_path: str,
    partition: str,
) -> dict[str, Any]:
    """The variables shared by every block of one run (block-specific keys are added per block)."""
    merged: dict[str, Any] = dict(pipeline_variables or {})
    merged.update(variables or {})
    ex = as_aware(merged.pop("execution_date", None) if execution_date is None else execution_date)
    if interval is None:
        start, end = ex, ex + timedelta(days=1)
    else:
        start, end = as_aware(interval[0]), as_aware(interval[1])
    merged.update(
        {
            "execution_date": ex,
            "interval_start_datetime": start,
            "interval_end_datetime": end,
            "interval_seconds": int((end - start).total_seconds()),
            "ds": ex.strftime("%Y-%m-%d"),
            "hr": ex.strftime("%H"),
            "env": env or merged.get("env") or os.environ.get("ENV") or "dev",
            "event": dict(event or {}),
            "pipeline_uuid": pipeline_uuid,
            "pipeline_run_id": run_id,
            "execution_partition": partition,
            "trigger_name": trigger_name,
            "repo_path": repo_path,
            "context": {},
        }
    )
    return merged
