"""Issue 18 item 6: variable_manager, secrets under ``dagsmith run``, trigger_pipeline, check_status.

Mage 0.9.80 facts: MAGE_BEHAVIOUR.md §6 (variables), §7 (trigger_pipeline), §8 (secrets).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from dagsmith.engine import run_pipeline
from tests.projects import add_pipeline, make_project


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}
    env.pop("DAGSMITH_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "dagsmith", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


def _writer(name: str, body: str) -> str:
    """A data loader whose function body writes a JSON value into ``out_<name>.json`` beside the project."""
    return f"""
        import json
        if 'data_loader' not in globals():
            from mage_ai.data_preparation.decorators import data_loader

        @data_loader
        def f(*args, **kwargs):
{chr(10).join('            ' + line for line in textwrap.dedent(body).strip().splitlines())}
            with open('out_{name}.json', 'w') as fh:
                json.dump(value, fh, default=str)
            return value
    """


# --------------------------------------------------------------------------- variables


def test_get_variable_reads_another_pipelines_stored_output(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    root = make_project(tmp_path, "demo")
    add_pipeline(root, "source", [{"uuid": "rows", "type": "data_loader", "code": """
        import pandas as pd
        @data_loader
        def f(*a, **k):
            return pd.DataFrame({'n': [1, 2, 3]})
    """}])
    add_pipeline(root, "reader", [{"uuid": "read", "type": "data_loader", "code": _writer("read", """
        from mage_ai.data_preparation.variable_manager import get_variable
        df = get_variable('source', 'rows', 'output_0')
        value = {'sum': int(df['n'].sum()), 'missing': get_variable('source', 'nope', 'output_0')}
    """)}])
    assert run_pipeline(root, "source").ok
    result = run_pipeline(root, "reader")
    assert result.ok, result.blocks["read"].error
    assert json.loads((tmp_path / "out_read.json").read_text()) == {"sum": 6, "missing": {}}


def test_global_variables_are_the_pipeline_metadata_variables(tmp_path, monkeypatch):
    from dagsmith.compat.variables import SerializationError
    from dagsmith.errors import ProjectError
    from dagsmith.project.pipelines import read_pipeline_raw

    root = make_project(tmp_path, "demo")
    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(*a, **k):\n    return 1\n"}])
    monkeypatch.setenv("DAGSMITH_REPO_PATH", str(root))
    from dagsmith.blocks.mage_imports import aliasing

    with aliasing():
        from mage_ai.data_preparation.variable_manager import get_global_variable, set_global_variable

        assert get_global_variable("p", "k") == {}  # no variables: Mage's legacy lookup finds nothing
        set_global_variable("p", "k", dt.date(2024, 1, 2))
        set_global_variable("p", "d", {"a": 1})
        assert get_global_variable("p", "k") == dt.date(2024, 1, 2)
        assert get_global_variable("p", "other") is None
        with pytest.raises(SerializationError, match="Failed to update variable t because the value is not serializable"):
            set_global_variable("p", "t", (1, 2))
        with pytest.raises(ProjectError, match="Pipeline zzz does not exist in repo_path"):
            get_global_variable("zzz", "k")
    raw = read_pipeline_raw(root, "p")
    assert raw["variables"] == {"k": dt.date(2024, 1, 2), "d": {"a": 1}}
    assert [b["uuid"] for b in raw["blocks"]] == ["a"]  # the rest of the file is kept
    result = run_pipeline(root, "p")
    assert result.ok


# --------------------------------------------------------------------------- secrets


def test_get_secret_value_works_under_dagsmith_run(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.secrets import SecretStore
    from dagsmith.orchestration.settings import OrchestrationSettings

    root = make_project(tmp_path, "demo")
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    SecretStore(db, settings.data_dir).set("api_key", "s3cr3t-value")
    db.dispose()
    add_pipeline(root, "p", [{"uuid": "s", "type": "data_loader", "code": _writer("s", """
        from mage_ai.data_preparation.shared.secrets import get_secret_value
        value = {'found': get_secret_value('api_key'), 'missing': get_secret_value('nope')}
    """)}])
    r = _cli("run", "demo", "p", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "out_s.json").read_text()) == {"found": "s3cr3t-value", "missing": None}
    assert "Could not find secret value for secret nope" in r.stdout + r.stderr


# --------------------------------------------------------------------------- trigger_pipeline

PARENT = """
    from mage_ai.orchestration.triggers.api import trigger_pipeline
    run = trigger_pipeline('child', variables={'x': 5}, check_status=True, error_on_failure=True,
                           poll_interval=0.1, poll_timeout=120, verbose=True)
    value = {'id': run.id, 'status': run.status}
