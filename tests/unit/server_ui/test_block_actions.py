"""Per-block actions of the editor: duplicate, rename (in every pipeline that lists the block), disable
(pipeline runs skip it, the editor can still run it), notes and scratchpad cells, renaming files."""

from __future__ import annotations

import yaml

LOADER = "if 'data_loader' not in globals():\n    from mage_ai.data_preparation.decorators import data_loader\n\n@data_loader\ndef load(*args, **kwargs):\n    return 5\n"
DOUBLE = "if 'transformer' not in globals():\n    from mage_ai.data_preparation.decorators import transformer\n\n@transformer\ndef t(x, *args, **kwargs):\n    return x * 2\n"


def _meta(project, uuid):
    return yaml.safe_load((project / "pipelines" / uuid / "metadata.yaml").read_text())


def _setup(ui, project):
    ui.post("/pipelines", {"name": "a"})
    ui.post("/pipelines/a/edit/blocks", {"type": "data_loader", "language": "python", "template": "generic", "name": "load"})
    ui.post("/pipelines/a/edit/blocks", {"type": "transformer", "language": "python", "template": "generic", "name": "double", "upstream": ["load"]})
    (project / "data_loaders" / "load.py").write_text(LOADER)
    (project / "transformers" / "double.py").write_text(DOUBLE)
    ui.post("/pipelines/a/clone", {"name": "b"})


def test_duplicate_rename_everywhere_and_refusals(ui, project):
    _setup(ui, project)
    r = ui.post("/pipelines/a/edit/blocks/double/duplicate")
    assert r.status_code == 303 and r.headers["location"].endswith("#block-double_copy")
    entry = next(b for b in _meta(project, "a")["blocks"] if b["uuid"] == "double_copy")
    assert entry["upstream_blocks"] == ["load"] and entry["type"] == "transformer"
    assert (project / "transformers" / "double_copy.py").read_text() == DOUBLE
    # rename a block that pipeline b uses too: file, uuid and edges follow in both
    r = ui.post("/pipelines/a/edit/blocks/load/rename", {"name": "Load Taxi"}, follow_redirects=True)
    assert "Renamed load to load_taxi (also in b)" in r.text
    assert not (project / "data_loaders" / "load.py").exists() and (project / "data_loaders" / "load_taxi.py").read_text() == LOADER
    for p in ("a", "b"):
        blocks = {b["uuid"]: b for b in _meta(project, p)["blocks"]}
        assert "load_taxi" in blocks and "load" not in blocks
        assert blocks["double"]["upstream_blocks"] == ["load_taxi"] and blocks["load_taxi"]["downstream_blocks"][0] == "double"
    r = ui.post("/pipelines/a/edit/blocks/double/rename", {"name": "load_taxi"}, follow_redirects=True)
    assert "already has a block &#39;load_taxi&#39;" in r.text
    r = ui.post("/pipelines/a/edit/blocks/double/rename", {"name": "../../etc"}, follow_redirects=True)
    assert "contains &#39;..&#39;" in r.text  # a path is never a name: refused, not cleaned into one
    assert (project / "transformers" / "double.py").exists() and not (project / "transformers" / "etc.py").exists()
    assert not any(p.name.startswith("etc") for p in project.parent.iterdir())
    r = ui.post("/pipelines/a/edit/blocks/double/rename", {"name": "///"}, follow_redirects=True)
    assert "is an absolute path" in r.text and (project / "transformers" / "double.py").exists()
    r = ui.post("/pipelines/a/edit/blocks/double/rename", {"name": "___"}, follow_redirects=True)
    assert "cannot be a block name" in r.text and (project / "transformers" / "double.py").exists()


def test_disabled_block_is_skipped_by_pipeline_runs_and_runs_from_the_editor(ui, project):
    from dagsmith.engine import run_pipeline

    _setup(ui, project)
    first = run_pipeline(project, "a", env="dev")
    assert first.blocks["double"].status == "completed"
    ui.post("/pipelines/a/edit/blocks/load/disable", {"disabled": "1"})
    assert _meta(project, "a")["blocks"][0]["configuration"]["disabled"] is True
    assert 'class="cell t-data_loader disabled"' in ui.get("/pipelines/a/edit").text
    second = run_pipeline(project, "a", env="dev")
    assert "load" not in second.blocks and second.blocks["double"].status == "completed"  # read load's stored output
    assert run_pipeline(project, "a", block_uuids=["load"], env="dev").blocks["load"].status == "completed"
    ui.post("/pipelines/a/edit/blocks/load/disable", {"disabled": "0"})
    assert "disabled" not in _meta(project, "a")["blocks"][0]["configuration"]
    assert "load" in run_pipeline(project, "a", env="dev").blocks


def test_notes_and_scratchpad_cells(ui, project):
    import re
    import time

    _setup(ui, project)
    ui.post("/pipelines/a/edit/blocks", {"type": "markdown", "language": "python", "name": "about"})
    ui.post("/pipelines/a/edit/blocks", {"type": "scratchpad", "language": "sql", "name": "try it"})
    meta = {b["uuid"]: b for b in _meta(project, "a")["blocks"]}
    assert meta["about"]["language"] == "markdown" and (project / "markdowns" / "about.md").read_text().startswith("# about")
    assert meta["try_it"]["language"] == "python" and meta["try_it"]["upstream_blocks"] == []
    (project / "scratchpads" / "try_it.py").write_text("import os\nprint('cwd has', len(os.listdir('.')) >= 0)\nraise SystemExit(3)\n")
    assert "markdown-view" in ui.get("/pipelines/a/edit/blocks/about").text
    html = ui.post("/pipelines/a/edit/blocks/try_it/run", {}, htmx=True).text
    job = re.search(r'data-job="([0-9a-f]+)"', html).group(1)
    deadline = time.monotonic() + 30
    while True:
        state = ui.get(f"/pipelines/a/edit/jobs/{job}/poll?wait=5").json()
        if state["done"] or time.monotonic() > deadline:
            break
    assert state["status"] == "failed" and "cwd has True" in state["html"] and "SystemExit: 3" in state["html"]
    # pipeline runs never run notes or scratchpads
    from dagsmith.engine import run_pipeline

    assert set(run_pipeline(project, "a", env="dev").blocks) == {"load", "double"}


def test_files_rename_refuses_block_files(ui, project):
    (project / "utils" / "helpers.py").write_text("X = 1\n")
    _setup(ui, project)
    r = ui.post("/files/rename", {"path": "utils/helpers.py", "new_path": "utils/tools.py"}, follow_redirects=True)
    assert (project / "utils" / "tools.py").read_text() == "X = 1\n" and "Renamed utils/helpers.py" in r.text
    r = ui.post("/files/rename", {"path": "data_loaders/load.py", "new_path": "data_loaders/other.py"}, follow_redirects=True)
    assert (project / "data_loaders" / "load.py").exists() and "rename the block in the editor" in r.text
    r = ui.post("/files/rename", {"path": "utils/tools.py", "new_path": "../outside.py"}, follow_redirects=True)
    assert not (project.parent / "outside.py").exists() and "contains" in r.text
    ui.post("/pipelines", {"name": "c"})
    tree = ui.get("/pipelines/c/edit/files").text
    assert 'data-block-file="data_loaders/load.py"' in tree and 'data-block-type="data_loader"' in tree
