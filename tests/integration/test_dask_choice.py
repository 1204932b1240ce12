"""How a run ends up on Dask: the pipeline's ``executor_type: dask`` with the project's ``dask: {scheduler}``,
``dagsmith run --executor dask --dask-scheduler``, and ``dagsmith start --role worker --executor dask``
(runs from the metadata DB executed on the cluster, with the project's ``.env`` and stored secrets on the
workers). A block reports the process it ran in; on Dask that is never the process that ran the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dagsmith.data.store import VariableStore
from dagsmith.engine import run_pipeline
from dagsmith.project.layout import data_dir
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration

WHERE = """
import os
from mage_ai.data_preparation.shared.secrets import get_secret_value
@data_loader
def where(*args, **kwargs):
    return {'pid': os.getpid(), 'color': os.environ.get('TAXI_COLOR'), 'secret': kwargs.get('secret_name') and get_secret_value(kwargs['secret_name'])}
"""


def _address(dask_client) -> str:
    return dask_client.scheduler.address


def _project(tmp_path: Path, *, pipeline_extra: dict | None = None, project_meta: str = "") -> Path:
    root = make_project(tmp_path)
    (root / ".env").write_text("TAXI_COLOR=green\n")
    if project_meta:
        meta = root / "metadata.yaml"
        meta.write_text(meta.read_text() + project_meta)
    add_pipeline(root, "p", [{"uuid": "where", "type": "data_loader", "code": WHERE}], extra=pipeline_extra)
    return root


def _runs_on_a_dask_worker(root: Path) -> None:
    """Run pipeline 'p'; its block ran in another process (a Dask worker) with the project's .env."""
    try:
        result = run_pipeline(root, "p")
    finally:
        from dagsmith.engine.executors.dask import close_shared_clients

        close_shared_clients()
    assert result.ok, result.blocks["where"].error
    out = VariableStore(data_dir(root)).read_block_value("p", result.partition, "where")
    assert out["pid"] != os.getpid() and out["color"] == "green"


def test_pipeline_executor_type_dask_uses_the_project_scheduler(tmp_path, dask_client):
    root = _project(tmp_path, pipeline_extra={"executor_type": "dask"},
                    project_meta=f"\ndask:\n  scheduler: {_address(dask_client)}\n")
    _runs_on_a_dask_worker(root)


def test_without_a_scheduler_a_local_cluster_of_quiet_worker_processes_runs_the_blocks(tmp_path, monkeypatch):
    """No scheduler named: dagsmith starts a LocalCluster whose workers do not sample every thread's
    stack each 10 ms (a pure-Python block would lose its GIL to it), and leaves this process's Dask
    configuration as the user set it."""
    import dask

    from dagsmith.engine.executors.dask import close_shared_clients, shared_client

    def profiling() -> bool:  # nested: shipped to the workers by value
        import dask

        return bool(dask.config.get("distributed.worker.profile.enabled"))

    monkeypatch.delenv("DAGSMITH_DASK_SCHEDULER", raising=False)
    root = _project(tmp_path)
    try:
        result = run_pipeline(root, "p", executor="dask")
        client = shared_client(None)
        worker_pids = set(client.run(os.getpid).values())
        on_workers = set(client.run(profiling).values())
    finally:
        close_shared_clients()
    assert result.ok, result.blocks["where"].error
    out = VariableStore(data_dir(root)).read_block_value("p", result.partition, "where")
    assert out["pid"] in worker_pids and out["color"] == "green"
    assert len(worker_pids) >= 1 and on_workers == {False}
    assert dask.config.get("distributed.worker.profile.enabled") is True  # Dask's default here, untouched


def test_dagsmith_run_executor_dask_with_a_scheduler_address(tmp_path, dask_client):
    root = _project(tmp_path)
    env = dict(os.environ, DAGSMITH_NO_HISTORY="1")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dagsmith")), "run", str(root), "p", "--executor", "dask",
         "--dask-scheduler", _address(dask_client), "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    out = VariableStore(data_dir(root)).read_block_value("p", result["partition"], "where")
    assert out["color"] == "green"
    assert out["pid"] in dask_client.run(os.getpid).values()  # ran in a Dask worker


def test_a_bad_executor_name_is_refused_before_anything_runs(tmp_path):
    root = _project(tmp_path)
    proc = subprocess.run([str(Path(sys.executable).with_name("dagsmith")), "run", str(root), "p", "--executor", "spark"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, DAGSMITH_NO_HISTORY="1"))
    assert proc.returncode == 2
    assert "--executor 'spark' is not an executor" in proc.stderr and "--executor dask" in proc.stderr


def test_start_worker_with_the_dask_executor_runs_queued_runs_on_the_cluster(tmp_path, dask_client, monkeypatch):
    from tests.fixtures.orch_projects import wait_until

    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    root = _project(tmp_path)
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.secrets import SecretStore
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo

    settings = OrchestrationSettings.from_env(root)
    db = Database(settings)
    db.migrate()
    SecretStore(db, settings.data_dir).set("warehouse_password", "s3cr3t-value")
    with db.session() as s:
        run_id = repo.create_run(s, "p", source="api", variables={"secret_name": "warehouse_password"}).id
    env = dict(os.environ)
    env.pop("DAGSMITH_DATABASE_URL", None)
    env.update(DAGSMITH_POLL_INTERVAL="0.05", DAGSMITH_HEARTBEAT_INTERVAL="0.2")
    worker = subprocess.Popen(
        [sys.executable, "-m", "dagsmith.cli.app", "start", str(root), "--role", "worker", "--grace", "1",
         "--executor", "dask", "--dask-scheduler", _address(dask_client)],
        env=env, stdout=open(tmp_path / "worker.log", "ab"), stderr=subprocess.STDOUT,
    )
    try:
        def finished():
            with db.read() as s:
                run = repo.get_run(s, run_id)
                return run if run.status in ("completed", "failed") else None

        run = wait_until(finished, 120, what="the run to finish")
    finally:
        worker.terminate()
        worker.wait(30)
        db.dispose()
    assert run.status == "completed", (tmp_path / "worker.log").read_text()[-3000:]
    out = VariableStore(data_dir(root)).read_block_value("p", run.partition or str(run_id), "where")
    assert out["pid"] != worker.pid and out["pid"] in dask_client.run(os.getpid).values()
    assert out["color"] == "green" and out["secret"] == "s3cr3t-value"


