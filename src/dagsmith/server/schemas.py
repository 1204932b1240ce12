"""Pydantic request bodies and response models of the REST API, in Mage's wrapped shapes.

Mage wraps a body in its resource's singular name (``{"pipeline_schedule": {...}}``,
``{"backfill": {...}}``, ``{"pipeline_run": {...}}``) and lists in the plural with a
``metadata`` count; dagsmith accepts and returns the same. Unknown keys in requests are
ignored so Mage's UI payloads pass.

Responses: ``PipelineRunOut``, ``BlockRunOut``, ``TriggerOut`` and ``BackfillOut`` are built
from the store's rows (``.of(row)``: Mage's field names, every field present, ``null`` when
unset) and wrapped by the ``…Envelope`` / ``…List`` models the routes declare as
``response_model``, so ``/api/openapi.json`` documents what the API answers. Date-times are
written as Python's ``isoformat()`` (``+00:00``, as the API always wrote them), not ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer


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


# ---------------------------------------------------------------- responses

#: a date-time written as ``isoformat()`` in JSON (pydantic would write ``Z`` for UTC)
IsoDatetime = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json")]


class ListMetadata(BaseModel):
    count: int = Field(description="all matching items, not only this page")
    next: bool = Field(description="true when a later page (offset + limit) has more")


class PipelineRunOut(BaseModel):
    """A pipeline run (Mage's ``pipeline_run`` fields plus dagsmith's: source, worker, claims, error)."""

    id: int
    pipeline_uuid: str
    pipeline_schedule_id: int | None
    backfill_id: int | None
    source: str
    status: str
    execution_date: IsoDatetime | None
    timezone: str | None
    interval_start_datetime: IsoDatetime | None
    interval_end_datetime: IsoDatetime | None
    variables: dict[str, Any]
    event_variables: dict[str, Any]
    partition: str
    worker_id: str | None
    claims: int | None
    cancel_requested: bool | None
    passed_sla: bool | None
    error: str | None
    started_at: IsoDatetime | None
    completed_at: IsoDatetime | None
    created_at: IsoDatetime | None
    updated_at: IsoDatetime | None

    @classmethod
    def of(cls, run) -> "PipelineRunOut":
        return cls(
            id=run.id,
            pipeline_uuid=run.pipeline_uuid,
            pipeline_schedule_id=run.trigger_id,
            backfill_id=run.backfill_id,
            source=run.source,
            status=run.status,
            execution_date=run.execution_date,
            timezone=run.timezone,
            interval_start_datetime=run.interval_start,
            interval_end_datetime=run.interval_end,
            variables=run.variables or {},
            event_variables=run.event or {},
            partition=run.partition or str(run.id),
            worker_id=run.worker_id,
            claims=run.claims,
            cancel_requested=run.cancel_requested,
            passed_sla=run.passed_sla,
            error=run.error,
            started_at=run.started_at,
            completed_at=run.completed_at,
            created_at=run.created_at,
            updated_at=run.updated_at,
        )


class BlockRunOut(BaseModel):
    """One block of a pipeline run: status, attempts, rows written, data tests, its log file."""

    id: int
    pipeline_run_id: int
    block_uuid: str
    status: str
    attempts: int | None
    rows: int | None
    error: str | None
    tests_passed: int | None
    tests_total: int | None
    partition: str | None
    log_path: str | None
    started_at: IsoDatetime | None
    completed_at: IsoDatetime | None
    created_at: IsoDatetime | None
    updated_at: IsoDatetime | None

    @classmethod
    def of(cls, row) -> "BlockRunOut":
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class PipelineRunDetail(PipelineRunOut):
    block_runs: list[BlockRunOut]


class TriggerOut(BaseModel):
    """A trigger (Mage's ``pipeline_schedule``) with its next execution date and API URL."""

    id: int
    pipeline_uuid: str
    name: str
    description: str | None
    schedule_type: str
    schedule_interval: str | None
    start_time: IsoDatetime | None
    timezone: str | None
    status: str
    variables: dict[str, Any]
    sla: int | None
    token: str | None
    settings: dict[str, Any]
    catchup: str | None
    envs: list[Any]
    in_code: bool | None
    last_enabled_at: IsoDatetime | None
    last_execution_date: IsoDatetime | None
    next_execution_date: IsoDatetime | None
    api_url: str = Field(description="POST here (with the token) to start a run")
    created_at: IsoDatetime | None
    updated_at: IsoDatetime | None

    @classmethod
    def of(cls, trigger, *, next_run: datetime | None = None) -> "TriggerOut":
        return cls(
            id=trigger.id,
            pipeline_uuid=trigger.pipeline_uuid,
            name=trigger.name,
            description=trigger.description,
            schedule_type=trigger.schedule_type,
            schedule_interval=trigger.schedule_interval,
            start_time=trigger.start_time,
            timezone=trigger.timezone,
            status=trigger.status,
            variables=trigger.variables or {},
            sla=trigger.sla,
            token=trigger.token,
            settings=trigger.settings or {},
            catchup=trigger.catchup,
            envs=trigger.envs or [],
            in_code=trigger.in_code,
            last_enabled_at=trigger.last_enabled_at,
            last_execution_date=trigger.last_execution_date,
            next_execution_date=next_run,
            api_url=f"/api/pipeline_schedules/{trigger.id}/pipeline_runs/{trigger.token}",
            created_at=trigger.created_at,
            updated_at=trigger.updated_at,
        )


class BackfillOut(BaseModel):
    """A backfill with its progress (runs by status) when read with it."""

    id: int
    pipeline_uuid: str
    name: str
    start_datetime: IsoDatetime | None
    end_datetime: IsoDatetime | None
    interval_type: str
    interval_units: int
    timezone: str | None
    variables: dict[str, Any]
    settings: dict[str, Any]
    concurrency: int | None
    status: str | None
    total_run_count: int | None
    progress: dict[str, Any] | None
    started_at: IsoDatetime | None
    completed_at: IsoDatetime | None
    created_at: IsoDatetime | None
    updated_at: IsoDatetime | None

    @classmethod
    def of(cls, backfill, progress: dict | None = None) -> "BackfillOut":
        return cls(
            id=backfill.id,
            pipeline_uuid=backfill.pipeline_uuid,
            name=backfill.name,
            start_datetime=backfill.start_datetime,
            end_datetime=backfill.end_datetime,
            interval_type=backfill.interval_type,
            interval_units=backfill.interval_units,
            timezone=backfill.timezone,
            variables=backfill.variables or {},
            settings=backfill.settings or {},
            concurrency=backfill.concurrency,
            status=backfill.status,
            total_run_count=backfill.total_runs,
            progress=progress,
            started_at=backfill.started_at,
            completed_at=backfill.completed_at,
            created_at=backfill.created_at,
            updated_at=backfill.updated_at,
        )


class PipelineRunEnvelope(BaseModel):
    pipeline_run: PipelineRunOut


class PipelineRunDetailEnvelope(BaseModel):
    pipeline_run: PipelineRunDetail


class PipelineRunList(BaseModel):
    pipeline_runs: list[PipelineRunOut]
    metadata: ListMetadata


class BlockRunEnvelope(BaseModel):
    block_run: BlockRunOut


class BlockRunList(BaseModel):
    block_runs: list[BlockRunOut]
    metadata: ListMetadata


class TriggerEnvelope(BaseModel):
    pipeline_schedule: TriggerOut


class TriggerList(BaseModel):
    pipeline_schedules: list[TriggerOut]
    metadata: ListMetadata


class BackfillEnvelope(BaseModel):
    backfill: BackfillOut


class BackfillList(BaseModel):
    backfills: list[BackfillOut]
    metadata: ListMetadata


class TriggeredRun(BaseModel):
    """What an API-trigger call answers: only the run's id and status (its variables may hold secrets)."""

    id: int
    status: str


class TriggeredRunEnvelope(BaseModel):
    pipeline_run: TriggeredRun


class EventRuns(BaseModel):
    event: Any = Field(description="the event as received")
    pipeline_runs: list[PipelineRunOut]
