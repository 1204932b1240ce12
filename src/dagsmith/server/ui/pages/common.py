"""What every page module of the web UI shares: routers without FastAPI's parameter machinery,
the Jinja2 environment and ``render``, redirects with a flash message, errors shown on the
page, and the per-request handles (project root, database, runtime, actor).

Also the small caches the pages read through (a pipeline's parsed spec and its raw
metadata mapping, re-read only when ``metadata.yaml`` changed) and the DAG picture's
context, which the editor and the run page both draw.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dagsmith.errors import DagsmithError

UTC = timezone.utc
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


# ---------------------------------------------------------------- per-request handles


def project_root(request: Request) -> Path:
    return request.app.state.ui_root


def database(request: Request):
    """The orchestration database of the app (opened on first use when the app has none yet)."""
    db = getattr(request.app.state, "db", None)
    if db is None:
        from dagsmith.orchestration.db import get_database
        from dagsmith.orchestration.settings import OrchestrationSettings

        db = get_database(OrchestrationSettings.from_env(project_root(request)))
        request.app.state.db = db
    return db


def notify(request: Request) -> None:
    """Wake the in-process scheduler/worker: something was queued."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        runtime.notify()


def actor(request: Request) -> str:
    """Who made a change, for the audit log (``ui:<user>`` when signed in)."""
    state = request.scope.get("state")
    user = state.get("user") if isinstance(state, dict) else None
    return f"ui:{user}" if user else "ui"


# ---------------------------------------------------------------- routes

# CSRF, the Host/Origin checks and the name gate for path parameters are applied to every
# route of the app by dagsmith.server.guard (one dependency, one middleware).


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


def page_router() -> tuple[APIRouter, Callable[[str], Callable], Callable[[str], Callable]]:
    """A router for one page family and its ``get(path)`` / ``post(path)`` decorators (kept out of OpenAPI)."""
    router = APIRouter(include_in_schema=False)

    def verb(method: str) -> Callable[[str], Callable]:
        def route(path: str) -> Callable:
            def deco(fn):
                router.add_api_route(path, _plain(fn), methods=[method], include_in_schema=False)
                return fn
            return deco
        return route

    return router, verb("GET"), verb("POST")


# ---------------------------------------------------------------- templates


def fmt_dt(value: Any, tz: str | None = None) -> str:
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


def fmt_secs(seconds: float | None) -> str:
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


def duration(start, end) -> str:
    if not start:
        return "—"
    end = end or datetime.now(UTC)
    return fmt_secs((end - start).total_seconds())


_env = None


def templates():
    global _env
    if _env is None:
        import jinja2

        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=jinja2.select_autoescape(["html"]),
            auto_reload=False,
            bytecode_cache=jinja2.FileSystemBytecodeCache(),  # compiled templates survive restarts (faster first page)
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _env.filters["dt"] = fmt_dt
        _env.filters["secs"] = fmt_secs
        _env.globals["duration"] = duration
        _env.globals["quote"] = lambda s: quote(str(s), safe="")
        from dagsmith.server.ui import present

        present.extend(_env)
    return _env


def render(request: Request, name: str, status_code: int = 200, headers: dict | None = None, **ctx: Any) -> HTMLResponse:
    from dagsmith.server.ui import auth

    ctx.setdefault("request", request)
    ctx.setdefault("project_name", project_root(request).name)
    ctx.setdefault("project_root", project_root(request))
    ctx["csrf"] = auth.csrf_token(request)
    ctx["user"] = request.scope.get("state", {}).get("user") if isinstance(request.scope.get("state"), dict) else None
    ctx.setdefault("static", request.app.state.ui_static_version)
    html = templates().get_template(name).render(**ctx)
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    auth.set_new_csrf_cookie(request, response)
    return response


# ---------------------------------------------------------------- redirects and errors


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(request: Request, url: str) -> Response:
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def flash_url(url: str, message: str, kind: str = "ok") -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{kind}={quote(message)}"


