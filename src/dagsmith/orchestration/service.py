"""Run operations shared by the REST API and the CLI: create, trigger, retry, cancel, backfill.

Operations on runs return the ``PipelineRun`` rows (every column loaded, usable after the
session); the API turns them into its JSON with ``server.schemas.PipelineRunOut``.

Each function opens its own short transaction, checks what a person could get wrong
(unknown pipeline or block, wrong token, retrying a running run) and raises a
``DagsmithError`` that says how to fix it. (CLI runs are recorded by
``orchestration.history``, through the inbox.)
"""

from __future__ import annotations

import hmac
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagsmith.errors import ConfigError, DagsmithError, ProjectError
from dagsmith.util.clock import parse_iso, utcnow

if TYPE_CHECKING:
    from dagsmith.orchestration.store.models import PipelineRun


class Unauthorized(DagsmithError):
    """A token is missing or wrong."""


def parse_datetime(value: Any, *, field: str = "date", tz: str = "UTC") -> datetime:
    """ISO 8601 text (or a date) → tz-aware datetime; naive values are in ``tz``."""
    from dagsmith.orchestration.scheduler.triggers import get_zone

    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        try:
            dt = parse_iso(text)
        except ValueError:
            raise ConfigError(
                f"{field} {text!r} is not an ISO 8601 date-time",
                hint="write it like 2024-01-31 or 2024-01-31T05:00:00+00:00",
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=get_zone(tz))
    return dt


def check_pipeline(project_root: Path, pipeline_uuid: str) -> None:
    from dagsmith.project.pipelines import list_pipelines, metadata_path

    if not metadata_path(project_root, pipeline_uuid).is_file():
        known = ", ".join(list_pipelines(project_root)) or "(none)"
        raise ProjectError(f"pipeline '{pipeline_uuid}' does not exist in {project_root}", hint=f"pipelines in this project: {known}")


def pipeline_graph(project_root: Path, pipeline_uuid: str) -> dict[str, list[str]]:
    """block uuid → downstream block uuids, from the pipeline's metadata.yaml."""
    from dagsmith.project.pipelines import read_pipeline_raw

    raw = read_pipeline_raw(project_root, pipeline_uuid)
    down: dict[str, list[str]] = {}
    for key in ("blocks", "callbacks", "conditionals"):
        for entry in raw.get(key) or []:
            if isinstance(entry, dict) and entry.get("uuid"):
                down.setdefault(entry["uuid"], [])
    for entry in raw.get("blocks") or []:
        if not isinstance(entry, dict) or not entry.get("uuid"):
            continue
        for up in entry.get("upstream_blocks") or []:
            down.setdefault(up, []).append(entry["uuid"])
        for d in entry.get("downstream_blocks") or []:
            if d not in down.setdefault(entry["uuid"], []):
                down[entry["uuid"]].append(d)
    return down


def descendants(project_root: Path, pipeline_uuid: str, block_uuid: str) -> set[str]:
    graph = pipeline_graph(project_root, pipeline_uuid)
    if block_uuid not in graph:
        raise ProjectError(
            f"block '{block_uuid}' is not in pipeline '{pipeline_uuid}'",
            hint="blocks of this pipeline: " + ", ".join(sorted(graph)),
        )
    from dagsmith.dag.graph import reachable

    return set(reachable(graph, block_uuid))


def _loaded(row):
    """``row`` with every column read while its session is open, so callers may use it after commit."""
    for attr in row.__mapper__.column_attrs:
        getattr(row, attr.key)
    return row


class TriggerDisabled(DagsmithError):
    """An API trigger that is not active was called (with the right token): nothing is created."""


def _wrong_token(trigger_id: Any) -> Unauthorized:
    return Unauthorized(
        f"the token for trigger {trigger_id} is missing or wrong",
        hint="copy the URL with its token from the trigger's page (GET /api/pipeline_schedules/<id>)",
    )


def check_token(trigger, token: str | None) -> None:
    # bytes: compare_digest refuses non-ASCII str, and a token in a URL can be anything
    if not token or not hmac.compare_digest(str(token).encode(), str(trigger.token).encode()):
        raise _wrong_token(trigger.id)


def _gate(session, trigger_id: int, token: str | None, *, allow_inactive: bool = False):
    """The trigger an API call names, once its token is right and it is active: an unknown id and a
    wrong token give the same 401 (ids cannot be enumerated), a disabled trigger 403."""
    from dagsmith.orchestration.store import repo

    trigger = repo.trigger_row(session, trigger_id)
    if trigger is None:
        hmac.compare_digest(str(token or "").encode(), b"x" * 32)  # about the same work as a real comparison
        raise _wrong_token(trigger_id) from None
    check_token(trigger, token)
    if trigger.status != "active" and not allow_inactive:  # Mage re-activates a called trigger; a disabled URL must stay dead
        raise TriggerDisabled(f"trigger {trigger_id} is disabled; its URL creates no runs", hint="enable it on the trigger's page first")
    return trigger


