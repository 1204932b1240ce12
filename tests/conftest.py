"""Shared pytest set-up: service fixtures live in tests/fixtures/services.py."""

import os

import pytest

pytest_plugins = ["tests.fixtures.services"] if os.path.exists(
    os.path.join(os.path.dirname(__file__), "fixtures", "services.py")
) else []


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Each test gets its own dagsmith data dir unless it sets one; no history DB from CLI runs leaks."""
    monkeypatch.delenv("DAGSMITH_DATA_DIR", raising=False)
    monkeypatch.delenv("DAGSMITH_REPO_PATH", raising=False)
    yield
    # A server or worker started in-process registers a process-wide secrets resolver.
    import sys

    io_config = sys.modules.get("dagsmith.project.io_config")
    if io_config is not None:
        io_config.set_secret_resolver(None)
