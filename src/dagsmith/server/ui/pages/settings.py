"""The settings page (``/settings``): secrets (names only; values are never shown again) and
a pipeline's variables (saved through ``POST /pipelines/<p>/variables``).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from dagsmith.errors import ConfigError, DagsmithError
from dagsmith.server.ui.pages.common import (
    database,
    error_text,
    flash_url,
    page_router,
    project_root,
    redirect,
    render,
)

router, get, post = page_router()


def _secrets_store(request: Request):
    from dagsmith.server.deps import get_secrets

    if getattr(request.app.state, "settings", None) is None:
        from dagsmith.orchestration.settings import OrchestrationSettings

        request.app.state.settings = OrchestrationSettings.from_env(project_root(request))
    database(request)
    return get_secrets(request)


@get("/settings")
def settings_page(request: Request, ok: str | None = None, error: str | None = None, pipeline: str | None = None) -> HTMLResponse:
    from dagsmith.project.pipelines import list_pipelines, read_pipeline_raw
    from dagsmith.project.yamlio import dump_yaml

    root = project_root(request)
    names = _secrets_store(request).names()
    pipelines = list_pipelines(root)
    chosen = pipeline if pipeline in pipelines else (pipelines[0] if pipelines else None)
    variables_yaml = ""
    if chosen:
        try:
            variables = dict(read_pipeline_raw(root, chosen).get("variables") or {})
            variables_yaml = dump_yaml(variables) if variables else ""
        except DagsmithError as exc:
            error = error or error_text(exc)
    return render(
        request, "settings.html", title="Settings", nav="settings", secrets=names, ok=ok, error=error,
        pipelines=pipelines, chosen=chosen, variables_yaml=variables_yaml, auth_on=request.app.state.ui_auth is not None,
    )


@post("/settings/secrets")
async def settings_secret_set(request: Request) -> Response:
    form = await request.form()
    name = str(form.get("name") or "").strip()
    try:
        if not str(form.get("value") or ""):
            raise ConfigError("a secret needs a value")
        _secrets_store(request).set(name, str(form.get("value")))
    except DagsmithError as exc:
        return redirect(request, flash_url("/settings", error_text(exc), "error"))
    return redirect(request, flash_url("/settings", f"Secret {name} saved (its value is never shown again)."))


@post("/settings/secrets/{name}/delete")
def settings_secret_delete(request: Request, name: str) -> Response:
    if not _secrets_store(request).delete(name):
        return redirect(request, flash_url("/settings", f"Secret {name} does not exist.", "error"))
    return redirect(request, flash_url("/settings", f"Secret {name} deleted."))
