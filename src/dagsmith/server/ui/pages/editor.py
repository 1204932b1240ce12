"""The pipeline editor (``/pipelines/<p>/edit``): the page with its cells and DAG, one cell's
fragment, adding blocks from templates or existing files, saving a block file (with a
conflict check against the hash it was read at), running a block as a background job and
polling it, edges, a SQL cell's settings and removing a block.

Per-block actions (duplicate, rename, disable), the file tree beside the cells, live output
and charts are registered by ``server.ui.actions`` and ``server.ui.live``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from dagsmith.errors import ConfigError, DagsmithError, ProjectError
from dagsmith.server.ui.pages.common import (
    UTC,
    cached_raw,
    check_hash,
    check_pipeline,
    content_hash,
    dag_svg_context,
    error_fragment,
    error_text,
    flash_url,
    load_spec,
    not_found,
    page_router,
    project_root,
    redirect,
    render,
)

router, get, post = page_router()

TEMPLATE_LABELS = {
    "api": "API (CSV over HTTP)", "postgres": "PostgreSQL", "gcs": "Google Cloud Storage", "bigquery": "BigQuery",
    "duckdb": "DuckDB", "s3": "Amazon S3", "file": "Local file", "generic": "Generic (no template)",
}
ADDABLE_TYPES = [("data_loader", "Data loader"), ("transformer", "Transformer"), ("data_exporter", "Data exporter"), ("custom", "Custom"), ("sensor", "Sensor"),
                 ("markdown", "Markdown (notes)"), ("scratchpad", "Scratchpad (not run by pipelines)")]
#: first content of cells that are not steps of the pipeline
NOTE_CONTENT = {
    "markdown": "# {name}\n\nNotes for whoever opens this pipeline next: where the data comes from, what to check.\n",
    "scratchpad": "# Scratchpad: run it from the editor to try things out; pipeline runs skip it.\nprint('hello from {name}')\n",
}
SQL_PROVIDERS = ["postgres", "bigquery", "duckdb", "snowflake", "mysql", "redshift", "clickhouse", "trino"]
#: SQL templates named after a connector set the new block's data_provider; its default schema (BigQuery: the dataset, set by the user)
SQL_TEMPLATE_SCHEMAS = {"postgres": "public", "duckdb": "main", "bigquery": ""}


def block_files(root: Path) -> list[dict[str, str]]:
    """Block files in the project, for "add an existing block"."""
    from dagsmith.project.layout import BLOCK_TYPE_DIRS, LANGUAGE_EXTENSIONS

    ext_lang = {v: k for k, v in LANGUAGE_EXTENSIONS.items()}
    out = []
    for btype, _label in ADDABLE_TYPES:
        folder = root / BLOCK_TYPE_DIRS[btype]
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            ext = path.suffix.lstrip(".")
            if path.is_file() and ext in ("py", "sql") and path.stem != "__init__":
                out.append({"relpath": f"{folder.name}/{path.name}", "type": btype, "uuid": path.stem, "language": ext_lang[ext]})
    return out


def _template_choices(templates: list[dict[str, str]], language: str = "python") -> dict[str, list[tuple[str, str]]]:
    """block type → [(template, label)] of its templates in ``language``, generic first."""
    out: dict[str, list[tuple[str, str]]] = {t: [] for t, _ in ADDABLE_TYPES}
    for t in templates:
        if t["language"] == language and t["block_type"] in out:
            out[t["block_type"]].append((t["template"], TEMPLATE_LABELS.get(t["template"], t["template"])))
    for choices in out.values():
        if not choices or (language == "sql" and all(c[0] != "generic" for c in choices)):
            choices.append(("generic", TEMPLATE_LABELS["generic"]))  # SQL generic: the Connection select decides
        choices.sort(key=lambda c: (c[0] != "generic", c[1]))
    return out


def shared_blocks(root: Path, spec) -> dict[str, list[str]]:
    """block uuid → the OTHER pipelines that list the same block file (same type and uuid)."""
    from dagsmith.project.pipelines import list_pipelines

    users: dict[tuple[str, str], list[str]] = {}
    for uuid in list_pipelines(root):
        if uuid == spec.uuid:
            continue
        try:
            raw = cached_raw(root, uuid)
        except DagsmithError:
            continue
        for b in raw.get("blocks") or []:
            if isinstance(b, dict):
                users.setdefault((str(b.get("type")), str(b.get("uuid"))), []).append(uuid)
    return {b.uuid: users[(b.type, b.uuid)] for b in spec.blocks if (b.type, b.uuid) in users}


_lines_cache: dict[str, tuple[tuple[int, int], int]] = {}


def cell_heights(spec) -> dict[str, int]:
    """Pixels each cell will take once loaded (from its line count), so placeholders hold their place
    and a ``#block-x`` link lands on its cell while the cells above it load."""
    out = {}
    for b in spec.blocks:
        try:
            st = b.path.stat()
        except OSError:
            continue
        key = str(b.path)
        hit = _lines_cache.get(key)
        stamp = (st.st_mtime_ns, st.st_size)
        if hit is None or hit[0] != stamp:
            try:
                n = b.path.read_bytes().count(b"\n") + 1
            except OSError:
                continue
            if len(_lines_cache) > 20000:
                _lines_cache.clear()
            _lines_cache[key] = (stamp, n)
            hit = _lines_cache[key]
        lines = min(hit[1], 30)  # the editor stops growing at about 30 lines (CSS max-height)
        out[b.uuid] = 8 + 10 + lines * 18 + 44 + 30 + (120 if b.language == "sql" else 0)
    return out


