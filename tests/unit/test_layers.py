"""The package layers of docs/architecture.md hold: ``lint-imports`` keeps every contract.

The contracts live in pyproject.toml (``[tool.importlinter]``); imports inside functions
count, so a lazy import that crosses a layer fails here too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.is_file(), f"{exe} is missing: install the dev extra (pip install -e '.[dev]')"
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    ids = {c["id"] for c in contracts}
    # the contracts issue 14 asks for: the layers, and the engine kept from orchestration and server
    assert {"layers", "engine-runs-alone"} <= ids
    engine = next(c for c in contracts if c["id"] == "engine-runs-alone")
    assert {"dagsmith.orchestration", "dagsmith.server"} <= set(engine["forbidden_modules"])

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"}
    out = subprocess.run(
        [str(exe), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert f"Contracts: {len(contracts)} kept, 0 broken." in report, report
