"""SQLAlchemy 2 ORM models of the metadata database.

Tables: ``triggers`` (Mage's pipeline schedules), ``pipeline_runs``, ``block_runs``,
``backfills``, ``secrets`` (values encrypted), ``audit_events`` and ``workers``
(heartbeats). Datetimes are stored in UTC and always come back tz-aware.

The exactly-once rule lives here: ``pipeline_runs`` is unique on
``(trigger_id, schedule_date)``, on ``(backfill_id, schedule_date)`` and on
``(trigger_id, idempotency_key)`` (API and event calls carrying a key);
``schedule_date`` is the execution date of schedule and backfill runs and NULL
for ad-hoc runs (API, CLI, UI), which NULL-distinct unique indexes never collide on.
Schema changes need an Alembic migration in ``migrations/versions`` and a line in
``migrations/MIGRATIONS.md``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dagsmith.util.clock import utcnow


class UTCDateTime(TypeDecorator):
    """A datetime stored as UTC (naive on SQLite, timestamptz on PostgreSQL), read back tz-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


NAMING = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = NAMING
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


# run statuses (Mage's names)
RUN_INITIAL = "initial"
RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FAILED = "failed"
RUN_CANCELLED = "cancelled"
RUN_FINISHED = (RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED)


class Trigger(Base):
    """A pipeline trigger: schedule (time), api or event. Mage calls it a pipeline schedule."""

    __tablename__ = "triggers"
    __table_args__ = (UniqueConstraint("pipeline_uuid", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_uuid: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    schedule_type: Mapped[str] = mapped_column(String(16), default="time")
    schedule_interval: Mapped[str | None] = mapped_column(String(255), default=None)
    start_time: Mapped[datetime | None] = mapped_column(default=None)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[str] = mapped_column(String(16), default="inactive")
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sla: Mapped[int | None] = mapped_column(Integer, default=None)
    token: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    catchup: Mapped[str | None] = mapped_column(String(16), default=None)
    envs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: declared in pipelines/<p>/triggers.yaml (kept in sync both ways)
    in_code: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    last_enabled_at: Mapped[datetime | None] = mapped_column(default=None)
    #: latest execution date a run was created for (the scheduler's cursor)
    last_execution_date: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Backfill(Base):
    """A date range run as one pipeline run per date."""

    __tablename__ = "backfills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_uuid: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    start_datetime: Mapped[datetime] = mapped_column()
    end_datetime: Mapped[datetime] = mapped_column()
    interval_type: Mapped[str] = mapped_column(String(16), default="day")
    interval_units: Mapped[int] = mapped_column(Integer, default=1)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    concurrency: Mapped[int | None] = mapped_column(Integer, default=None)
    #: None (draft) | initial | running | completed | failed | cancelled
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    total_runs: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PipelineRun(Base):
    """One run of a pipeline, whatever started it."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (
        UniqueConstraint("trigger_id", "schedule_date"),
        UniqueConstraint("backfill_id", "schedule_date"),
        UniqueConstraint("trigger_id", "idempotency_key"),
        Index("ix_pipeline_runs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_uuid: Mapped[str] = mapped_column(String(255), index=True)
    trigger_id: Mapped[int | None] = mapped_column(ForeignKey("triggers.id", ondelete="SET NULL"), default=None, index=True)
    backfill_id: Mapped[int | None] = mapped_column(ForeignKey("backfills.id", ondelete="SET NULL"), default=None, index=True)
    #: cli | schedule | api | backfill | ui
    source: Mapped[str] = mapped_column(String(16), default="ui")
    status: Mapped[str] = mapped_column(String(16), default=RUN_INITIAL)
    execution_date: Mapped[datetime] = mapped_column()
    #: execution date for schedule/backfill runs (the exactly-once key), NULL otherwise
    schedule_date: Mapped[datetime | None] = mapped_column(default=None)
    #: the caller's ``Idempotency-Key`` of an API/event run: one run per (trigger, key)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    interval_start: Mapped[datetime | None] = mapped_column(default=None)
    interval_end: Mapped[datetime | None] = mapped_column(default=None)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    event: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    partition: Mapped[str | None] = mapped_column(String(255), default=None)
    worker_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    #: how many times a worker claimed this run (resumes and retries add one)
    claims: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_blocks_to_fail: Mapped[bool] = mapped_column(Boolean, default=False)
    timeout: Mapped[float | None] = mapped_column(Float, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    passed_sla: Mapped[bool] = mapped_column(Boolean, default=False)
    log_dir: Mapped[str | None] = mapped_column(Text, default=None)
    logs_purged: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BlockRun(Base):
    """One block of one pipeline run."""

    __tablename__ = "block_runs"
    __table_args__ = (UniqueConstraint("pipeline_run_id", "block_uuid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"), index=True)
    block_uuid: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(24), default="initial")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    tests_passed: Mapped[int | None] = mapped_column(Integer, default=None)
    tests_total: Mapped[int | None] = mapped_column(Integer, default=None)
    #: variables-store partition holding this block's outputs
    partition: Mapped[str | None] = mapped_column(String(255), default=None)
    log_path: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Secret(Base):
    """A named secret; ``value`` is Fernet ciphertext, never clear text."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("scope", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    #: "project" or "pipeline:<uuid>"
    scope: Mapped[str] = mapped_column(String(255), default="project")
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """Who did what to which object, for the record."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255), default="system")
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(255), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Worker(Base):
    """A live scheduler/worker/server process and its latest heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
