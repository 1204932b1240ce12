"""Mage's ``executor_type`` on pipelines and blocks: local values run, dask is honoured (see
tests/integration/test_dask_choice.py), Mage's remote executors and unknown values are refused
before anything runs with pipeline, block and field named."""

from __future__ import annotations

import pytest

from dagsmith.engine.config import RunConfig, block_executor, executor_type_of
from dagsmith.engine.runner import run_pipeline
from dagsmith.errors import ValidationError
from dagsmith.project.pipelines import load_pipeline
from tests.projects import add_pipeline, make_project

LOADER = "import os\n@data_loader\ndef load(*a, **k):\n    open(os.environ['RAN_FLAG'], 'w').write('ran')\n    return os.getpid()\n"
NEXT = "import os\n@transformer\ndef t(x, *a, **k):\n    return [x, os.getpid()]\n"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("RAN_FLAG", str(tmp_path / "ran"))
    monkeypatch.delenv("DAGSMITH_EXECUTOR", raising=False)
    return make_project(tmp_path)


def test_mages_local_values_run_on_threads_here(root):
    import os

    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": LOADER, "executor_type": "local_python"},
        {"uuid": "next", "upstream": ["load"], "code": NEXT, "executor_type": "LOCAL_PYTHON_FORCE"},
    ], extra={"executor_type": "local_python"})
    result = run_pipeline(root, "p")
    assert result.ok, {u: b.error for u, b in result.blocks.items()}
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    assert VariableStore(data_dir(root)).read_block_value("p", result.partition, "next") == [os.getpid(), os.getpid()]


@pytest.mark.parametrize("value", ["k8s", "ecs", "gcp_cloud_run", "azure_container_instance", "pyspark", "kubernetes"])
def test_an_unsupported_block_executor_type_is_refused_before_anything_runs(root, tmp_path, value):
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": LOADER},
        {"uuid": "heavy", "upstream": ["load"], "code": NEXT, "executor_type": value},
    ])
    with pytest.raises(ValidationError) as info:
        run_pipeline(root, "p")
    text = str(info.value)
    assert f"pipeline 'p', block 'heavy': executor_type '{value}'" in text
    assert "local_python" in text and "dask" in text and "pipelines/p/metadata.yaml" in text
    assert not (tmp_path / "ran").exists()  # nothing ran


def test_an_unsupported_pipeline_executor_type_is_refused_even_for_one_block(root, tmp_path):
    add_pipeline(root, "p", [{"uuid": "load", "type": "data_loader", "code": LOADER}], extra={"executor_type": "ecs"})
    with pytest.raises(ValidationError) as info:
        run_pipeline(root, "p", block_uuids=["load"])
    assert "pipeline 'p': executor_type 'ecs' (AWS ECS) is not supported" in str(info.value)
    assert not (tmp_path / "ran").exists()


def test_dagsmith_validate_names_the_field(root):
    from typer.testing import CliRunner

    from dagsmith.cli.app import app

    add_pipeline(root, "p", [{"uuid": "load", "type": "data_loader", "code": LOADER, "executor_type": "k8s"}])
    out = CliRunner().invoke(app, ["validate", str(root), "p"])
    assert out.exit_code != 0
    assert "block 'load': executor_type 'k8s' (Kubernetes) is not supported" in out.output


def test_templates_render_and_routing_follows_mage(root, monkeypatch):
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": LOADER, "executor_type": "{{ env_var('BLOCK_EXECUTOR') }}"},
        {"uuid": "next", "upstream": ["load"], "code": NEXT, "executor_type": "local_python_force"},
        {"uuid": "last", "upstream": ["next"], "code": NEXT, "executor_type": "local_python"},
    ])
    monkeypatch.setenv("BLOCK_EXECUTOR", "dask")
    spec = load_pipeline(root, "p")
    blocks = spec.block_map()
    assert executor_type_of(blocks["load"].executor_type) == "dask"
    config = RunConfig(project_root=root, pipeline_uuid="p")
    assert block_executor(config, "local", blocks["load"]) == "dask"
    assert block_executor(config, "dask", blocks["next"]) == "local"  # _force stays here
    assert block_executor(config, "dask", blocks["last"]) == "dask"  # Mage's default follows the run
    forced = RunConfig(project_root=root, pipeline_uuid="p", executor="local")  # --executor names the run's
    assert block_executor(forced, "local", blocks["load"]) == "local"
    monkeypatch.setenv("BLOCK_EXECUTOR", "k8s")
    from dagsmith.engine.config import executor_type_problems

    assert executor_type_problems(load_pipeline(root, "p")) == [
        "pipeline 'p', block 'load': executor_type 'k8s' (Kubernetes) is not supported by dagsmith; set executor_type to"
        " local_python (threads of this process), local_python_force or dask (a Dask cluster) in pipelines/p/metadata.yaml"
    ]