def _editor_statuses(request: Request, spec) -> dict[str, str]:
    """Each block's status from its latest editor run (the DAG colours its nodes with it)."""
    jobs = request.app.state.ui_jobs
    out = {}
    for b in spec.blocks:
        job = jobs.latest(spec.uuid, b.uuid)
        if job is not None:
            out[b.uuid] = job.status if job.done.is_set() else "running"
            for u, info in job.blocks.items():
                if u != b.uuid and info.get("status") and u not in out:
                    out[u] = info["status"]
    return out


@get("/pipelines/{pipeline_uuid}/edit/dev")
def editor_dev(request: Request, pipeline_uuid: str, seq: int = 0) -> Response:
    """The runs of ``dagsmith dev`` on this pipeline (``engine.devfeed``); 204 while nothing changed since ``seq``."""
    from dagsmith.engine.devfeed import read_feed

    check_pipeline(request, pipeline_uuid)
    feed = read_feed(project_root(request), pipeline_uuid)
    current = int(feed.get("seq") or 0) if feed else 0
    if current == seq:
        return Response(status_code=204)
    return render(request, "_dev_feed.html", feed=feed, seq=current, pipeline_uuid=pipeline_uuid)


@get("/pipelines/{pipeline_uuid}/edit")
def editor_page(request: Request, pipeline_uuid: str, ok: str | None = None, error: str | None = None, open: str | None = None) -> HTMLResponse:
    return editor_view(request, pipeline_uuid, ok=ok, error=error, open_file=open)


