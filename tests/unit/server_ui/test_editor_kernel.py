"""Editor runs in the kernel process: output streams back, a block that kills its interpreter fails
only that run (the server keeps serving and the next run starts a new kernel), and the job record
left by a server that stopped mid-run turns into an "interrupted" run."""

from __future__ import annotations

import json
import os
import re
import time

LOADER = (
    "if 'data_loader' not in globals():\n    from mage_ai.data_preparation.decorators import data_loader\n"
    "import os\n\n@data_loader\ndef load(*args, **kwargs):\n    print('pid', os.getpid())\n    return 1\n"
)
KILLER = (
    "if 'data_loader' not in globals():\n    from mage_ai.data_preparation.decorators import data_loader\n"
    "import os, signal\n\n@data_loader\ndef load(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
)


def _poll(ui, pipeline: str, html: str, timeout: float = 60) -> dict:
    job = re.search(r'data-job="([0-9a-f]+)"', html).group(1)
    since, lines, deadline = 0, [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = ui.get(f"/pipelines/{pipeline}/edit/jobs/{job}/poll?since={since}&wait=5").json()
        lines += state["lines"]
        since = state["next"]
        if state["done"]:
            state["all_lines"] = lines
            return state
    raise AssertionError("the job did not finish")


def test_blocks_run_in_a_child_process_and_a_crash_fails_only_that_run(ui, project):
    ui.post("/pipelines", {"name": "k"})
    ui.post("/pipelines/k/edit/blocks", {"type": "data_loader", "language": "python", "template": "generic", "name": "ok"})
    ui.post("/pipelines/k/edit/blocks", {"type": "data_loader", "language": "python", "template": "generic", "name": "killer"})
    (project / "data_loaders" / "ok.py").write_text(LOADER)
    (project / "data_loaders" / "killer.py").write_text(KILLER)
    state = _poll(ui, "k", ui.post("/pipelines/k/edit/blocks/ok/run", {}, htmx=True).text)
    assert state["status"] == "completed", state
    pid = int(state["all_lines"][0].split()[1])
    assert pid != os.getpid()  # not the server's process
    state = _poll(ui, "k", ui.post("/pipelines/k/edit/blocks/killer/run", {}, htmx=True).text)
    assert state["status"] == "failed"
    assert "Python process was killed by signal 9" in state["html"]
    # the server still serves, and the next run gets a new kernel
    assert ui.get("/pipelines/k/edit").status_code == 200
    state = _poll(ui, "k", ui.post("/pipelines/k/edit/blocks/ok/run", {}, htmx=True).text)
    assert state["status"] == "completed" and int(state["all_lines"][0].split()[1]) not in (pid, os.getpid())


def test_a_record_left_running_by_a_stopped_server_becomes_interrupted(tmp_path):
    from dagsmith.server.ui.jobs import BlockJobs

    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "abc123.json").write_text(json.dumps({"id": "abc123", "pipeline_uuid": "p", "block_uuid": "b", "mode": "block", "status": "running", "started": time.time() - 5}))
    (folder / "def456.json").write_text(json.dumps({"id": "def456", "pipeline_uuid": "p", "block_uuid": "c", "mode": "block", "status": "completed", "started": time.time() - 9}))
    jobs = BlockJobs(tmp_path, state_dir=folder, use_kernel=False)
    job = jobs.latest("p", "b")
    assert job is not None and job.status == "interrupted" and job.done.is_set()
    assert "server stopped" in job.error
    assert jobs.latest("p", "c") is None  # a finished run has nothing to say after a restart
    assert json.loads((folder / "abc123.json").read_text())["status"] == "interrupted"
