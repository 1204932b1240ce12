"""A new user's first hour against real services (issue 17): PostgreSQL targets, `dagsmith start` twice,
triggers from the CLI, triggers.yaml mistakes, requirements.txt. Every process is a real subprocess."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from tests.fixtures.orch_projects import create_pg_database, make_project as make_orch_project, wait_until
from tests.fixtures.services import free_port
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration

DAGSMITH = str(Path(sys.executable).with_name("dagsmith"))


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "DAGSMITH_DATABASE_URL"))}
    env.update(DAGSMITH_POLL_INTERVAL="0.05", DAGSMITH_SCHEDULER_INTERVAL="0.2", **extra)
    return env


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSMITH, *args], capture_output=True, text=True, env=env or _env(), timeout=180)


# ----------------------------------------------------------------- env_var() resolving to nothing


EXPORTER = """\
from os import path

import pandas as pd
from mage_ai.io.config import ConfigFileLoader
from mage_ai.io.postgres import Postgres
from mage_ai.settings.repo import get_repo_path


@data_exporter
def export_data_to_postgres(*args, **kwargs) -> None:
    config_path = path.join(get_repo_path(), 'io_config.yaml')
    with Postgres.with_config(ConfigFileLoader(config_path, 'dev')) as loader:
        loader.export(pd.DataFrame({'trip': [1, 2, 3]}), '{schema}', 'green_taxi', index=False, if_exists='replace')
