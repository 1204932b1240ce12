"""The FastAPI application: REST API under ``/api`` (OpenAPI at ``/api/openapi.json``) and the UI.

``create_app(project_root, settings)`` wires the metadata DB (migrated on start), an
optional orchestration ``Runtime`` (so API-queued runs start at once in this process),
JSON errors a person can act on (``{"error": {"code", "message", "hint", "type"}}``),
a request-size limit (413) and, when ``dagsmith.server.ui`` provides ``mount_ui``, the
browser UI. Routes live in ``server/api/<resource>.py`` and stay thin.

The API routes (and the ``/api/docs`` page) are added on the first request under ``/api`` (or
the first ``app.openapi()`` call), not at start: importing them and letting FastAPI build each route's parameter and
body models costs a few hundred milliseconds that the first page of the UI does not need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


def error_response(status: int, message: str, *, hint: str | None = None, kind: str = "error", details: Any = None) -> JSONResponse:
    """The JSON error body; every text in it passes the secret masker."""
    from dagsmith.project.masking import MASKER

    body: dict[str, Any] = {"code": status, "message": MASKER.mask(message), "type": kind}
    if hint:
        body["hint"] = MASKER.mask(hint)
    if details is not None:
        body["details"] = MASKER.mask_obj(details)
    return JSONResponse({"error": body}, status_code=status)


def _status_for(exc: Exception) -> int:
    from dagsmith.errors import ConfigError, ProjectError, ValidationError
    from dagsmith.orchestration.service import TriggerDisabled, Unauthorized
    from dagsmith.orchestration.store.repo import Conflict, NotFound

    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, TriggerDisabled):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    text = str(exc).lower()
    if isinstance(exc, ProjectError) and ("not found" in text or "does not exist" in text):
        return 404
    if isinstance(exc, (ConfigError, ValidationError, ProjectError)):
        return 422
    return 400


class BodyLimit:
    """ASGI middleware: refuse request bodies larger than ``limit`` bytes with 413 (nothing is read further)."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._reject(scope, receive, send)
        received = 0
        limit = self.limit

        class _TooLarge(Exception):
            pass

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge()
            return message

        try:
            return await self.app(scope, limited_receive, send)
        except _TooLarge:
            return await self._reject(scope, receive, send)

    async def _reject(self, scope, receive, send):
        response = error_response(
            413,
            f"the request body is larger than {self.limit} bytes",
            hint="send less data, or raise DAGSMITH_MAX_BODY_BYTES",
            kind="payload_too_large",
        )
        await response(scope, receive, send)


