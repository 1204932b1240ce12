"""Triggers: create, read, change, delete; the schedule cursor; names and SLAs read for runs."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from dagsmith.orchestration.store.models import Trigger, utcnow
from dagsmith.orchestration.store.repo._common import NotFound, new_token


TRIGGER_FIELDS = (
    "name", "description", "schedule_type", "schedule_interval", "start_time", "timezone", "status",
    "variables", "sla", "settings", "catchup", "envs", "in_code", "hidden",
)



def create_trigger(session: Session, pipeline_uuid: str, name: str, *, now: datetime | None = None, **fields: Any) -> Trigger:
    now = now or utcnow()
    trigger = Trigger(pipeline_uuid=pipeline_uuid, name=name, token=fields.pop("token", None) or new_token())
    for key, value in fields.items():
        if key not in TRIGGER_FIELDS:
            raise TypeError(f"unknown trigger field {key!r}")
        if value is not None:
            setattr(trigger, key, value)
    trigger.variables = trigger.variables or {}
    trigger.settings = trigger.settings or {}
    trigger.envs = trigger.envs or []
    if trigger.status == "active":
        trigger.last_enabled_at = now
    session.add(trigger)
    session.flush()
    return trigger



def get_trigger(session: Session, trigger_id: int) -> Trigger:
    trigger = session.get(Trigger, trigger_id)
    if trigger is None:
        raise NotFound(f"trigger {trigger_id} does not exist", hint="list triggers with GET /api/pipeline_schedules")
    return trigger



def trigger_row(session: Session, trigger_id: int) -> Any:
    """The trigger's columns as a read-only row (attribute access like a ``Trigger``), or None.

    What an API call reads on every run it makes: a plain row, without the ORM's identity map.
    """
    return session.connection().execute(_trigger_row_stmt(), {"trigger_id": trigger_id}).first()


@functools.cache
def _trigger_row_stmt():
    t = Trigger.__table__
    return select(t).where(t.c.id == bindparam("trigger_id"))


def find_trigger(session: Session, pipeline_uuid: str, name: str) -> Trigger | None:
    return session.scalars(select(Trigger).where(Trigger.pipeline_uuid == pipeline_uuid, Trigger.name == name)).first()



def list_triggers(session: Session, pipeline_uuid: str | None = None, *, include_hidden: bool = False) -> list[Trigger]:
    stmt = select(Trigger).order_by(Trigger.id)
    if pipeline_uuid:
        stmt = stmt.where(Trigger.pipeline_uuid == pipeline_uuid)
    if not include_hidden:
        stmt = stmt.where(Trigger.hidden.is_(False))
    return list(session.scalars(stmt))



def update_trigger(session: Session, trigger: Trigger, *, now: datetime | None = None, **fields: Any) -> Trigger:
    """Change fields; switching to active (re)starts the schedule from ``now`` (no catch-up of the off time)."""
    now = now or utcnow()
    was_active = trigger.status == "active"
    schedule_changed = False
    for key, value in fields.items():
        if key not in TRIGGER_FIELDS:
            raise TypeError(f"unknown trigger field {key!r}")
        if key in ("schedule_interval", "timezone", "start_time") and getattr(trigger, key) != value:
            schedule_changed = True
        setattr(trigger, key, value)
    if trigger.status == "active" and (not was_active or schedule_changed):
        trigger.last_enabled_at = now
        trigger.last_execution_date = None
    trigger.updated_at = now
    session.flush()
    return trigger



def delete_trigger(session: Session, trigger: Trigger) -> None:
    session.delete(trigger)
    session.flush()



def active_schedule_triggers(session: Session) -> list[Trigger]:
    return list(
        session.scalars(
            select(Trigger).where(Trigger.status == "active", Trigger.schedule_type == "time").order_by(Trigger.id)
        )
    )



def advance_cursor(session: Session, trigger_id: int, cursor: datetime | None, *, deactivate: bool = False) -> None:
    """Move a trigger's schedule cursor forward (never backwards), and switch off an @once trigger."""
    values: dict[str, Any] = {}
    if cursor is not None:
        values["last_execution_date"] = cursor
    if deactivate:
        values["status"] = "inactive"
    if not values:
        return
    stmt = update(Trigger).where(Trigger.id == trigger_id)
    if cursor is not None and not deactivate:
        stmt = stmt.where(or_(Trigger.last_execution_date.is_(None), Trigger.last_execution_date < cursor))
    session.execute(stmt.values(**values))



def advance_cursors(session: Session, changes: Sequence[tuple[int, datetime | None, bool]]) -> None:
    """Bulk form of ``advance_cursor``: ``(trigger_id, cursor, deactivate)`` per trigger (one statement)."""
    params = []
    for trigger_id, cursor, deactivate in changes:
        row: dict[str, Any] = {"id": trigger_id}
        if cursor is not None:
            row["last_execution_date"] = cursor
        if deactivate:
            row["status"] = "inactive"
        if len(row) > 1:
            params.append(row)
    by_keys: dict[tuple, list[dict]] = {}
    for row in params:
        by_keys.setdefault(tuple(sorted(row)), []).append(row)
    for rows in by_keys.values():
        session.execute(update(Trigger), rows)



def trigger_names(session: Session, trigger_ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
    """``{trigger id: (name, sla)}`` for the given ids (a run's worker passes both to the run)."""
    ids = {t for t in trigger_ids if t is not None}
    if not ids:
        return {}
    return {tid: (name, sla) for tid, name, sla in session.execute(select(Trigger.id, Trigger.name, Trigger.sla).where(Trigger.id.in_(ids)))}

