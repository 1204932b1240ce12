"""Blocks dagsmith cannot run fail the run before anything runs, naming block and type."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dagsmith.cli.app import app
from dagsmith.engine.runner import run_pipeline
from dagsmith.errors import ValidationError
from tests.projects import add_pipeline, make_project

LOADER = {
    "uuid": "load", "type": "data_loader", "code": """
        import os

        @data_loader
        def load(*args, **kwargs):
            open(os.environ['RAN_FLAG'], 'w').write('ran')
            return 1
    """,
}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("RAN_FLAG", str(tmp_path / "ran"))
    return make_project(tmp_path)


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ({"uuid": "models", "type": "dbt", "language": "sql", "code": "select 1"}, ["'models'", "dbt block"]),
        ({"uuid": "stats", "type": "transformer", "language": "r", "code": "x <- 1"}, ["'stats'", "transformer block in R"]),
        ({"uuid": "src", "type": "data_loader", "language": "yaml", "code": "source: postgresql"},
         ["'src'", "data_loader block in YAML"]),
        ({"uuid": "gdp", "type": "global_data_product", "code": ""}, ["'gdp'", "global data product block"]),
        ({"uuid": "snow", "type": "transformer", "language": "sql", "code": "select 1",
          "configuration": {"data_provider": "snowflake"}}, ["'snow'", "'snowflake'"]),
    ],
)
def test_a_block_dagsmith_cannot_run_fails_the_run_before_anything_runs(root, tmp_path, block, words):
    block = dict(block, upstream=["load"])
    add_pipeline(root, "p", [LOADER, block])
    with pytest.raises(ValidationError) as info:
        run_pipeline(root, "p")
    message = info.value.message
    assert "nothing was run" in message and all(w in message for w in words), message
    assert not (tmp_path / "ran").exists()

    out = CliRunner().invoke(app, ["validate", str(root), "p"])
    assert out.exit_code != 0
    text = " ".join(out.output.split())
    assert all(w in text for w in words), text


def test_a_partial_run_of_runnable_blocks_is_allowed(root, tmp_path):
    add_pipeline(root, "p", [LOADER, {"uuid": "models", "type": "dbt", "language": "sql", "code": "select 1",
                                      "upstream": ["load"]}])
    result = run_pipeline(root, "p", block_uuids=["load"])
    assert result.status == "completed" and (tmp_path / "ran").read_text() == "ran"


@pytest.mark.parametrize("blocks", [[], [{"uuid": "notes", "type": "markdown", "language": "markdown", "code": "# hi"}]])
def test_a_pipeline_with_no_block_to_run_is_never_completed(root, blocks):
    add_pipeline(root, "empty", blocks)
    with pytest.raises(ValidationError, match="has no block to run"):
        run_pipeline(root, "empty")


def test_notes_and_charts_beside_runnable_blocks_are_fine(root, tmp_path):
    add_pipeline(root, "p", [LOADER, {"uuid": "notes", "type": "markdown", "language": "markdown", "code": "# hi"},
                             {"uuid": "pad", "type": "scratchpad", "code": "x = 1"}])
    assert run_pipeline(root, "p").status == "completed"
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("blocks", [[], [{"uuid": "pad", "type": "scratchpad", "code": "x = 1"}]])
def test_dagsmith_run_of_a_pipeline_with_nothing_to_run_exits_0_like_mage_and_records_no_run(root, blocks):
    """`mage run` exits 0 for an empty or notes-only pipeline; dagsmith says so, records nothing."""
    add_pipeline(root, "empty", blocks)
    out = CliRunner().invoke(app, ["run", str(root), "empty"])
    assert out.exit_code == 0, out.output
    assert "has no block to run" in out.output and "nothing was run" in out.output
    as_json = CliRunner().invoke(app, ["run", str(root), "empty", "--json"])
    assert as_json.exit_code == 0 and '"status": "nothing_to_run"' in as_json.output
    from dagsmith.cli.history import inbox_dir

    inbox = inbox_dir(root)
    assert not inbox.exists() or not list(inbox.iterdir())  # no run recorded, completed or not
