"""``/api/pipeline_schedules``: triggers (schedule, API, event), and Mage's API-trigger endpoint.

``POST /api/pipeline_schedules/<id>/pipeline_runs/<token>`` (or ``…/api_trigger`` with
``Authorization: Bearer <token>``) takes ``{"pipeline_run": {"variables": {…}}}``; other
top-level keys become the run's ``event``, and the answer is only the run's id and status.
A wrong token is 401 — the same answer for an id that does not exist —, a disabled
trigger 403, malformed JSON, JSON nested too deep or holding NaN 422 (only once the token
is right) and an oversized body 413; none of them creates or changes anything. The gate
and the run's creation are one transaction. An ``Idempotency-Key`` header (or body
``idempotency_key``) makes a repeated call answer with the run the first call made.
Changes to an in-code
trigger are written back to ``pipelines/<p>/triggers.yaml``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from dagsmith.orchestration.triggers import next_run, validate_trigger_fields, write_back
from dagsmith.server.api.common import listing, run_in_threadpool
from dagsmith.server.deps import DbDep, RuntimeDep, SettingsDep, notify
from dagsmith.server.guard import token_authenticated
from dagsmith.server.schemas import (
    EventRuns,
    PipelineRunList,
    PipelineRunOut,
    TriggerBody,
    TriggerEnvelope,
    TriggeredRunEnvelope,
    TriggerList,
    TriggerOut,
)

router = APIRouter(tags=["triggers"])


@router.get("/pipeline_schedules", response_model=TriggerList, summary="List all triggers")
def list_all(db: DbDep, pipeline_uuid: str | None = None) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        items = [TriggerOut.of(t, next_run=next_run(t)) for t in repo.list_triggers(session, pipeline_uuid)]
    return listing("pipeline_schedules", items)


@router.get("/pipelines/{pipeline_uuid}/pipeline_schedules", response_model=TriggerList, summary="List a pipeline's triggers")
def list_for_pipeline(pipeline_uuid: str, db: DbDep, settings: SettingsDep) -> dict:
    from dagsmith.orchestration.service import check_pipeline

    check_pipeline(settings.project_root, pipeline_uuid)
    return list_all(db, pipeline_uuid)


@router.post("/pipelines/{pipeline_uuid}/pipeline_schedules", status_code=201, response_model=TriggerEnvelope, summary="Create a trigger")
def create(pipeline_uuid: str, body: TriggerBody, db: DbDep, settings: SettingsDep, runtime: RuntimeDep) -> dict:
    from dagsmith.orchestration.service import create_trigger
    from dagsmith.orchestration.store import repo

    fields = body.pipeline_schedule.model_dump(exclude_none=True)
    trigger_id = create_trigger(db, settings.project_root, pipeline_uuid, fields, actor="api")
    with db.read() as session:
        trigger = repo.get_trigger(session, trigger_id)
        out = TriggerOut.of(trigger, next_run=next_run(trigger))
    notify(runtime)
    return {"pipeline_schedule": out}


@router.get("/pipeline_schedules/{trigger_id}", response_model=TriggerEnvelope, summary="Read a trigger")
def get(trigger_id: int, db: DbDep) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        trigger = repo.get_trigger(session, trigger_id)
        return {"pipeline_schedule": TriggerOut.of(trigger, next_run=next_run(trigger))}


@router.put("/pipeline_schedules/{trigger_id}", response_model=TriggerEnvelope, summary="Change a trigger (status active/inactive, schedule, settings…)")
def put(trigger_id: int, body: TriggerBody, db: DbDep, settings: SettingsDep) -> dict:
    from dagsmith.orchestration.store import repo

    from dagsmith.project.names import check_name

    fields = body.pipeline_schedule.model_dump(exclude_none=True)
    if "name" in fields:
        check_name(fields["name"], "trigger")
    with db.session() as session:
        trigger = repo.get_trigger(session, trigger_id)
        validate_trigger_fields(fields, trigger)
        if "name" in fields and fields["name"] != trigger.name and repo.find_trigger(session, trigger.pipeline_uuid, fields["name"]):
            raise repo.Conflict(f"pipeline '{trigger.pipeline_uuid}' already has a trigger named {fields['name']!r}")
        repo.update_trigger(session, trigger, **fields)
        repo.audit(session, "trigger.update", "trigger", trigger.id, {"fields": sorted(fields)}, actor="api")
        out = TriggerOut.of(trigger, next_run=next_run(trigger))
        pipeline_uuid, in_code = trigger.pipeline_uuid, trigger.in_code
    if in_code:
        write_back(settings.project_root, db, pipeline_uuid)
    return {"pipeline_schedule": out}


@router.delete("/pipeline_schedules/{trigger_id}", response_model=TriggerEnvelope, summary="Delete a trigger (its runs stay)")
def remove(trigger_id: int, db: DbDep, settings: SettingsDep) -> dict:
    from dagsmith.orchestration.store import repo

    with db.session() as session:
        trigger = repo.get_trigger(session, trigger_id)
        out = TriggerOut.of(trigger)
        repo.delete_trigger(session, trigger)
        repo.audit(session, "trigger.delete", "trigger", trigger_id, {"name": out.name}, actor="api")
    if out.in_code:
        write_back(settings.project_root, db, out.pipeline_uuid)
    return {"pipeline_schedule": out}


@router.get("/pipeline_schedules/{trigger_id}/pipeline_runs", response_model=PipelineRunList, summary="Runs of a trigger")
def trigger_runs(trigger_id: int, db: DbDep, limit: int = 50, offset: int = 0) -> dict:
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        repo.get_trigger(session, trigger_id)
        runs, total = repo.list_runs(session, trigger_id=trigger_id, limit=limit, offset=offset)
        return listing("pipeline_runs", [PipelineRunOut.of(r) for r in runs], total, limit=limit, offset=offset)


async def _trigger(request: Request, trigger_id: int, token: str | None) -> dict:
    from dagsmith.errors import DagsmithError
    from dagsmith.orchestration.payloads import parse_json_body
    from dagsmith.orchestration.service import api_trigger_run

    db = request.app.state.db
    raw = await request.body()  # bounded by the body limit (413 before anything is read past it)
    key = request.headers.get("idempotency-key")

    def _create() -> Any:
        # one thread hop and one transaction: the gate (unknown id and wrong token answer alike,
        # disabled → 403) is checked before a bad body is reported
        payload: Any = {}
        problem: Exception | None = None
        if raw.strip():
            try:
                payload = parse_json_body(raw, hint='send {"pipeline_run": {"variables": {"name": "value"}}} with Content-Type: application/json')
            except DagsmithError as exc:
                problem = exc
        return api_trigger_run(db, trigger_id, token, payload, idempotency_key=key, body_error=problem)

    run = await run_in_threadpool(_create)
    notify(getattr(request.app.state, "runtime", None))
    # only what the caller needs: the run's variables may hold the trigger's stored secrets
    return {"pipeline_run": {"id": run.id, "status": run.status}}


@router.post("/pipeline_schedules/{trigger_id}/pipeline_runs/{token}", status_code=200, response_model=TriggeredRunEnvelope, summary="Trigger a run (Mage's API trigger URL)")
@token_authenticated
async def api_trigger(trigger_id: int, token: str, request: Request) -> dict:
    return await _trigger(request, trigger_id, token)


@router.post("/pipeline_schedules/{trigger_id}/api_trigger", status_code=200, response_model=TriggeredRunEnvelope, summary="Trigger a run with Authorization: Bearer <token>")
@token_authenticated
async def api_trigger_bearer(trigger_id: int, request: Request) -> dict:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    return await _trigger(request, trigger_id, token)


@router.post("/events", response_model=EventRuns, summary="Send an event; every active event trigger whose event_matchers match gets a run")
async def post_event(request: Request) -> dict:
    from dagsmith.orchestration.payloads import parse_json_body
    from dagsmith.orchestration.service import fire_event

    raw = await request.body()
    payload = parse_json_body(raw, hint='send {"event": {"source": "...", "detail": {...}}}') if raw.strip() else {}
    key = request.headers.get("idempotency-key")
    if isinstance(payload, dict) and "event" in payload:  # {"event": {...}, "idempotency_key": "..."}
        key = key or payload.get("idempotency_key")
    event = payload.get("event", payload) if isinstance(payload, dict) else payload
    runs = await run_in_threadpool(lambda: fire_event(request.app.state.db, event, idempotency_key=key))
    notify(getattr(request.app.state, "runtime", None))
    return {"event": event, "pipeline_runs": [PipelineRunOut.of(r) for r in runs]}
