"""Trigger operations every client shares (REST API, web UI, CLI), beside ``service.create_trigger``.

``next_run`` is a trigger's next execution date as shown to people; ``write_back`` keeps a
pipeline's ``triggers.yaml`` in step with its in-code triggers after a change;
``toggle_trigger`` and ``delete_trigger`` change one trigger with its audit entry and write
back. The schedule arithmetic itself lives in ``scheduler.triggers``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

__all__ = ["next_run", "write_back", "validate_trigger_fields", "toggle_trigger", "delete_trigger", "run_trigger_now"]


def next_run(trigger) -> datetime | None:
    """When an active schedule trigger fires next (None for API/event triggers, ``@once``, inactive or invalid schedules)."""
    from dagsmith.orchestration.scheduler.triggers import next_tick

    if trigger.schedule_type != "time" or trigger.status != "active" or not trigger.schedule_interval:
        return None
    if trigger.schedule_interval.strip() == "@once":
        return None
    try:
        after = max(filter(None, (trigger.last_execution_date, datetime.now(timezone.utc))))
        if trigger.start_time and trigger.start_time > after:
            after = trigger.start_time
        return next_tick(trigger.schedule_interval, trigger.timezone, after)
    except Exception:  # noqa: BLE001 - an invalid schedule has no next run
        return None


def validate_trigger_fields(fields: dict, existing=None) -> None:
    """Check a trigger's fields before they are stored (see ``service.validate_trigger_fields``)."""
    from dagsmith.orchestration.service import validate_trigger_fields as _validate

    _validate(fields, existing)


def write_back(project_root: Path, db, pipeline_uuid: str) -> Path:
    """Rewrite ``pipelines/<p>/triggers.yaml`` from the pipeline's in-code triggers in the DB."""
    from dagsmith.orchestration.scheduler.code_triggers import write_triggers_yaml
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        in_code = [t for t in repo.list_triggers(session, pipeline_uuid) if t.in_code]
    return write_triggers_yaml(project_root, pipeline_uuid, in_code)


def _change(db, project_root: Path, trigger_id: int, action: str, actor: str, apply: Callable[[Any, Any], str]) -> tuple[str, str]:
    from dagsmith.orchestration.store import repo

    with db.session() as session:
        trigger = repo.get_trigger(session, trigger_id)
        pipeline_uuid, in_code = trigger.pipeline_uuid, trigger.in_code
        message = apply(session, trigger)
        repo.audit(session, f"trigger.{action}", "trigger", trigger_id, {}, actor=actor)
    if in_code:
        write_back(project_root, db, pipeline_uuid)
    return pipeline_uuid, message


def toggle_trigger(db, project_root: Path, trigger_id: int, *, actor: str) -> tuple[str, str]:
    """Enable a disabled trigger or disable an enabled one; returns (pipeline uuid, what happened)."""
    from dagsmith.orchestration.store import repo

    def apply(session, trigger) -> str:
        repo.update_trigger(session, trigger, status="inactive" if trigger.status == "active" else "active")
        return f"Trigger {trigger.name} is now {trigger.status}."

    return _change(db, project_root, trigger_id, "toggle", actor, apply)


def delete_trigger(db, project_root: Path, trigger_id: int, *, actor: str) -> tuple[str, str]:
    """Delete a trigger (its runs stay); returns (pipeline uuid, what happened)."""
    from dagsmith.orchestration.store import repo

    def apply(session, trigger) -> str:
        name = trigger.name
        repo.delete_trigger(session, trigger)
        return f"Trigger {name} deleted (its runs stay)."

    return _change(db, project_root, trigger_id, "delete", actor, apply)


def run_trigger_now(db, trigger_id: int) -> Any:
    """A run of the trigger now, even when it is disabled (the UI's "Run now"); returns the run."""
    from dagsmith.orchestration.service import api_trigger_run
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        token = repo.get_trigger(session, trigger_id).token
    return api_trigger_run(db, trigger_id, token, {}, allow_inactive=True)
