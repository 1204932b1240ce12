"""Editor routes added for live output and pictures of block outputs (its own ``router``, mounted beside the pages).

- ``GET /pipelines/<p>/edit/jobs/<id>/poll?since=N&wait=S``: JSON long poll of an editor
  block run: the lines printed since line N, status, elapsed seconds, the status of every
  block of the run (the DAG colours its nodes with it), and the final output fragment once
  the job is done. It answers as soon as a new line exists (checked every 20 ms), so output
  in the page trails the block's ``print`` by a poll round trip.
- ``GET /ui/ping``: 204, for the "connection lost" banner to know the server is back.
- ``GET /pipelines/<p>/edit/blocks/<b>/chart?type=&x=&y=&agg=``: the points of a chart of
  the block's latest stored output (whole output, aggregated server-side; ``data.preview``).
- ``POST /pipelines/<p>/edit/blocks/<b>/charts``: save a chart in the block's entry of the
  pipeline's metadata.yaml (``configuration.charts``), so it renders again next time;
  ``POST …/charts/<i>/delete`` removes one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from dagsmith.errors import ConfigError, DagsmithError, ProjectError
from dagsmith.server.ui.pages.common import error_text, load_spec, page_router, project_root, render

router, get, post = page_router()

#: longest a poll waits for news (the page polls again at once)
POLL_MAX_WAIT = 10.0
POLL_STEP = 0.02


@get("/ui/ping")
def ping() -> Response:
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


def _job_html(request: Request, job, pipeline_uuid: str) -> str | None:
    try:
        block = load_spec(request, pipeline_uuid).block(job.block_uuid)
    except DagsmithError:
        return None
    return render(request, "_output.html", job=job, block=block, pipeline_uuid=pipeline_uuid).body.decode("utf-8")


@get("/pipelines/{pipeline_uuid}/edit/jobs/{job_id}/poll")
async def job_poll(request: Request, pipeline_uuid: str, job_id: str, since: int = 0, wait: float = 0,
                   events: int = -1) -> Response:
    """The job's lines since line ``since``; with ``wait``, held until a line is printed, a block's
    status changes past ``events`` (``block_events`` of the last answer; -1: statuses do not end the
    wait), the job ends, or ``wait`` s."""
    from dagsmith.server.ui.jobs import state

    job = request.app.state.ui_jobs.get(job_id)
    if job is None or job.pipeline_uuid != pipeline_uuid:
        html = render(request, "_job_lost.html", block_uuid=request.query_params.get("block", ""), job_id=job_id).body.decode("utf-8")
        return JSONResponse({"id": job_id, "status": "lost", "done": True, "lines": [], "next": since, "seconds": 0, "blocks": {}, "html": html},
                            headers={"Cache-Control": "no-store"})
    def quiet() -> bool:
        return not job.done.is_set() and len(job.lines) <= since and (events < 0 or job.block_events <= events)

    if wait > 0 and quiet():
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, POLL_MAX_WAIT)
        while quiet() and loop.time() < deadline:
            await asyncio.sleep(POLL_STEP)
    out: dict[str, Any] = state(job, since)
    if out["done"]:
        out["html"] = _job_html(request, job, pipeline_uuid)
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------- charts of block outputs


def _chart_spec(source) -> dict[str, Any]:
    from dagsmith.data.preview import CHART_AGGREGATIONS, CHART_TYPES

    kind = str(source.get("type") or "bar")
    if kind not in CHART_TYPES:
        raise ConfigError(f"chart type {kind!r} is unknown", hint="use one of: " + ", ".join(CHART_TYPES))
    agg = str(source.get("agg") or "count")
    if agg not in CHART_AGGREGATIONS:
        raise ConfigError(f"aggregation {agg!r} is unknown", hint="use one of: " + ", ".join(CHART_AGGREGATIONS))
    spec = {"type": kind, "x": str(source.get("x") or ""), "y": str(source.get("y") or ""), "agg": agg}
    if not spec["x"]:
        raise ConfigError("choose a column for the x axis")
    if kind == "histogram":
        spec["bins"] = max(2, min(int(str(source.get("bins") or "20")), 200))
        spec.pop("y")
        spec.pop("agg")
    elif kind == "scatter":
        spec.pop("agg")
    title = str(source.get("title") or "").strip()
    if title:
        spec["title"] = title[:120]
    return spec


@get("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/chart")
def chart_points(request: Request, pipeline_uuid: str, block_uuid: str) -> Response:
    try:
        load_spec(request, pipeline_uuid).block(block_uuid)
        spec = _chart_spec(request.query_params)
        data = request.app.state.ui_jobs.chart(pipeline_uuid, block_uuid, spec)
    except (DagsmithError, ValueError, TimeoutError) as exc:
        return JSONResponse({"error": error_text(exc) if isinstance(exc, DagsmithError) else str(exc)})
    data["spec"] = spec
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def _saved_charts(spec, block_uuid: str) -> list[dict[str, Any]]:
    config = dict(spec.block(block_uuid).configuration or {})
    charts = config.get("charts") or []
    return [c for c in charts if isinstance(c, dict)] if isinstance(charts, list) else []


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/charts")
async def chart_save(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    from dagsmith.project.pipelines import update_block_entry

    form = await request.form()
    try:
        spec = load_spec(request, pipeline_uuid)
        config = dict(spec.block(block_uuid).configuration or {})
        chart = _chart_spec(form)
        charts = _saved_charts(spec, block_uuid)
        if chart in charts:
            return HTMLResponse("<span class='ok'>This chart is already saved.</span>")
        charts.append(chart)
        config["charts"] = charts
        update_block_entry(project_root(request), pipeline_uuid, block_uuid, {"configuration": config})
    except (DagsmithError, ValueError) as exc:
        return render(request, "_error.html", message=error_text(exc) if isinstance(exc, DagsmithError) else str(exc))
    return HTMLResponse(f"<span class='ok'>Chart saved with the pipeline ({len(charts)} saved for this block).</span>")


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/charts/{index}/delete")
def chart_delete(request: Request, pipeline_uuid: str, block_uuid: str, index: int) -> HTMLResponse:
    from dagsmith.project.pipelines import update_block_entry

    try:
        spec = load_spec(request, pipeline_uuid)
        config = dict(spec.block(block_uuid).configuration or {})
        charts = _saved_charts(spec, block_uuid)
        if not 0 <= index < len(charts):
            raise ProjectError(f"block '{block_uuid}' has no saved chart number {index + 1}")
        charts.pop(index)
        config["charts"] = charts
        if not charts:
            config.pop("charts")
        update_block_entry(project_root(request), pipeline_uuid, block_uuid, {"configuration": config})
    except DagsmithError as exc:
        return render(request, "_error.html", message=error_text(exc))
    return HTMLResponse("<span class='ok'>Chart removed.</span>")
