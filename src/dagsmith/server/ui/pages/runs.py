"""Run history pages: ``/pipeline-runs`` (all runs), ``/pipelines/<p>/runs`` (one pipeline's,
with its duration chart and day strip), ``/pipeline-runs/<id>`` (timeline, DAG, logs; its
``/live`` fragment while it runs) and the retry and cancel buttons.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dagsmith.errors import DagsmithError
from dagsmith.server.ui.pages.common import (
    UTC,
    actor,
    check_pipeline,
    dag_svg_context,
    database,
    error_fragment,
    error_text,
    flash_url,
    load_spec,
    not_found,
    notify,
    page_router,
    project_root,
    redirect,
    render,
)

router, get, post = page_router()


def _run_rows(request: Request, *, pipeline_uuid: str | None, status: str | None, page: int, per_page: int = 50, backfill_id: int | None = None):
    from dagsmith.orchestration.store import repo

    trigger_names: dict[int, str] = {}
    backfill_names: dict[int, str] = {}
    with database(request).read() as session:
        runs, total = repo.list_runs(session, pipeline_uuid=pipeline_uuid, backfill_id=backfill_id, status=[s for s in (status or "").split(",") if s] or None, limit=per_page, offset=(page - 1) * per_page)
        for t in repo.list_triggers(session, pipeline_uuid, include_hidden=True):
            trigger_names[t.id] = t.name
        for bid in {r.backfill_id for r in runs if r.backfill_id} | ({backfill_id} if backfill_id else set()):
            try:
                backfill_names[bid] = repo.get_backfill(session, bid).name
            except DagsmithError:
                pass
    return runs, total, trigger_names, backfill_names


def _day_counts(request: Request, pipeline_uuid: str | None, days: int = 30) -> list[tuple[Any, str, int]]:
    """(day, status, runs) of the last ``days`` days, by the day each run was created (UTC)."""
    from sqlalchemy import func, select

    from dagsmith.orchestration.store.models import PipelineRun

    since = datetime.now(UTC) - timedelta(days=days)
    day = func.date(PipelineRun.created_at)
    stmt = select(day, PipelineRun.status, func.count()).where(PipelineRun.created_at >= since)
    if pipeline_uuid:
        stmt = stmt.where(PipelineRun.pipeline_uuid == pipeline_uuid)
    with database(request).read() as session:
        return [(d, s, n) for d, s, n in session.execute(stmt.group_by(day, PipelineRun.status))]


def _recent_runs(request: Request, pipeline_uuid: str, limit: int = 200) -> list[Any]:
    from dagsmith.orchestration.store import repo

    with database(request).read() as session:
        runs, _total = repo.list_runs(session, pipeline_uuid=pipeline_uuid, limit=limit)
    return list(reversed(runs))


@get("/pipeline-runs")
def runs_page(request: Request, status: str | None = None, page: int = 1) -> HTMLResponse:
    from dagsmith.server.ui.insights import day_strip

    page = max(1, page)
    runs, total, names, bnames = _run_rows(request, pipeline_uuid=None, status=status, page=page)
    return render(request, "runs.html", title="Pipeline runs", nav="runs", runs=runs, total=total, trigger_names=names, backfill_names=bnames,
                  status=status, page=page, pipeline_uuid=None, strip=day_strip(_day_counts(request, None)))


@get("/pipelines/{pipeline_uuid}/runs")
def pipeline_runs_page(request: Request, pipeline_uuid: str, status: str | None = None, page: int = 1, backfill: int | None = None) -> HTMLResponse:
    from dagsmith.server.ui.insights import day_strip, duration_chart

    try:
        check_pipeline(request, pipeline_uuid)
    except DagsmithError as exc:
        return not_found(request, exc)
    page = max(1, page)
    backfill = int(backfill) if backfill is not None and str(backfill).isdigit() else None
    runs, total, names, bnames = _run_rows(request, pipeline_uuid=pipeline_uuid, status=status, page=page, backfill_id=backfill)
    return render(request, "runs.html", title=f"{pipeline_uuid} · runs", nav="p-runs", runs=runs, total=total, trigger_names=names, backfill_names=bnames,
                  status=status, page=page, pipeline_uuid=pipeline_uuid, backfill=backfill,
                  durations=None if backfill else duration_chart(_recent_runs(request, pipeline_uuid)),
                  strip=None if backfill else day_strip(_day_counts(request, pipeline_uuid)))


@get("/pipelines/{pipeline_uuid}/runs/{run_id}")
def pipeline_run_link(request: Request, pipeline_uuid: str, run_id: int) -> Response:
    """Mage-style run URL (used in notification links): the run page lives at /pipeline-runs/<id>."""
    return RedirectResponse(f"/pipeline-runs/{run_id}", status_code=307)


#: log records the run page shows at most (the last ones); the live page trims to it while it follows the tail
LOG_KEEP = 2000


def _run_context(request: Request, run_id: int, selected: str | None, log_after: int | None = None) -> dict[str, Any]:
    """The run page: timeline with attempts and a time axis, DAG with block statuses, logs.

    ``selected`` None (no ``block`` in the URL): a finished run with a failed block opens on
    that block's logs, anything else on the whole run; ``""`` is the whole run ("show all").
    ``log_after``: the byte offset in the log the page has shown up to (a live refresh): only the
    records written since are read, and the page appends them to its log box (``logs_reset``:
    it replaces the box, as the log was rewritten or more than ``LOG_KEEP`` records came at once).
    """
    from dagsmith.orchestration.logs import read_logs, run_log_dir, tail_logs
    from dagsmith.orchestration.store import repo
    from dagsmith.server.ui.insights import attempts_from_logs, gantt

    db = database(request)
    with db.read() as session:
        run = repo.get_run(session, run_id)
        blocks = repo.list_block_runs(session, run_id)
        trigger = repo.get_trigger(session, run.trigger_id) if run.trigger_id else None
        trigger_name = trigger.name if trigger else None
        backfill = repo.get_backfill(session, run.backfill_id) if run.backfill_id else None
        backfill_name = backfill.name if backfill else None
    log_dir = run.log_dir or str(run_log_dir(db.settings.logs_dir, run.pipeline_uuid, run.id))
    live = run.status in ("initial", "running")
    attempts = {b.block_uuid: attempts_from_logs(read_logs(log_dir, block_uuid=b.block_uuid, limit=5000)) for b in blocks if (b.attempts or 0) > 1}
    chart = gantt(run, blocks, attempts)
    if selected is None:
        failed = [b.block_uuid for b in blocks if b.status == "failed"]
        selected = failed[0] if failed and not live else ""
    tail = tail_logs(log_dir, block_uuid=selected or None, after=log_after or 0, keep=LOG_KEEP)
    dag: dict[str, Any] = {}
    try:
        spec = load_spec(request, run.pipeline_uuid)
        dag = dag_svg_context(spec)
        dag["node_status"] = {b.block_uuid: b.status for b in blocks}
        dag["node_href"] = f"/pipeline-runs/{run.id}?block="
    except DagsmithError:
        dag = {}
    return {
        "run": run,
        "blocks": blocks,
        "replay": _replay_command(request, run, blocks, selected),
        "bars": chart["rows"],
        "ticks": chart["ticks"],
        "t0": chart["t0"],
        "span": chart["span"],
        "trigger_name": trigger_name,
        "backfill_name": backfill_name,
        "logs": tail.records,
        "log_next": tail.next,
        "logs_reset": log_after is not None and (tail.reset or tail.dropped > 0),
        "log_keep": LOG_KEEP,
        "selected": selected,
        "live": live,
        "run_dag": dag,
    }


def _replay_command(request: Request, run: Any, blocks: list[Any], selected: str | None) -> dict[str, str] | None:
    """The command that replays a block of this run on the user's machine (``dagsmith run --from-run``):
    the selected block, else the first failed one; None while the run has not started."""
    import shlex

    if run.status == "initial" or not blocks:
        return None
    by = {b.block_uuid: b for b in blocks}
    failed = [b.block_uuid for b in blocks if b.status == "failed"]
    block = selected if selected in by else (failed[0] if failed else blocks[-1].block_uuid)
    parts = ["dagsmith", "run", str(project_root(request)), run.pipeline_uuid, "--from-run", str(run.partition or run.id),
             "--block", block]
    if by[block].status == "failed":
        parts.append("--pdb")
    return {"block": block, "command": " ".join(shlex.quote(p) for p in parts)}


@get("/pipeline-runs/{run_id}")
def run_page(request: Request, run_id: int, block: str | None = None, ok: str | None = None, error: str | None = None) -> HTMLResponse:
    try:
        ctx = _run_context(request, run_id, block)
    except DagsmithError as exc:
        return not_found(request, exc)
    return render(request, "run.html", title=f"Run {run_id}", nav="p-runs", pipeline_uuid=ctx["run"].pipeline_uuid, ok=ok, error=error, **ctx)


@get("/pipeline-runs/{run_id}/live")
def run_live(request: Request, run_id: int, block: str | None = None, after: str | None = None) -> HTMLResponse:
    """The refreshed part of a running run's page (status, timeline, graph) and, out of band, the log
    records written since byte ``after``, which the page appends to its log box: the box is never
    replaced, so a reader scrolled up keeps the lines they read (app.js). Once the run has finished:
    the last records, the run's buttons and facts, and 286 (htmx stops polling) instead of a reload."""
    log_after = int(after) if after is not None and after.isdigit() else None
    try:
        ctx = _run_context(request, run_id, block, log_after=log_after)
    except DagsmithError as exc:
        return error_fragment(request, exc, 404)
    headers = {"X-Log-Next": str(ctx["log_next"])} if log_after is not None else None
    return render(request, "_run_live.html", status_code=200 if ctx["live"] else 286, headers=headers,
                  refresh=True, log_after=log_after, **ctx)


@post("/pipeline-runs/{run_id}/retry")
async def run_retry(request: Request, run_id: int) -> Response:
    from dagsmith.orchestration import service

    form = await request.form()
    from_block = str(form.get("from_block") or "") or None
    try:
        service.retry(database(request), project_root(request), run_id, from_block=from_block, actor=actor(request))
    except DagsmithError as exc:
        return redirect(request, flash_url(f"/pipeline-runs/{run_id}", error_text(exc), "error"))
    notify(request)
    return redirect(request, flash_url(f"/pipeline-runs/{run_id}", f"Retrying run {run_id}" + (f" from {from_block}." if from_block else " from its unfinished blocks.")))


@post("/pipeline-runs/{run_id}/cancel")
def run_cancel(request: Request, run_id: int) -> Response:
    from dagsmith.orchestration import service

    runtime = getattr(request.app.state, "runtime", None)
    try:
        service.cancel(database(request), run_id, actor=actor(request), local_cancel=runtime.cancel_local if runtime is not None else None)
    except DagsmithError as exc:
        return redirect(request, flash_url(f"/pipeline-runs/{run_id}", error_text(exc), "error"))
    return redirect(request, flash_url(f"/pipeline-runs/{run_id}", f"Cancel requested for run {run_id}."))