def split_payload(payload: Any) -> tuple[dict, dict, Any]:
    """Mage's API-trigger body → (run variables, event, execution_date or None)."""
    if payload is None:
        return {}, {}, None
    if not isinstance(payload, dict):
        raise ConfigError("the request body must be a JSON object", hint='send {"pipeline_run": {"variables": {"name": "value"}}}')
    body = dict(payload)
    pipeline_run = body.pop("pipeline_run", None) or {}
    if not isinstance(pipeline_run, dict):
        raise ConfigError('"pipeline_run" must be a JSON object', hint='send {"pipeline_run": {"variables": {...}}}')
    variables = pipeline_run.get("variables") or {}
    if not isinstance(variables, dict):
        raise ConfigError('"pipeline_run.variables" must be a JSON object of name: value')
    return dict(variables), body, pipeline_run.get("execution_date")


def _idempotency_key(payload: Any, header_key: str | None) -> str | None:
    """The key from the ``Idempotency-Key`` header or the body's ``idempotency_key`` (popped from the body)."""
    from dagsmith.orchestration.payloads import check_idempotency_key

    body_key = payload.pop("idempotency_key", None) if isinstance(payload, dict) else None
    header_key, body_key = check_idempotency_key(header_key), check_idempotency_key(body_key)
    if header_key and body_key and header_key != body_key:
        raise ConfigError(
            "the Idempotency-Key header and the body's idempotency_key differ",
            hint="send the key once, as the header or in the body",
        )
    return header_key or body_key


def _keyed_run(session, trigger, key: str | None, variables: dict, event: dict, create):
    """``create()`` a run, or return the run this trigger already made for ``key`` (same call repeated)."""
    from dagsmith.orchestration.store import repo

    run, created = repo.create_keyed_run(session, trigger.id, key, create)
    if not created and ((run.variables or {}) != variables or (run.event or {}) != event):
        raise repo.Conflict(
            f"Idempotency-Key {key!r} was already used for run {run.id} of trigger {trigger.id} with a different body",
            hint="use a new key for a different call; repeat a call only with the body it was first sent with",
        )
    return run


def api_trigger_run(db, trigger_id: int, token: str | None, payload: Any, *, now: datetime | None = None,
                    allow_inactive: bool = False, idempotency_key: str | None = None,
                    body_error: Exception | None = None) -> PipelineRun:
    """Create the run an API call asks for (Mage-compatible); returns the run.

    The gate comes first, in the run's own transaction: an unknown id or a wrong token is
    401, a disabled trigger 403 — unless ``allow_inactive`` (the UI's "Run now", a signed-in
    person's explicit action) — and only then is the body looked at: ``body_error`` (the
    caller could not parse the body) or a malformed payload is 422, so a caller without the
    token learns nothing of what the body should be. With an idempotency key (the
    ``Idempotency-Key`` header, or ``idempotency_key`` in the body) the same call repeated
    — a client retrying after a timeout — returns the run the first call made instead of
    making another; the same key with a different body is 409.
    """
    from dagsmith.orchestration.payloads import check_json
    from dagsmith.orchestration.store import repo

    now = now or utcnow()
    with db.session() as session:
        trigger = _gate(session, trigger_id, token, allow_inactive=allow_inactive)
        if body_error is not None:
            raise body_error
        payload = dict(payload) if isinstance(payload, dict) else payload
        key = _idempotency_key(payload, idempotency_key)
        variables, event, execution_date = split_payload(payload)
        check_json(variables, "pipeline_run.variables")
        check_json(event, "body")
        exec_date = parse_datetime(execution_date, field="pipeline_run.execution_date", tz=trigger.timezone or "UTC") if execution_date else now
        settings = trigger.settings or {}
        merged = {**(trigger.variables or {}), **variables}
        run = _keyed_run(session, trigger, key, merged, event, lambda: repo.create_run(
            session,
            trigger.pipeline_uuid,
            source="api",
            trigger_id=trigger.id,
            execution_date=exec_date,
            variables=merged,
            event=event,
            timezone_name=trigger.timezone or "UTC",
            allow_blocks_to_fail=bool(settings.get("allow_blocks_to_fail", False)),
            timeout=_float(settings.get("timeout")),
            idempotency_key=key,
            now=now,
        ))
        return _loaded(run)


def event_matches(pattern: Any, event: Any) -> bool:
    """AWS EventBridge-style matching (Mage's event matchers): lists are allowed values, dicts nest."""
    if isinstance(pattern, dict):
        if not isinstance(event, dict):
            return False
        return all(key in event and event_matches(value, event[key]) for key, value in pattern.items())
    if isinstance(pattern, list):
        if isinstance(event, list):
            return any(item in pattern for item in event)
        return event in pattern
    return pattern == event


