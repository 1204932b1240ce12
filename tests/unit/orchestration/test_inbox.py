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