def editor_view(request: Request, pipeline_uuid: str, *, ok: str | None = None, error: str | None = None,
                open_file: str | None = None, run_once: tuple[str, str] | None = None) -> HTMLResponse:
    """The editor page; ``run_once`` = (the variables typed for a one-off run, why it did not start):
    the "Run with variables…" box opens again with that text and the reason inside it."""
    from dagsmith.blocks.templates import list_templates
    from dagsmith.project.yamlio import dump_yaml

    try:
        check_pipeline(request, pipeline_uuid)
        spec = load_spec(request, pipeline_uuid)
    except ProjectError as exc:
        if "not found" in exc.message or "does not exist" in exc.message:
            return not_found(request, exc)
        return render(request, "error_page.html", status_code=422, title="Pipeline is invalid", message=error_text(exc), pipeline_uuid=pipeline_uuid, nav="edit")
    raw = spec.raw
    in_pipeline = {(b.type, b.uuid) for b in spec.blocks}
    reusable = [f for f in block_files(project_root(request)) if (f["type"], f["uuid"]) not in in_pipeline]
    variables = dict(raw.get("variables") or {})
    return render(
        request,
        "editor.html",
        title=f"{spec.name} · editor",
        nav="edit",
        pipeline=spec,
        pipeline_uuid=pipeline_uuid,
        blocks=spec.blocks,
        template_choices=_template_choices(list_templates()),
        sql_template_choices=_template_choices(list_templates(), "sql"),
        addable_types=ADDABLE_TYPES,
        reusable=reusable,
        variables_yaml=dump_yaml(variables) if variables else "",
        ok=ok,
        error=error,
        shared=shared_blocks(project_root(request), spec),
        heights=cell_heights(spec),
        node_status=_editor_statuses(request, spec),
        open_file=open_file,
        run_once_text=run_once[0] if run_once else None,
        run_once_error=run_once[1] if run_once else None,
        disabled_blocks=[b.uuid for b in spec.blocks if (b.configuration or {}).get("disabled")],
        **dag_svg_context(spec),
    )


@get("/pipelines/{pipeline_uuid}/edit/dag")
def editor_dag(request: Request, pipeline_uuid: str) -> HTMLResponse:
    try:
        spec = load_spec(request, pipeline_uuid)
    except DagsmithError as exc:
        return error_fragment(request, exc)
    return render(request, "_dag.html", pipeline_uuid=pipeline_uuid, **dag_svg_context(spec))


def _cell_context(request: Request, spec, block) -> dict[str, Any]:
    path = block.path
    exists = path.is_file()
    data = path.read_bytes() if exists else b""
    jobs = request.app.state.ui_jobs
    job = jobs.latest(spec.uuid, block.uuid)
    preview = None
    if job is None:
        try:
            preview = jobs.stored_preview(spec.uuid, block.uuid)
        except Exception:  # noqa: BLE001 - a stale output never breaks the editor
            preview = None
    return {
        "pipeline_uuid": spec.uuid,
        "block": block,
        "content": data.decode("utf-8", errors="replace"),
        "file_hash": content_hash(data) if exists else "missing",
        "file_missing": not exists,
        "others": [b.uuid for b in spec.blocks if b.uuid != block.uuid],
        "job": job,
        "stored_preview": preview,
        "sql_providers": SQL_PROVIDERS,
        "config": dict(block.configuration or {}),
    }