def fire_event(db, event: Any, *, now: datetime | None = None, idempotency_key: str | None = None) -> list[PipelineRun]:
    """Create a run for every active event trigger whose ``settings.event_matchers`` match ``event``.

    With an idempotency key, an event sent again makes no new runs: each matching trigger
    answers with the run it made for that key.
    """
    from dagsmith.orchestration.payloads import check_idempotency_key, check_json
    from dagsmith.orchestration.store import repo

    if not isinstance(event, dict):
        raise ConfigError("the event must be a JSON object", hint='send {"event": {"source": "...", "detail": {...}}}')
    check_json(event, "event")
    key = check_idempotency_key(idempotency_key)
    now = now or utcnow()
    created = []
    with db.session() as session:
        for trigger in repo.list_triggers(session):
            if trigger.schedule_type != "event" or trigger.status != "active":
                continue
            matchers = (trigger.settings or {}).get("event_matchers") or []
            if not any(isinstance(m, dict) and event_matches(m.get("pattern") or {}, event) for m in matchers):
                continue
            settings = trigger.settings or {}
            run = _keyed_run(session, trigger, key, dict(trigger.variables or {}), event, lambda: repo.create_run(
                session, trigger.pipeline_uuid, source="event", trigger_id=trigger.id, execution_date=now,
                variables=dict(trigger.variables or {}), event=event, timezone_name=trigger.timezone or "UTC",
                allow_blocks_to_fail=bool(settings.get("allow_blocks_to_fail", False)), timeout=_float(settings.get("timeout")),
                idempotency_key=key, now=now,
            ))
            created.append(_loaded(run))
    return created


def create_run_now(
    db,
    project_root: Path,
    pipeline_uuid: str,
    *,
    variables: dict | None = None,
    event: dict | None = None,
    execution_date: Any = None,
    source: str = "ui",
    actor: str = "api",
    now: datetime | None = None,
) -> PipelineRun:
    """Queue an ad-hoc run of a pipeline (the UI's "Run now", ``POST /api/pipelines/<p>/pipeline_runs``)."""
    from dagsmith.orchestration.payloads import check_json
    from dagsmith.orchestration.store import repo

    check_pipeline(project_root, pipeline_uuid)
    check_json(variables or {}, "pipeline_run.variables")
    check_json(event or {}, "pipeline_run.event")
    now = now or utcnow()
    with db.session() as session:
        run = repo.create_run(
            session,
            pipeline_uuid,
            source=source,
            execution_date=parse_datetime(execution_date, field="execution_date") if execution_date else now,
            variables=variables or {},
            event=event or {},
            now=now,
        )
        repo.audit(session, "run.create", "pipeline_run", run.id, {"source": source}, actor=actor, now=now)
        return _loaded(run)


def retry(db, project_root: Path, run_id: int, *, from_block: str | None = None, actor: str = "api") -> PipelineRun:
    """Queue a finished run again from its failed blocks, or from ``from_block`` and its descendants."""
    from dagsmith.orchestration.store import repo

    with db.session() as session:
        run = repo.get_run(session, run_id)
        below = descendants(project_root, run.pipeline_uuid, from_block) if from_block else set()
        repo.retry_run(session, run, from_block=from_block, descendants=below)
        repo.audit(session, "run.retry", "pipeline_run", run.id, {"from_block": from_block}, actor=actor)
        return _loaded(run)


def cancel(db, run_id: int, *, actor: str = "api", local_cancel=None) -> PipelineRun:
    """Cancel a waiting run, or ask its worker to stop a running one."""
    from dagsmith.orchestration.store import repo

    with db.session() as session:
        run = repo.get_run(session, run_id)
        repo.request_cancel(session, run)
        repo.audit(session, "run.cancel", "pipeline_run", run.id, {}, actor=actor)
        out = _loaded(run)
    if local_cancel is not None:
        local_cancel(run_id)
    return out


