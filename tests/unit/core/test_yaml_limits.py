"""Hostile project YAML: alias bombs, self-referencing aliases and oversized files are refused with the file named."""

from __future__ import annotations

import pytest

from dagsmith.errors import ProjectError
from dagsmith.project.pipelines import load_project, read_pipeline_raw
from dagsmith.project.yamlio import parse_yaml

# a few hundred bytes of nested aliases: 9**9 strings once expanded (the issue saw a 64 MB API answer)
BOMB = "variables:\n" + "".join(
    f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n" for i in range(9)
)


def _project(tmp_path, pipeline_yaml: str):
    root = tmp_path / "proj"
    (root / "pipelines" / "p").mkdir(parents=True)
    (root / "metadata.yaml").write_text("project_uuid: p\n")
    (root / "pipelines" / "p" / "metadata.yaml").write_text(pipeline_yaml)
    return root


def test_an_alias_bomb_in_a_pipeline_is_refused_naming_the_file(tmp_path):
    root = _project(tmp_path, BOMB)
    assert len(BOMB) < 600
    with pytest.raises(ProjectError) as err:
        read_pipeline_raw(root, "p")
    assert str(root / "pipelines" / "p" / "metadata.yaml") in err.value.message
    assert "aliases" in err.value.message and "anchors" in err.value.hint


def test_an_alias_bomb_in_the_project_metadata_is_refused(tmp_path):
    root = _project(tmp_path, "blocks: []\n")
    (root / "metadata.yaml").write_text(BOMB)
    with pytest.raises(ProjectError, match="metadata.yaml: YAML aliases"):
        load_project(root)


def test_ordinary_anchors_and_merge_keys_still_load():
    text = "base: &base {host: db, port: 5432}\ndev:\n  <<: *base\n  user: dev\nprod:\n  <<: *base\ncron: '*/5 * * * *'\n"
    assert parse_yaml(text, "io.yaml") == {
        "base": {"host": "db", "port": 5432},
        "dev": {"host": "db", "port": 5432, "user": "dev"},
        "prod": {"host": "db", "port": 5432},
        "cron": "*/5 * * * *",
    }


def test_a_long_string_aliased_many_times_is_refused():
    text = "a: &a '" + "x" * 200_000 + "'\nb: [" + ", ".join(["*a"] * 6) + "]\n"
    with pytest.raises(ProjectError, match="1,000,000 characters"):
        parse_yaml(text, "big.yaml")


def test_an_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(ProjectError, match="inside its own anchor"):
        parse_yaml("a: &a [1, *a]\n", "loop.yaml")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    root = _project(tmp_path, "blocks: []\nnotes: '" + "x" * 5000 + "'\n")
    monkeypatch.setenv("DAGSMITH_MAX_YAML_BYTES", "4096")
    with pytest.raises(ProjectError) as err:
        read_pipeline_raw(root, "p")
    assert "metadata.yaml: the file is 5,021 bytes" in err.value.message and "at most 4,096 bytes" in err.value.message
    assert "DAGSMITH_MAX_YAML_BYTES" in err.value.hint
    monkeypatch.setenv("DAGSMITH_MAX_YAML_BYTES", "8192")
    assert read_pipeline_raw(root, "p")["blocks"] == []
