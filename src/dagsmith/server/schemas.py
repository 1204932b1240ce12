"""Pydantic request bodies of the REST API, in Mage's wrapped shapes.

Mage wraps a body in its resource's singular name (``{"pipeline_schedule": {...}}``,
``{"backfill": {...}}``, ``{"pipeline_run": {...}}``) and lists in the plural with a
``metadata`` count; dagsmith accepts and returns the same. Unknown keys are ignored
so Mage's UI payloads pass.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TriggerFields(_Loose):
    name: str | None = None
    description: str | None = None
    schedule_type: Literal["time", "api", "event"] | None = None
    schedule_interval: str | None = None
    start_time: datetime | None = None
    timezone: str | None = None
    status: Literal["active", "inactive"] | None = None
    variables: dict[str, Any] | None = None
    sla: int | None = None
    settings: dict[str, Any] | None = None
    catchup: Literal["none", "latest", "all"] | None = None
    envs: list[str] | None = None
    in_code: bool | None = Field(default=None, description="keep this trigger in pipelines/<p>/triggers.yaml")


class TriggerBody(_Loose):
    pipeline_schedule: TriggerFields


class RunFields(_Loose):
    variables: dict[str, Any] | None = None
    execution_date: datetime | None = None
    event: dict[str, Any] | None = None
    status: Literal["cancelled"] | None = None
    pipeline_run_action: Literal["retry_blocks"] | None = None
    from_block_uuid: str | None = None


class RunBody(_Loose):
    pipeline_run: RunFields = Field(default_factory=RunFields)


class BackfillFields(_Loose):
    name: str | None = None
    start_datetime: datetime | None = None
    end_datetime: datetime | None = None
    interval_type: Literal["second", "minute", "hour", "day", "week", "month", "year", "custom"] | None = None
    interval_units: int | None = Field(default=None, ge=1)
    variables: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    concurrency: int | None = Field(default=None, ge=1)
    timezone: str | None = None
    #: "initial" starts a backfill (Mage's PUT), "cancelled" cancels it
    status: Literal["initial", "cancelled"] | None = None
    #: dagsmith: "rerun_failed" queues the failed dates again
    action: Literal["rerun_failed"] | None = None


class BackfillBody(_Loose):
    backfill: BackfillFields


class SecretFields(_Loose):
    name: str
    value: str
    pipeline_uuid: str | None = None


class SecretBody(_Loose):
    secret: SecretFields


class VariablesBody(_Loose):
    variables: dict[str, Any]
