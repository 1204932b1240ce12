"""Secrets never reach a log file, an API answer or the terminal — including one set after the server started."""

from __future__ import annotations

import subprocess
import sys
import time

from .conftest import make_app, set_secret_in_other_process

SECRET = "late-secret-7c1d9e"


def _wait(client, run_id: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/pipeline_runs/{run_id}").json()["pipeline_run"]
        if run["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


def test_a_secret_set_in_another_process_after_start_is_masked_everywhere(project):
    app, client, rt = make_app(project, runtime=True)
    try:
        with client:
            assert client.get("/api/secrets").status_code == 200  # the server's store and masker exist
            # another process (the CLI, a second server) sets the secret after this one started
            set_secret_in_other_process(project, "late_pw", SECRET)
            run = client.post("/api/pipelines/p/pipeline_runs", json={}).json()["pipeline_run"]
            done = _wait(client, run["id"])
            assert done["status"] == "completed", done
            answers = [
                client.get(f"/api/pipeline_runs/{run['id']}").text,
                client.get(f"/api/pipeline_runs/{run['id']}/logs").text,
                client.get(f"/api/block_runs?pipeline_run_id={run['id']}").text,
                client.get("/api/pipelines/p/logs").text,
                client.get(f"/pipeline-runs/{run['id']}").text,
                client.get("/api/secrets").text,
            ]
    finally:
        rt.stop(1.0)
    for text in answers:
        assert SECRET not in text
    data = project / ".dagsmith"
    written = [p for p in data.rglob("*") if p.is_file() and p.suffix != ".db" and "secrets" not in p.parts]
    assert any(p.suffix == ".jsonl" for p in written)
    leaking = [str(p) for p in written if SECRET.encode() in p.read_bytes()]
    assert leaking == []
    assert any("the value is ******" in p.read_text(errors="replace") for p in written if p.suffix == ".jsonl")


def test_log_db_and_key_files_are_private(project):
    app, client, rt = make_app(project, runtime=True)
    try:
        with client:
            client.post("/api/secrets", json={"secret": {"name": "late_pw", "value": SECRET}})
            run = client.post("/api/pipelines/p/pipeline_runs", json={}).json()["pipeline_run"]
            assert _wait(client, run["id"])["status"] == "completed"
    finally:
        rt.stop(1.0)
    data = project / ".dagsmith"
    assert data.stat().st_mode & 0o777 == 0o700
    # block outputs (the store's _inline.jsonl among them) follow the umask like every output file: the
    # 0700 data folder guards them here, and a shared variables_dir must stay readable by its group
    files = [p for p in data.rglob("*") if p.is_file() and (p.suffix in (".jsonl", ".db") or p.name == "key")
             and ".variables" not in p.parts]
    assert {p.suffix for p in files} >= {".jsonl", ".db"} and any(p.name == "key" for p in files)
    assert {str(p.relative_to(data)): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o077} == {}
    folders = [p for p in (data / "logs").rglob("*") if p.is_dir()]
    assert folders and all(p.stat().st_mode & 0o777 == 0o700 for p in folders)


def test_dagsmith_run_masks_env_and_io_config_passwords(project):
    (project / ".env").write_text("POSTGRES_PASSWORD=envpass-9f3a1b\n")
    (project / "data_loaders" / "load.py").write_text(
        "import os\n"
        "from mage_ai.io.config import ConfigFileLoader\n"
        "from mage_ai.settings.repo import get_repo_path\n\n\n"
        "@data_loader\n"
        "def load(*args, **kwargs):\n"
        "    config = ConfigFileLoader(os.path.join(get_repo_path(), 'io_config.yaml'), 'default')\n"
        "    print('config', dict(config.items()))\n"
        "    print('item', config['POSTGRES_PASSWORD'])\n"
        "    raise ValueError('could not connect with ' + config['POSTGRES_PASSWORD'])\n"
    )
    io = (project / "io_config.yaml").read_text()
    if "POSTGRES_PASSWORD" not in io:
        (project / "io_config.yaml").write_text(io + "  POSTGRES_PASSWORD: \"{{ env_var('POSTGRES_PASSWORD') }}\"\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(project.parent)}
    proc = subprocess.run([sys.executable, "-m", "dagsmith", "run", str(project), "p"], capture_output=True, text=True, env=env)
    shown = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "could not connect with ******" in shown, shown[-2000:]
    assert "envpass-9f3a1b" not in shown and "item ******" in shown


def test_one_mask_for_reprs_connector_errors_and_logs():
    """io_config's redaction, the connectors' error scrubbing and the process masker are one mask."""
    from dagsmith.io.base import Connector
    from dagsmith.orchestration.logs import MASK as LOG_MASK
    from dagsmith.project import io_config
    from dagsmith.project.masking import MASK, add_secret, mask, mask_with, redact_mapping

    assert LOG_MASK == io_config.REDACTED == MASK == "******"
    assert io_config.redact is redact_mapping and io_config.redact_text is mask_with
    profile = {"POSTGRES_USER": "alice", "POSTGRES_PASSWORD": "pw with space!", "nested": {"api_token": "tok-abc-123"}}
    assert redact_mapping(profile) == {"POSTGRES_USER": "alice", "POSTGRES_PASSWORD": MASK, "nested": {"api_token": MASK}}
    text = mask_with("postgresql://alice:pw%20with%20space%21@h/db said tok-abc-123 and pw with space!", profile)
    assert text == f"postgresql://alice:{MASK}@h/db said {MASK} and {MASK}"
    add_secret("process-wide-value-42")
    assert mask("x process-wide-value-42 y") == f"x {MASK} y"
    assert mask_with("process-wide-value-42 / own-pass-7", ["own-pass-7"]) == f"{MASK} / {MASK}"

    class Conn(Connector):
        def __init__(self) -> None:
            self._secrets = ["conn-pass-99"]

    assert Conn()._scrub("login conn-pass-99 failed, process-wide-value-42") == f"login {MASK} failed, {MASK}"


def test_dagsmith_run_masks_a_threads_uncaught_traceback(project):
    """Output that bypasses the run's capture (a thread the block started dies) is masked too."""
    (project / ".env").write_text("API_TOKEN=thread-token-6d21\n")
    (project / "data_loaders" / "load.py").write_text(
        "import os, threading\n\n\n"
        "@data_loader\n"
        "def load(*args, **kwargs):\n"
        "    token = os.environ['API_TOKEN']\n"
        "    def work():\n"
        "        raise RuntimeError('refused ' + token)\n"
        "    t = threading.Thread(target=work, name='t-' + token)\n"
        "    t.start(); t.join()\n"
        "    return 1\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(project.parent)}
    proc = subprocess.run([sys.executable, "-m", "dagsmith", "run", str(project), "p"], capture_output=True, text=True, env=env)
    shown = proc.stdout + proc.stderr
    assert proc.returncode == 0, shown[-2000:]
    assert "Exception in thread t-******" in shown and "RuntimeError: refused ******" in shown, shown[-2000:]
    assert "thread-token-6d21" not in shown
