"""``dagsmith dev`` (issue 16 item 1): a save re-runs the changed block and its downstream on stored upstream outputs."""

from __future__ import annotations

import io
import os
import queue
import subprocess
import sys
import threading
import time

import pytest
from rich.console import Console

from dagsmith.cli.dev import DevSession
from dagsmith.engine.storage import project_store
from tests.projects import add_pipeline, make_project

LOAD = """
    import pandas as pd
    from {pkg}.utils.helpers import base

    @data_loader
    def load(*args, **kwargs):
        with open({log!r}, "a") as fh:
            fh.write("load\\n")
        return pd.DataFrame({{"x": [base() + i for i in range(4)]}})
"""

SHAPE = """
    @transformer
    def shape(df, *args, **kwargs):
        with open({log!r}, "a") as fh:
            fh.write("shape\\n")
        print("shaping", len(df))
        return df[df["x"] > 1]


    @test
    def test_rows(df, *args):
        assert len(df) > 0, "no rows"
"""


@pytest.fixture()
def proj(tmp_path):
    root = make_project(tmp_path, "devdemo")
    log = tmp_path / "ran.log"
    add_pipeline(
        root, "p",
        [
            {"uuid": "load", "type": "data_loader", "code": LOAD.format(pkg=root.name, log=str(log))},
            {"uuid": "shape", "upstream": ["load"], "code": SHAPE.format(log=str(log))},
        ],
        files={"utils/__init__.py": "", "utils/helpers.py": "def base():\n    return 0\n"},
    )
    return root, log


def ran(log):
    lines = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return lines


def session(root):
    buf = io.StringIO()
    return DevSession(root, "p", Console(file=buf, width=120, force_terminal=False)), buf


def stored(root, result, block):
    return project_store(root).read_block_value("p", result.partition, block)


def test_save_reruns_changed_block_on_stored_upstream(proj):
    root, log = proj
    s, buf = session(root)
    assert s.unstored() == ["load", "shape"]
    first = s.run(s.closure(s.unstored()))
    assert first.ok and ran(log) == ["load", "shape"]
    assert stored(root, first, "shape")["x"].tolist() == [2, 3]

    path = root / "transformers" / "shape.py"
    path.write_text(path.read_text().replace('df["x"] > 1', 'df["x"] > 2'))
    result = s.on_save([path])
    assert result.ok
    assert list(result.blocks) == ["shape"]
    assert ran(log) == ["shape"]  # the loader's stored output was used, not re-made
    assert stored(root, result, "shape")["x"].tolist() == [3]
    text = buf.getvalue()
    assert "✔ shape completed" in text and "1/1 tests passed" in text and "shaping 4" in text
    assert "shape output" in text and "1 rows" in text  # the preview under the block


def test_utils_edit_reruns_the_blocks_that_import_it(proj):
    root, log = proj
    s, _buf = session(root)
    s.run(s.closure(s.unstored()))
    ran(log)
    helpers = root / "utils" / "helpers.py"
    helpers.write_text("def base():\n    return 10\n")
    result = s.on_save([helpers])
    assert list(result.blocks) == ["load", "shape"]
    assert ran(log) == ["load", "shape"]
    assert stored(root, result, "shape")["x"].tolist() == [10, 11, 12, 13]  # the edited module, not a stale import


def test_syntax_error_names_file_line_and_runs_nothing(proj):
    root, log = proj
    s, buf = session(root)
    s.run(s.closure(s.unstored()))
    ran(log)
    path = root / "transformers" / "shape.py"
    path.write_text(path.read_text().replace("return df[", "return df[[\n"))
    assert s.on_save([path]) is None
    assert ran(log) == []
    assert "transformers/shape.py:" in buf.getvalue() and "SyntaxError" in buf.getvalue()
    assert "nothing ran" in buf.getvalue()


def test_yaml_edit_reruns_the_changed_entry(proj):
    import yaml

    root, log = proj
    s, _buf = session(root)
    s.run(s.closure(s.unstored()))
    ran(log)
    meta = root / "pipelines" / "p" / "metadata.yaml"
    raw = yaml.safe_load(meta.read_text())
    raw["blocks"][1]["configuration"] = {"note": "edited"}
    meta.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = s.on_save([meta])
    assert list(result.blocks) == ["shape"] and ran(log) == ["shape"]


def test_dev_command_reacts_to_a_save(proj):
    """The real command: a file written while it watches gives the new result on its output."""
    root, log = proj
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "dagsmith", "dev", str(root), "p"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()

    def wait_for(text, timeout=60):
        seen = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line)
            if text in line:
                return seen
        raise AssertionError(f"{text!r} never printed; got:\n{''.join(seen)}")

    try:
        wait_for("watching ")
        path = root / "transformers" / "shape.py"
        path.write_text(path.read_text().replace('print("shaping", len(df))', 'print("edited", len(df))'))
        out = wait_for("■ completed")
        assert any("edited 4" in l for l in out)
        assert any("✔ shape completed" in l for l in out)
        assert not any("✔ load" in l for l in out)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
