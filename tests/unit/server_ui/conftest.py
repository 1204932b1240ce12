"""Fixtures of the UI unit tests: a fresh project, the real app (``create_app``) and a CSRF-aware client."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    from dagsmith.project.scaffold import init_project

    for name in ("DAGSMITH_DATABASE_URL", "DAGSMITH_SECRET_KEY", "DAGSMITH_AUTH_USER", "DAGSMITH_AUTH_PASSWORD", "DAGSMITH_AUTH_PASSWORD_HASH"):
        monkeypatch.delenv(name, raising=False)
    return init_project(tmp_path / "proj", example=False)


class UiClient:
    """A TestClient that sends the CSRF token the pages hand out."""

    def __init__(self, client) -> None:
        self.client = client
        self.client.get("/login")  # sets the CSRF cookie

    @property
    def csrf(self) -> str:
        return self.client.cookies.get("dagsmith_csrf")

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, *, htmx: bool = False, **kw):
        body = dict(data or {})
        body.setdefault("csrf_token", self.csrf)
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.post(url, data=body, headers=headers, follow_redirects=kw.pop("follow_redirects", False), **kw)

    def wait_job(self, html: str, pipeline: str, timeout: float = 30.0) -> str:
        """Follow an editor block run until it ends; returns the final output fragment."""
        import re

        job = re.search(r'data-job="([0-9a-f]+)"', html).group(1)
        deadline = time.monotonic() + timeout
        while True:
            out = self.get(f"/pipelines/{pipeline}/edit/jobs/{job}?wait=5").text
            if 'data-status="running"' not in out or time.monotonic() > deadline:
                return out


def _make_client(project: Path, runtime: bool):
    from fastapi.testclient import TestClient

    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.server.app import create_app

    settings = OrchestrationSettings.from_env(project, poll_interval=0.05, scheduler_interval=0.2)
    rt = None
    if runtime:
        from dagsmith.orchestration.runtime import Runtime

        rt = Runtime(settings, roles=("worker",)).start()
    app = create_app(project, settings, runtime=rt)
    return TestClient(app), rt


@pytest.fixture
def ui(project):
    client, _ = _make_client(project, runtime=False)
    with client:
        yield UiClient(client)


@pytest.fixture
def ui_worker(project):
    """Like ``ui``, with a worker in the process so queued runs execute."""
    client, rt = _make_client(project, runtime=True)
    try:
        with client:
            yield UiClient(client)
    finally:
        rt.stop(1.0)
