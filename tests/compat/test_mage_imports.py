"""Issue 18 item 5 (and the unavailable part of 6): ``mage_ai`` imports anywhere, never shadowing a real Mage.

Each case runs in a fresh interpreter: the import machinery is process-wide state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.projects import add_pipeline, make_project

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, cwd: Path, extra_path: Path | None = None) -> dict:
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


LAZY_PROJECT_BLOCK = """
    import threading

    from demo.utils.helpers import loader_class

    if 'data_loader' not in globals():
        from mage_ai.data_preparation.decorators import data_loader


    @data_loader
    def load(*args, **kwargs):
        from mage_ai.settings.repo import get_repo_path   # inside the function
        import importlib

        file_io = importlib.import_module('mage_ai.io.file').FileIO   # imported lazily
        seen = {}

        def later():
            from mage_ai.io.config import ConfigFileLoader  # in a thread the block starts
            seen['thread'] = ConfigFileLoader.__module__

        t = threading.Thread(target=later)
        t.start()
        t.join()
        return {
            'repo': get_repo_path(),
            'file_io': file_io.__module__,
            'helper': loader_class().__module__,
            'thread': seen['thread'],
        }
"""

HELPER = """
    def loader_class():
        from mage_ai.io.config import ConfigFileLoader   # a utils/ helper importing lazily
        return ConfigFileLoader
"""


def _lazy_project(tmp_path: Path) -> Path:
    root = make_project(tmp_path, "demo")
    add_pipeline(
        root,
        "p",
        [{"uuid": "load", "type": "data_loader", "code": LAZY_PROJECT_BLOCK}],
        files={"utils/helpers.py": HELPER},
    )
    return root


def test_imports_inside_functions_helpers_threads_and_lazily(tmp_path):
    root = _lazy_project(tmp_path)
    out = _python(
        f"""
        import json
        from dagsmith.engine import run_pipeline
        r = run_pipeline({str(root)!r}, 'p')
        assert r.ok, r.blocks['load'].error
        import mage_ai.io.file  # after the run, from plain code: still resolves (nothing real to shadow)
        print(json.dumps({{'after': mage_ai.io.file.FileIO.__module__}}))
        """,
        tmp_path,
    )
    assert out["after"] == "dagsmith.io.files"


def test_block_values_from_lazy_imports(tmp_path):
    root = _lazy_project(tmp_path)
    out = _python(
        f"""
        import json
        from dagsmith.data.store import VariableStore
        from dagsmith.engine import run_pipeline
        from dagsmith.project.layout import data_dir
        r = run_pipeline({str(root)!r}, 'p')
        assert r.ok, r.blocks['load'].error
        store = VariableStore(data_dir({str(root)!r}))
        print(json.dumps(store.read_block_value('p', r.partition, 'load')))
        """,
        tmp_path,
    )
    assert out == {
        "repo": str(root),
        "file_io": "dagsmith.io.files",
        "helper": "dagsmith.project.io_config",
        "thread": "dagsmith.project.io_config",
    }


def test_a_real_mage_ai_beside_us_is_never_shadowed_outside_blocks(tmp_path):
    fake = tmp_path / "site"
    (fake / "mage_ai" / "io").mkdir(parents=True)
    (fake / "mage_ai" / "__init__.py").write_text("REAL = True\n")
    (fake / "mage_ai" / "io" / "__init__.py").write_text("")
    (fake / "mage_ai" / "io" / "file.py").write_text("class FileIO:\n    REAL = True\n")
    root = _lazy_project(tmp_path)
    out = _python(
        f"""
        import json, sys
        import mage_ai, mage_ai.io.file
        before = sys.modules['mage_ai']
        from dagsmith.engine import run_pipeline
        r = run_pipeline({str(root)!r}, 'p')
        assert r.ok, r.blocks['load'].error
        import mage_ai.io.file as after
        print(json.dumps({{
            'same_object': sys.modules['mage_ai'] is before,
            'real_after': getattr(after.FileIO, 'REAL', False),
            'fresh_import_real': __import__('importlib').import_module('mage_ai').REAL,
        }}))
        """,
        tmp_path,
        extra_path=fake,
    )
    assert out == {"same_object": True, "real_after": True, "fresh_import_real": True}


def test_unavailable_connectors_import_and_fail_clearly_when_used(tmp_path):
    from dagsmith.engine import run_pipeline

    root = make_project(tmp_path, "demo")
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "imports_only",
                "type": "data_loader",
                "code": """
                    from mage_ai.io.config import ConfigFileLoader
                    from mage_ai.io.mysql import MySQL
                    from mage_ai.io.snowflake import Snowflake
                    from mage_ai.streaming.sources.base_python import BasePythonSource
                    if 'data_loader' not in globals():
                        from mage_ai.data_preparation.decorators import data_loader

                    @data_loader
                    def f(*args, **kwargs):
                        return 1
                """,
            },
            {
                "uuid": "uses_mysql",
                "type": "data_loader",
                "code": """
                    from mage_ai.io.config import ConfigFileLoader
                    from mage_ai.io.mysql import MySQL

                    @data_loader
                    def f(*args, **kwargs):
                        with MySQL.with_config(ConfigFileLoader('io_config.yaml', 'default')) as loader:
                            return loader.load('select 1')
                """,
            },
            {
                "uuid": "unknown_module",
                "type": "data_loader",
                "code": """
                    from mage_ai.shared.hash import index_by

                    @data_loader
                    def f(*args, **kwargs):
                        return 1
                """,
            },
        ],
    )
    result = run_pipeline(root, "p")
    assert result.blocks["imports_only"].status == "completed"
    used = result.blocks["uses_mysql"]
    assert used.status == "failed"
    assert "block 'uses_mysql'" in used.error and "mage_ai.io.mysql.MySQL is not available in dagsmith (yet)" in used.error
    unknown = result.blocks["unknown_module"]
    assert unknown.status == "failed"
    assert "block 'unknown_module'" in unknown.error and "mage_ai.shared.hash.index_by is not available in dagsmith (yet)" in unknown.error
    assert "unknown_module.py:2" in unknown.error  # the import line
    assert "ModuleNotFoundError" not in used.error + unknown.error
