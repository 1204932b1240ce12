"""Shared helpers of the API routes: Mage-style list envelopes and row → JSON converters."""

from __future__ import annotations

from typing import Any

from fastapi.concurrency import run_in_threadpool

__all__ = ["listing", "trigger_to_dict", "block_run_to_dict", "backfill_to_dict", "run_in_threadpool"]


def listing(plural: str, items: list[Any], count: int | None = None, *, limit: int | None = None, offset: int = 0) -> dict[str, Any]:
    total = len(items) if count is None else count
    return {plural: items, "metadata": {"count": total, "next": bool(limit) and offset + len(items) < total}}


def trigger_to_dict(trigger, *, next_run: Any = None) -> dict[str, Any]:
    return {
        "id": trigger.id,
        "pipeline_uuid": trigger.pipeline_uuid,
        "name": trigger.name,
        "description": trigger.description,
        "schedule_type": trigger.schedule_type,
        "schedule_interval": trigger.schedule_interval,
        "start_time": trigger.start_time,
        "timezone": trigger.timezone,
        "status": trigger.status,
        "variables": trigger.variables or {},
        "sla": trigger.sla,
        "token": trigger.token,
        "settings": trigger.settings or {},
        "catchup": trigger.catchup,
        "envs": trigger.envs or [],
        "in_code": trigger.in_code,
        "last_enabled_at": trigger.last_enabled_at,
        "last_execution_date": trigger.last_execution_date,
        "next_execution_date": next_run,
        "api_url": f"/api/pipeline_schedules/{trigger.id}/pipeline_runs/{trigger.token}",
        "created_at": trigger.created_at,
        "updated_at": trigger.updated_at,
    }


def block_run_to_dict(row) -> dict[str, Any]:
    return {
        "id": row.id,
        "pipeline_run_id": row.pipeline_run_id,
        "block_uuid": row.block_uuid,
        "status": row.status,
        "attempts": row.attempts,
        "rows": row.rows,
        "error": row.error,
        "tests_passed": row.tests_passed,
        "tests_total": row.tests_total,
        "partition": row.partition,
        "log_path": row.log_path,
        "started_at": row.started_at,
        "completed_at": row.completed_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def backfill_to_dict(backfill, progress: dict | None = None) -> dict[str, Any]:
    return {
        "id": backfill.id,
        "pipeline_uuid": backfill.pipeline_uuid,
        "name": backfill.name,
        "start_datetime": backfill.start_datetime,
        "end_datetime": backfill.end_datetime,
        "interval_type": backfill.interval_type,
        "interval_units": backfill.interval_units,
        "timezone": backfill.timezone,
        "variables": backfill.variables or {},
        "settings": backfill.settings or {},
        "concurrency": backfill.concurrency,
        "status": backfill.status,
        "total_run_count": backfill.total_runs,
        "progress": progress,
        "started_at": backfill.started_at,
        "completed_at": backfill.completed_at,
        "created_at": backfill.created_at,
        "updated_at": backfill.updated_at,
    }
