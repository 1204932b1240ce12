"""Replaying one block of a past run (issue 16 item 5): same upstream outputs, variables and execution_date."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from dagsmith.engine.runner import run_pipeline
from tests.projects import add_pipeline, make_project

LOAD = """
    import pandas as pd

    @data_loader
    def load(*args, **kwargs):
        return pd.DataFrame({"v": [10, 20, 30]})
"""

BAD = """
    import json

    @transformer
    def check(df, *args, **kwargs):
        seen = {{
            "rows": df["v"].tolist(),
            "execution_date": kwargs["execution_date"].isoformat(),
            "interval_end": kwargs["interval_end_datetime"].isoformat(),
            "n": kwargs.get("n"),
            "trigger": kwargs.get("trigger_name"),
        }}
        with open({out!r}, "a") as fh:
            fh.write(json.dumps(seen) + "\\n")
        secret_local = sum(df["v"]) * 7
        if kwargs.get("n") == 5:
            raise ValueError("n=5 is not allowed")
        return df
"""


def cli(*args, stdin=None):
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}
    return subprocess.run([sys.executable, "-m", "dagsmith", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=120)


def setup(tmp_path):
    root = make_project(tmp_path)
    out = tmp_path / "seen.jsonl"
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": LOAD},
        {"uuid": "check", "upstream": ["load"], "code": BAD.format(out=str(out))},
    ])
    return root, out


def seen(out):
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_replay_from_cli_run_uses_the_runs_inputs(tmp_path):
    root, out = setup(tmp_path)
    r = cli("run", str(root), "p", "-v", "n=5", "--execution-date", "2024-03-01T06:00:00Z")
    assert r.returncode == 1
    line = next(l for l in r.stderr.splitlines() if "--from-run" in l)
    assert line.split("--from-run")[1].split()[2] == "check"  # "--from-run RUN --block check"
    run_id = line.split("--from-run")[1].split()[0]
    # the loader would now return other rows: a replay must not run it again
    (root / "data_loaders" / "load.py").write_text(LOAD.replace("[10, 20, 30]", "[1]"))
    r2 = cli("run", str(root), "p", "--from-run", run_id, "--block", "check")
    assert r2.returncode == 1
    assert "n=5 is not allowed" in r2.stderr
    first, replayed = seen(out)
    assert replayed == first
    assert first["rows"] == [10, 20, 30] and first["execution_date"] == "2024-03-01T06:00:00+00:00" and first["n"] == 5


def test_replay_of_a_scheduled_run_by_its_number(tmp_path):
    root, out = setup(tmp_path)
    from datetime import datetime, timezone

    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    end = datetime(2024, 5, 2, tzinfo=timezone.utc)
    # exactly what a worker passes for run #42 of a schedule (orchestration.worker)
    res = run_pipeline(root, "p", run_id="42", partition="42", variables={"n": 5}, execution_date=start,
                       interval=(start, end), trigger_name="daily")
    assert res.status == "failed"
    r = cli("run", str(root), "p", "--from-run", "42", "--block", "check")
    assert r.returncode == 1, r.stdout + r.stderr
    first, replayed = seen(out)
    assert replayed == first == {"rows": [10, 20, 30], "execution_date": "2024-05-01T00:00:00+00:00",
                                 "interval_end": "2024-05-02T00:00:00+00:00", "n": 5, "trigger": "daily"}


def test_replay_with_pdb_stops_at_the_exception(tmp_path):
    root, out = setup(tmp_path)
    res = run_pipeline(root, "p", variables={"n": 5})
    assert res.status == "failed"
    r = cli("run", str(root), "p", "--from-run", res.partition, "--block", "check", "--pdb",
            stdin="p secret_local\np kwargs['n']\nq\n")
    assert "(Pdb)" in r.stdout
    assert "420" in r.stdout  # secret_local = 60 * 7, a local of the user's frame
    assert "ValueError: n=5 is not allowed" in r.stdout + r.stderr


def test_replay_errors_name_the_run_and_block(tmp_path):
    root, _out = setup(tmp_path)
    r = cli("run", str(root), "p", "--from-run", "nope", "--block", "check")
    assert r.returncode == 2 and "no run 'nope' of pipeline 'p'" in r.stderr
    r = cli("run", str(root), "p", "--from-run", "nope")
    assert r.returncode == 2 and "--from-run needs the block" in r.stderr
