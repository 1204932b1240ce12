"""A block counts as completed only once its outputs are stored (issue 12, item 3).

A real ``dagsmith start --role worker`` process runs a pipeline whose first block returns
a 1M-row frame; the test hook ``DAGSMITH_FAULT_KILL_BEFORE_STORE`` SIGKILLs the worker
right after that block returned and before its output was stored — the window in which
the block used to be recorded ``completed``. The metadata DB must not say completed, and
the run, resumed by the next worker, must finish (the interrupted block runs again; the
block after it runs once).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import make_project, wait_until  # noqa: E402

pytestmark = pytest.mark.integration


def _add_frame_pipeline(root: Path) -> None:
    marks = (root / "marks").resolve()
    (root / "data_loaders" / "produce.py").write_text(
        "import pandas as pd\n\n\n@data_loader\ndef load(*args, **kwargs):\n"
        f"    with open({str(marks / 'produce.txt')!r}, 'a') as fh:\n        fh.write('x')\n"
        "    return pd.DataFrame({'n': range(1_000_000), 'label': ['trip'] * 1_000_000})\n"
    )
    (root / "transformers" / "consume.py").write_text(
        "@transformer\ndef total(df, *args, **kwargs):\n"
        f"    with open({str(marks / 'consume.txt')!r}, 'a') as fh:\n        fh.write('x')\n"
        "    return int(df['n'].sum())\n"
    )
    folder = root / "pipelines" / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    block = {"language": "python", "configuration": {}, "executor_type": "local_python"}
    meta = {"uuid": "frames", "name": "frames", "type": "python", "callbacks": [], "conditionals": [], "blocks": [
        {**block, "uuid": "produce", "name": "produce", "type": "data_loader", "upstream_blocks": [], "downstream_blocks": ["consume"]},
        {**block, "uuid": "consume", "name": "consume", "type": "transformer", "upstream_blocks": ["produce"], "downstream_blocks": []},
    ]}
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def _worker(project: Path, log: Path, **extra: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("DAGSMITH_DATABASE_URL", None)
    env.update({"DAGSMITH_HEARTBEAT_INTERVAL": "0.2", "DAGSMITH_POLL_INTERVAL": "0.05", "DAGSMITH_HEARTBEAT_TIMEOUT": "3"})
    env.update(extra)
    return subprocess.Popen(
        [sys.executable, "-m", "dagsmith.cli.app", "start", str(project), "--role", "worker", "--grace", "1"],
        env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
    )


def test_a_kill_between_return_and_store_leaves_the_block_unfinished_and_the_resume_succeeds(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    project = make_project(tmp_path / "proj")
    _add_frame_pipeline(project)
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo

    db = Database(OrchestrationSettings.from_env(project, heartbeat_timeout=2.0))
    db.migrate()
    try:
        with db.session() as s:
            run_id = repo.create_run(s, "frames", source="api").id
        victim = _worker(project, tmp_path / "victim.log", DAGSMITH_FAULT_KILL_BEFORE_STORE="produce")
        code = victim.wait(120)
        assert code == -9, (tmp_path / "victim.log").read_text()[-2000:]  # killed by the hook
        with db.read() as s:
            states = {b.block_uuid: b.status for b in repo.list_block_runs(s, run_id)}
        assert states.get("produce") != "completed"  # returned, but not stored: not completed
        assert (project / "marks" / "produce.txt").read_text() == "x"

        rescuer = _worker(project, tmp_path / "rescuer.log")
        try:
            run = wait_until(lambda: (r := _run(db, run_id)).status in ("completed", "failed") and r, 90, what="run finished")
        finally:
            rescuer.terminate()
            rescuer.wait(30)
        assert run.status == "completed", (tmp_path / "rescuer.log").read_text()[-3000:]
        with db.read() as s:
            states = {b.block_uuid: b.status for b in repo.list_block_runs(s, run_id)}
        assert states == {"produce": "completed", "consume": "completed"}
        assert (project / "marks" / "produce.txt").read_text() == "xx"  # interrupted, so it ran again
        assert (project / "marks" / "consume.txt").read_text() == "x"
    finally:
        db.dispose()


def _run(db, run_id):
    from dagsmith.orchestration.store import repo

    with db.read() as s:
        return repo.get_run(s, run_id)
