"""A new user's first hour with the dagsmith command (issue 17), each step a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import yaml

from tests.projects import add_pipeline, make_project

DAGSMITH = str(Path(sys.executable).with_name("dagsmith"))


def dagsmith(*args: str, cwd=None, env=None, history: bool = False) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    if not history:
        full_env["DAGSMITH_NO_HISTORY"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "dagsmith", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120
    )


# ----------------------------------------------------------------- --version, --help


def test_version_and_help_answer_without_typer_and_list_the_typer_commands():
    from importlib.metadata import version

    r = subprocess.run([DAGSMITH, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"dagsmith {version('dagsmith')}"
    r = subprocess.run([DAGSMITH, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "Usage: dagsmith [OPTIONS] COMMAND" in r.stdout and "--version" in r.stdout
    # the fast help lists exactly what the Typer app registers, with each command's first help line
    import typer.main

    from dagsmith.cli.app import app
    from dagsmith.cli.front import COMMANDS

    group = typer.main.get_command(app)
    registered = {name: (cmd.help or "").strip().splitlines()[0] for name, cmd in group.commands.items()}
    assert dict(COMMANDS) == registered
    for name, text in COMMANDS:
        assert f"{name}  " in r.stdout and text in r.stdout
    # the front dispatcher did not import Typer or Click for this
    code = "import sys; from dagsmith.cli import front\ntry:\n front.main(['--help'])\nexcept SystemExit: pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "[]"
    # the Typer app knows --version too (python -m dagsmith.cli.app)
    r = subprocess.run([sys.executable, "-m", "dagsmith.cli.app", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("dagsmith ")


# ----------------------------------------------------------------- pipelines new, blocks new -l sql


def test_pipelines_new_then_blocks_from_templates_run(tmp_path):
    r = dagsmith("init", "demo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = dagsmith("pipelines", "new", "demo", "Green taxi ETL", "--description", "week 2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Created pipeline green_taxi_etl" in r.stdout
    meta = yaml.safe_load((tmp_path / "demo" / "pipelines" / "green_taxi_etl" / "metadata.yaml").read_text())
    assert meta["uuid"] == "green_taxi_etl" and meta["name"] == "Green taxi ETL" and meta["description"] == "week 2"
    again = dagsmith("pipelines", "new", "demo", "green_taxi_etl", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr

    r = dagsmith("blocks", "new", "demo", "green_taxi_etl", "numbers", "-l", "sql", "--template", "duckdb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    meta = yaml.safe_load((tmp_path / "demo" / "pipelines" / "green_taxi_etl" / "metadata.yaml").read_text())
    config = meta["blocks"][0]["configuration"]
    assert config["data_provider"] == "duckdb" and config["data_provider_profile"] == "default"
    (tmp_path / "demo" / "data_loaders" / "numbers.sql").write_text("SELECT * FROM range(5) t(n)\n")
    r = dagsmith("run", "demo", "green_taxi_etl", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "numbers" in r.stdout and "completed" in r.stdout

    # a SQL block needs a data provider: no silent `configuration: {}`
    r = dagsmith("blocks", "new", "demo", "green_taxi_etl", "other", "-l", "sql", cwd=tmp_path)
    assert r.returncode == 2 and "needs a data provider" in r.stderr and "--data-provider" in r.stderr


def test_validate_catches_a_sql_block_without_data_provider(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(root, "p", [{"uuid": "q", "type": "data_loader", "language": "sql", "code": "SELECT 1\n"}])
    r = dagsmith("validate", str(root), "p")
    assert r.returncode == 2
    assert "SQL block 'q' (data_loaders/q.sql) has no data_provider" in r.stdout
    r = dagsmith("run", str(root), "p")
    assert r.returncode == 2 and "has no data_provider" in r.stderr


# ----------------------------------------------------------------- dagsmith test does not export


def test_test_command_runs_no_exporter_unless_asked(tmp_path):
    assert dagsmith("init", "demo", cwd=tmp_path).returncode == 0
    warehouse = tmp_path / "demo" / "warehouse.duckdb"
    r = dagsmith("test", "demo", "example_pipeline", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2/2 tests passed" in r.stdout
    assert "not run (exporters write to your targets): export_to_duckdb" in r.stdout and "--with-exports" in r.stdout
    assert not warehouse.exists()
    r = dagsmith("test", "demo", "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["example_pipeline"]["skipped"] == ["export_to_duckdb", "export_trips_csv"]
    assert not warehouse.exists()

    r = dagsmith("test", "demo", "example_pipeline", "--with-exports", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not run" not in r.stdout
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from trips").fetchone()[0] == 443


def test_test_command_skips_blocks_downstream_of_an_exporter(tmp_path):
    root = make_project(tmp_path)
    marker = tmp_path / "after-export.txt"
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef f(*a, **k):\n    return 3\n@test\ndef t(o, *a):\n    assert o == 3\n"},
        {"uuid": "save", "type": "data_exporter", "upstream": ["load"], "code": f"@data_exporter\ndef e(x, *a, **k):\n    open({str(tmp_path / 'exported.txt')!r}, 'w').write(str(x))\n"},
        {"uuid": "after", "type": "custom", "upstream": ["save"], "code": f"@custom\ndef c(*a, **k):\n    open({str(marker)!r}, 'w').write('ran')\n"},
    ])
    r = dagsmith("test", str(root), "p")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1/1 tests passed" in r.stdout and "save, after" in r.stdout
    assert not (tmp_path / "exported.txt").exists() and not marker.exists()


# ----------------------------------------------------------------- Ctrl-C


def _stuck_pipeline(tmp_path, callback_sleeps: bool = False) -> Path:
    root = make_project(tmp_path)
    add_pipeline(root, "p", [
        {"uuid": "fast", "type": "data_loader", "code": "@data_loader\ndef f(*a, **k):\n    return 1\n"},
        {"uuid": "stuck", "upstream": ["fast"], "code": "import time\n@transformer\ndef s(x, *a, **k):\n    print('stuck now', flush=True)\n    time.sleep(600)\n"},
        {"uuid": "later", "upstream": ["stuck"], "code": "@transformer\ndef l(x, *a, **k):\n    return x\n"},
    ])
    if callback_sleeps:  # a slow cancel callback keeps the first Ctrl-C busy
        path = root / "pipelines" / "p" / "metadata.yaml"
        data = yaml.safe_load(path.read_text())
        (root / "callbacks").mkdir(exist_ok=True)
        (root / "callbacks" / "slow.py").write_text(
            "import time\n@callback('cancelled')\ndef on_cancel(*a, **k):\n    time.sleep(600)\n"
        )
        data["callbacks"].append({"uuid": "slow", "name": "slow", "type": "callback", "language": "python",
                                  "upstream_blocks": ["stuck"], "downstream_blocks": [], "configuration": {}})
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def _start_and_wait_for(root: Path, line: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DAGSMITH_NO_HISTORY"}
    proc = subprocess.Popen([DAGSMITH, "run", str(root), "p"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        out = proc.stdout.readline()
        seen.append(out)
        if line in out:
            return proc
        if not out and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"never saw {line!r}: {''.join(seen)}")


def test_first_ctrl_c_cancels_the_run_prints_the_summary_and_records_it(tmp_path):
    root = _stuck_pipeline(tmp_path)
    proc = _start_and_wait_for(root, "stuck now")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "cancelling the run" in err and "Ctrl-C again" in err
    assert "was cancelled" in err and "resume with:" in err
    summary = out[out.index("run "):]
    assert "fast" in summary and "completed" in summary
    assert "stuck" in summary and "later" in summary and summary.count("cancelled") >= 2
    records = [json.loads(p.read_text()) for p in (root / ".dagsmith" / "inbox").glob("*.json") if not p.name.endswith(".start.json")]
    assert len(records) == 1 and records[0]["status"] == "cancelled"
    assert records[0]["blocks"]["stuck"]["status"] == "cancelled"


def test_second_ctrl_c_exits_at_once(tmp_path):
    root = _stuck_pipeline(tmp_path, callback_sleeps=True)
    proc = _start_and_wait_for(root, "stuck now")
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None  # still busy with the slow cancel callback
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "exiting now" in err


# ----------------------------------------------------------------- polish


def test_init_hint_works_without_an_activated_venv_and_course_names_are_accepted(tmp_path):
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # the venv is not activated
    r = subprocess.run([DAGSMITH, "init", "magic-zoomcamp"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    hint = next(line for line in r.stdout.splitlines() if line.startswith("Run the example pipeline with:"))
    command = hint.split(":", 1)[1].split()
    assert command[0] == DAGSMITH and command[1:] == ["run", "magic-zoomcamp", "example_pipeline"]
    assert "not a Python package name" in r.stderr
    r = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env={**env, "DAGSMITH_NO_HISTORY": "1"}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"exported 443 rows to main.trips ({tmp_path / 'magic-zoomcamp' / 'warehouse.duckdb'})" in r.stdout


def test_a_block_without_stored_upstream_outputs_suggests_with_upstream(tmp_path):
    assert dagsmith("init", "demo", cwd=tmp_path).returncode == 0
    r = dagsmith("run", "demo", "example_pipeline", "--block", "drop_empty_trips", cwd=tmp_path)
    assert r.returncode == 1
    assert "needs the output of upstream block 'load_trips'" in r.stderr
    assert "hint:" in r.stderr and "--with-upstream" in r.stderr
    r = dagsmith("run", "demo", "example_pipeline", "--block", "drop_empty_trips", "--with-upstream", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_extra_hint_keeps_its_brackets(tmp_path):
    """Hints are text, not Rich markup: pip install 'dagsmith[postgres]' must print as written."""
    root = make_project(tmp_path)
    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader", "code": (
        "from dagsmith.errors import ConfigError\n@data_loader\ndef f(*a, **k):\n"
        "    raise ConfigError('no driver', hint=\"pip install 'dagsmith[postgres]'\")\n")}])
    r = dagsmith("run", str(root), "p")
    assert r.returncode == 1 and "pip install 'dagsmith[postgres]'" in r.stderr


def test_stored_run_logs_have_one_case_of_level(tmp_path):
    from dagsmith.orchestration.logs import RunLogWriter, read_logs

    writer = RunLogWriter(tmp_path / "logs", 1)
    writer.write("blk", {"level": "info", "message": "from a block"})
    writer.write(None, {"level": "ERROR", "message": "run failed"})
    writer.write("blk", {"message": "no level"})
    writer.close()
    assert [r["level"] for r in read_logs(tmp_path / "logs")] == ["INFO", "ERROR", "INFO"]