"""
CHILD = """
    value = {'x': kwargs.get('x')}
"""


def _trigger_project(tmp_path: Path, child_fails: bool = False) -> Path:
    root = make_project(tmp_path, "demo")
    add_pipeline(root, "parent", [{"uuid": "go", "type": "data_loader", "code": _writer("go", PARENT)}])
    child_body = "raise ValueError('child broke')\nvalue = 1" if child_fails else CHILD
    add_pipeline(root, "child", [{"uuid": "work", "type": "data_loader", "code": _writer("work", child_body)}])
    return root


def _runs(root: Path) -> list[tuple]:
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo

    db = get_database(OrchestrationSettings.from_env(root))
    with db.read() as s:
        runs, _ = repo.list_runs(s, pipeline_uuid="child")
        out = [(r.id, r.status, r.source, r.worker_id, repo.get_trigger(s, r.trigger_id).name, r.variables) for r in runs]
    db.dispose()
    return out


def test_trigger_pipeline_runs_in_process_without_a_server(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    root = _trigger_project(tmp_path)
    r = _cli("run", "demo", "parent", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    parent = json.loads((tmp_path / "out_go.json").read_text())
    assert parent["status"] == "completed"
    assert json.loads((tmp_path / "out_work.json").read_text()) == {"x": 5}
    (run_id, status, source, worker, trigger, variables), = _runs(root)
    assert (run_id, status, source, trigger) == (parent["id"], "completed", "api", "API_TRIGGER_CREATED_FROM_CODE")
    assert variables["x"] == 5
    assert f"Pipeline run {run_id} for pipeline child: completed." in r.stdout + r.stderr


def test_trigger_pipeline_error_on_failure_fails_the_caller(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    root = _trigger_project(tmp_path, child_fails=True)
    r = _cli("run", "demo", "parent", cwd=tmp_path)
    assert r.returncode == 1
    (run_id, status, *_), = _runs(root)
    assert status == "failed"
    assert f"Pipeline run {run_id} for pipeline child: failed." in r.stdout + r.stderr


def test_trigger_pipeline_goes_through_a_running_server(tmp_path, monkeypatch):
    """A live worker (what ``dagsmith start`` runs) picks the run up; the caller only queues and waits."""
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.worker import Worker

    root = _trigger_project(tmp_path)
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    server = Worker(settings, db, worker_id="server-worker")
    stop = threading.Event()
    server.start(stop)
    try:
        code = f"""
import json
from dagsmith.compat.triggers import trigger_pipeline
run = trigger_pipeline('child', repo_path={str(root)!r}, variables={{'x': 7}}, check_status=True, poll_interval=0.1, poll_timeout=120)
print(json.dumps({{'id': run.id, 'status': run.status}}))
"""
        env = {**os.environ}
        env.pop("DAGSMITH_DATABASE_URL", None)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        called = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        stop.set()
        server.shutdown(grace=5)
        db.dispose()
    assert called["status"] == "completed"
    (run_id, status, source, worker, trigger, variables), = _runs(root)
    assert run_id == called["id"] and worker == "server-worker" and variables["x"] == 7
    assert json.loads((tmp_path / "out_work.json").read_text()) == {"x": 7}


def test_unknown_pipeline_is_refused_like_mage(tmp_path, monkeypatch):
    from dagsmith.compat.triggers import trigger_pipeline
    from dagsmith.errors import ProjectError

    root = make_project(tmp_path, "demo")
    with pytest.raises(ProjectError, match="Pipeline nope_pipeline does not exist in repo_path"):
        trigger_pipeline("nope_pipeline", repo_path=str(root))


def test_check_status_sees_a_completed_run(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    from dagsmith.compat.triggers import check_status, trigger_pipeline

    root = _trigger_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    now = dt.datetime.now(dt.timezone.utc)
    assert check_status("child", now, repo_path=str(root)) is False
    trigger_pipeline("child", repo_path=str(root), variables={"x": 1})
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    assert check_status("child", later, repo_path=str(root)) is True
    assert check_status("child", later, repo_path=str(root), block_uuid="work") is True


def test_settings_repo_helpers(tmp_path, monkeypatch):
    from dagsmith.blocks.mage_imports import aliasing

    root = make_project(tmp_path, "demo")
    monkeypatch.setenv("DAGSMITH_REPO_PATH", str(root))
    with aliasing():
        from mage_ai.settings.repo import get_repo_path, get_variables_dir

        assert get_repo_path() == str(root)
        assert get_variables_dir() == str(root / ".dagsmith")
