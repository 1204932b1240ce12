"""Fixtures of the security tests: a project with one pipeline, the real app, and a tree snapshot."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

PRINT_SECRET = '''
from mage_ai.data_preparation.shared.secrets import get_secret_value


@data_loader
def load(*args, **kwargs):
    print("the value is", get_secret_value("late_pw"))
    return 1
'''


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    from dagsmith.project.pipelines import add_block, create_pipeline
    from dagsmith.project.scaffold import init_project

    for name in ("DAGSMITH_DATABASE_URL", "DAGSMITH_SECRET_KEY", "DAGSMITH_AUTH_USER", "DAGSMITH_AUTH_PASSWORD",
                 "DAGSMITH_AUTH_PASSWORD_HASH", "DAGSMITH_DATA_DIR", "DAGSMITH_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    root = init_project(tmp_path / "proj", example=False)
    create_pipeline(root, "p")
    add_block(root, "p", "load", "data_loader", content=PRINT_SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("keep me")
    return root


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and link under ``roots`` (dagsmith's data folder and caches left out) → a digest."""
    out: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root.parent)
            if ".dagsmith" in rel.parts or "__pycache__" in rel.parts:
                continue
            if path.is_symlink():
                out[str(rel)] = "link:" + str(path.readlink())
            elif path.is_file():
                out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[str(rel)] = "dir"
    return out


def make_app(project: Path, *, runtime: bool = False, **kw):
    from fastapi.testclient import TestClient

    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.server.app import create_app, include_api

    settings = OrchestrationSettings.from_env(project, poll_interval=0.05, scheduler_interval=0.2)
    rt = None
    if runtime:
        from dagsmith.orchestration.runtime import Runtime

        rt = Runtime(settings, roles=("worker",)).start()
    app = create_app(project, settings, runtime=rt, **kw)
    include_api(app)  # the REST routes are added lazily; the walkers must see them
    return app, TestClient(app, base_url="http://127.0.0.1:6789"), rt


def route_table(app):
    """``(method, path, route)`` for every route the app serves, REST and UI, through included routers.

    FastAPI keeps included routers as wrappers (``original_router`` + a prefix); a route
    added to any of them later is found here without editing the tests.
    """
    from fastapi.routing import APIRoute

    def walk(routes, prefix):
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                context = getattr(route, "include_context", None)
                yield from walk(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
            elif isinstance(route, APIRoute):
                for method in sorted(route.methods - {"HEAD"}):
                    yield method, prefix + route.path_format, route

    yield from walk(app.router.routes, "")


def set_secret_in_other_process(project: Path, name: str, value: str) -> None:
    """Store a secret from a separate Python process (the CLI, a second server) with the project's store."""
    code = (
        "from dagsmith.orchestration.settings import OrchestrationSettings as S;"
        "from dagsmith.orchestration.db import get_database;"
        "from dagsmith.orchestration.secrets import SecretStore;"
        f"s=S.from_env({str(project)!r}); SecretStore(get_database(s), s.data_dir).set({name!r}, {value!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