def test_executor_choice_order(tmp_path, monkeypatch):
    from dagsmith.engine.config import RunConfig, choose_executor, dask_scheduler
    from dagsmith.errors import ConfigError
    from dagsmith.project.pipelines import load_pipeline

    root = _project(tmp_path, pipeline_extra={"executor_type": "local_python"})
    spec = load_pipeline(root, "p")
    monkeypatch.delenv("DAGSMITH_EXECUTOR", raising=False)
    monkeypatch.delenv("DAGSMITH_DASK_SCHEDULER", raising=False)
    assert choose_executor(RunConfig(project_root=root, pipeline_uuid="p"), spec) == "local"  # Mage's default value
    monkeypatch.setenv("DAGSMITH_EXECUTOR", "dask")
    assert choose_executor(RunConfig(project_root=root, pipeline_uuid="p"), spec) == "dask"
    assert choose_executor(RunConfig(project_root=root, pipeline_uuid="p", executor="local"), spec) == "local"
    monkeypatch.setenv("DAGSMITH_EXECUTOR", "ray")
    with pytest.raises(ConfigError, match="DAGSMITH_EXECUTOR"):
        choose_executor(RunConfig(project_root=root, pipeline_uuid="p"), spec)
    raw = yaml.safe_load((root / "pipelines" / "p" / "metadata.yaml").read_text())
    raw["executor_type"] = "dask"
    (root / "pipelines" / "p" / "metadata.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("DAGSMITH_EXECUTOR", "local")
    assert choose_executor(RunConfig(project_root=root, pipeline_uuid="p"), load_pipeline(root, "p")) == "dask"
    cfg = RunConfig(project_root=root, pipeline_uuid="p")
    assert dask_scheduler(cfg, {"dask": {"scheduler": "tcp://10.0.0.5:8786"}}) == "tcp://10.0.0.5:8786"
    monkeypatch.setenv("DAGSMITH_DASK_SCHEDULER", "tcp://127.0.0.1:9999")
    assert dask_scheduler(cfg, {"dask": {"scheduler": "tcp://10.0.0.5:8786"}}) == "tcp://127.0.0.1:9999"
    assert dask_scheduler(RunConfig(project_root=root, pipeline_uuid="p", dask_scheduler="tcp://h:1"), {}) == "tcp://h:1"
    with pytest.raises(ConfigError):
        RunConfig(project_root=root, pipeline_uuid="p", executor="spark")
    with pytest.raises(TypeError, match="unknown run option"):
        run_pipeline(root, "p", paralel=False)


PID = """
import os
@{kind}
def f(*args, **kwargs):
    return {{'pid': os.getpid(), 'got': [a['pid'] for a in args if isinstance(a, dict)]}}
"""


def test_block_executor_type_routes_each_block(tmp_path, dask_client):
    """Mage's per-block ``executor_type``: the ``dask`` block runs on the cluster, its neighbours
    (``local_python`` and ``local_python_force``) on this process's threads; values cross through the store."""
    root = make_project(tmp_path)
    meta = root / "metadata.yaml"
    meta.write_text(meta.read_text() + f"\ndask:\n  scheduler: {_address(dask_client)}\n")
    add_pipeline(root, "mixed", [
        {"uuid": "load", "type": "data_loader", "code": PID.format(kind="data_loader"), "executor_type": "local_python"},
        {"uuid": "crunch", "upstream": ["load"], "code": PID.format(kind="transformer"), "executor_type": "dask"},
        {"uuid": "export", "type": "data_exporter", "upstream": ["crunch"], "code": PID.format(kind="data_exporter"),
         "executor_type": "local_python_force"},
    ], extra={"executor_type": "local_python"})
    try:
        result = run_pipeline(root, "mixed", persist=False)  # a routed run stores outputs anyway: they cross processes
    finally:
        from dagsmith.engine.executors.dask import close_shared_clients

        close_shared_clients()
    assert result.ok, {u: b.error for u, b in result.blocks.items()}
    store = VariableStore(data_dir(root))
    load, crunch, export = (store.read_block_value("mixed", result.partition, u) for u in ("load", "crunch", "export"))
    workers = set(dask_client.run(os.getpid).values())
    assert load["pid"] == os.getpid() and export["pid"] == os.getpid()
    assert crunch["pid"] in workers
    assert crunch["got"] == [os.getpid()] and export["got"] == [crunch["pid"]]


def test_mages_default_executor_type_dask_runs_local_python_blocks_on_dask(tmp_path, dask_client, monkeypatch):
    """Mage's DEFAULT_EXECUTOR_TYPE names the executor of pipelines and blocks left at local_python."""
    root = _project(tmp_path, pipeline_extra={"executor_type": "local_python"},
                    project_meta=f"\ndask:\n  scheduler: {_address(dask_client)}\n")
    monkeypatch.delenv("DAGSMITH_EXECUTOR", raising=False)
    monkeypatch.setenv("DEFAULT_EXECUTOR_TYPE", "dask")
    _runs_on_a_dask_worker(root)
