"""The browser UI of dagsmith: Jinja2 pages + HTMX, vendored static assets, no build step.

Owner: server/ui. ``mount_ui(app, project_root)`` adds to a FastAPI app (``create_app``
calls it): the page routes of ``pages`` (one module per page family, Mage's URLs: ``/pipelines``,
``/pipelines/<p>/edit``, ``…/triggers``, ``…/runs``, ``…/backfills``, ``/pipeline-runs``, ``/files``,
``/settings``) and the editor's extra routes of ``actions`` and ``live``,
``/static`` (``static/``; vendored files under ``static/vendor/<name>/`` with their
LICENSE and VERSION), the sign-in/CSRF middleware of ``auth`` and the editor's
background block runs (``jobs``). Block runs started in the editor run through the
engine in this process; pipeline runs, triggers and backfills go through orchestration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["mount_ui", "STATIC_DIR"]


class _Static:
    """Static files with a long cache lifetime (URLs carry a version query)."""

    def __init__(self) -> None:
        from starlette.staticfiles import StaticFiles

        self.files = StaticFiles(directory=str(STATIC_DIR))

    async def __call__(self, scope, receive, send):
        async def send_cached(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((b"cache-control", b"public, max-age=86400"))
                message = {**message, "headers": headers}
            await send(message)

        await self.files(scope, receive, send_cached)


def _static_version() -> str:
    newest = 0.0
    for path in STATIC_DIR.glob("*.*"):
        newest = max(newest, path.stat().st_mtime)
    return str(int(newest))


def mount_ui(app: Any, project_root: str | Path) -> None:
    """Add the UI routes, static files and sign-in middleware to ``app`` for one project."""
    from dagsmith.project.layout import data_dir
    from dagsmith.server.ui import auth
    from dagsmith.server.ui.jobs import BlockJobs
    from dagsmith.server.ui import actions, live
    from dagsmith.server.ui.pages import routers

    root = Path(project_root).resolve()
    state = app.state
    state.ui_root = root
    folder = data_dir(root)
    settings = getattr(state, "settings", None)
    state.ui_jobs = BlockJobs(root, state_dir=folder / "ui" / "jobs", database_url=getattr(settings, "url", None))
    state.ui_static_version = _static_version()
    state.ui_auth = auth.load_auth(folder)
    state.ui_sessions = auth.Sessions(folder) if state.ui_auth else None
    state.ui_login_throttle = auth.LoginThrottle()
    app.mount("/static", _Static(), name="static")
    for router in [*routers(), actions.router, live.router]:
        app.include_router(router)
    app.add_middleware(auth.AuthMiddleware, data_dir=folder)
    _html_errors(app)


def _html_errors(app: Any) -> None:
    """404/405/403 on UI pages answer with a page, not JSON (the API keeps its JSON errors)."""
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import Request

    previous = app.exception_handlers.get(StarletteHTTPException)

    async def handler(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/api/") and previous is not None:
            return await previous(request, exc)
        if request.url.path.startswith("/api/"):
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": {"code": exc.status_code, "message": str(exc.detail)}}, status_code=exc.status_code)
        from dagsmith.server.ui.pages.common import error_page

        title = {404: "Not found", 403: "Forbidden", 405: "Not allowed"}.get(exc.status_code, "Error")
        message = str(exc.detail) if exc.detail and exc.detail != "Not Found" else f"There is no page at {request.url.path}."
        return error_page(request, exc.status_code, title, message)

    app.add_exception_handler(StarletteHTTPException, handler)
