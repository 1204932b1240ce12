"""FastAPI dependencies: the settings, metadata DB, runtime and secret store of the app.

Routes declare what they need with the ``Annotated`` aliases below (``DbDep``,
``SettingsDep``, ``RuntimeDep``, ``SecretsDep``); the values live on ``app.state``
and are set once by ``create_app``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request


def get_settings(request: Request):
    return request.app.state.settings


def get_db(request: Request):
    return request.app.state.db


def get_runtime(request: Request) -> Any:
    return getattr(request.app.state, "runtime", None)


def get_secrets(request: Request):
    store = getattr(request.app.state, "secrets", None)
    if store is None:
        from dagsmith.orchestration.secrets import SecretStore

        store = SecretStore(request.app.state.db, request.app.state.settings.data_dir)
        request.app.state.secrets = store
    return store


SettingsDep = Annotated[Any, Depends(get_settings)]
DbDep = Annotated[Any, Depends(get_db)]
RuntimeDep = Annotated[Any, Depends(get_runtime)]
SecretsDep = Annotated[Any, Depends(get_secrets)]


def notify(runtime: Any) -> None:
    """Wake this process's worker (a run was just queued)."""
    if runtime is not None:
        runtime.notify()
