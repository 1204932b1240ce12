"""The pipeline list (``/pipelines``) and what it does to whole pipelines: create, clone,
rename, delete, set its variables and queue a run now (``POST /pipelines/<p>/run``).

Files are read and written through ``project.pipelines``; runs go through
``orchestration.service`` like the API's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from dagsmith.errors import ConfigError, DagsmithError, ProjectError
from dagsmith.server.ui.pages.common import (
    UTC,
    actor,
    cached_raw,
    database,
    error_text,
    flash_url,
    is_htmx,
    notify,
    page_router,
    project_root,
    redirect,
    render,
)

router, get, post = page_router()


def _pipeline_rows(request: Request) -> list[dict[str, Any]]:
    from dagsmith.orchestration.store import repo
    from dagsmith.project.pipelines import list_pipelines

    root = project_root(request)
    rows = []
    for uuid in list_pipelines(root):
        row: dict[str, Any] = {"uuid": uuid, "name": uuid, "blocks": 0, "error": None, "description": None}
        try:
            raw = cached_raw(root, uuid)
            row["name"] = str(raw.get("name") or uuid)
            row["blocks"] = len(raw.get("blocks") or [])
            row["description"] = raw.get("description")
            row["updated_at"] = raw.get("updated_at")
        except DagsmithError as exc:
            row["error"] = exc.message
        rows.append(row)
    by_uuid = {r["uuid"]: r for r in rows}
    with database(request).read() as session:
        for trigger in repo.list_triggers(session):
            row = by_uuid.get(trigger.pipeline_uuid)
            if row is not None:
                row.setdefault("triggers", []).append(
                    {"name": trigger.name, "status": trigger.status, "type": trigger.schedule_type, "interval": trigger.schedule_interval}
                )
        for row in rows:
            runs, total = repo.list_runs(session, pipeline_uuid=row["uuid"], limit=1)
            row["last_run"] = runs[0] if runs else None
            row["run_count"] = total
    return rows


@get("/pipelines")
def pipelines_page(request: Request, ok: str | None = None, error: str | None = None) -> HTMLResponse:
    return render(request, "pipelines.html", title="Pipelines", nav="pipelines", rows=_pipeline_rows(request), ok=ok, error=error)


@post("/pipelines")
async def pipeline_create(request: Request) -> Response:
    from dagsmith.project.pipelines import create_pipeline

    form = await request.form()
    name = str(form.get("name") or "").strip()
    try:
        if not name:
            raise ProjectError("a pipeline needs a name", hint="type a name such as green_taxi_etl")
        uuid = create_pipeline(project_root(request), name)
    except DagsmithError as exc:
        return redirect(request, flash_url("/pipelines", error_text(exc), "error"))
    return redirect(request, f"/pipelines/{quote(uuid)}/edit")


@post("/pipelines/{pipeline_uuid}/clone")
async def pipeline_clone(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.project.pipelines import clone_pipeline

    form = await request.form()
    try:
        new = clone_pipeline(project_root(request), pipeline_uuid, str(form.get("name") or f"{pipeline_uuid}_copy").strip())
    except DagsmithError as exc:
        return redirect(request, flash_url("/pipelines", error_text(exc), "error"))
    return redirect(request, flash_url("/pipelines", f"Cloned {pipeline_uuid} as {new}."))


@post("/pipelines/{pipeline_uuid}/rename")
async def pipeline_rename(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.project.pipelines import rename_pipeline

    form = await request.form()
    try:
        new = rename_pipeline(project_root(request), pipeline_uuid, str(form.get("name") or "").strip() or pipeline_uuid)
    except DagsmithError as exc:
        return redirect(request, flash_url("/pipelines", error_text(exc), "error"))
    return redirect(request, flash_url("/pipelines", f"Renamed {pipeline_uuid} to {new}."))


@post("/pipelines/{pipeline_uuid}/delete")
async def pipeline_delete(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.project.pipelines import delete_pipeline

    form = await request.form()
    if str(form.get("confirm") or "") != pipeline_uuid:
        return redirect(request, flash_url("/pipelines", f"Not deleted: type the pipeline name {pipeline_uuid} to confirm.", "error"))
    try:
        delete_pipeline(project_root(request), pipeline_uuid)
    except DagsmithError as exc:
        return redirect(request, flash_url("/pipelines", error_text(exc), "error"))
    return redirect(request, flash_url("/pipelines", f"Deleted pipeline {pipeline_uuid}; its block files were kept."))



@post("/pipelines/{pipeline_uuid}/variables")
async def pipeline_variables(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.project.pipelines import set_pipeline_variables

    form = await request.form()
    back = str(form.get("back") or f"/pipelines/{quote(pipeline_uuid)}/edit")
    if not back.startswith("/") or back.startswith("//"):
        back = "/pipelines"
    try:
        data = parse_variables(str(form.get("variables") or ""))
        set_pipeline_variables(project_root(request), pipeline_uuid, data)
    except DagsmithError as exc:
        if is_htmx(request):  # the text stays in the box; the error says what to fix
            return render(request, "_error.html", message=error_text(exc))
        return redirect(request, flash_url(back, error_text(exc), "error"))
    if is_htmx(request):
        return HTMLResponse(f"<span class='ok'>Variables of {pipeline_uuid} saved {datetime.now(UTC).strftime('%H:%M:%S')}.</span>")
    return redirect(request, flash_url(back, f"Variables of {pipeline_uuid} saved."))


def parse_variables(text: str) -> dict[str, Any]:
    """Pipeline or run variables typed as YAML (``name: value`` lines); ``ConfigError`` naming the line if invalid."""
    from dagsmith.project.yamlio import parse_yaml

    data = parse_yaml(text, "variables") if text.strip() else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("variables must be a YAML mapping of name: value", hint="e.g.\nbucket: my-bucket\nyear: 2021")
    return data


@post("/pipelines/{pipeline_uuid}/run")
async def pipeline_run_now(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.orchestration.service import create_run_now

    form = await request.form()
    try:
        once = parse_variables(str(form.get("variables") or "")) if "variables" in form else None
        extra = {"variables": once} if once else {}
        run = create_run_now(database(request), project_root(request), pipeline_uuid, source="ui", actor=actor(request), **extra)
    except DagsmithError as exc:
        if "variables" in form:  # the editor's one-off run: keep what was typed, say why beside it
            from dagsmith.server.ui.pages.editor import editor_view

            return editor_view(request, pipeline_uuid, run_once=(str(form.get("variables") or ""), error_text(exc)))
        return redirect(request, flash_url(f"/pipelines/{quote(pipeline_uuid)}/edit", error_text(exc), "error"))
    notify(request)
    return redirect(request, f"/pipeline-runs/{run.id}")
