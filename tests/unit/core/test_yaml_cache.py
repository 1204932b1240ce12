"""The parsed-YAML cache: a run needs no YAML parser once a file was read, and never sees a stale value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dagsmith.project import yamlio
from dagsmith.project.pipelines import load_pipeline, load_project, read_pipeline_raw

PIPE = """\
name: p
uuid: p
blocks:
- uuid: a
  type: data_loader
  language: python
  upstream_blocks: []
"""


@pytest.fixture
def bytecode_on(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


def _project(tmp_path):
    root = tmp_path / "proj"
    (root / "pipelines" / "p").mkdir(parents=True)
    (root / "data_loaders").mkdir()
    (root / "data_loaders" / "a.py").write_text("@data_loader\ndef a(*args, **kwargs):\n    return 1\n")
    (root / "metadata.yaml").write_text("project_uuid: p\nvariables_dir: vars\n")
    (root / "pipelines" / "p" / "metadata.yaml").write_text(PIPE)
    return root


def test_a_second_read_takes_the_cached_value_and_an_edit_is_read_again(tmp_path, bytecode_on):
    root = _project(tmp_path)
    assert [b.uuid for b in load_pipeline(root, "p").blocks] == ["a"]
    cache = root / "pipelines" / "p" / "__pycache__" / "metadata.yaml.dagsmith-yaml.bin"
    assert cache.is_file()
    assert read_pipeline_raw(root, "p")["name"] == "p"
    # same size, same second: only the content tells the edit apart
    path = root / "pipelines" / "p" / "metadata.yaml"
    path.write_text(PIPE.replace("name: p", "name: q"))
    assert read_pipeline_raw(root, "p")["name"] == "q"


def test_a_cached_value_is_a_fresh_copy_callers_may_change(tmp_path, bytecode_on):
    root = _project(tmp_path)
    read_pipeline_raw(root, "p")["blocks"].clear()
    assert len(read_pipeline_raw(root, "p")["blocks"]) == 1


def test_a_templated_project_metadata_is_never_written_to_disk(tmp_path, bytecode_on, monkeypatch):
    root = _project(tmp_path)
    monkeypatch.setenv("SECRET_DIR", "s3cr3t-value")
    (root / "metadata.yaml").write_text("variables_dir: \"{{ env_var('SECRET_DIR') }}\"\n")
    assert load_project(root).metadata["variables_dir"] == "s3cr3t-value"
    cached = list((root / "__pycache__").glob("*")) if (root / "__pycache__").exists() else []
    assert not any(b"s3cr3t" in f.read_bytes() for f in cached)
    (root / "metadata.yaml").write_text("variables_dir: plain\n")
    assert load_project(root).metadata["variables_dir"] == "plain"
    assert (root / "__pycache__" / "metadata.yaml.dagsmith-yaml.bin").is_file()


def test_dates_are_parsed_each_time_not_cached(tmp_path, bytecode_on):
    path = tmp_path / "m.yaml"
    path.write_text("when: 2024-01-02\n")
    first = yamlio.read_yaml(path)
    assert str(first["when"]) == "2024-01-02"
    assert not (tmp_path / "__pycache__" / "m.yaml.dagsmith-yaml.bin").exists()


def test_nothing_is_written_without_bytecode(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    root = _project(tmp_path)
    load_pipeline(root, "p")
    assert not (root / "pipelines" / "p" / "__pycache__").exists()


def test_a_run_of_a_read_pipeline_does_not_import_pyyaml(tmp_path):
    root = _project(tmp_path)
    code = (
        "import sys\n"
        "from dagsmith.project.pipelines import load_pipeline, load_project\n"
        f"load_project({str(root)!r}); load_pipeline({str(root)!r}, 'p')\n"
        "print('yaml' in sys.modules)\n"
    )
    env_args = [sys.executable, "-c", code]
    first = subprocess.run(env_args, capture_output=True, text=True, check=True, env=_env())
    second = subprocess.run(env_args, capture_output=True, text=True, check=True, env=_env())
    assert first.stdout.strip() == "True"  # parsed once …
    assert second.stdout.strip() == "False"  # … then read from the cache


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
