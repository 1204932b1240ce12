"""The block cache (issue 16 item 2): a hit runs no code; any change of code, inputs or variables misses.

Every block here appends a line to a side-effect file when its code runs, so "ran" and
"did not run" are facts read from disk, not from the status dagsmith reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dagsmith.engine.runner import run_pipeline
from tests.projects import add_pipeline, make_project

LOADER = """
    import pandas as pd
    from {pkg}.utils.helpers import factor

    @data_loader
    def load(*args, **kwargs):
        with open({log!r}, "a") as fh:
            fh.write("load\\n")
        n = kwargs.get("n", 3)
        return pd.DataFrame({{"x": [i * factor() for i in range(n)]}})
"""

TRANSFORM = """
    @transformer
    def double(df, *args, **kwargs):
        with open({log!r}, "a") as fh:
            fh.write("double\\n")
        df["y"] = df["x"] * 2
        return df
"""

EXPORT = """
    @data_exporter
    def export(df, *args, **kwargs):
        with open({log!r}, "a") as fh:
            fh.write("export\\n")
"""


@pytest.fixture()
def project(tmp_path):
    root = make_project(tmp_path, "cachedemo")
    log = str(tmp_path / "ran.log")
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "load", "type": "data_loader", "code": LOADER.format(pkg=root.name, log=log)},
            {"uuid": "double", "upstream": ["load"], "code": TRANSFORM.format(log=log)},
            {"uuid": "export", "type": "data_exporter", "upstream": ["double"], "code": EXPORT.format(log=log)},
        ],
        extra={"cache": True},
        files={"utils/__init__.py": "", "utils/helpers.py": "def factor():\n    return 1\n"},
    )
    return root, Path(log)


def ran(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return lines


def statuses(result) -> dict[str, str]:
    return {u: b.status for u, b in result.blocks.items()}


def test_second_run_hits_and_runs_no_code_but_exporter_runs(project):
    root, log = project
    first = run_pipeline(root, "p")
    assert first.ok and ran(log) == ["load", "double", "export"]
    second = run_pipeline(root, "p")
    assert second.ok
    assert statuses(second) == {"load": "cached", "double": "cached", "export": "completed"}
    # the exporter writes to the outside world: the pipeline's cache: true does not skip it
    assert ran(log) == ["export"]
    # the reused output is the first run's, rows included
    assert second.blocks["double"].rows == 3


def test_editing_the_block_misses_and_gives_new_rows(project):
    root, log = project
    run_pipeline(root, "p")
    ran(log)
    path = root / "transformers" / "double.py"
    path.write_text(path.read_text().replace('df["x"] * 2', 'df["x"] * 10'))
    result = run_pipeline(root, "p")
    assert statuses(result)["load"] == "cached" and statuses(result)["double"] == "completed"
    assert ran(log) == ["double", "export"]
    from dagsmith.engine.storage import project_store

    value = project_store(root).read_block_value("p", result.partition, "double")
    assert value["y"].tolist() == [0, 10, 20]


def test_editing_an_imported_utils_module_misses(project):
    root, log = project
    run_pipeline(root, "p")
    ran(log)
    (root / "utils" / "helpers.py").write_text("def factor():\n    return 5\n")
    from dagsmith.cli.dev import _forget_project_modules

    _forget_project_modules(root)  # as a new process would: this test process imported the old module
    result = run_pipeline(root, "p")
    assert statuses(result)["load"] == "completed"
    # the loader's rows changed (factor 5), so the transformer's input fingerprint misses too
    assert ran(log) == ["load", "double", "export"]


def test_changed_variables_miss_and_same_upstream_rows_hit(project):
    root, log = project
    run_pipeline(root, "p", variables={"n": 3})
    ran(log)
    result = run_pipeline(root, "p", variables={"n": 4})
    assert statuses(result)["load"] == "completed" and statuses(result)["double"] == "completed"
    assert ran(log) == ["load", "double", "export"]
    # back to n=3: both keys are remembered
    result = run_pipeline(root, "p", variables={"n": 3})
    assert statuses(result)["load"] == "cached" and statuses(result)["double"] == "cached"
    assert ran(log) == ["export"]


def test_changed_upstream_output_misses(project):
    root, log = project
    # only the transformer is cached; the loader runs every time and its output changes with n
    meta = root / "pipelines" / "p" / "metadata.yaml"
    import yaml

    raw = yaml.safe_load(meta.read_text())
    raw.pop("cache")
    raw["blocks"][1]["cache"] = True
    meta.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_pipeline(root, "p", variables={"n": 3})
    ran(log)
    same = run_pipeline(root, "p", variables={"n": 3})
    assert statuses(same)["load"] == "completed" and statuses(same)["double"] == "cached"
    assert ran(log) == ["load", "export"]
    other = run_pipeline(root, "p", variables={"n": 2})
    assert statuses(other)["double"] == "completed"
    assert ran(log) == ["load", "double", "export"]


def test_no_cache_flag_and_exporter_opt_in(project):
    root, log = project
    run_pipeline(root, "p")
    ran(log)
    result = run_pipeline(root, "p", cache=False)
    assert set(statuses(result).values()) == {"completed"}
    assert ran(log) == ["load", "double", "export"]
    meta = root / "pipelines" / "p" / "metadata.yaml"
    import yaml

    raw = yaml.safe_load(meta.read_text())
    raw["blocks"][2]["cache"] = True  # the exporter's own, explicit opt-in
    meta.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_pipeline(root, "p")
    ran(log)
    result = run_pipeline(root, "p")
    assert statuses(result) == {"load": "cached", "double": "cached", "export": "cached"}
    assert ran(log) == []


def test_cli_cache_flag_prints_cached(tmp_path):
    root = make_project(tmp_path)
    log = tmp_path / "ran.log"
    add_pipeline(root, "q", [
        {"uuid": "one", "type": "data_loader",
         "code": f"@data_loader\ndef f(**kw):\n    open({str(log)!r}, 'a').write('one\\n')\n    return [1, 2, 3]\n"},
    ])
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "dagsmith", *args], capture_output=True, text=True, env=env, timeout=120)

    # without --cache (and no cache: key in the YAML) nothing is cached
    assert cli("run", str(root), "q").returncode == 0
    r = cli("run", str(root), "q", "--json")
    assert json.loads(r.stdout)["blocks"]["one"]["status"] == "completed"
    r = cli("run", str(root), "q", "--cache")
    assert r.returncode == 0, r.stderr
    r = cli("run", str(root), "q", "--cache")
    assert r.returncode == 0, r.stderr
    assert "cached" in r.stdout and "one" in r.stdout
    assert log.read_text().splitlines() == ["one"] * 3


def test_execution_date_is_part_of_the_key_only_for_blocks_that_read_it(tmp_path):
    root = make_project(tmp_path)
    log = tmp_path / "ran.log"
    dated = (
        "@data_loader\ndef f(**kw):\n"
        f"    open({str(log)!r}, 'a').write('dated\\n')\n"
        "    return kw['execution_date'].strftime('%Y-%m-%d')\n"
    )
    plain = f"@data_loader\ndef f(**kw):\n    open({str(log)!r}, 'a').write('plain\\n')\n    return 1\n"
    add_pipeline(root, "d", [
        {"uuid": "dated", "type": "data_loader", "code": dated},
        {"uuid": "plain", "type": "data_loader", "code": plain},
    ], extra={"cache": True})
    run_pipeline(root, "d", execution_date="2024-01-01T00:00:00Z")
    ran(log)
    again = run_pipeline(root, "d", execution_date="2024-01-01T00:00:00Z")
    assert statuses(again) == {"dated": "cached", "plain": "cached"} and ran(log) == []
    other_day = run_pipeline(root, "d", execution_date="2024-01-02T00:00:00Z")
    assert statuses(other_day) == {"dated": "completed", "plain": "cached"}
    assert ran(log) == ["dated"]