def create_app(
    project_root: str | Path, settings: Any = None, *, runtime: Any = None, migrate: bool = True, allowed_hosts: Any = ()
) -> FastAPI:
    """The dagsmith web app for one project. ``runtime`` (optional) runs queued work in-process.

    ``allowed_hosts`` are host names besides loopback that the ``Host`` header may carry
    (``DAGSMITH_ALLOWED_HOSTS`` adds more); see ``dagsmith.server.guard``.
    """
    from contextlib import asynccontextmanager

    from fastapi import Depends

    from dagsmith.server.guard import HostOriginGuard, guard_route

    from dagsmith.orchestration.settings import OrchestrationSettings

    root = Path(project_root).resolve()
    if settings is None:
        settings = OrchestrationSettings.from_env(root)
    if runtime is not None:
        db = runtime.db
    else:
        from dagsmith.orchestration.db import get_database

        db = get_database(settings, migrate=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if migrate:
            db.migrate()
        yield
        jobs = getattr(app.state, "ui_jobs", None)
        if jobs is not None:  # the editor kernel process goes with the server
            jobs.close()

    app = FastAPI(
        title="dagsmith",
        description="REST API of dagsmith: pipelines, blocks, runs, block runs, logs, triggers, backfills, variables, secrets. "
        "Shapes follow Mage's API (bodies wrapped in the resource name).",
        version=_version(),
        openapi_url="/api/openapi.json",
        docs_url=None,  # served below from vendored Swagger UI files (FastAPI's page loads them from a CDN)
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(guard_route)],  # the name gate and CSRF, for every route (UI, API, later ones)
    )
    app.state.settings = settings
    app.state.db = db
    app.state.runtime = runtime
    app.state.project_root = root
    if migrate:
        db.migrate()  # also here so routes work without the lifespan (TestClient without `with`)
    _open_secrets(app)

    from dagsmith.errors import DagsmithError

    @app.exception_handler(DagsmithError)
    async def _dagsmith_error(request: Request, exc: DagsmithError):
        return error_response(_status_for(exc), exc.message, hint=exc.hint, kind=type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {err.get('msg')}")
        return error_response(
            422,
            "the request is not valid: " + "; ".join(problems),
            hint="check the JSON body against the API schema at /api/docs",
            kind="validation_error",
            details=problems,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no API route {request.method} {request.url.path}"
            return error_response(404, message, hint="see /api/docs for the routes", kind="not_found")
        return error_response(exc.status_code, message, kind="http_error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Exception text can carry SQL, hosts, stored variables: the client gets an id, the
        # server log (masked, see project.masking) gets the details.
        import logging
        import secrets as _secrets

        error_id = _secrets.token_hex(6)
        logging.getLogger("dagsmith.server").error(
            "error %s on %s %s", error_id, request.method, request.url.path, exc_info=(type(exc), exc, exc.__traceback__)
        )
        return error_response(500, f"internal error {error_id}", hint="the server log has the details under this error id", kind="internal_error")

    _lazy_api(app)
    app.add_middleware(BodyLimit, limit=int(settings.max_body_bytes))

    import importlib

    try:
        _ui = importlib.import_module("dagsmith.server.ui")
    except ModuleNotFoundError as exc:  # the UI package is optional (built separately)
        if exc.name not in ("dagsmith.server.ui",):
            raise
        _ui = None
    mount = getattr(_ui, "mount_ui", None) if _ui is not None else None
    if mount is not None:
        mount(app, root)
    app.add_middleware(HostOriginGuard, allowed_hosts=tuple(allowed_hosts or ()))  # added last: runs first
    return app


def _open_secrets(app: FastAPI) -> None:
    """The project's secrets store, opened with the app: from the start it is this process's
    masking source (server log, API errors, editor output; a secret set later in any process is
    picked up, see ``project.masking``) and resolves ``get_secret_value`` for editor blocks run
    in server threads."""
    import logging

    try:
        from dagsmith.orchestration.secrets import SecretStore
        from dagsmith.project.io_config import set_secret_resolver

        store = SecretStore(app.state.db, app.state.settings.data_dir)
    except Exception as exc:  # noqa: BLE001 - a bad key is reported by the secrets routes, with its hint
        logging.getLogger("dagsmith.server").warning("the secrets store could not be opened: %s", exc)
        return
    app.state.secrets = store
    set_secret_resolver(store.get)


class _LazyApi:
    """ASGI middleware: include the REST routes into ``app`` before the first ``/api`` request reaches it."""

    def __init__(self, app, *, target: Any) -> None:
        self.app = app
        self.target = target

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and not self.target.state.api_ready and scope.get("path", "").startswith("/api"):
            include_api(self.target)
        return await self.app(scope, receive, send)


def include_api(app: FastAPI) -> None:
    """Add the ``/api`` routes to ``app`` once (thread-safe; a no-op after the first call)."""
    with app.state.api_lock:
        if app.state.api_ready:
            return
        from dagsmith.server.api import router

        _api_docs(app)
        app.include_router(router, prefix="/api")
        app.openapi_schema = None  # a schema built before the routes were added is stale
        app.state.api_ready = True


def _lazy_api(app: FastAPI) -> None:
    import threading

    app.state.api_ready = False
    app.state.api_lock = threading.Lock()
    app.add_middleware(_LazyApi, target=app)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        include_api(app)
        return build_openapi()

    app.openapi = openapi  # type: ignore[method-assign]


SWAGGER_DIR = Path(__file__).parent / "ui" / "static" / "vendor" / "swagger-ui"
_SWAGGER_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}


def _api_docs(app: FastAPI) -> None:
    """``/api/docs``: Swagger UI from the vendored files (see its VERSION), so it works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> Any:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="dagsmith API",
            swagger_js_url="/api/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/api/docs/assets/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    @app.get("/api/docs/assets/{name}", include_in_schema=False)
    async def api_docs_asset(name: str) -> Any:
        from dagsmith.errors import ProjectError

        if name not in _SWAGGER_ASSETS:  # a fixed list: nothing else of the disk is reachable here
            raise ProjectError(f"API docs asset {name!r} not found")
        return FileResponse(SWAGGER_DIR / name, media_type=_SWAGGER_ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dagsmith")
    except Exception:  # noqa: BLE001
        return "0"
