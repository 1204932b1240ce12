"""The dagsmith command as a user types it (a real subprocess each time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb

from tests.projects import add_pipeline, make_project


def dagsmith(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DAGSMITH_NO_HISTORY": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "dagsmith", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120
    )


def test_init_then_run_example_loads_warehouse(tmp_path):
    r = dagsmith("init", "demo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = dagsmith("run", "demo", "example_pipeline", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2/2 tests passed." in r.stdout
    assert "completed" in r.stdout
    with duckdb.connect(str(tmp_path / "demo" / "warehouse.duckdb"), read_only=True) as con:
        n, zero = con.execute("select count(*), count(*) filter (where passenger_count = 0) from trips").fetchone()
    assert n == 443 and zero == 0
    # Mage's example exports a CSV to a relative path; it lands beside the project
    csv = tmp_path / "trips_clean.csv"
    assert csv.read_text().splitlines()[0].startswith(",VendorID,") and len(csv.read_text().splitlines()) == 444
    again = dagsmith("init", "demo", cwd=tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_failed_run_exits_nonzero_and_prints_resume_command(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "ok", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 1\n"},
            {"uuid": "bad", "upstream": ["ok"], "code": "@transformer\ndef f(x, **kw):\n    return x / 0\n"},
        ],
    )
    r = dagsmith("run", str(root), "p")
    assert r.returncode == 1
    assert "block bad failed" in r.stderr and "ZeroDivisionError" in r.stderr
    assert "transformers/bad.py:3" in r.stderr
    line = next(l for l in r.stderr.splitlines() if l.startswith("resume with:"))
    run_id = line.split("--resume")[1].strip()
    (root / "transformers" / "bad.py").write_text("@transformer\ndef f(x, **kw):\n    return x + 1\n")
    r2 = dagsmith("run", str(root), "p", "--resume", run_id, "--json")
    assert r2.returncode == 0, r2.stderr
    out = json.loads(r2.stdout)
    assert list(out["blocks"]) == ["ok", "bad"]
    assert out["blocks"]["ok"]["attempts"] == 0  # reused, not re-run
    assert out["blocks"]["bad"]["status"] == "completed"


def test_piped_run_prints_plain_lines_and_block_output_as_printed(tmp_path):
    # stdout a pipe (logs, CI): no colour codes or markup tags, and what a block prints is kept verbatim
    root = make_project(tmp_path)
    code = "@data_loader\ndef f(**kw):\n    print('[green]not markup[/] [1, 2]')\n    return 1\n\n@test\ndef t(out, *a):\n    assert out == 1\n"
    add_pipeline(root, "p", [{"uuid": "only", "type": "data_loader", "code": code}])
    r = dagsmith("run", str(root), "p")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\x1b[" not in r.stdout
    assert "only | [green]not markup[/] [1, 2]" in r.stdout
    assert "1/1 tests passed." in r.stdout.splitlines()
    last = r.stdout.splitlines()[-1]
    assert last.startswith("✔ run ") and " completed in " in last and "[" not in last


def test_runtime_vars_and_execution_date_and_block(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return {'y': kw['year'], 'm': kw['month'], 'd': kw['ds']}\n"},
            {"uuid": "b", "upstream": ["a"], "code": "@transformer\ndef f(x, **kw):\n    print('got', x)\n    return x\n"},
        ],
    )
    r = dagsmith("run", str(root), "p", "--runtime-vars", '{"year": 2021}', "-v", "month=3", "--execution-date", "2021-03-01T05:00:00Z")
    assert r.returncode == 0, r.stderr
    assert "got {'y': 2021, 'm': 3, 'd': '2021-03-01'}" in r.stdout
    r = dagsmith("run", str(root), "p", "--block", "b", "--json")
    assert r.returncode == 0, r.stderr
    assert list(json.loads(r.stdout)["blocks"]) == ["b"]
    bad = dagsmith("run", str(root), "p", "--runtime-vars", "{year: 2021}")
    assert bad.returncode == 2 and "--runtime-vars is not valid JSON" in bad.stderr


def test_validate_and_list(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(root, "good", [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f():\n    return 1\n"}])
    add_pipeline(root, "broken", [{"uuid": "a", "type": "data_loader"}, {"uuid": "b", "upstream": ["zz"]}])
    r = dagsmith("validate", str(root))
    assert r.returncode == 2  # invalid input, like `dagsmith run`
    assert "✔ good" in r.stdout and "✘ broken" in r.stdout and "unknown upstream block 'zz'" in r.stdout
    r = dagsmith("pipelines", "list", str(root), "--json")
    rows = {row["uuid"]: row for row in json.loads(r.stdout)}
    assert rows["good"]["blocks"] == ["a"]


def test_test_command_reports_counts(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(
        root,
        "p",
        [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f():\n    return 3\n@test\ndef t(o):\n    assert o == 4, 'wanted four'\n"}],
    )
    r = dagsmith("test", str(root), "p")
    assert r.returncode == 1
    assert "p: 0/1 tests passed (failed)" in r.stdout and "wanted four" in r.stdout


def test_missing_project_is_a_clear_error(tmp_path):
    r = dagsmith("run", str(tmp_path / "nope"), "p")
    assert r.returncode == 2 and "does not exist" in r.stderr and "dagsmith init" in r.stderr


def test_cli_runs_leave_a_history_record(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    print('hi')\n    return 1\n"}])
    env = {k: v for k, v in os.environ.items() if k != "DAGSMITH_NO_HISTORY"}
    r = subprocess.run([sys.executable, "-m", "dagsmith", "run", str(root), "p", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    record = json.loads((root / ".dagsmith" / "inbox" / f"{run_id}.json").read_text())
    assert record["status"] == "completed" and record["source"] == "cli"
    assert record["logs"]["a"][0]["message"] == "hi"
    assert not (root / ".dagsmith" / "inbox" / f"{run_id}.start.json").exists()


def test_run_on_a_terminal_shows_live_view_and_finishes(tmp_path):
    """On a terminal the live view is drawn (Rich); block output must still flow and the run end."""
    import pty
    import select

    root = make_project(tmp_path)
    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    print('from the block')\n    return [1, 2]\n"}])
    leader, follower = pty.openpty()
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1", "TERM": "xterm", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "dagsmith", "run", str(root), "p"], stdout=follower, stderr=follower, env=env)
    os.close(follower)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    finally:
        proc.kill()
        os.close(leader)
    text = out.decode(errors="replace")
    assert "from the block" in text and "completed" in text