def back_url(form, default: str) -> str:
    """The form's ``back`` target when it is a path of this site (never another host)."""
    back = str(form.get("back") or "")
    return back if back.startswith("/") and not back.startswith("//") else default


def error_text(exc: Exception) -> str:
    from dagsmith.project.masking import mask

    if isinstance(exc, DagsmithError):
        return mask(exc.message + (f" — {exc.hint}" if exc.hint else ""))
    return mask(f"{type(exc).__name__}: {exc}")


def error_fragment(request: Request, exc: Exception, status: int = 422) -> HTMLResponse:
    return render(request, "_error.html", status_code=status, message=error_text(exc))


def not_found(request: Request, exc: Exception) -> Response:
    return error_page(request, 404, "Not found", error_text(exc))


def error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    """An error as a whole page for a browser; only the message for HTMX swaps and non-browser clients."""
    if request.headers.get("hx-request"):
        return render(request, "_error.html", status_code=status_code, message=message)
    if "text/html" not in request.headers.get("accept", ""):
        from fastapi.responses import PlainTextResponse

        return PlainTextResponse(f"{status_code} {title}: {message}\n", status_code=status_code)
    return render(request, "error_page.html", status_code=status_code, title=title, message=message)


# ---------------------------------------------------------------- files edited in the browser


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


def check_hash(path: Path, base_hash: str, force: bool) -> str | None:
    """The current hash when the file changed since ``base_hash`` was read (None when safe to write)."""
    if force:
        return None
    current = content_hash(path.read_bytes()) if path.is_file() else "missing"
    return None if current == base_hash else current


# ---------------------------------------------------------------- pipelines read through caches


_spec_cache: dict[tuple[str, str], tuple[tuple[int, int], Any]] = {}
_raw_cache: dict[tuple[str, str], tuple[tuple[int, int], Any]] = {}


def _read_when_changed(cache: dict, limit: int, root: Path, uuid: str, read: Callable[[Path, str], Any]) -> Any:
    """``read(root, uuid)``, kept in ``cache`` until the pipeline's metadata.yaml changes (mtime, size).

    A file that cannot be stat'ed is read uncached, so ``read`` raises its own "not found" error.
    """
    from dagsmith.project.pipelines import metadata_path

    try:
        st = metadata_path(root, uuid).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return read(root, uuid)
    key = (str(root), uuid)
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = read(root, uuid)
    if len(cache) > limit:
        cache.clear()
    cache[key] = (stamp, value)
    return value


def load_spec(request: Request, pipeline_uuid: str):
    """The pipeline spec, parsed again only when its metadata.yaml changed (big pipelines parse slowly)."""
    from dagsmith.project.pipelines import load_pipeline

    return _read_when_changed(_spec_cache, 64, project_root(request), pipeline_uuid, load_pipeline)


def cached_raw(root: Path, uuid: str) -> dict[str, Any]:
    """A pipeline's metadata mapping, re-read only when the file changed (read-only use!)."""
    from dagsmith.project.pipelines import read_pipeline_raw

    return _read_when_changed(_raw_cache, 256, root, uuid, read_pipeline_raw)


def check_pipeline(request: Request, pipeline_uuid: str) -> None:
    from dagsmith.orchestration.service import check_pipeline as _check

    _check(project_root(request), pipeline_uuid)


def dag_svg_context(spec) -> dict[str, Any]:
    """The laid-out DAG of a pipeline for ``_dag.html`` (editor and run page)."""
    from dagsmith.server.ui.dag import NODE_H, NODE_W, layout

    lay = layout([(b.uuid, b.type, b.upstream_blocks) for b in spec.blocks])
    return {"dag": lay, "node_w": NODE_W, "node_h": NODE_H}


def parse_local(value: Any, tz: str) -> datetime:
    """A date typed in a form, in the time zone chosen beside it."""
    from dagsmith.orchestration.service import parse_datetime

    return parse_datetime(str(value), field="date", tz=tz)