"""


def test_a_missing_dbname_fails_the_export_before_connecting_then_works_once_set(tmp_path, pg_server, pg_schema):
    root = make_project(tmp_path)
    (root / "io_config.yaml").write_text(textwrap.dedent("""\
        version: 0.1.1
        dev:
          POSTGRES_CONNECT_TIMEOUT: 10
          POSTGRES_DBNAME: "{{ env_var('POSTGRES_DBNAME') }}"
          POSTGRES_SCHEMA: "{{ env_var('POSTGRES_SCHEMA') }}"
          POSTGRES_USER: "{{ env_var('POSTGRES_USER') }}"
          POSTGRES_PASSWORD: "{{ env_var('POSTGRES_PASSWORD') }}"
          POSTGRES_HOST: "{{ env_var('POSTGRES_HOST') }}"
          POSTGRES_PORT: "{{ env_var('POSTGRES_PORT') }}"
        """))
    dotenv = (f"POSTGRES_SCHEMA={pg_schema}\nPOSTGRES_USER={pg_server.user}\nPOSTGRES_PASSWORD=unused-with-trust\n"
              f"POSTGRES_HOST={pg_server.host}\nPOSTGRES_PORT={pg_server.port}\n")
    (root / ".env").write_text(dotenv)  # POSTGRES_DBNAME forgotten
    add_pipeline(root, "etl", [{"uuid": "export_data_to_postgres", "type": "data_exporter", "code": EXPORTER.replace('{schema}', pg_schema)}])

    r = _cli("run", str(root), "etl")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "profile 'dev'" in r.stderr and "'POSTGRES_DBNAME'" in r.stderr
    assert "environment variable POSTGRES_DBNAME is not set" in r.stderr and ".env" in r.stderr
    for dbname in ("postgres", pg_server.dbname):  # nothing reached any database
        dsn = pg_server.dsn.rsplit("/", 1)[0] + "/" + dbname
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", [pg_schema]).fetchone()[0] == 0

    (root / ".env").write_text(dotenv + f"POSTGRES_DBNAME={pg_server.dbname}\n")
    r = _cli("run", str(root), "etl")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"exported 3 rows to {pg_schema}.green_taxi" in r.stdout
    with psycopg.connect(pg_server.dsn) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{pg_schema}".green_taxi').fetchone()[0] == 3


# ----------------------------------------------------------------- dagsmith start, twice


def _wheel(folder: Path, name: str, value: int) -> Path:
    """A minimal pure-Python wheel (a module holding ``VALUE``), built by hand: no index needed to install it."""
    dist = f"{name}-0.1.dist-info"
    files = {
        f"{name}.py": f"VALUE = {value}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: dagsmith-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def _start(project: Path, port: int, log: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([DAGSMITH, "start", str(project), "--port", str(port), "--grace", "0.5", *extra],
                            env=env or _env(), stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _up(proc: subprocess.Popen, port: int, log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(log.read_text())
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_start_installs_requirements_refuses_a_second_start_and_the_cli_triggers_use_its_port(tmp_path):
    project = make_orch_project(tmp_path / "proj")
    module = f"dagsmith_probe_{os.getpid()}"
    wheel = _wheel(tmp_path, module, 42)
    (project / "requirements.txt").write_text(f"# what the blocks import\n{wheel}\n")
    port = free_port()
    log = tmp_path / "start.log"
    proc = _start(project, port, log)
    try:
        wait_until(lambda: _up(proc, port, log), 120, 0.1, "server up")
        text = log.read_text()
        assert "installing" in text and "requirements.txt" in text
        probe = subprocess.run([sys.executable, "-c", f"import {module}; print({module}.VALUE)"], capture_output=True, text=True)
        assert probe.stdout.strip() == "42"

        # a second start on the same SQLite project is refused, naming the first
        second = subprocess.run([DAGSMITH, "start", str(project), "--port", str(free_port())],
                                capture_output=True, text=True, env=_env(), timeout=120)
        assert second.returncode == 2
        assert f"already running this project (pid {proc.pid}) serving http://127.0.0.1:{port}" in second.stderr
        assert "SQLite" in second.stderr and "DAGSMITH_DATABASE_URL" in second.stderr

        # an API trigger from the CLI: its URL carries the running server's real port and works
        r = _cli("trigger", "create", str(project), "one", "hook", "--api")
        assert r.returncode == 0, r.stderr
        url = next(line for line in r.stdout.splitlines() if line.startswith("http://"))
        assert url.startswith(f"http://127.0.0.1:{port}/api/pipeline_schedules/")
        assert _cli("trigger", "url", str(project), "one", "hook").stdout.splitlines()[0] == url
        run = httpx.post(url, json={"pipeline_run": {"variables": {}}}).json()["pipeline_run"]
        api = f"http://127.0.0.1:{port}/api"
        wait_until(lambda: httpx.get(f"{api}/pipeline_runs/{run['id']}").json()["pipeline_run"]["status"] == "completed", 60, 0.1, "API run")
        # the server console says when runs start and finish
        wait_until(lambda: f"run {run['id']} of one completed" in log.read_text(), 30, 0.1, "finish line")
        assert f"run {run['id']} of one started (trigger hook" in log.read_text()

        # the same validation as the API: a bad cron is refused with what is wrong
        r = _cli("trigger", "create", str(project), "one", "nightly", "--schedule", "0 25 * * *")
        assert r.returncode == 2 and "hour 25 is out of range 0-23" in r.stderr

        # triggers.yaml: the valid entry syncs, the broken one is named on the page and the console
        (project / "pipelines" / "one" / "triggers.yaml").write_text(yaml.safe_dump({"triggers": [
            {"name": "fine", "schedule_type": "time", "schedule_interval": "@daily", "status": "active"},
            {"name": "broken_cron", "schedule_type": "time", "schedule_interval": "0 25 * * *", "status": "active"},
        ]}))
        names = lambda: {t["name"] for t in httpx.get(f"{api}/pipelines/one/pipeline_schedules").json()["pipeline_schedules"]}  # noqa: E731
        wait_until(lambda: "fine" in names(), 30, 0.1, "valid trigger synced")
        assert "broken_cron" not in names()
        wait_until(lambda: "trigger 'broken_cron'" in log.read_text(), 30, 0.1, "console warning")
        assert "hour 25 is out of range 0-23" in log.read_text()
        page = httpx.get(f"http://127.0.0.1:{port}/pipelines/one/triggers", headers={"Accept": "text/html"}).text
        assert "<strong>broken_cron</strong>" in page and "hour 25 is out of range" in page

        # more workers may join the SQLite project
        worker = subprocess.Popen([DAGSMITH, "start", str(project), "--role", "worker"], env=_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(3)
        assert worker.poll() is None
        _stop(worker)
    finally:
        _stop(proc)
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", module], capture_output=True)

    # the next start does not reinstall an unchanged requirements.txt
    proc = _start(project, port, log)
    try:
        before = log.read_text().count("installing")
        wait_until(lambda: _up(proc, port, log), 120, 0.1, "server up again")
        assert log.read_text().count("installing") == before == 1
    finally:
        _stop(proc)

    (project / "requirements.txt").write_text("./no-such-package-folder\n")
    bad = subprocess.run([DAGSMITH, "start", str(project), "--port", str(free_port())], capture_output=True, text=True, env=_env(), timeout=180)
    assert bad.returncode == 2 and "requirements.txt: pip could not install" in bad.stderr and "--no-requirements" in bad.stderr


def test_a_second_start_on_postgresql_joins_as_a_peer(tmp_path, pg_dsn):
    project = make_orch_project(tmp_path / "proj")
    url, drop = create_pg_database(pg_dsn)
    env = _env(DAGSMITH_DATABASE_URL=url)
    port = free_port()
    log = tmp_path / "first.log"
    first = _start(project, port, log, env=env)
    second = None
    try:
        wait_until(lambda: _up(first, port, log), 120, 0.1, "first up")
        second = subprocess.Popen([DAGSMITH, "start", str(project), "--role", "scheduler,worker"], env=env,
                                  stdout=open(tmp_path / "second.log", "wb"), stderr=subprocess.STDOUT)
        wait_until(lambda: "joining it as a peer" in (tmp_path / "second.log").read_text() or second.poll() is not None, 60, 0.1, "peer message")
        assert second.poll() is None, (tmp_path / "second.log").read_text()
        assert f"another scheduler (pid {first.pid})" in (tmp_path / "second.log").read_text()
    finally:
        if second is not None:
            _stop(second)
        _stop(first)
        drop()
