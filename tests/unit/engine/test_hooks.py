"""Conditionals skip blocks (condition_failed, run completes); callbacks see the parent's inputs and errors."""

from __future__ import annotations

import json
import textwrap

import yaml

from dagsmith.engine.observer import RecordingObserver
from dagsmith.engine.runner import run_pipeline
from tests.projects import add_pipeline, make_project


def _attach(root, pipeline, *, conditionals=(), callbacks=()):
    path = root / "pipelines" / pipeline / "metadata.yaml"
    data = yaml.safe_load(path.read_text())
    for key, items, folder, btype in (("conditionals", conditionals, "conditionals", "conditional"),
                                      ("callbacks", callbacks, "callbacks", "callback")):
        for uuid, targets, code in items:
            (root / folder).mkdir(exist_ok=True)
            (root / folder / f"{uuid}.py").write_text(textwrap.dedent(code))
            data[key].append({"uuid": uuid, "name": uuid, "type": btype, "language": "python",
                              "upstream_blocks": list(targets), "downstream_blocks": [], "configuration": {}})
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _etl(root):
    add_pipeline(root, "etl", [
        {"uuid": "load", "type": "data_loader", "code": """
            @data_loader
            def load(*args, **kwargs):
                return [1, 2, 3]
        """},
        {"uuid": "export", "type": "data_exporter", "upstream": ["load"], "code": """
            @data_exporter
            def e(data, **kwargs):
                print('exported', sum(data))
        """},
        {"uuid": "after", "upstream": ["export"], "code": """
            @transformer
            def t(*args, **kwargs):
                return 1
        """},
    ])


WEEKDAY = """
    @condition
    def weekday_only(data, *args, **kwargs) -> bool:
        assert data == [1, 2, 3]
        return kwargs['execution_date'].weekday() < 5
"""


def test_condition_on_execution_date_weekday_skips_block_and_descendants(tmp_path):
    root = make_project(tmp_path)
    _etl(root)
    _attach(root, "etl", conditionals=[("weekdays", ["export"], WEEKDAY)])
    obs = RecordingObserver()
    saturday = run_pipeline(root, "etl", execution_date="2024-01-06T05:00:00Z", observer=obs, persist=False)
    assert saturday.status == "completed"
    assert saturday.blocks["load"].status == "completed"
    assert saturday.blocks["export"].status == "condition_failed"
    assert saturday.blocks["after"].status == "condition_failed"
    assert "weekdays.weekday_only" in saturday.blocks["export"].skip_reason
    end = [e[1] for e in obs.events if e[0] == "block_end" and e[1]["block_uuid"] == "export"][0]
    assert end["status"] == "condition_failed" and "weekday_only" in end["reason"]

    monday = run_pipeline(root, "etl", execution_date="2024-01-08T05:00:00Z", persist=False)
    assert monday.ok and monday.blocks["export"].stdout.strip() == "exported 6"
    assert monday.blocks["after"].status == "completed"


def test_all_conditions_must_pass_and_a_raising_condition_fails_the_block(tmp_path):
    root = make_project(tmp_path)
    _etl(root)
    _attach(root, "etl", conditionals=[
        ("yes", ["export"], "@condition\ndef ok(*a, **k):\n    return True\n"),
        ("no", ["export"], "@condition\ndef nope(*a, **k):\n    return False\n"),
    ])
    result = run_pipeline(root, "etl", persist=False)
    assert result.blocks["export"].status == "condition_failed" and "no.nope" in result.blocks["export"].skip_reason

    root2 = make_project(tmp_path, "p2")
    _etl(root2)
    _attach(root2, "etl", conditionals=[("bad", ["export"], "@condition\ndef broken(*a, **k):\n    return 1 / 0\n")])
    result = run_pipeline(root2, "etl", persist=False)
    assert result.status == "failed"
    assert "ZeroDivisionError" in result.blocks["export"].error and "bad" in result.blocks["export"].error


CALLBACKS = """
    import json, os

    def _write(name, payload):
        with open(os.path.join(os.environ['CB_DIR'], name), 'w') as fh:
            json.dump(payload, fh)

    @callback('failure')
    def on_fail(data, *args, **kwargs):
        _write('failure.json', {'data': data, 'parent': kwargs['parent_block_uuid'],
                                'error': repr(kwargs['__error']), 'run': kwargs['pipeline_run'].pipeline_uuid})

    @callback('success')
    def on_ok(data, *args, **kwargs):
        _write('success.json', {'data': data})

    @on_failure
    def legacy(**kwargs):
        _write('legacy.json', {'block': kwargs['block_uuid']})

    @callback('failure')
    def broken(*args, **kwargs):
        raise RuntimeError('slack is down')
"""


def test_failure_callback_gets_inputs_and_error_and_its_own_error_is_only_logged(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    add_pipeline(root, "cb", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef l(*a, **k):\n    return [1, 2]\n"},
        {"uuid": "export", "type": "data_exporter", "upstream": ["load"], "code": """
            @data_exporter
            def e(data, **kwargs):
                raise ValueError('warehouse unreachable')
        """},
    ])
    _attach(root, "cb", callbacks=[("notify", ["export"], CALLBACKS)])
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("CB_DIR", str(out))
    obs = RecordingObserver()
    result = run_pipeline(root, "cb", observer=obs, persist=False)
    assert result.blocks["export"].status == "failed"  # the callback's own error changed nothing
    failure = json.loads((out / "failure.json").read_text())
    assert failure["data"] == [1, 2] and failure["parent"] == "export" and failure["run"] == "cb"
    assert "warehouse unreachable" in failure["error"] and "ValueError" in failure["error"]
    assert json.loads((out / "legacy.json").read_text()) == {"block": "export"}
    assert not (out / "success.json").exists()
    records = {r["function"]: r for r in result.blocks["export"].callbacks}
    assert records["on_fail"]["status"] == "completed" and records["legacy"]["status"] == "completed"
    assert records["broken"]["status"] == "failed" and "slack is down" in records["broken"]["error"]
    end = [e[1] for e in obs.events if e[0] == "block_end" and e[1]["block_uuid"] == "export"][0]
    assert [c["function"] for c in end["callbacks"]] == ["on_fail", "legacy", "broken"]
    logs = [e[1]["record"] for e in obs.events if e[0] == "block_log" and e[1]["block_uuid"] == "export"]
    assert any(r["level"] == "error" and "slack is down" in r["message"] for r in logs)


def test_success_callback_runs_for_each_dynamic_child(tmp_path, monkeypatch):
    root = make_project(tmp_path)
    add_pipeline(root, "dyn", [
        {"uuid": "src", "type": "data_loader", "configuration": {"dynamic": True},
         "code": "@data_loader\ndef l(*a, **k):\n    return [5, 6]\n"},
        {"uuid": "child", "upstream": ["src"], "code": "@transformer\ndef t(x, **k):\n    return x\n"},
    ])
    _attach(root, "dyn", callbacks=[("cb", ["child"], """
        import os
        @callback('success')
        def done(x, **kwargs):
            open(os.path.join(os.environ['CB_DIR'], f"{kwargs['parent_block_uuid']}.txt"), 'w').write(str(x))
    """)])
    monkeypatch.setenv("CB_DIR", str(tmp_path))
    result = run_pipeline(root, "dyn", persist=False)
    assert result.ok
    assert (tmp_path / "child:0.txt").read_text() == "5" and (tmp_path / "child:1.txt").read_text() == "6"
