"""CLI runs reach the metadata DB through the history inbox."""

from __future__ import annotations

import json

from dagsmith.cli.history import InboxRecorder
from dagsmith.engine import run_pipeline
from dagsmith.orchestration.inbox import ingest_inbox
from dagsmith.orchestration.store import repo
from tests.projects import add_pipeline, make_project


def test_cli_run_is_ingested_with_block_runs_and_logs(tmp_path, monkeypatch):
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings

    root = make_project(tmp_path)
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    print('loading')\n    return [1, 2]\n"},
            {"uuid": "b", "upstream": ["a"], "code": "@transformer\ndef f(x, **kw):\n    raise ValueError('bad row')\n"},
        ],
    )
    result = run_pipeline(root, "p", observer=InboxRecorder(root, "p", variables={"year": 2021}))
    assert result.status == "failed"
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    assert ingest_inbox(db, settings) == 1
    assert ingest_inbox(db, settings) == 0  # the file is gone once recorded
    with db.read() as s:
        runs, total = repo.list_runs(s, pipeline_uuid="p")
        assert total == 1
        run = runs[0]
        assert (run.source, run.status, run.variables) == ("cli", "failed", {"year": 2021})
        blocks = {b.block_uuid: b for b in repo.list_block_runs(s, run.id)}
        assert blocks["a"].status == "completed" and blocks["b"].status == "failed"
        assert "bad row" in blocks["b"].error
        lines = [json.loads(l) for l in open(blocks["a"].log_path)]
    assert lines[0]["message"] == "loading"
    db.dispose()


def test_a_cli_run_and_a_live_run_of_the_same_events_give_the_same_rows(tmp_path):
    """One writer: the inbox's replay of a CLI record and the live observer record a run alike."""
    from dagsmith.engine.observer import Fanout
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.history import RunHistory
    from dagsmith.orchestration.logs import RunLogWriter, run_log_dir
    from dagsmith.orchestration.settings import OrchestrationSettings

    root = make_project(tmp_path)
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return [1, 2, 3]\n"},
            {"uuid": "b", "upstream": ["a"], "code": "@transformer\ndef f(x, **kw):\n    raise ValueError('bad row')\n"},
            {"uuid": "c", "upstream": ["b"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
        ],
    )
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    with db.session() as s:
        live_id = repo.create_run(s, "p", source="cli", status="running", worker_id="here").id
    writer = RunLogWriter(run_log_dir(settings.logs_dir, "p", live_id), live_id)
    live = RunHistory(db, live_id, "p", log_writer=writer, partition="x")
    result = run_pipeline(root, "p", observer=Fanout([InboxRecorder(root, "p"), live]))
    writer.close()
    assert result.status == "failed"
    assert ingest_inbox(db, settings) == 1

    def rows(run_id):
        with db.read() as s:
            return {
                b.block_uuid: (b.status, b.attempts, b.rows, b.error, b.tests_passed, b.tests_total, b.started_at, b.completed_at)
                for b in repo.list_block_runs(s, run_id)
            }

    with db.read() as s:
        (replayed_id,) = [r.id for r in repo.list_runs(s, pipeline_uuid="p")[0] if r.id != live_id]
        replayed = repo.get_run(s, replayed_id)
        assert (replayed.status, replayed.error) == ("failed", "block(s) failed: b")
    replayed_rows, live_rows = rows(replayed_id), rows(live_id)
    assert {u: r[:-1] for u, r in replayed_rows.items()} == {u: r[:-1] for u, r in live_rows.items()}
    # blocks that ran end when they ended; "c" never ran: it ends with the run (live: the moment it was skipped)
    assert {u: r[-1] for u, r in replayed_rows.items() if u != "c"} == {u: r[-1] for u, r in live_rows.items() if u != "c"}
    assert replayed_rows["c"][-1] == replayed.completed_at
    assert live_rows["b"][-1] <= live_rows["c"][-1] and replayed_rows["b"][-1] <= replayed_rows["c"][-1]
    assert {uuid: row[0] for uuid, row in rows(live_id).items()} == {"a": "completed", "b": "failed", "c": "upstream_failed"}
    db.dispose()


def test_a_cli_run_whose_process_died_is_recorded_failed_with_its_blocks_cancelled(tmp_path):
    import subprocess
    import sys

    from dagsmith.cli.history import inbox_dir
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings

    root = make_project(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    folder = inbox_dir(root)
    folder.mkdir(parents=True)
    (folder / "r1.start.json").write_text(json.dumps({
        "run_id": "r1", "pipeline_uuid": "p", "source": "cli", "pid": int(gone.stdout), "started_at": "2024-03-10T00:00:00+00:00",
        "variables": {"k": 1}, "blocks": ["a", "b"],
    }))
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    assert ingest_inbox(db, settings) == 1
    with db.read() as s:
        (run,) = repo.list_runs(s, pipeline_uuid="p")[0]
        blocks = {b.block_uuid: b.status for b in repo.list_block_runs(s, run.id)}
        assert (run.status, run.error, run.partition, run.variables) == (
            "failed", "the `dagsmith run` process ended before the run finished", "r1", {"k": 1})
    assert blocks == {"a": "cancelled", "b": "cancelled"}
    lines = [json.loads(line) for line in open(f"{run.log_dir}/pipeline.jsonl")]
    assert lines[-1]["message"] == "run failed (recorded from `dagsmith run`)"
    assert not list(folder.iterdir())
    db.dispose()
