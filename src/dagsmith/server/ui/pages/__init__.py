"""The page routes of the web UI, one module per page family (URLs follow Mage's).

``login`` (``/``, ``/login``, ``/logout``), ``pipelines`` (``/pipelines`` and whole-pipeline
actions), ``editor`` (``/pipelines/<p>/edit``), ``runs`` (``/pipeline-runs``,
``/pipelines/<p>/runs``), ``triggers`` (``/pipelines/<p>/triggers``, ``/triggers/<id>/…``),
``backfills`` (``/pipelines/<p>/backfills``, ``/backfills/<id>/…``), ``files`` (``/files``) and
``settings`` (``/settings``); ``common`` holds what they share (rendering, redirects, errors,
caches). Each module has its own ``router``; ``routers()`` lists them for ``mount_ui``.

Pages read and write through ``project.pipelines`` (Mage-format files) and orchestration
(runs, triggers, backfills, secrets), the same code the REST API uses. Every state-changing
request passes the CSRF check of ``server.guard``. Errors a person can fix
(``DagsmithError``) are shown on the page, never as a stack trace.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

PAGE_MODULES = ("login", "pipelines", "editor", "runs", "triggers", "backfills", "files", "settings")


def routers() -> list[Any]:
    """The routers of every page module, in a fixed order."""
    return [import_module(f"{__name__}.{name}").router for name in PAGE_MODULES]
