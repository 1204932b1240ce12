"""Routes of the web UI: server-rendered Jinja2 pages and HTMX fragments (URLs follow Mage's).

Pages: ``/pipelines``, ``/pipelines/<p>/edit``, ``/pipelines/<p>/triggers``,
``/pipelines/<p>/runs``, ``/pipelines/<p>/backfills``, ``/pipeline-runs`` (and
``/pipeline-runs/<id>``), ``/files``, ``/settings``, ``/login``. Everything is read from
and written through ``project.pipelines`` (Mage-format files) and the orchestration
services and repository (runs, triggers, backfills, secrets), the same code the REST API
uses. Every state-changing request passes the CSRF check of ``auth``. Errors a person can
fix (``DagsmithError``) are shown on the page, never as a stack trace.
"""

from __future__ import annotations

import hashlib
import secrets as _secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dagsmith.errors import ConfigError, DagsmithError, ProjectError
from dagsmith.server.ui import auth

UTC = timezone.utc
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
SCHEDULE_PRESETS = [("@once", "Once"), ("@hourly", "Hourly"), ("@daily", "Daily (00:00)"), ("@weekly", "Weekly (Monday 00:00)"), ("@monthly", "Monthly (1st 00:00)"), ("custom", "Custom cron")]
INTERVAL_TYPES = ["minute", "hour", "day", "week", "month", "year"]
FILE_SKIP = {".git", ".dagsmith", "__pycache__", ".variables", ".logs", "mage_data", ".venv", "node_modules", ".ipynb_checkpoints"}
MAX_EDIT_BYTES = 2_000_000


# ---------------------------------------------------------------- plumbing


def _root(request: Request) -> Path:
    return request.app.state.ui_root


def _db(request: Request):
    db = getattr(request.app.state, "db", None)
    if db is None:
        from dagsmith.orchestration.db import get_database
        from dagsmith.orchestration.settings import OrchestrationSettings

        db = get_database(OrchestrationSettings.from_env(_root(request)))
        request.app.state.db = db
    return db


def _notify(request: Request) -> None:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        runtime.notify()


def _csrf_token(request: Request) -> str:
    from dagsmith.server.guard import csrf_token

    return csrf_token(request)


# CSRF, the Host/Origin checks and the name gate for path parameters are applied to every
# route of the app by dagsmith.server.guard (one dependency, one middleware).
router = APIRouter(include_in_schema=False)


def _plain(fn):
    """Wrap a view so FastAPI sees only ``request``: path and query values are read and converted here.

    FastAPI builds a pydantic field per declared parameter when the route is added, which
    costs milliseconds each and delays server start; the UI does not need that machinery.
    """
    import asyncio
    import inspect

    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "request"]
    wants_request = "request" in inspect.signature(fn).parameters

    def convert(request: Request) -> dict[str, Any]:
        from fastapi import HTTPException

        out: dict[str, Any] = {}
        for p in params:
            if p.name in request.path_params:
                raw = request.path_params[p.name]
            elif p.name in request.query_params:
                raw = request.query_params[p.name]
            else:
                if p.default is inspect.Parameter.empty:
                    raise HTTPException(status_code=404, detail=f"missing {p.name}")
                continue
            kind = p.annotation if isinstance(p.annotation, type) else str(p.annotation)
            try:
                if kind in (int, "int"):
                    out[p.name] = int(raw)
                elif kind in (float, "float"):
                    out[p.name] = float(raw)
                else:
                    out[p.name] = raw
            except ValueError:
                raise HTTPException(status_code=404, detail=f"{p.name} {raw!r} is not a number") from None
        if wants_request:
            out["request"] = request
        return out

    if asyncio.iscoroutinefunction(fn):
        async def view(request: Request):
            return await fn(**convert(request))
    else:
        def view(request: Request):
            return fn(**convert(request))
    view.__name__ = fn.__name__
    view.__doc__ = fn.__doc__
    return view


def _get(path: str):
    def deco(fn):
        router.add_api_route(path, _plain(fn), methods=["GET"], include_in_schema=False)
        return fn
    return deco


def _post(path: str):
    def deco(fn):
        router.add_api_route(path, _plain(fn), methods=["POST"], include_in_schema=False)
        return fn
    return deco