def create_backfill(
    db,
    project_root: Path,
    pipeline_uuid: str,
    *,
    start: Any,
    end: Any,
    interval_type: str = "day",
    interval_units: int = 1,
    variables: dict | None = None,
    name: str | None = None,
    concurrency: int | None = None,
    tz: str = "UTC",
    settings: dict | None = None,
    start_now: bool = True,
    now: datetime | None = None,
) -> int:
    """Create (and by default start) a backfill; returns its id."""
    from dagsmith.orchestration.scheduler.backfills import backfill_dates, start_backfill
    from dagsmith.orchestration.scheduler.triggers import get_zone
    from dagsmith.orchestration.store import repo

    from dagsmith.orchestration.payloads import check_json

    check_pipeline(project_root, pipeline_uuid)
    check_json(variables or {}, "backfill.variables")
    get_zone(tz)
    start_dt = parse_datetime(start, field="start", tz=tz)
    end_dt = parse_datetime(end, field="end", tz=tz)
    backfill_dates(start_dt, end_dt, interval_type, interval_units, tz)  # validates before anything is stored
    if concurrency is not None and int(concurrency) < 1:
        raise ConfigError(f"backfill concurrency must be at least 1, got {concurrency}")
    now = now or utcnow()
    with db.session() as session:
        backfill = repo.create_backfill(
            session,
            pipeline_uuid,
            name or f"{pipeline_uuid} {start_dt.date()}..{end_dt.date()}",
            start_datetime=start_dt,
            end_datetime=end_dt,
            interval_type=interval_type.rstrip("s"),
            interval_units=int(interval_units),
            variables=variables or {},
            settings=settings or {},
            concurrency=int(concurrency) if concurrency else None,
            timezone=tz,
            status="initial" if start_now else None,
        )
        if start_now:
            start_backfill(session, backfill, now=now)
        return backfill.id


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "", 0) else None
    except (TypeError, ValueError):
        return None


def validate_trigger_fields(fields: dict, existing=None) -> None:
    """Check a trigger's schedule, time zone, catch-up, variables and settings before it is stored (API and CLI alike)."""
    from dagsmith.orchestration.payloads import check_json
    from dagsmith.orchestration.scheduler.triggers import get_zone, validate_schedule

    for name in ("variables", "settings"):
        check_json(fields.get(name), f"pipeline_schedule.{name}")
    schedule_type = fields.get("schedule_type") or (existing.schedule_type if existing else "time")
    if schedule_type not in ("time", "api", "event"):
        raise ConfigError(f"schedule_type {schedule_type!r} is unknown", hint="use time, api or event")
    interval = fields.get("schedule_interval", existing.schedule_interval if existing else None)
    tz = fields.get("timezone") or (existing.timezone if existing else "UTC")
    get_zone(tz)
    if schedule_type == "time":
        if not interval:
            raise ConfigError("a time trigger needs a schedule_interval", hint="e.g. '@daily', '@hourly' or a cron such as '0 5 * * *'")
        validate_schedule(interval, tz)
    catchup = fields.get("catchup")
    if catchup is None and isinstance(fields.get("settings"), dict):
        catchup = fields["settings"].get("catchup")
    if catchup is not None and catchup not in ("none", "latest", "all"):
        raise ConfigError(f"catchup {catchup!r} is unknown", hint="use none, latest or all")


def create_trigger(db, project_root: Path, pipeline_uuid: str, fields: dict, *, actor: str = "api", conflict_hint: str | None = None) -> int:
    """Create a trigger (schedule, API or event) after the checks every client gets; returns its id.

    ``conflict_hint`` replaces the API's advice when the name is taken (the UI has no PUT).

    An in-code trigger (``in_code``, or the pipeline's ``save_in_code_automatically``) is
    written to ``pipelines/<p>/triggers.yaml`` too.
    """
    from dagsmith.orchestration.scheduler.code_triggers import save_in_code_automatically
    from dagsmith.orchestration.store import repo

    check_pipeline(project_root, pipeline_uuid)
    fields = dict(fields)
    name = fields.pop("name", None)
    if not name:
        raise ConfigError("a trigger needs a name", hint='send {"pipeline_schedule": {"name": "daily", ...}}')
    from dagsmith.project.names import check_name

    check_name(name, "trigger")
    fields.setdefault("schedule_type", "time")
    if fields["schedule_type"] == "api":
        # a disabled trigger's URL answers 403, so an API trigger made here works until disabled
        fields.setdefault("status", "active")
    validate_trigger_fields(fields)
    if "in_code" not in fields and save_in_code_automatically(project_root, pipeline_uuid):
        fields["in_code"] = True
    with db.session() as session:
        if repo.find_trigger(session, pipeline_uuid, name) is not None:
            raise repo.Conflict(
                f"pipeline '{pipeline_uuid}' already has a trigger named {name!r}",
                hint=conflict_hint or "choose another name, or change the existing one (PUT /api/pipeline_schedules/<id>)",
            )
        trigger = repo.create_trigger(session, pipeline_uuid, name, **fields)
        repo.audit(session, "trigger.create", "trigger", trigger.id, {"pipeline_uuid": pipeline_uuid, "name": name}, actor=actor)
        trigger_id, in_code = trigger.id, trigger.in_code
    if in_code:
        from dagsmith.orchestration.triggers import write_back

        write_back(project_root, db, pipeline_uuid)
    return trigger_id
