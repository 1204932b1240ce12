"""Mage's DEFAULT_EXECUTOR_TYPE, executor_config and executor_count: honoured where dagsmith's executors
can (the variable picks the run's executor), refused or warned about by name where they cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dagsmith.engine.config import RunConfig, block_executor, choose_executor
from dagsmith.engine.runner import run_pipeline
from dagsmith.errors import ConfigError
from dagsmith.project.pipelines import load_pipeline
from tests.projects import add_pipeline, make_project

LOADER = "import os\n@data_loader\ndef load(*a, **k):\n    open(os.environ['RAN_FLAG'], 'w').write('ran')\n    return 1\n"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("RAN_FLAG", str(tmp_path / "ran"))
    monkeypatch.delenv("DAGSMITH_EXECUTOR", raising=False)
    monkeypatch.delenv("DEFAULT_EXECUTOR_TYPE", raising=False)
    return make_project(tmp_path)


def _pipe(root, extra=None, **block):
    add_pipeline(root, "p", [{"uuid": "load", "type": "data_loader", "code": LOADER, **block}], extra=extra)
    return load_pipeline(root, "p")


def test_default_executor_type_dask_sends_local_python_runs_to_dask(root, monkeypatch):
    spec = _pipe(root, executor_type="local_python")
    config = RunConfig(project_root=root, pipeline_uuid="p")
    monkeypatch.setenv("DEFAULT_EXECUTOR_TYPE", "dask")
    assert choose_executor(config, spec) == "dask"
    assert block_executor(config, "dask", spec.block("load")) == "dask"  # local_python follows, as in Mage
    # what dagsmith is told directly wins over Mage's default
    assert choose_executor(RunConfig(project_root=root, pipeline_uuid="p", executor="local"), spec) == "local"
    monkeypatch.setenv("DAGSMITH_EXECUTOR", "local")
    assert choose_executor(config, spec) == "local"


def test_default_executor_type_local_values_run_here(root, monkeypatch, tmp_path):
    _pipe(root)
    for value in ("local_python", "LOCAL_PYTHON_FORCE", " "):
        monkeypatch.setenv("DEFAULT_EXECUTOR_TYPE", value)
        result = run_pipeline(root, "p")
        assert result.ok and result.warnings == []
    assert (tmp_path / "ran").read_text() == "ran"


@pytest.mark.parametrize("value", ["k8s", "ECS", "gcp_cloud_run", "pyspark"])
def test_a_remote_default_executor_type_is_refused_naming_variable_and_pipeline(root, monkeypatch, tmp_path, value):
    _pipe(root)
    monkeypatch.setenv("DEFAULT_EXECUTOR_TYPE", value)
    with pytest.raises(ConfigError) as info:
        run_pipeline(root, "p")
    assert f"DEFAULT_EXECUTOR_TYPE='{value}'" in info.value.message and "pipeline 'p'" in info.value.message
    assert "local_python or dask" in info.value.hint
    assert not (tmp_path / "ran").exists()  # nothing ran
    assert run_pipeline(root, "p", executor="local").ok  # --executor local says where, so the variable is not asked


def test_an_unknown_default_executor_type_is_ignored_as_mage_does_with_a_warning(root, monkeypatch):
    _pipe(root)
    monkeypatch.setenv("DEFAULT_EXECUTOR_TYPE", "banana")
    result = run_pipeline(root, "p")
    assert result.ok
    assert result.warnings == [
        "DEFAULT_EXECUTOR_TYPE='banana' is not an executor type Mage knows; ignored as Mage ignores it (use local_python or dask)"
    ]


def test_executor_config_and_executor_count_are_named_in_warnings_and_the_run_goes_on(root, tmp_path):
    _pipe(root, extra={"executor_config": {"resource_limits": {"cpu": "1"}}, "executor_count": 3},
          executor_config={"namespace": "jobs"})
    result = run_pipeline(root, "p")
    assert result.ok and (tmp_path / "ran").exists()
    text = "\n".join(result.warnings)
    assert len(result.warnings) == 3
    assert "pipeline 'p': executor_config is ignored" in text
    assert "pipeline 'p', block 'load': executor_config is ignored" in text
    assert "pipeline 'p': executor_count 3 is not honoured" in text and "pipelines/p/metadata.yaml" in text
    assert result.to_dict()["warnings"] == result.warnings


@pytest.mark.parametrize("count, warned", [(1, False), ("1", False), (None, False), (2, True), (0, True), ("many", True)])
def test_executor_count_one_is_mages_default_and_silent(root, count, warned):
    _pipe(root, extra={"executor_count": count, "executor_config": None}, executor_config={})
    result = run_pipeline(root, "p")
    assert result.ok
    assert bool(result.warnings) is warned
    if count in (0, "many"):
        assert "is not a positive whole number" in result.warnings[0]


def _cli(*args, env=None):
    full = {**os.environ, "DAGSMITH_NO_HISTORY": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "dagsmith", *args], capture_output=True, text=True, timeout=120, env=full)


def test_the_cli_says_the_warnings_and_validate_lists_them_without_failing(root):
    _pipe(root, extra={"executor_count": 4})
    r = _cli("run", str(root), "p")
    assert r.returncode == 0, r.stderr
    assert "warning: pipeline 'p': executor_count 4 is not honoured" in r.stderr
    r = _cli("run", str(root), "p", "--json")
    assert r.returncode == 0 and "executor_count 4" in json.loads(r.stdout)["warnings"][0]
    r = _cli("validate", str(root), "p")
    assert r.returncode == 0 and "executor_count 4 is not honoured" in r.stdout
    r = _cli("run", str(root), "p", env={"DEFAULT_EXECUTOR_TYPE": "k8s"})
    assert r.returncode == 2 and "DEFAULT_EXECUTOR_TYPE='k8s' (Kubernetes) is not supported" in r.stderr