def _fmt_dt(value: Any, tz: str | None = None) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if tz and tz != "UTC":
        from dagsmith.orchestration.scheduler.triggers import get_zone

        value = value.astimezone(get_zone(tz))
        return value.strftime("%Y-%m-%d %H:%M:%S %Z")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_secs(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {sec} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _duration(start, end) -> str:
    if not start:
        return "—"
    end = end or datetime.now(UTC)
    return _fmt_secs((end - start).total_seconds())


_env = None


def _templates():
    global _env
    if _env is None:
        import jinja2

        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
            autoescape=jinja2.select_autoescape(["html"]),
            auto_reload=False,
            bytecode_cache=jinja2.FileSystemBytecodeCache(),  # compiled templates survive restarts (faster first page)
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _env.filters["dt"] = _fmt_dt
        _env.filters["secs"] = _fmt_secs
        _env.globals["duration"] = _duration
        _env.globals["quote"] = lambda s: quote(str(s), safe="")
        from dagsmith.server.ui import present

        present.extend(_env)
    return _env


def render(request: Request, name: str, status_code: int = 200, headers: dict | None = None, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("request", request)
    ctx.setdefault("project_name", _root(request).name)
    ctx.setdefault("project_root", _root(request))
    ctx["csrf"] = _csrf_token(request)
    ctx["user"] = request.scope.get("state", {}).get("user") if isinstance(request.scope.get("state"), dict) else None
    ctx.setdefault("static", request.app.state.ui_static_version)
    html = _templates().get_template(name).render(**ctx)
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    new = getattr(request.state, "csrf_new", None)
    if new:
        response.set_cookie(auth.CSRF_COOKIE, new, httponly=False, samesite="strict", path="/")
    return response


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _redirect(request: Request, url: str) -> Response:
    if _is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _flash_url(url: str, message: str, kind: str = "ok") -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{kind}={quote(message)}"


def _error_text(exc: Exception) -> str:
    from dagsmith.project.masking import mask

    if isinstance(exc, DagsmithError):
        return mask(exc.message + (f" — {exc.hint}" if exc.hint else ""))
    return mask(f"{type(exc).__name__}: {exc}")


def _error_fragment(request: Request, exc: Exception, status: int = 422) -> HTMLResponse:
    return render(request, "_error.html", status_code=status, message=_error_text(exc))


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


_spec_cache: dict[tuple[str, str], tuple[tuple[int, int], Any]] = {}


def _load_spec(request: Request, pipeline_uuid: str):
    """The pipeline spec, parsed again only when its metadata.yaml changed (big pipelines parse slowly)."""
    from dagsmith.project.pipelines import load_pipeline, metadata_path

    root = _root(request)
    try:
        st = metadata_path(root, pipeline_uuid).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return load_pipeline(root, pipeline_uuid)  # raises the "not found" error
    key = (str(root), pipeline_uuid)
    hit = _spec_cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    spec = load_pipeline(root, pipeline_uuid)
    if len(_spec_cache) > 64:
        _spec_cache.clear()
    _spec_cache[key] = (stamp, spec)
    return spec


def _check_pipeline(request: Request, pipeline_uuid: str) -> None:
    from dagsmith.orchestration.service import check_pipeline

    check_pipeline(_root(request), pipeline_uuid)


def _not_found(request: Request, exc: Exception) -> Response:
    return error_page(request, 404, "Not found", _error_text(exc))


def error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    """An error as a whole page for a browser; only the message for HTMX swaps and non-browser clients."""
    if request.headers.get("hx-request"):
        return render(request, "_error.html", status_code=status_code, message=message)
    if "text/html" not in request.headers.get("accept", ""):
        from fastapi.responses import PlainTextResponse

        return PlainTextResponse(f"{status_code} {title}: {message}\n", status_code=status_code)
    return render(request, "error_page.html", status_code=status_code, title=title, message=message)


# ---------------------------------------------------------------- sign-in


@_get("/")
def home() -> Response:
    return RedirectResponse("/pipelines", status_code=303)


@_get("/login")
def login_page(request: Request, next: str = "/pipelines", error: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=next if next.startswith("/") and not next.startswith("//") else "/pipelines", error=error)


@_post("/login")
async def login(request: Request) -> Response:
    import asyncio

    form = await request.form()
    config = request.app.state.ui_auth
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    target = str(form.get("next") or "/pipelines")
    if not target.startswith("/") or target.startswith("//"):
        target = "/pipelines"
    if config is None:
        return RedirectResponse(target, status_code=303)
    import hmac

    throttle = request.app.state.ui_login_throttle
    client = request.client.host if request.client else "?"
    wait = throttle.retry_after(client)
    if wait:
        return render(request, "login.html", status_code=429, headers={"Retry-After": str(wait)}, next=target,
                      error=f"Too many failed sign-ins from this address; try again in {wait // 60 + 1} min.")
    ok = hmac.compare_digest(user.encode(), config.user.encode()) & auth.verify_password(password, config.password_hash)
    if not ok:
        await asyncio.sleep(throttle.failed(client))  # each failure doubles the wait
        return render(request, "login.html", status_code=401, next=target, error="Wrong user or password.")
    throttle.succeeded(client)
    sessions = request.app.state.ui_sessions
    cookie = sessions.issue(user)
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https"
    response.set_cookie(auth.SESSION_COOKIE, cookie, httponly=True, samesite="lax", secure=secure, max_age=auth.SESSION_SECONDS, path="/")
    # the session's CSRF token, readable by scripts that signed in (send it as X-CSRF-Token)
    response.set_cookie(auth.CSRF_COOKIE, sessions.csrf_for(sessions.parse(cookie)["sid"]), httponly=False, samesite="strict", secure=secure, path="/")
    return response


@_post("/logout")
def logout(request: Request) -> Response:
    sessions = getattr(request.app.state, "ui_sessions", None)
    if sessions is not None:
        sessions.revoke(request.cookies.get(auth.SESSION_COOKIE))  # the cookie is dead even if someone kept a copy
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    response.delete_cookie(auth.CSRF_COOKIE, path="/")
    return response


# ---------------------------------------------------------------- pipelines


_raw_cache: dict[tuple[str, str], tuple[tuple[int, int], dict[str, Any]]] = {}


def _cached_raw(root: Path, uuid: str) -> dict[str, Any]:
    """A pipeline's metadata mapping, re-read only when the file changed (read-only use!)."""
    from dagsmith.project.pipelines import metadata_path, read_pipeline_raw

    try:
        st = metadata_path(root, uuid).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return read_pipeline_raw(root, uuid)
    key = (str(root), uuid)
    hit = _raw_cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    raw = read_pipeline_raw(root, uuid)
    if len(_raw_cache) > 256:
        _raw_cache.clear()
    _raw_cache[key] = (stamp, raw)
    return raw


def _pipeline_rows(request: Request) -> list[dict[str, Any]]:
    from dagsmith.orchestration.store import repo
    from dagsmith.project.pipelines import list_pipelines

    root = _root(request)
    rows = []
    for uuid in list_pipelines(root):
        row: dict[str, Any] = {"uuid": uuid, "name": uuid, "blocks": 0, "error": None, "description": None}
        try:
            raw = _cached_raw(root, uuid)
            row["name"] = str(raw.get("name") or uuid)
            row["blocks"] = len(raw.get("blocks") or [])
            row["description"] = raw.get("description")
            row["updated_at"] = raw.get("updated_at")
        except DagsmithError as exc:
            row["error"] = exc.message
        rows.append(row)
    by_uuid = {r["uuid"]: r for r in rows}
    with _db(request).read() as session:
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


@_get("/pipelines")
def pipelines_page(request: Request, ok: str | None = None, error: str | None = None) -> HTMLResponse:
    return render(request, "pipelines.html", title="Pipelines", nav="pipelines", rows=_pipeline_rows(request), ok=ok, error=error)


@_post("/pipelines")
async def pipeline_create(request: Request) -> Response:
    from dagsmith.project.pipelines import create_pipeline

    form = await request.form()
    name = str(form.get("name") or "").strip()
    try:
        if not name:
            raise ProjectError("a pipeline needs a name", hint="type a name such as green_taxi_etl")
        uuid = create_pipeline(_root(request), name)
    except DagsmithError as exc:
        return _redirect(request, _flash_url("/pipelines", _error_text(exc), "error"))
    return _redirect(request, f"/pipelines/{quote(uuid)}/edit")


@_post("/pipelines/{pipeline_uuid}/clone")
async def pipeline_clone(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.project.pipelines import clone_pipeline

    form = await request.form()
    try:
        new = clone_pipeline(_root(request), pipeline_uuid, str(form.get("name") or f"{pipeline_uuid}_copy").strip())
    except DagsmithError as exc:
        return _redirect(request, _flash_url("/pipelines", _error_text(exc), "error"))
    return _redirect(request, _flash_url("/pipelines", f"Cloned {pipeline_uuid} as {new}."))


@_post("/pipelines/{pipeline_uuid}/rename")
async def pipeline_rename(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.project.pipelines import rename_pipeline

    form = await request.form()
    try:
        new = rename_pipeline(_root(request), pipeline_uuid, str(form.get("name") or "").strip() or pipeline_uuid)
    except DagsmithError as exc:
        return _redirect(request, _flash_url("/pipelines", _error_text(exc), "error"))
    return _redirect(request, _flash_url("/pipelines", f"Renamed {pipeline_uuid} to {new}."))


@_post("/pipelines/{pipeline_uuid}/delete")
async def pipeline_delete(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.project.pipelines import delete_pipeline

    form = await request.form()
    if str(form.get("confirm") or "") != pipeline_uuid:
        return _redirect(request, _flash_url("/pipelines", f"Not deleted: type the pipeline name {pipeline_uuid} to confirm.", "error"))
    try:
        delete_pipeline(_root(request), pipeline_uuid)
    except DagsmithError as exc:
        return _redirect(request, _flash_url("/pipelines", _error_text(exc), "error"))
    return _redirect(request, _flash_url("/pipelines", f"Deleted pipeline {pipeline_uuid}; its block files were kept."))


# ---------------------------------------------------------------- editor


def _block_files(root: Path) -> list[dict[str, str]]:
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
            raw = _cached_raw(root, uuid)
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


def _dag_svg_context(spec) -> dict[str, Any]:
    from dagsmith.server.ui.dag import NODE_H, NODE_W, layout

    lay = layout([(b.uuid, b.type, b.upstream_blocks) for b in spec.blocks])
    return {"dag": lay, "node_w": NODE_W, "node_h": NODE_H}


@_get("/pipelines/{pipeline_uuid}/edit/dev")
def editor_dev(request: Request, pipeline_uuid: str, seq: int = 0) -> Response:
    """The runs of ``dagsmith dev`` on this pipeline (``engine.devfeed``); 204 while nothing changed since ``seq``."""
    from dagsmith.engine.devfeed import read_feed

    _check_pipeline(request, pipeline_uuid)
    feed = read_feed(_root(request), pipeline_uuid)
    current = int(feed.get("seq") or 0) if feed else 0
    if current == seq:
        return Response(status_code=204)
    return render(request, "_dev_feed.html", feed=feed, seq=current, pipeline_uuid=pipeline_uuid)


@_get("/pipelines/{pipeline_uuid}/edit")
def editor_page(request: Request, pipeline_uuid: str, ok: str | None = None, error: str | None = None, open: str | None = None) -> HTMLResponse:
    from dagsmith.blocks.templates import list_templates
    from dagsmith.project.yamlio import dump_yaml

    try:
        _check_pipeline(request, pipeline_uuid)
        spec = _load_spec(request, pipeline_uuid)
    except ProjectError as exc:
        if "not found" in exc.message or "does not exist" in exc.message:
            return _not_found(request, exc)
        return render(request, "error_page.html", status_code=422, title="Pipeline is invalid", message=_error_text(exc), pipeline_uuid=pipeline_uuid, nav="edit")
    raw = spec.raw
    in_pipeline = {(b.type, b.uuid) for b in spec.blocks}
    reusable = [f for f in _block_files(_root(request)) if (f["type"], f["uuid"]) not in in_pipeline]
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
        shared=shared_blocks(_root(request), spec),
        heights=cell_heights(spec),
        node_status=_editor_statuses(request, spec),
        open_file=open,
        disabled_blocks=[b.uuid for b in spec.blocks if (b.configuration or {}).get("disabled")],
        **_dag_svg_context(spec),
    )


@_get("/pipelines/{pipeline_uuid}/edit/dag")
def editor_dag(request: Request, pipeline_uuid: str) -> HTMLResponse:
    try:
        spec = _load_spec(request, pipeline_uuid)
    except DagsmithError as exc:
        return _error_fragment(request, exc)
    return render(request, "_dag.html", pipeline_uuid=pipeline_uuid, **_dag_svg_context(spec))


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
        "file_hash": _hash(data) if exists else "missing",
        "file_missing": not exists,
        "others": [b.uuid for b in spec.blocks if b.uuid != block.uuid],
        "job": job,
        "stored_preview": preview,
        "sql_providers": SQL_PROVIDERS,
        "config": dict(block.configuration or {}),
    }


@_get("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}")
def editor_cell(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    try:
        spec = _load_spec(request, pipeline_uuid)
        block = spec.block(block_uuid)
    except DagsmithError as exc:
        return _error_fragment(request, exc, 404)
    return render(request, "_cell.html", **_cell_context(request, spec, block))


@_post("/pipelines/{pipeline_uuid}/edit/blocks")
async def editor_add_block(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.blocks.templates import render_block_template, sql_block_configuration
    from dagsmith.project.layout import clean_name
    from dagsmith.project.pipelines import add_block

    form = await request.form()
    root = _root(request)
    base = f"/pipelines/{quote(pipeline_uuid)}/edit"
    upstream = [str(u) for u in form.getlist("upstream") if u]
    try:
        existing = str(form.get("existing") or "")
        if existing:
            match = next((f for f in _block_files(root) if f["relpath"] == existing), None)
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
                return _redirect(request, f"{base}#block-{quote(block.uuid)}")
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
        return _redirect(request, _flash_url(base, _error_text(exc), "error"))
    return _redirect(request, f"{base}#block-{quote(block.uuid)}")


def _check_hash(path: Path, base_hash: str, force: bool) -> str | None:
    """The current hash when the file changed since ``base_hash`` was read (None when safe to write)."""
    if force:
        return None
    current = _hash(path.read_bytes()) if path.is_file() else "missing"
    return None if current == base_hash else current


def _save_block_file(request: Request, spec, block, content: str, base_hash: str, force: bool) -> tuple[str | None, str | None]:
    """Write a block file; returns (new hash, None) or (None, current hash) on a conflict."""
    from dagsmith.project.layout import confine
    from dagsmith.project.yamlio import write_text_atomic

    path = confine(_root(request), block.relpath)
    changed = _check_hash(path, base_hash, force)
    if changed is not None:
        return None, changed
    text = content.replace("\r\n", "\n")
    write_text_atomic(path, text)
    return _hash(text.encode("utf-8")), None


@_post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/save")
async def editor_save(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    form = await request.form()
    try:
        spec = _load_spec(request, pipeline_uuid)
        block = spec.block(block_uuid)
        new_hash, conflict = _save_block_file(request, spec, block, str(form.get("content", "")), str(form.get("base_hash", "")), form.get("force") == "1")
    except DagsmithError as exc:
        return _error_fragment(request, exc)
    if conflict:
        return render(request, "_save_status.html", status_code=409, block=block, pipeline_uuid=pipeline_uuid, conflict=True)
    return render(request, "_save_status.html", block=block, pipeline_uuid=pipeline_uuid, conflict=False, file_hash=new_hash, saved_at=datetime.now(UTC))


@_post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/run")
async def editor_run(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    form = await request.form()
    try:
        spec = _load_spec(request, pipeline_uuid)
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
        return _error_fragment(request, exc)
    return render(request, "_output.html", job=job, block=block, pipeline_uuid=pipeline_uuid, new_hash=new_hash)


@_get("/pipelines/{pipeline_uuid}/edit/jobs/{job_id}")
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
        block = _load_spec(request, pipeline_uuid).block(job.block_uuid)
    except DagsmithError as exc:
        return _error_fragment(request, exc)
    return render(request, "_output.html", job=job, block=block, pipeline_uuid=pipeline_uuid)


@_post("/pipelines/{pipeline_uuid}/edit/jobs/{job_id}/cancel")
def editor_job_cancel(request: Request, pipeline_uuid: str, job_id: str) -> HTMLResponse:
    job = request.app.state.ui_jobs.get(job_id)
    if job is not None:
        request.app.state.ui_jobs.cancel(job)
    return HTMLResponse("<span class='muted'>cancelling…</span>")


@_post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/upstream")
async def editor_upstream(request: Request, pipeline_uuid: str, block_uuid: str) -> Response:
    from dagsmith.project.pipelines import set_upstream

    form = await request.form()
    ups = [str(u) for u in form.getlist("upstream") if u]
    base = f"/pipelines/{quote(pipeline_uuid)}/edit"
    try:
        set_upstream(_root(request), pipeline_uuid, block_uuid, ups)
    except DagsmithError as exc:
        return _redirect(request, _flash_url(base, _error_text(exc), "error") + f"#block-{quote(block_uuid)}")
    return _redirect(request, _flash_url(base, f"Edges of {block_uuid} saved.") + f"#block-{quote(block_uuid)}")


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
    update_block_entry(_root(request), pipeline_uuid, block.uuid, {"configuration": config})
    return True


@_post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/config")
async def editor_sql_config(request: Request, pipeline_uuid: str, block_uuid: str) -> HTMLResponse:
    form = await request.form()
    try:
        spec = _load_spec(request, pipeline_uuid)
        _save_sql_config(request, pipeline_uuid, spec.block(block_uuid), form)
    except DagsmithError as exc:
        return _error_fragment(request, exc)
    return HTMLResponse(f"<span class='ok'>SQL settings saved {datetime.now(UTC).strftime('%H:%M:%S')}.</span>")


@_post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/remove")
async def editor_remove(request: Request, pipeline_uuid: str, block_uuid: str) -> Response:
    from dagsmith.project.pipelines import remove_block

    form = await request.form()
    base = f"/pipelines/{quote(pipeline_uuid)}/edit"
    try:
        remove_block(_root(request), pipeline_uuid, block_uuid, delete_file=form.get("delete_file") == "1")
    except DagsmithError as exc:
        return _redirect(request, _flash_url(base, _error_text(exc), "error"))
    return _redirect(request, _flash_url(base, f"Removed block {block_uuid} from the pipeline."))


@_post("/pipelines/{pipeline_uuid}/variables")
async def pipeline_variables(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.project.pipelines import set_pipeline_variables

    form = await request.form()
    back = str(form.get("back") or f"/pipelines/{quote(pipeline_uuid)}/edit")
    if not back.startswith("/") or back.startswith("//"):
        back = "/pipelines"
    try:
        data = parse_variables(str(form.get("variables") or ""))
        set_pipeline_variables(_root(request), pipeline_uuid, data)
    except DagsmithError as exc:
        if _is_htmx(request):  # the text stays in the box; the error says what to fix
            return render(request, "_error.html", message=_error_text(exc))
        return _redirect(request, _flash_url(back, _error_text(exc), "error"))
    if _is_htmx(request):
        return HTMLResponse(f"<span class='ok'>Variables of {pipeline_uuid} saved {datetime.now(UTC).strftime('%H:%M:%S')}.</span>")
    return _redirect(request, _flash_url(back, f"Variables of {pipeline_uuid} saved."))


def parse_variables(text: str) -> dict[str, Any]:
    """Pipeline or run variables typed as YAML (``name: value`` lines); ``ConfigError`` naming the line if invalid."""
    from dagsmith.project.yamlio import parse_yaml

    data = parse_yaml(text, "variables") if text.strip() else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("variables must be a YAML mapping of name: value", hint="e.g.\nbucket: my-bucket\nyear: 2021")
    return data


@_post("/pipelines/{pipeline_uuid}/run")
async def pipeline_run_now(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.orchestration.service import create_run_now

    form = await request.form()
    try:
        once = parse_variables(str(form.get("variables") or "")) if "variables" in form else None
        extra = {"variables": once} if once else {}
        run = create_run_now(_db(request), _root(request), pipeline_uuid, source="ui", actor=_actor(request), **extra)
    except DagsmithError as exc:
        return _redirect(request, _flash_url(f"/pipelines/{quote(pipeline_uuid)}/edit", _error_text(exc), "error"))
    _notify(request)
    return _redirect(request, f"/pipeline-runs/{run['id']}")


def _actor(request: Request) -> str:
    state = request.scope.get("state")
    user = state.get("user") if isinstance(state, dict) else None
    return f"ui:{user}" if user else "ui"


# ---------------------------------------------------------------- runs


def _run_rows(request: Request, *, pipeline_uuid: str | None, status: str | None, page: int, per_page: int = 50, backfill_id: int | None = None):
    from dagsmith.orchestration.store import repo

    trigger_names: dict[int, str] = {}
    backfill_names: dict[int, str] = {}
    with _db(request).read() as session:
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
    with _db(request).read() as session:
        return [(d, s, n) for d, s, n in session.execute(stmt.group_by(day, PipelineRun.status))]


def _recent_runs(request: Request, pipeline_uuid: str, limit: int = 200) -> list[Any]:
    from dagsmith.orchestration.store import repo

    with _db(request).read() as session:
        runs, _total = repo.list_runs(session, pipeline_uuid=pipeline_uuid, limit=limit)
    return list(reversed(runs))


@_get("/pipeline-runs")
def runs_page(request: Request, status: str | None = None, page: int = 1) -> HTMLResponse:
    from dagsmith.server.ui.insights import day_strip

    page = max(1, page)
    runs, total, names, bnames = _run_rows(request, pipeline_uuid=None, status=status, page=page)
    return render(request, "runs.html", title="Pipeline runs", nav="runs", runs=runs, total=total, trigger_names=names, backfill_names=bnames,
                  status=status, page=page, pipeline_uuid=None, strip=day_strip(_day_counts(request, None)))


@_get("/pipelines/{pipeline_uuid}/runs")
def pipeline_runs_page(request: Request, pipeline_uuid: str, status: str | None = None, page: int = 1, backfill: int | None = None) -> HTMLResponse:
    from dagsmith.server.ui.insights import day_strip, duration_chart

    try:
        _check_pipeline(request, pipeline_uuid)
    except DagsmithError as exc:
        return _not_found(request, exc)
    page = max(1, page)
    backfill = int(backfill) if backfill is not None and str(backfill).isdigit() else None
    runs, total, names, bnames = _run_rows(request, pipeline_uuid=pipeline_uuid, status=status, page=page, backfill_id=backfill)
    return render(request, "runs.html", title=f"{pipeline_uuid} · runs", nav="p-runs", runs=runs, total=total, trigger_names=names, backfill_names=bnames,
                  status=status, page=page, pipeline_uuid=pipeline_uuid, backfill=backfill,
                  durations=None if backfill else duration_chart(_recent_runs(request, pipeline_uuid)),
                  strip=None if backfill else day_strip(_day_counts(request, pipeline_uuid)))


@_get("/pipelines/{pipeline_uuid}/runs/{run_id}")
def pipeline_run_link(request: Request, pipeline_uuid: str, run_id: int) -> Response:
    """Mage-style run URL (used in notification links): the run page lives at /pipeline-runs/<id>."""
    return RedirectResponse(f"/pipeline-runs/{run_id}", status_code=307)


def _run_context(request: Request, run_id: int, selected: str | None) -> dict[str, Any]:
    """The run page: timeline with attempts and a time axis, DAG with block statuses, logs.

    ``selected`` None (no ``block`` in the URL): a finished run with a failed block opens on
    that block's logs, anything else on the whole run; ``""`` is the whole run ("show all").
    """
    from dagsmith.orchestration.logs import read_logs, run_log_dir
    from dagsmith.orchestration.store import repo
    from dagsmith.server.ui.insights import attempts_from_logs, gantt

    db = _db(request)
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
    logs = read_logs(log_dir, block_uuid=selected or None, limit=100_000)[-2000:]
    dag: dict[str, Any] = {}
    try:
        spec = _load_spec(request, run.pipeline_uuid)
        dag = _dag_svg_context(spec)
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
        "logs": logs,
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
    parts = ["dagsmith", "run", str(_root(request)), run.pipeline_uuid, "--from-run", str(run.partition or run.id), "--block", block]
    if by[block].status == "failed":
        parts.append("--pdb")
    return {"block": block, "command": " ".join(shlex.quote(p) for p in parts)}


@_get("/pipeline-runs/{run_id}")
def run_page(request: Request, run_id: int, block: str | None = None, ok: str | None = None, error: str | None = None) -> HTMLResponse:
    try:
        ctx = _run_context(request, run_id, block)
    except DagsmithError as exc:
        return _not_found(request, exc)
    return render(request, "run.html", title=f"Run {run_id}", nav="p-runs", pipeline_uuid=ctx["run"].pipeline_uuid, ok=ok, error=error, **ctx)


@_get("/pipeline-runs/{run_id}/live")
def run_live(request: Request, run_id: int, block: str | None = None) -> HTMLResponse:
    try:
        ctx = _run_context(request, run_id, block)
    except DagsmithError as exc:
        return _error_fragment(request, exc, 404)
    if not ctx["live"]:  # finished: reload once so the buttons match the new state (and polling stops)
        return Response(status_code=286, headers={"HX-Refresh": "true"})
    return render(request, "_run_live.html", **ctx)


@_post("/pipeline-runs/{run_id}/retry")
async def run_retry(request: Request, run_id: int) -> Response:
    from dagsmith.orchestration import service

    form = await request.form()
    from_block = str(form.get("from_block") or "") or None
    try:
        service.retry(_db(request), _root(request), run_id, from_block=from_block, actor=_actor(request))
    except DagsmithError as exc:
        return _redirect(request, _flash_url(f"/pipeline-runs/{run_id}", _error_text(exc), "error"))
    _notify(request)
    return _redirect(request, _flash_url(f"/pipeline-runs/{run_id}", f"Retrying run {run_id}" + (f" from {from_block}." if from_block else " from its unfinished blocks.")))


@_post("/pipeline-runs/{run_id}/cancel")
def run_cancel(request: Request, run_id: int) -> Response:
    from dagsmith.orchestration import service

    runtime = getattr(request.app.state, "runtime", None)
    try:
        service.cancel(_db(request), run_id, actor=_actor(request), local_cancel=runtime.cancel_local if runtime is not None else None)
    except DagsmithError as exc:
        return _redirect(request, _flash_url(f"/pipeline-runs/{run_id}", _error_text(exc), "error"))
    return _redirect(request, _flash_url(f"/pipeline-runs/{run_id}", f"Cancel requested for run {run_id}."))


# ---------------------------------------------------------------- triggers


def describe_schedule(interval: str) -> str:
    """A short English description of a preset or cron expression."""
    from dagsmith.orchestration.scheduler.triggers import cron_expression

    value = (interval or "").strip()
    if value == "@once":
        return "once, as soon as the trigger is enabled"
    expr = cron_expression(value)
    minute, hour, dom, month, dow = expr.split()
    days = {"0": "Sunday", "1": "Monday", "2": "Tuesday", "3": "Wednesday", "4": "Thursday", "5": "Friday", "6": "Saturday", "7": "Sunday"}

    def at() -> str | None:
        if minute.isdigit() and hour.isdigit():
            return f"at {int(hour):02d}:{int(minute):02d}"
        if hour.isdigit() and minute.startswith("*/"):
            return f"every {minute[2:]} minutes during hour {int(hour):02d}"
        return None

    if hour == "*" and dom == "*" and month == "*" and dow == "*":
        if minute.isdigit():
            return f"every hour at minute {int(minute)}"
        if minute == "*":
            return "every minute"
        if minute.startswith("*/"):
            return f"every {minute[2:]} minutes"
    if hour.startswith("*/") and minute.isdigit() and dom == month == dow == "*":
        return f"every {hour[2:]} hours at minute {int(minute)}"
    clock = at()
    if clock and dom == "*" and month == "*":
        if dow == "*":
            return f"every day {clock}"
        if dow in days:
            return f"every {days[dow]} {clock}"
        if dow == "1-5":
            return f"every weekday (Mon–Fri) {clock}"
    if clock and dom.isdigit() and month == "*" and dow == "*":
        return f"on day {int(dom)} of every month {clock}"
    return f"cron “{expr}” (minute hour day-of-month month day-of-week)"


def schedule_preview(interval: str, tz: str, *, count: int = 5, now: datetime | None = None, start: datetime | None = None) -> dict[str, Any]:
    from dagsmith.orchestration.scheduler.triggers import get_zone, iter_ticks, validate_schedule

    validate_schedule(interval, tz)
    zone = get_zone(tz)
    now = now or datetime.now(UTC)
    after = max(now, start) if start else now
    if interval.strip() == "@once":
        return {"description": describe_schedule(interval), "times": [], "tz": tz}
    times = []
    for tick in iter_ticks(interval, tz, after):
        times.append(tick.astimezone(zone))
        if len(times) >= count:
            break
    return {"description": describe_schedule(interval), "times": times, "tz": tz}


def _trigger_rows(request: Request, pipeline_uuid: str) -> list[dict[str, Any]]:
    from dagsmith.orchestration.store import repo
    from dagsmith.server.api.common import trigger_to_dict
    from dagsmith.server.api.triggers import _next_run

    base = str(request.base_url).rstrip("/")
    out = []
    with _db(request).read() as session:
        for t in repo.list_triggers(session, pipeline_uuid):
            row = trigger_to_dict(t, next_run=_next_run(t))
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


@_get("/pipelines/{pipeline_uuid}/triggers")
def triggers_page(request: Request, pipeline_uuid: str, ok: str | None = None, error: str | None = None) -> HTMLResponse:
    try:
        _check_pipeline(request, pipeline_uuid)
    except DagsmithError as exc:
        return _not_found(request, exc)
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

    path = triggers_path(_root(request), pipeline_uuid)
    return read_trigger_file(path, pipeline_uuid, None)[1] if path.is_file() else {}


def _interval_from(form_or_params) -> str:
    preset = str(form_or_params.get("preset") or "@daily")
    if preset == "custom":
        return str(form_or_params.get("cron") or "").strip()
    return preset


@_get("/pipelines/{pipeline_uuid}/triggers/preview")
def trigger_preview(request: Request, pipeline_uuid: str) -> HTMLResponse:
    params = request.query_params
    tz = str(params.get("timezone") or "UTC")
    try:
        start = _parse_local(params.get("start_time"), tz) if params.get("start_time") else None
        preview = schedule_preview(_interval_from(params), tz, start=start)
    except DagsmithError as exc:
        return render(request, "_error.html", message=_error_text(exc))
    return render(request, "_schedule_preview.html", preview=preview)


def _parse_local(value: Any, tz: str) -> datetime:
    from dagsmith.orchestration.service import parse_datetime

    return parse_datetime(str(value), field="date", tz=tz)


@_post("/pipelines/{pipeline_uuid}/triggers")
async def trigger_create(request: Request, pipeline_uuid: str) -> Response:
    from dagsmith.orchestration.scheduler.code_triggers import save_in_code_automatically
    from dagsmith.orchestration.store import repo
    from dagsmith.server.api.triggers import _validate, _write_back

    form = await request.form()
    base = f"/pipelines/{quote(pipeline_uuid)}/triggers"
    try:
        _check_pipeline(request, pipeline_uuid)
        name = str(form.get("name") or "").strip()
        if not name:
            raise ConfigError("a trigger needs a name", hint="e.g. daily_5am")
        from dagsmith.project.names import check_name

        check_name(name, "trigger")
        schedule_type = str(form.get("schedule_type") or "time")
        if schedule_type not in ("time", "api"):
            raise ConfigError(f"trigger type {schedule_type!r} is not supported here", hint="choose schedule or API")
        tz = str(form.get("timezone") or "UTC")
        fields: dict[str, Any] = {"schedule_type": schedule_type, "timezone": tz, "status": "active" if form.get("enabled") else "inactive"}
        if schedule_type == "time":
            fields["schedule_interval"] = _interval_from(form)
            if form.get("start_time"):
                fields["start_time"] = _parse_local(form.get("start_time"), tz)
        settings_ = {}
        if form.get("skip_if_previous_running"):
            settings_["skip_if_previous_running"] = True
        if settings_:
            fields["settings"] = settings_
        _validate(fields)
        if save_in_code_automatically(_root(request), pipeline_uuid):
            fields["in_code"] = True
        db = _db(request)
        with db.session() as session:
            if repo.find_trigger(session, pipeline_uuid, name) is not None:
                raise ConfigError(f"pipeline '{pipeline_uuid}' already has a trigger named {name!r}", hint="choose another name")
            trigger = repo.create_trigger(session, pipeline_uuid, name, **fields)
            repo.audit(session, "trigger.create", "trigger", trigger.id, {"pipeline_uuid": pipeline_uuid, "name": name}, actor=_actor(request))
            in_code = trigger.in_code
        if in_code:
            _write_back(request.app.state.settings, db, pipeline_uuid)
    except DagsmithError as exc:
        return _redirect(request, _flash_url(base, _error_text(exc), "error"))
    _notify(request)
    return _redirect(request, _flash_url(base, f"Trigger {name} created."))


def _trigger_action(request: Request, trigger_id: int, action: str) -> Response:
    from dagsmith.orchestration.service import api_trigger_run
    from dagsmith.orchestration.store import repo
    from dagsmith.server.api.triggers import _write_back

    db = _db(request)
    pipeline_uuid = None
    try:
        with db.session() as session:
            trigger = repo.get_trigger(session, trigger_id)
            pipeline_uuid = trigger.pipeline_uuid
            in_code = trigger.in_code
            token = trigger.token
            if action == "toggle":
                repo.update_trigger(session, trigger, status="inactive" if trigger.status == "active" else "active")
                message = f"Trigger {trigger.name} is now {trigger.status}."
            elif action == "delete":
                name = trigger.name
                repo.delete_trigger(session, trigger)
                message = f"Trigger {name} deleted (its runs stay)."
            else:
                message = ""
            if action != "run":
                repo.audit(session, f"trigger.{action}", "trigger", trigger_id, {}, actor=_actor(request))
        if action == "run":
            run = api_trigger_run(db, trigger_id, token, {}, allow_inactive=True)
            _notify(request)
            return _redirect(request, f"/pipeline-runs/{run['id']}")
        if in_code:
            _write_back(request.app.state.settings, db, pipeline_uuid)
    except DagsmithError as exc:
        target = f"/pipelines/{quote(pipeline_uuid)}/triggers" if pipeline_uuid else "/pipelines"
        return _redirect(request, _flash_url(target, _error_text(exc), "error"))
    _notify(request)
    return _redirect(request, _flash_url(f"/pipelines/{quote(pipeline_uuid)}/triggers", message))


@_post("/triggers/{trigger_id}/toggle")
def trigger_toggle(request: Request, trigger_id: int) -> Response:
    return _trigger_action(request, trigger_id, "toggle")


@_post("/triggers/{trigger_id}/run")
def trigger_run(request: Request, trigger_id: int) -> Response:
    return _trigger_action(request, trigger_id, "run")


@_post("/triggers/{trigger_id}/delete")
def trigger_delete(request: Request, trigger_id: int) -> Response:
    return _trigger_action(request, trigger_id, "delete")


# ---------------------------------------------------------------- backfills


def backfill_preview(start: str, end: str, interval_type: str, units: int, tz: str) -> dict[str, Any]:
    from dagsmith.orchestration.scheduler.backfills import backfill_dates
    from dagsmith.orchestration.scheduler.triggers import get_zone

    if not start or not end:
        raise ConfigError("give a start and an end date", hint="e.g. 2024-01-01 and 2024-01-03")
    if interval_type not in INTERVAL_TYPES:
        raise ConfigError(f"interval {interval_type!r} is unknown", hint="use one of: " + ", ".join(INTERVAL_TYPES))
    if units < 1:
        raise ConfigError("the interval count must be at least 1")
    dates = backfill_dates(_parse_local(start, tz), _parse_local(end, tz), interval_type, units, tz)
    zone = get_zone(tz)
    return {"count": len(dates), "dates": [d.astimezone(zone) for d in dates], "tz": tz}


def _backfill_rows(request: Request, pipeline_uuid: str) -> list[dict[str, Any]]:
    from dagsmith.orchestration.store import repo
    from dagsmith.server.api.common import backfill_to_dict

    with _db(request).read() as session:
        return [backfill_to_dict(b, repo.backfill_progress(session, b.id)) for b in repo.list_backfills(session, pipeline_uuid)]


@_get("/pipelines/{pipeline_uuid}/backfills")
def backfills_page(request: Request, pipeline_uuid: str, ok: str | None = None, error: str | None = None) -> HTMLResponse:
    try:
        _check_pipeline(request, pipeline_uuid)
    except DagsmithError as exc:
        return _not_found(request, exc)
    today = datetime.now(UTC).date()
    return render(
        request, "backfills.html", title=f"{pipeline_uuid} · backfills", nav="backfills", pipeline_uuid=pipeline_uuid,
        backfills=_backfill_rows(request, pipeline_uuid), interval_types=INTERVAL_TYPES, ok=ok, error=error,
        default_start=(today - timedelta(days=3)).isoformat(), default_end=(today - timedelta(days=1)).isoformat(),
    )


@_get("/pipelines/{pipeline_uuid}/backfills/preview")
def backfill_preview_fragment(request: Request, pipeline_uuid: str) -> HTMLResponse:
    p = request.query_params
    try:
        units = int(p.get("interval_units") or 1)
        preview = backfill_preview(str(p.get("start") or ""), str(p.get("end") or ""), str(p.get("interval_type") or "day"), units, str(p.get("timezone") or "UTC"))
    except (DagsmithError, ValueError) as exc:
        return render(request, "_error.html", message=_error_text(exc))
    return render(request, "_backfill_preview.html", preview=preview)


@_post("/pipelines/{pipeline_uuid}/backfills")
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
            _db(request), _root(request), pipeline_uuid,
            start=str(form.get("start")), end=str(form.get("end")), interval_type=interval_type, interval_units=units,
            name=str(form.get("name") or "").strip() or None, tz=tz, concurrency=int(concurrency) if concurrency else None,
            start_now=bool(form.get("start_now")),
        )
    except ValueError as exc:
        return _redirect(request, _flash_url(base, f"not a number: {exc}", "error"))
    except DagsmithError as exc:
        return _redirect(request, _flash_url(base, _error_text(exc), "error"))
    _notify(request)
    return _redirect(request, _flash_url(base, "Backfill created." + (" Its runs are queued." if form.get("start_now") else " Start it when ready.")))


@_get("/backfills/{backfill_id}/progress")
def backfill_progress(request: Request, backfill_id: int) -> HTMLResponse:
    from dagsmith.orchestration.store import repo
    from dagsmith.server.api.common import backfill_to_dict

    try:
        with _db(request).read() as session:
            b = repo.get_backfill(session, backfill_id)
            row = backfill_to_dict(b, repo.backfill_progress(session, b.id))
    except DagsmithError as exc:
        return _error_fragment(request, exc, 404)
    return render(request, "_backfill_row.html", b=row)


async def _backfill_action(request: Request, backfill_id: int, action: str) -> Response:
    from dagsmith.orchestration.scheduler import backfills as bf
    from dagsmith.orchestration.store import repo

    db = _db(request)
    now = datetime.now(UTC)
    pipeline_uuid = None
    try:
        with db.session() as session:
            backfill = repo.get_backfill(session, backfill_id)
            pipeline_uuid = backfill.pipeline_uuid
            if action == "start":
                bf.start_backfill(session, backfill, now=now)
            elif action == "cancel":
                bf.cancel_backfill(session, backfill, now=now)
            elif action == "rerun":
                bf.rerun_failed(session, backfill, now=now)
            repo.audit(session, f"backfill.{action}", "backfill", backfill_id, {}, actor=_actor(request))
        runtime = getattr(request.app.state, "runtime", None)
        if action == "cancel" and runtime is not None:
            with db.read() as session:
                for run in repo.list_runs(session, backfill_id=backfill_id, status="running", limit=10000)[0]:
                    runtime.cancel_local(run.id)
    except DagsmithError as exc:
        target = f"/pipelines/{quote(pipeline_uuid)}/backfills" if pipeline_uuid else "/pipelines"
        return _redirect(request, _flash_url(target, _error_text(exc), "error"))
    _notify(request)
    words = {"start": "started", "cancel": "cancelled", "rerun": "re-queued its failed dates"}
    return _redirect(request, _flash_url(f"/pipelines/{quote(pipeline_uuid)}/backfills", f"Backfill {backfill_id} {words[action]}."))


@_post("/backfills/{backfill_id}/start")
async def backfill_start(request: Request, backfill_id: int) -> Response:
    return await _backfill_action(request, backfill_id, "start")


@_post("/backfills/{backfill_id}/cancel")
async def backfill_cancel(request: Request, backfill_id: int) -> Response:
    return await _backfill_action(request, backfill_id, "cancel")


@_post("/backfills/{backfill_id}/rerun")
async def backfill_rerun(request: Request, backfill_id: int) -> Response:
    return await _backfill_action(request, backfill_id, "rerun")


# ---------------------------------------------------------------- files


def _private_paths(request: Request) -> list[Path]:
    """dagsmith's own data wherever it lives (data folder, SQLite DB, logs, key): never listed, read or written."""
    from dagsmith.project.layout import data_dir

    root = _root(request)
    paths = [data_dir(root), root / ".dagsmith"]
    settings = getattr(request.app.state, "settings", None)
    if settings is not None:
        paths += [settings.data_dir, settings.logs_dir]
        url = str(getattr(settings, "url", "") or "")
        if url.startswith("sqlite:///"):
            paths.append(Path(url[len("sqlite:///"):]))
    import os

    if os.environ.get("DAGSMITH_SECRET_KEY_FILE"):
        paths.append(Path(os.environ["DAGSMITH_SECRET_KEY_FILE"]))
    return paths


def safe_path(root: Path, relpath: str, private: list[Path] | None = None) -> Path:
    """A path inside the project through the name gate: no absolute paths, ``..``, symlinks or dagsmith's data."""
    from dagsmith.project.layout import data_dir
    from dagsmith.project.names import project_file

    return project_file(root, relpath, forbidden=private if private is not None else [data_dir(root), Path(root) / ".dagsmith"])


def _tree(root: Path, base: Path, depth: int = 0, limit: list[int] | None = None, private: frozenset[Path] = frozenset()) -> list[dict[str, Any]]:
    limit = limit if limit is not None else [3000]
    out = []
    try:
        entries = sorted(base.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
    except OSError:
        return out
    for entry in entries:
        if limit[0] <= 0:
            break
        if entry.name in FILE_SKIP or entry.name.endswith((".pyc",)) or entry.is_symlink() or (private and entry.resolve() in private):
            continue
        limit[0] -= 1
        rel = entry.relative_to(root).as_posix()
        if entry.is_dir():
            out.append({"name": entry.name, "path": rel, "dir": True, "children": _tree(root, entry, depth + 1, limit, private) if depth < 6 else []})
        else:
            out.append({"name": entry.name, "path": rel, "dir": False})
    return out


def _mode_for(path: str) -> str:
    if path.endswith(".py"):
        return "python"
    if path.endswith(".sql"):
        return "sql"
    if path.endswith((".yaml", ".yml")):
        return "yaml"
    if path.endswith((".sh", ".env")) or path.endswith(".env.example"):
        return "shell"
    if path.endswith(".md"):
        return "markdown"
    return "text"


@_get("/files")
def files_page(request: Request, path: str = "", ok: str | None = None, error: str | None = None) -> HTMLResponse:
    root = _root(request)
    private = _private_paths(request)
    tree = _tree(root, root, private=frozenset(p.resolve() for p in private))
    ctx: dict[str, Any] = {"title": "Files", "nav": "files", "tree": tree, "path": path, "ok": ok, "error": error, "file": None}
    if path:
        try:
            target = safe_path(root, path, private)
            if target.is_dir():
                ctx["error"] = ctx["error"] or f"{path} is a folder; pick a file"
            elif not target.is_file():
                ctx["error"] = ctx["error"] or f"{path} does not exist (create it with New file)"
            elif target.stat().st_size > MAX_EDIT_BYTES:
                ctx["error"] = f"{path} is larger than {MAX_EDIT_BYTES // 1_000_000} MB; open it in another editor"
            else:
                data = target.read_bytes()
                if b"\0" in data[:8192]:
                    ctx["error"] = f"{path} is a binary file"
                else:
                    ctx["file"] = {"path": path, "content": data.decode("utf-8", errors="replace"), "hash": _hash(data), "mode": _mode_for(path)}
        except DagsmithError as exc:
            return render(request, "files.html", status_code=403, **{**ctx, "error": _error_text(exc)})
    return render(request, "files.html", **ctx)


@_post("/files/save")
async def files_save(request: Request) -> HTMLResponse:
    from dagsmith.project.yamlio import write_text_atomic

    form = await request.form()
    path = str(form.get("path") or "")
    try:
        target = safe_path(_root(request), path, _private_paths(request))
        if target.is_dir():
            raise ProjectError(f"{path} is a folder")
        changed = _check_hash(target, str(form.get("base_hash") or ""), form.get("force") == "1")
        if changed is not None:
            return render(request, "_file_status.html", status_code=409, conflict=True, path=path)
        text = str(form.get("content", "")).replace("\r\n", "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, text)
    except DagsmithError as exc:
        return render(request, "_error.html", status_code=403, message=_error_text(exc))
    return render(request, "_file_status.html", conflict=False, path=path, file_hash=_hash(text.encode("utf-8")), saved_at=datetime.now(UTC))


@_post("/files/new")
async def files_new(request: Request) -> Response:
    form = await request.form()
    path = str(form.get("path") or "").strip()
    try:
        target = safe_path(_root(request), path, _private_paths(request))
        if target == _root(request):
            raise ProjectError("give a file name", hint="e.g. utils/helpers.py")
        if target.exists():
            raise ProjectError(f"{path} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("", encoding="utf-8")
    except DagsmithError as exc:
        return _redirect(request, _flash_url(_back_url(form, "/files"), _error_text(exc), "error"))
    back = _back_url(form, "")
    if back:  # created from the editor's file tree: open it there
        return _redirect(request, f"{back}?open={quote(path)}")
    return _redirect(request, f"/files?path={quote(path)}")


def _back_url(form, default: str) -> str:
    back = str(form.get("back") or "")
    return back if back.startswith("/") and not back.startswith("//") else default


# ---------------------------------------------------------------- settings


def _secrets_store(request: Request):
    from dagsmith.server.deps import get_secrets

    if getattr(request.app.state, "settings", None) is None:
        from dagsmith.orchestration.settings import OrchestrationSettings

        request.app.state.settings = OrchestrationSettings.from_env(_root(request))
    _db(request)
    return get_secrets(request)


@_get("/settings")
def settings_page(request: Request, ok: str | None = None, error: str | None = None, pipeline: str | None = None) -> HTMLResponse:
    from dagsmith.project.pipelines import list_pipelines, read_pipeline_raw
    from dagsmith.project.yamlio import dump_yaml

    root = _root(request)
    names = _secrets_store(request).names()
    pipelines = list_pipelines(root)
    chosen = pipeline if pipeline in pipelines else (pipelines[0] if pipelines else None)
    variables_yaml = ""
    if chosen:
        try:
            variables = dict(read_pipeline_raw(root, chosen).get("variables") or {})
            variables_yaml = dump_yaml(variables) if variables else ""
        except DagsmithError as exc:
            error = error or _error_text(exc)
    return render(
        request, "settings.html", title="Settings", nav="settings", secrets=names, ok=ok, error=error,
        pipelines=pipelines, chosen=chosen, variables_yaml=variables_yaml, auth_on=request.app.state.ui_auth is not None,
    )


@_post("/settings/secrets")
async def settings_secret_set(request: Request) -> Response:
    form = await request.form()
    name = str(form.get("name") or "").strip()
    try:
        if not str(form.get("value") or ""):
            raise ConfigError("a secret needs a value")
        _secrets_store(request).set(name, str(form.get("value")))
    except DagsmithError as exc:
        return _redirect(request, _flash_url("/settings", _error_text(exc), "error"))
    return _redirect(request, _flash_url("/settings", f"Secret {name} saved (its value is never shown again)."))


@_post("/settings/secrets/{name}/delete")
def settings_secret_delete(request: Request, name: str) -> Response:
    if not _secrets_store(request).delete(name):
        return _redirect(request, _flash_url("/settings", f"Secret {name} does not exist.", "error"))
    return _redirect(request, _flash_url("/settings", f"Secret {name} deleted."))
