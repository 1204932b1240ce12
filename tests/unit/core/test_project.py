"""Projects and pipelines on disk: init, round trips, file resolution, edits, bad input."""

from __future__ import annotations

import pytest
import yaml

from dagsmith.errors import ProjectError, ValidationError
from dagsmith.project import pipelines as pl
from dagsmith.project.scaffold import init_project
from tests.projects import add_pipeline, make_project


def test_init_creates_mage_layout(tmp_path):
    root = init_project(tmp_path / "zoomcamp")
    for rel in ("__init__.py", "metadata.yaml", "io_config.yaml", "requirements.txt", ".gitignore",
                "utils/__init__.py", "data_loaders/__init__.py", "transformers/__init__.py",
                "data_exporters/__init__.py", "custom/__init__.py", "pipelines/example_pipeline/metadata.yaml"):
        assert (root / rel).exists(), rel
    io = (root / "io_config.yaml").read_text()
    assert "default:" in io and "dev:" in io and "{{ env_var('POSTGRES_HOST') }}" in io
    ignore = (root / ".gitignore").read_text().splitlines()
    assert ".env" in ignore and ".dagsmith/" in ignore
    spec = pl.load_pipeline(root, "example_pipeline")
    assert [b.uuid for b in spec.blocks] == ["load_trips", "drop_empty_trips", "export_to_duckdb", "export_trips_csv"]
    assert spec.block("load_trips").downstream_blocks == ("drop_empty_trips",)


def test_init_refuses_existing_folder(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ProjectError, match="already exists"):
        init_project(tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_unknown_fields_survive_round_trip(tmp_path):
    root = make_project(tmp_path)
    meta = add_pipeline(
        root,
        "p",
        [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f():\n    return 1\n", "color": "teal", "my_field": {"x": 1}}],
        extra={"widgets": [], "cache_block_output_in_memory": False, "team_owner": "data-eng"},
    )
    pl.add_block(root, "p", "b", "transformer", upstream=["a"], content="@transformer\ndef f(x):\n    return x\n")
    data = yaml.safe_load(meta.read_text())
    assert data["team_owner"] == "data-eng"
    assert data["blocks"][0]["my_field"] == {"x": 1} and data["blocks"][0]["color"] == "teal"
    assert data["blocks"][0]["downstream_blocks"] == ["b"]
    assert data["blocks"][1]["upstream_blocks"] == ["a"]


def test_uuid_path_wins_and_stale_file_source_falls_back(tmp_path):
    root = make_project(tmp_path)
    (root / "transformers" / "transform_taxi_data.py").write_text("@transformer\ndef f(*a):\n    return 1\n")
    (root / "transformers" / "real.py").write_text("@transformer\ndef f(*a):\n    return 2\n")
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "transform_green_taxi_data", "configuration": {"file_source": {"path": "transformers/transform_taxi_data.py"}}},
            {"uuid": "real", "configuration": {"file_source": {"path": "transformers/elsewhere.py"}}},
        ],
    )
    spec = pl.load_pipeline(root, "p")
    assert spec.block("transform_green_taxi_data").relpath == "transformers/transform_taxi_data.py"
    assert spec.block("transform_green_taxi_data").path_note
    assert spec.block("real").relpath == "transformers/real.py"


def test_one_file_in_two_pipelines_is_one_block(tmp_path):
    root = make_project(tmp_path)
    code = "@data_loader\ndef f():\n    return 1\n"
    add_pipeline(root, "one", [{"uuid": "shared", "type": "data_loader", "code": code}])
    add_pipeline(root, "two", [{"uuid": "shared", "type": "data_loader"}])
    assert pl.load_pipeline(root, "one").block("shared").path == pl.load_pipeline(root, "two").block("shared").path
    assert pl.block_users(root, "data_loader", "shared") == ["one", "two"]
    pl.delete_pipeline(root, "one")
    assert (root / "data_loaders" / "shared.py").exists()


def test_cycle_is_refused_and_file_unchanged(tmp_path):
    root = make_project(tmp_path)
    meta = add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader"}, {"uuid": "b", "upstream": ["a"]}])
    before = meta.read_text()
    with pytest.raises(ValidationError, match="cycle"):
        pl.set_upstream(root, "p", "a", ["b"])
    assert meta.read_text() == before


def test_malformed_yaml_names_file_and_line(tmp_path):
    root = make_project(tmp_path)
    meta = root / "pipelines" / "p" / "metadata.yaml"
    meta.parent.mkdir(parents=True)
    meta.write_text("blocks:\n- uuid: a\n  type: [unclosed\nname: p\n")
    with pytest.raises(ProjectError) as info:
        pl.load_pipeline(root, "p")
    assert str(meta) in str(info.value) and "malformed YAML" in str(info.value)
    assert meta.read_text().startswith("blocks:")


def test_unknown_block_type_is_named(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loadr"}])
    with pytest.raises(ValidationError, match="block 'a' has unknown type 'data_loadr'"):
        pl.load_pipeline(root, "p")


def test_non_utf8_block_file_is_reported(tmp_path):
    from dagsmith.engine.validation import pipeline_problems

    root = make_project(tmp_path)
    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader"}])
    (root / "data_loaders" / "a.py").write_bytes(b"x = '\xff\xfe'\n")
    problems = pipeline_problems(root, pl.load_pipeline(root, "p"))
    assert problems and "data_loaders/a.py is not UTF-8" in problems[0]


def test_clone_rename_and_variables(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f():\n    return 1\n"}])
    new = pl.clone_pipeline(root, "p", "P Copy")
    assert new == "p_copy" and pl.load_pipeline(root, new).block("a")
    renamed = pl.rename_pipeline(root, new, "final")
    assert renamed == "final" and pl.list_pipelines(root) == ["final", "p"]
    pl.set_pipeline_variables(root, "p", {"year": 2021})
    assert pl.load_pipeline(root, "p").variables == {"year": 2021}
    with pytest.raises(ProjectError, match="identifiers"):
        pl.set_pipeline_variables(root, "p", {"bad name": 1})


def test_confine_refuses_escapes(tmp_path):
    from dagsmith.project.layout import confine

    root = make_project(tmp_path)
    (tmp_path / "outside.txt").write_text("secret")
    (root / "link").symlink_to(tmp_path / "outside.txt")
    assert confine(root, "io_config.yaml") == root / "io_config.yaml"
    for bad in ("../outside.txt", "/etc/passwd", "link", "utils/../../outside.txt"):
        with pytest.raises(ProjectError):
            confine(root, bad)