@get("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}")
def editor_cell(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    try:
        spec = load_spec(request, pipeline_uuid)
        block = spec.block(block_uuid)
    except DagsmithError as exc:
        return error_fragment(request, exc, 404)
    return render(request, "_cell.html", **_cell_context(request, spec, block))


@post("/pipelines/{pipeline_uuid}/edit/blocks")
async def editor_add_block(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.blocks.templates import render_block_template, sql_block_configuration
    from dagsmith.project.layout import clean_name
    from dagsmith.project.pipelines import add_block

    form = await request.form()
    root = project_root(request)
    base = f"/pipelines/{quote(pipeline_uuid)}/edit"
    upstream = [str(u) for u in form.getlist("upstream") if u]
    try:
        existing = str(form.get("existing") or "")
        if existing:
            match = next((f for f in block_files(root) if f["relpath"] == existing), None)
            if match is None:
                raise ProjectError(f"there is no block file {existing!r} in the project")
            block = add_block(root, pipeline_uuid, match["uuid"], match["type"], language=match["language"], upstream=upstream)
        else:
            btype = str(form.get("type") or "data_loader")
            language = str(form.get("language") or "python")
            template = str(form.get("template") or "generic")
            name = str(form.get("name") or "").strip()
            if not name:
                raise ProjectError("a block needs a name", hint="e.g. load_taxi_data")
            if btype in NOTE_CONTENT:  # notes and scratchpads: no template, no upstream
                language = "markdown" if btype == "markdown" else "python"
                block = add_block(root, pipeline_uuid, clean_name(name), btype, language=language,
                                  content=NOTE_CONTENT[btype].format(name=name), name=name)
                return redirect(request, f"{base}#block-{quote(block.uuid)}")
            if language not in ("python", "sql"):
                raise ProjectError(f"language {language!r} is not supported here", hint="choose Python or SQL")
            if language == "sql" and template not in SQL_TEMPLATE_SCHEMAS:
                template = "generic"  # e.g. a Python template name sent with language SQL
            try:
                content = render_block_template(btype, language, template, name)
            except ProjectError:
                if language != "sql":
                    raise
                content = f"-- {name}\nSELECT *\nFROM {{{{ df_1 }}}}\n" if upstream else f"-- {name}\nSELECT 1 AS one\n"
            configuration: dict[str, Any] = {}
            if language == "sql":
                provider = template if template in SQL_TEMPLATE_SCHEMAS else str(form.get("data_provider") or "postgres")
                configuration = sql_block_configuration(btype, provider, name)
            block = add_block(root, pipeline_uuid, clean_name(name), btype, language=language, upstream=upstream, content=content, configuration=configuration, name=name)
    except DagsmithError as exc:
        return redirect(request, flash_url(base, error_text(exc), "error"))
    return redirect(request, f"{base}#block-{quote(block.uuid)}")


def _save_block_file(request: Request, spec, block, content: str, base_hash: str, force: bool) -> tuple[str | None, str | None]:
    """Write a block file; returns (new hash, None) or (None, current hash) on a conflict."""
    from dagsmith.project.layout import confine
    from dagsmith.project.yamlio import write_text_atomic

    path = confine(project_root(request), block.relpath)
    changed = check_hash(path, base_hash, force)
    if changed is not None:
        return None, changed
    text = content.replace("\r\n", "\n")
    write_text_atomic(path, text)
    return content_hash(text.encode("utf-8")), None


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/save")
async def editor_save(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    form = await request.form()
    try:
        spec = load_spec(request, pipeline_uuid)
        block = spec.block(block_uuid)
        new_hash, conflict = _save_block_file(request, spec, block, str(form.get("content", "")), str(form.get("base_hash", "")), form.get("force") == "1")
    except DagsmithError as exc:
        return error_fragment(request, exc)
    if conflict:
        return render(request, "_save_status.html", status_code=409, block=block, pipeline_uuid=pipeline_uuid, conflict=True)
    return render(request, "_save_status.html", block=block, pipeline_uuid=pipeline_uuid, conflict=False, file_hash=new_hash, saved_at=datetime.now(UTC))


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/run")
async def editor_run(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    form = await request.form()
    try:
        spec = load_spec(request, pipeline_uuid)
        block = spec.block(block_uuid)
        if "content" in form:
            new_hash, conflict = _save_block_file(request, spec, block, str(form.get("content", "")), str(form.get("base_hash", "")), form.get("force") == "1")
            if conflict:
                retarget = {"HX-Retarget": f"#save-{block_uuid}", "HX-Reswap": "innerHTML"}
                return render(request, "_save_status.html", status_code=409, headers=retarget, block=block, pipeline_uuid=pipeline_uuid, conflict=True)
        else:
            new_hash = None
        if form.get("sql_config") == "1":  # the cell's SQL settings as shown, saved or not: Run uses them
            _save_sql_config(request, pipeline_uuid, block, form)
        mode = str(form.get("mode") or ("upstream" if form.get("with_upstream") == "1" else "block"))
        if mode not in ("block", "upstream", "downstream"):
            raise ConfigError(f"run mode {mode!r} is unknown", hint="use block, upstream or downstream")
        job = request.app.state.ui_jobs.start(pipeline_uuid, block_uuid, mode=mode)
    except DagsmithError as exc:
        return error_fragment(request, exc)
    return render(request, "_output.html", job=job, block=block, pipeline_uuid=pipeline_uuid, new_hash=new_hash)


@get("/pipelines/{pipeline_uuid}/edit/jobs/{job_id}")
async def editor_job(request: Request, pipeline_uuid: str, job_id: str, wait: float = 0) -> HTMLResponse:
    import asyncio

    jobs = request.app.state.ui_jobs
    job = jobs.get(job_id)
    if job is None:
        return render(request, "_job_lost.html", block_uuid=request.query_params.get("block", ""), job_id=job_id)
    if wait and not job.done.is_set():
        # long poll without holding a worker thread: many cells may wait at once
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(float(wait), 25.0)
        while not job.done.is_set() and loop.time() < deadline:
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.02)
    try:
        block = load_spec(request, pipeline_uuid).block(job.block_uuid)
    except DagsmithError as exc:
        return error_fragment(request, exc)
    return render(request, "_output.html", job=job, block=block, pipeline_uuid=pipeline_uuid)


@post("/pipelines/{pipeline_uuid}/edit/jobs/{job_id}/cancel")
def editor_job_cancel(request: Request, pipeline_uuid: str, job_id: str) -> HTMLResponse:
    job = request.app.state.ui_jobs.get(job_id)
    if job is not None:
        request.app.state.ui_jobs.cancel(job)
    return HTMLResponse("<span class='muted'>cancelling…</span>")


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/upstream")
async def editor_upstream(request: Request, pipeline_uuid: str, block_uuid: str) -> Response:
    from dagsmith.project.pipelines import set_upstream

    form = await request.form()
    ups = [str(u) for u in form.getlist("upstream") if u]
    base = f"/pipelines/{quote(pipeline_uuid)}/edit"
    try:
        set_upstream(project_root(request), pipeline_uuid, block_uuid, ups)
    except DagsmithError as exc:
        return redirect(request, flash_url(base, error_text(exc), "error") + f"#block-{quote(block_uuid)}")
    return redirect(request, flash_url(base, f"Edges of {block_uuid} saved.") + f"#block-{quote(block_uuid)}")


def _save_sql_config(request: Request, pipeline_uuid: str, block, form) -> bool:
    """Write the SQL settings of a cell into its block entry; True when something changed."""
    from dagsmith.project.pipelines import update_block_entry

    config = dict(block.configuration or {})
    before = dict(config)
    for key in ("data_provider", "data_provider_profile", "data_provider_database", "data_provider_schema", "data_provider_table", "export_write_policy"):
        if key in form:
            value = str(form.get(key) or "").strip()
            if value:
                config[key] = value
            else:
                config.pop(key, None)
    config["use_raw_sql"] = form.get("use_raw_sql") in ("1", "on", "true")
    limit = str(form.get("limit") or "").strip()
    if limit:
        if not limit.isdigit():
            raise ConfigError(f"limit {limit!r} is not a whole number", hint="0 means no limit")
        config["limit"] = int(limit)
    if config.get("export_write_policy") not in (None, "append", "replace", "fail", "replace_partition"):
        raise ConfigError("write policy must be append, replace, fail or replace_partition")
    if config == before:
        return False
    update_block_entry(project_root(request), pipeline_uuid, block.uuid, {"configuration": config})
    return True


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/config")
async def editor_sql_config(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    form = await request.form()
    try:
        spec = load_spec(request, pipeline_uuid)
        _save_sql_config(request, pipeline_uuid, spec.block(block_uuid), form)
    except DagsmithError as exc:
        return error_fragment(request, exc)
    return HTMLResponse(f"<span class='ok'>SQL settings saved {datetime.now(UTC).strftime('%H:%M:%S')}.</span>")


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/remove")
async def editor_remove(request: Request, pipeline_uuid: str, block_uuid: str) -> Response:
    from dagsmith.project.pipelines import remove_block

    form = await request.form()
    base = f"/pipelines/{quote(pipeline_uuid)}/edit"
    try:
        remove_block(project_root(request), pipeline_uuid, block_uuid, delete_file=form.get("delete_file") == "1")
    except DagsmithError as exc:
        return redirect(request, flash_url(base, error_text(exc), "error"))
    return redirect(request, flash_url(base, f"Removed block {block_uuid} from the pipeline."))
