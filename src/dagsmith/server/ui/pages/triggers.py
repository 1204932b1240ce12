"""Trigger pages: ``/pipelines/<p>/triggers`` (list with next runs, API URLs and curl
examples; the create form with a live schedule preview) and the toggle, run-now and delete
buttons of ``/triggers/<id>/…``.

Checks, writes to ``triggers.yaml`` and the schedule in words are orchestration's
(``orchestration.triggers``, ``service.create_trigger``, ``scheduler.describe``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from dagsmith.errors import ConfigError, DagsmithError
from dagsmith.server.ui.pages.common import (
    actor,
    check_pipeline,
    database,
    error_text,
    flash_url,
    not_found,
    notify,
    page_router,
    parse_local,
    project_root,
    redirect,
    render,
)

router, get, post = page_router()

SCHEDULE_PRESETS = [("@once", "Once"), ("@hourly", "Hourly"), ("@daily", "Daily (00:00)"), ("@weekly", "Weekly (Monday 00:00)"), ("@monthly", "Monthly (1st 00:00)"), ("custom", "Custom cron")]


def _trigger_rows(request: Request, pipeline_uuid: str) -> list[dict[str, Any]]:
    from dagsmith.orchestration.scheduler.describe import describe_schedule
    from dagsmith.orchestration.store import repo
    from dagsmith.orchestration.triggers import next_run
    from dagsmith.server.schemas import TriggerOut

    base = str(request.base_url).rstrip("/")
    out = []
    with database(request).read() as session:
        for t in repo.list_triggers(session, pipeline_uuid):
            row = TriggerOut.of(t, next_run=next_run(t)).model_dump()
            row["url"] = base + row["api_url"]
            row["curl"] = (
                f"curl -X POST '{row['url']}' \\\n  -H 'Content-Type: application/json' \\\n"
                "  -d '{\"pipeline_run\": {\"variables\": {\"key\": \"value\"}}}'"
            )
            try:
                row["describe"] = describe_schedule(t.schedule_interval) if t.schedule_type == "time" and t.schedule_interval else None
            except DagsmithError:
                row["describe"] = "invalid schedule"
            runs, total = repo.list_runs(session, trigger_id=t.id, limit=1)
            row["last_run"] = runs[0] if runs else None
            row["run_count"] = total
            out.append(row)
    return out


@get("/pipelines/{pipeline_uuid}/triggers")
def triggers_page(request: Request, pipeline_uuid: str, ok: str | None = None, error: str | None = None) -> HTMLResponse:
    from dagsmith.orchestration.scheduler.describe import schedule_preview

    try:
        check_pipeline(request, pipeline_uuid)
    except DagsmithError as exc:
        return not_found(request, exc)
    import zoneinfo

    zones = ["UTC"] + sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))
    return render(
        request, "triggers.html", title=f"{pipeline_uuid} · triggers", nav="triggers", pipeline_uuid=pipeline_uuid,
        triggers=_trigger_rows(request, pipeline_uuid), presets=SCHEDULE_PRESETS, zones=zones, ok=ok, error=error,
        preview=schedule_preview("@daily", "UTC"), file_problems=_trigger_file_problems(request, pipeline_uuid),
    )


def _trigger_file_problems(request: Request, pipeline_uuid: str) -> dict[str, str]:
    """Entries of the pipeline's triggers.yaml that cannot be synced, by trigger name (read now, not from the scheduler)."""
    from dagsmith.orchestration.scheduler.code_triggers import read_trigger_file, triggers_path

    path = triggers_path(project_root(request), pipeline_uuid)
    return read_trigger_file(path, pipeline_uuid, None)[1] if path.is_file() else {}


def _interval_from(form_or_params) -> str:
    preset = str(form_or_params.get("preset") or "@daily")
    if preset == "custom":
        return str(form_or_params.get("cron") or "").strip()
    return preset


@get("/pipelines/{pipeline_uuid}/triggers/preview")
def trigger_preview(request: Request, pipeline_uuid: str) -> HTMLResponse:
    from dagsmith.orchestration.scheduler.describe import schedule_preview

    params = request.query_params
    tz = str(params.get("timezone") or "UTC")
    try:
        start = parse_local(params.get("start_time"), tz) if params.get("start_time") else None
        preview = schedule_preview(_interval_from(params), tz, start=start)
    except DagsmithError as exc:
        return render(request, "_error.html", message=error_text(exc))
    return render(request, "_schedule_preview.html", preview=preview)


@post("/pipelines/{pipeline_uuid}/triggers")
async def trigger_create(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.orchestration.service import create_trigger
    from dagsmith.project.names import check_name

    form = await request.form()
    base = f"/pipelines/{quote(pipeline_uuid)}/triggers"
    try:
        check_pipeline(request, pipeline_uuid)
        name = str(form.get("name") or "").strip()
        if not name:
            raise ConfigError("a trigger needs a name", hint="e.g. daily_5am")
        check_name(name, "trigger")
        schedule_type = str(form.get("schedule_type") or "time")
        if schedule_type not in ("time", "api"):
            raise ConfigError(f"trigger type {schedule_type!r} is not supported here", hint="choose schedule or API")
        tz = str(form.get("timezone") or "UTC")
        fields: dict[str, Any] = {"name": name, "schedule_type": schedule_type, "timezone": tz, "status": "active" if form.get("enabled") else "inactive"}
        if schedule_type == "time":
            fields["schedule_interval"] = _interval_from(form)
            if form.get("start_time"):
                fields["start_time"] = parse_local(form.get("start_time"), tz)
        if form.get("skip_if_previous_running"):
            fields["settings"] = {"skip_if_previous_running": True}
        create_trigger(database(request), project_root(request), pipeline_uuid, fields, actor=actor(request), conflict_hint="choose another name")
    except DagsmithError as exc:
        return redirect(request, flash_url(base, error_text(exc), "error"))
    notify(request)
    return redirect(request, flash_url(base, f"Trigger {name} created."))


def _trigger_action(request: Request, trigger_id: int, action: str) -> Response:
    from dagsmith.orchestration import triggers as ops
    from dagsmith.orchestration.store import repo

    db = database(request)
    pipeline_uuid = None
    try:
        with db.read() as session:
            pipeline_uuid = repo.get_trigger(session, trigger_id).pipeline_uuid  # where to answer, errors included
        if action == "run":
            run = ops.run_trigger_now(db, trigger_id)
            notify(request)
            return redirect(request, f"/pipeline-runs/{run.id}")
        change = ops.toggle_trigger if action == "toggle" else ops.delete_trigger
        _, message = change(db, request.app.state.settings.project_root, trigger_id, actor=actor(request))
    except DagsmithError as exc:
        target = f"/pipelines/{quote(pipeline_uuid)}/triggers" if pipeline_uuid else "/pipelines"
        return redirect(request, flash_url(target, error_text(exc), "error"))
    notify(request)
    return redirect(request, flash_url(f"/pipelines/{quote(pipeline_uuid)}/triggers", message))


@post("/triggers/{trigger_id}/toggle")
def trigger_toggle(request: Request, trigger_id: int) -> Response:
    return _trigger_action(request, trigger_id, "toggle")


@post("/triggers/{trigger_id}/run")
def trigger_run(request: Request, trigger_id: int) -> Response:
    return _trigger_action(request, trigger_id, "run")


@post("/triggers/{trigger_id}/delete")
def trigger_delete(request: Request, trigger_id: int) -> Response:
    return _trigger_action(request, trigger_id, "delete")
