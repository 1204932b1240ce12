"""Faults on a real Dask cluster: a SIGKILLed worker, a block over its memory limit, a lost scheduler.

- A worker killed mid-block: Dask runs the block again on another worker; blocks that had
  finished (some on the killed worker) never run again; the run completes.
- A block that outgrows its worker's memory limit fails its run with a "memory limit"
  error, and the nanny brings the worker back.
- A scheduler killed mid-run (``dask scheduler`` / ``dask worker`` started as separate
  processes, outputs on the S3 emulator) fails ``dagsmith run`` with a clear error and
  the resume command; after the cluster is back, ``--resume RUN_ID`` finishes the run
  without running completed blocks again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dagsmith.engine import RecordingObserver, run_pipeline
from tests.fixtures.services import _wait_port, free_port
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _marks(folder: Path, name: str) -> list[str]:
    path = folder / name
    return path.read_text().split() if path.exists() else []


MARK = """
import os
def mark(folder, name):
    with open(os.path.join(folder, name), 'a') as fh:
        fh.write(f'{os.getpid()}\\n')
"""


@pytest.fixture()
def local_cluster():
    from distributed import Client, LocalCluster

    made = []

    def make(**kw):
        options = dict(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                       dashboard_address=None, silence_logs=40)
        options.update(kw)
        cluster = LocalCluster(**options)
        client = Client(cluster, set_as_default=False)
        made.append((client, cluster))
        return client

    yield make
    for client, cluster in made:
        client.close()
        cluster.close()


def test_a_sigkilled_worker_s_block_runs_elsewhere_and_finished_blocks_never_run_again(tmp_path, local_cluster):
    from dagsmith.engine.executors.dask import DaskExecutor

    client = local_cluster()
    marks = tmp_path / "marks"
    marks.mkdir()
    root = make_project(tmp_path)
    firsts = [f"first_{i}" for i in range(4)]
    blocks = [{"uuid": f, "type": "data_loader", "code": f"""
        import time
        from proj.utils.marks import mark
        @data_loader
        def f(**kw):
            mark({str(marks)!r}, {f!r})
            time.sleep(0.2)
            return {i}
    """} for i, f in enumerate(firsts)]
    blocks.append({"uuid": "victim", "upstream": firsts, "code": f"""
        import os, time
        from proj.utils.marks import mark
        @transformer
        def f(*values, **kw):
            mark({str(marks)!r}, 'victim')
            if len(open(os.path.join({str(marks)!r}, 'victim')).read().split()) == 1:
                for _ in range(6000):  # the first time: wait to be killed
                    time.sleep(0.01)
            return sum(values)
    """})
    blocks.append({"uuid": "last", "upstream": ["victim"], "code": f"""
        from proj.utils.marks import mark
        @transformer
        def f(total, **kw):
            mark({str(marks)!r}, 'last')
            return total * 10
    """})
    add_pipeline(root, "p", blocks, files={"utils/marks.py": MARK})
    obs = RecordingObserver()
    holder: dict = {}
    thread = threading.Thread(target=lambda: holder.update(result=run_pipeline(
        root, "p", executor=DaskExecutor(client=client), observer=obs)))
    thread.start()
    victim_pid = int(_wait_for(lambda: _marks(marks, "victim"), 120, "the victim block to start")[0])
    ran_on_victim_worker = [f for f in firsts if str(victim_pid) in _marks(marks, f)]
    os.kill(victim_pid, signal.SIGKILL)
    thread.join(180)
    result = holder["result"]
    assert result.ok, {u: b.error for u, b in result.blocks.items()}
    victim_runs = _marks(marks, "victim")
    assert len(victim_runs) == 2 and victim_runs[0] != victim_runs[1]  # ran again, in another process
    assert all(len(_marks(marks, f)) == 1 for f in firsts)  # finished blocks never ran again
    assert ran_on_victim_worker, "the killed worker had run none of the finished blocks"
    assert _marks(marks, "last") and len(_marks(marks, "last")) == 1
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    assert VariableStore(data_dir(root)).read_block_value("p", result.partition, "last") == 60
    lines = [e[1]["record"]["message"] for e in obs.events if e[0] == "block_log" and e[1]["block_uuid"] == "victim"]
    assert any("was lost while running this block" in line for line in lines)


def test_a_block_over_its_worker_memory_limit_fails_the_run_with_a_clear_error(tmp_path, local_cluster):
    from dagsmith.engine.executors.dask import DaskExecutor

    client = local_cluster(n_workers=1, memory_limit="700MiB")
    root = make_project(tmp_path)
    add_pipeline(root, "p", [
        {"uuid": "hog", "type": "data_loader", "code": """
            import time
            @data_loader
            def f(**kw):
                chunks = []
                for _ in range(80):  # up to 4 GB, 50 MB at a time, slow enough for the nanny to see it grow
                    chunks.append(bytearray(50 * 1024 * 1024))
                    time.sleep(0.05)
                return len(chunks)
        """},
        {"uuid": "after", "upstream": ["hog"], "code": "@transformer\ndef f(n, **kw):\n    return n\n"},
    ])
    worker_before = set(client.scheduler_info()["workers"])
    result = run_pipeline(root, "p", executor=DaskExecutor(client=client))
    assert result.status == "failed"
    hog = result.blocks["hog"]
    assert hog.status == "failed" and "memory limit" in hog.error, hog.error
    assert "700.0 MiB" in hog.error
    assert result.blocks["after"].status == "upstream_failed"
    client.wait_for_workers(1, timeout=60)  # the nanny restarted the worker
    worker_after = set(client.scheduler_info()["workers"])
    assert worker_after and worker_after != worker_before


def _dask_bin() -> str:
    return str(Path(sys.executable).with_name("dask"))


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(20)


def test_a_lost_scheduler_fails_the_run_clearly_and_resume_finishes_it(tmp_path, s3_emulator, env_patch):
    bucket = s3_emulator.create_bucket()
    marks = tmp_path / "marks"
    marks.mkdir()
    go = tmp_path / "go"
    root = make_project(tmp_path)
    meta = root / "metadata.yaml"
    meta.write_text(meta.read_text() + f"\nvariables_dir: s3://{bucket}/vars\n")
    add_pipeline(root, "p", [
        {"uuid": "a", "type": "data_loader", "code": f"""
            import pandas as pd
            from proj.utils.marks import mark
            @data_loader
            def f(**kw):
                mark({str(marks)!r}, 'a')
                return pd.DataFrame({{'v': [1, 2, 3]}})
        """},
        {"uuid": "b", "upstream": ["a"], "code": f"""
            import os, time
            from proj.utils.marks import mark
            @transformer
            def f(df, **kw):
                mark({str(marks)!r}, 'b')
                while not os.path.exists({str(go)!r}):
                    time.sleep(0.05)
                return int(df['v'].sum())
        """},
        {"uuid": "c", "upstream": ["b"], "code": f"""
            from proj.utils.marks import mark
            @transformer
            def f(total, **kw):
                mark({str(marks)!r}, 'c')
                return total + 1
        """},
    ], files={"utils/marks.py": MARK})
    env = dict(os.environ, **{k: str(v) for k, v in s3_emulator.profile().items()})
    env.update(AWS_ENDPOINT_URL=s3_emulator.endpoint, DAGSMITH_DATA_DIR=str(tmp_path / "data"),
               DAGSMITH_DASK_LOST_AFTER="2", DAGSMITH_NO_HISTORY="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler_cmd = [_dask_bin(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    worker_cmd = [_dask_bin(), "worker", address, "--nworkers", "1", "--nthreads", "2", "--host", "127.0.0.1",
                  "--no-dashboard"]
    run_cmd = [str(Path(sys.executable).with_name("dagsmith")), "run", str(root), "p", "--executor", "dask",
               "--dask-scheduler", address]
    scheduler = worker = None
    try:
        scheduler = _start(scheduler_cmd, env, tmp_path / "scheduler.log")
        _wait_port(port, 60, scheduler, "dask scheduler")
        worker = _start(worker_cmd, env, tmp_path / "worker.log")
        first = subprocess.Popen(run_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_for(lambda: _marks(marks, "b") or first.poll() is not None, 60, "block b to start")
        assert first.poll() is None, first.stdout.read()
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.wait(20)
        output, _ = first.communicate(timeout=120)
        assert first.returncode == 1, output
        assert "lost the connection to the Dask scheduler at " + address in output
        run_id = re.search(r"--resume (\S+)", output).group(1)
        _stop(worker)

        go.write_text("1")
        scheduler = _start(scheduler_cmd, env, tmp_path / "scheduler.log")
        _wait_port(port, 60, scheduler, "dask scheduler")
        worker = _start(worker_cmd, env, tmp_path / "worker.log")
        second = subprocess.run([*run_cmd, "--resume", run_id], env=env, capture_output=True, text=True, timeout=180)
        assert second.returncode == 0, second.stdout + second.stderr
    finally:
        _stop(worker)
        _stop(scheduler)
    assert len(_marks(marks, "a")) == 1  # completed before the scheduler was lost: never ran again
    assert len(_marks(marks, "b")) == 2 and len(_marks(marks, "c")) == 1
    from dagsmith.data.store import VariableStore

    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        env_patch(name, env[name])
    store = VariableStore(f"s3://{bucket}/vars")
    resumed = [p for p in store.partitions("p") if p != run_id]
    assert len(resumed) == 1 and store.read_block_value("p", resumed[0], "c") == 7
