"""Backfill pages: ``/pipelines/<p>/backfills`` (list with progress, create form with a preview
of its dates), ``/backfills/<id>/progress`` and the start, cancel and re-run buttons.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from dagsmith.errors import ConfigError, DagsmithError
from dagsmith.server.ui.pages.common import (
    UTC,
    actor,
    check_pipeline,
    database,
    error_fragment,
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


def backfill_preview(start: str, end: str, interval_type: str, units: int, tz: str) -> dict[str, Any]:
    """The dates a backfill typed in the form would run (``ConfigError`` saying what to fix)."""
    from dagsmith.orchestration.scheduler.describe import backfill_preview as preview, check_backfill_interval

    if not start or not end:
        raise ConfigError("give a start and an end date", hint="e.g. 2024-01-01 and 2024-01-03")
    check_backfill_interval(interval_type, units)
    return preview(parse_local(start, tz), parse_local(end, tz), interval_type, units, tz)


def _backfill_rows(request: Request, pipeline_uuid: str) -> list[dict[str, Any]]:
    from dagsmith.orchestration.store import repo
    from dagsmith.server.schemas import BackfillOut

    with database(request).read() as session:
        return [BackfillOut.of(b, repo.backfill_progress(session, b.id)).model_dump() for b in repo.list_backfills(session, pipeline_uuid)]


@get("/pipelines/{pipeline_uuid}/backfills")
def backfills_page(request: Request, pipeline_uuid: str, ok: str | None = None, error: str | None = None) -> HTMLResponse:
    from dagsmith.orchestration.scheduler.describe import INTERVAL_TYPES

    try:
        check_pipeline(request, pipeline_uuid)
    except DagsmithError as exc:
        return not_found(request, exc)
    today = datetime.now(UTC).date()
    return render(
        request, "backfills.html", title=f"{pipeline_uuid} · backfills", nav="backfills", pipeline_uuid=pipeline_uuid,
        backfills=_backfill_rows(request, pipeline_uuid), interval_types=INTERVAL_TYPES, ok=ok, error=error,
        default_start=(today - timedelta(days=3)).isoformat(), default_end=(today - timedelta(days=1)).isoformat(),
    )


@get("/pipelines/{pipeline_uuid}/backfills/preview")
def backfill_preview_fragment(request: Request, pipeline_uuid: str) -> HTMLResponse:
    p = request.query_params
    try:
        units = int(p.get("interval_units") or 1)
        preview = backfill_preview(str(p.get("start") or ""), str(p.get("end") or ""), str(p.get("interval_type") or "day"), units, str(p.get("timezone") or "UTC"))
    except (DagsmithError, ValueError) as exc:
        return render(request, "_error.html", message=error_text(exc))
    return render(request, "_backfill_preview.html", preview=preview)


@post("/pipelines/{pipeline_uuid}/backfills")
async def backfill_create(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.orchestration.service import create_backfill

    form = await request.form()
    base = f"/pipelines/{quote(pipeline_uuid)}/backfills"
    try:
        tz = str(form.get("timezone") or "UTC")
        units = int(str(form.get("interval_units") or "1"))
        interval_type = str(form.get("interval_type") or "day")
        backfill_preview(str(form.get("start") or ""), str(form.get("end") or ""), interval_type, units, tz)
        concurrency = str(form.get("concurrency") or "").strip()
        create_backfill(
            database(request), project_root(request), pipeline_uuid,
            start=str(form.get("start")), end=str(form.get("end")), interval_type=interval_type, interval_units=units,
            name=str(form.get("name") or "").strip() or None, tz=tz, concurrency=int(concurrency) if concurrency else None,
            start_now=bool(form.get("start_now")),
        )
    except ValueError as exc:
        return redirect(request, flash_url(base, f"not a number: {exc}", "error"))
    except DagsmithError as exc:
        return redirect(request, flash_url(base, error_text(exc), "error"))
    notify(request)
    return redirect(request, flash_url(base, "Backfill created." + (" Its runs are queued." if form.get("start_now") else " Start it when ready.")))


@get("/backfills/{backfill_id}/progress")
def backfill_progress(request: Request, backfill_id: int) -> HTMLResponse:
    from dagsmith.orchestration.store import repo
    from dagsmith.server.schemas import BackfillOut

    try:
        with database(request).read() as session:
            b = repo.get_backfill(session, backfill_id)
            row = BackfillOut.of(b, repo.backfill_progress(session, b.id)).model_dump()
    except DagsmithError as exc:
        return error_fragment(request, exc, 404)
    return render(request, "_backfill_row.html", b=row)


async def _backfill_action(request: Request, backfill_id: int, action: str) -> Response:
    from dagsmith.orchestration.backfill_actions import change_backfill
    from dagsmith.orchestration.store import repo

    db = database(request)
    pipeline_uuid = None
    try:
        with db.read() as session:
            pipeline_uuid = repo.get_backfill(session, backfill_id).pipeline_uuid  # where to answer, errors included
        runtime = getattr(request.app.state, "runtime", None)
        change_backfill(db, backfill_id, action, actor=actor(request), local_cancel=runtime.cancel_local if runtime is not None else None)
    except DagsmithError as exc:
        target = f"/pipelines/{quote(pipeline_uuid)}/backfills" if pipeline_uuid else "/pipelines"
        return redirect(request, flash_url(target, error_text(exc), "error"))
    notify(request)
    words = {"start": "started", "cancel": "cancelled", "rerun": "re-queued its failed dates"}
    return redirect(request, flash_url(f"/pipelines/{quote(pipeline_uuid)}/backfills", f"Backfill {backfill_id} {words[action]}."))


@post("/backfills/{backfill_id}/start")
async def backfill_start(request: Request, backfill_id: int) -> Response:
    return await _backfill_action(request, backfill_id, "start")


@post("/backfills/{backfill_id}/cancel")
async def backfill_cancel(request: Request, backfill_id: int) -> Response:
    return await _backfill_action(request, backfill_id, "cancel")


@post("/backfills/{backfill_id}/rerun")
async def backfill_rerun(request: Request, backfill_id: int) -> Response:
    return await _backfill_action(request, backfill_id, "rerun")
