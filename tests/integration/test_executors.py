"""One contract suite for every executor: the same pipelines behave the same on ``local`` and ``dask``.

The ``dask`` case runs on a real ``LocalCluster`` of two worker processes: blocks run
in other interpreters and their outputs travel through the variables store. Paths a
block needs are written into its code (worker processes do not see this test's
environment changes).
"""

from __future__ import annotations

import json
import textwrap
import threading
import time

import pytest
import yaml

from dagsmith.data.store import VariableStore
from dagsmith.engine import RecordingObserver, run_pipeline
from dagsmith.engine.config import RunConfig
from dagsmith.engine.runner import Run
from dagsmith.project.layout import data_dir
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "dask"])
def executor(request):
    """A factory of executors of one kind (a fresh one per run)."""
    if request.param == "local":
        return lambda: None
    client = request.getfixturevalue("dask_client")
    from dagsmith.engine.executors.dask import DaskExecutor

    return lambda: DaskExecutor(client=client)


@pytest.fixture()
def root(tmp_path):
    return make_project(tmp_path)


def run(root, pipeline, executor, **kw):
    return run_pipeline(root, pipeline, executor=executor(), **kw)


def stored(root, result, block):
    return VariableStore(data_dir(root)).read_block_value(result.pipeline_uuid, result.partition, block)


def attach(root, pipeline, *, conditionals=(), callbacks=()):
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


def test_frames_and_values_reach_downstream_blocks_with_runtime_variables(root, executor):
    add_pipeline(root, "p", [
        {"uuid": "trips", "type": "data_loader", "code": """
            import pandas as pd
            from mage_ai.data_preparation.decorators import data_loader
            @data_loader
            def load(**kwargs):
                return pd.DataFrame({'n': pd.array([1, None, 3], dtype='Int64'), 'day': [kwargs['ds']] * 3})
        """},
        {"uuid": "label", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return kw['color']\n"},
        {"uuid": "report", "upstream": ["label", "trips"], "code": """
            from proj.utils.fmt import shout
            @transformer
            def f(label, df, **kwargs):
                return {'label': shout(label), 'total': int(df['n'].sum()), 'nulls': int(df['n'].isna().sum()),
                        'day': df['day'][0], 'year': kwargs['year']}
        """},
    ], extra={"variables": {"year": 2021, "color": "green"}}, files={"utils/fmt.py": "def shout(s):\n    return s.upper()\n"})
    result = run(root, "p", executor, execution_date="2021-03-04T05:00:00Z")
    assert result.ok, {u: b.error for u, b in result.blocks.items()}
    assert stored(root, result, "report") == {"label": "GREEN", "total": 4, "nulls": 1, "day": "2021-03-04", "year": 2021}
    frame = stored(root, result, "trips")
    assert str(frame["n"].dtype) == "Int64" and frame["n"].isna().sum() == 1
    assert result.blocks["trips"].rows == 3


def test_dynamic_fan_out_with_metadata_and_reduce(root, executor):
    add_pipeline(root, "p", [
        {"uuid": "months", "type": "data_loader", "configuration": {"dynamic": True}, "code": """
            @data_loader
            def f(**kw):
                return [[1, 2, 3], [{'block_uuid': 'jan'}, {'block_uuid': 'feb'}, {'block_uuid': 'mar'}]]
        """},
        {"uuid": "rows", "upstream": ["months"], "configuration": {"reduce_output": True}, "code": """
            @transformer
            def f(month, **kw):
                return {'month': month, 'index': kw['dynamic_block_index'], 'rows': month * 100}
        """},
        {"uuid": "total", "upstream": ["rows"], "code": "@transformer\ndef f(parts, **kw):\n    return sorted(p['rows'] for p in parts)\n"},
    ])
    result = run(root, "p", executor)
    assert result.ok, {u: b.error for u, b in result.blocks.items()}
    assert [u for u in result.blocks if u.startswith("rows:")] == ["rows:jan", "rows:feb", "rows:mar"]
    assert stored(root, result, "rows:feb") == {"month": 2, "index": 1, "rows": 200}
    assert stored(root, result, "total") == [100, 200, 300]
    assert result.blocks["rows"].rows == 3


def test_a_false_condition_skips_the_block_and_its_descendants(root, executor):
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return [1, 2, 3]\n"},
        {"uuid": "export", "type": "data_exporter", "upstream": ["load"], "code": "@data_exporter\ndef f(d, **kw):\n    print('exported', sum(d))\n"},
        {"uuid": "after", "upstream": ["export"], "code": "@transformer\ndef f(*a, **kw):\n    return 1\n"},
    ])
    attach(root, "p", conditionals=[("weekdays", ["export"], """
        @condition
        def weekday_only(data, *args, **kwargs) -> bool:
            assert data == [1, 2, 3]
            return kwargs['execution_date'].weekday() < 5
    """)])
    saturday = run(root, "p", executor, execution_date="2024-01-06T05:00:00Z")
    assert saturday.status == "completed"
    assert [saturday.blocks[u].status for u in ("load", "export", "after")] == ["completed", "condition_failed", "condition_failed"]
    assert "weekdays.weekday_only" in saturday.blocks["export"].skip_reason
    monday = run(root, "p", executor, execution_date="2024-01-08T05:00:00Z")
    assert monday.ok and monday.blocks["export"].stdout.strip() == "exported 6"


def test_callbacks_get_inputs_and_the_error(root, executor, tmp_path):
    out = tmp_path / "cb"
    out.mkdir()
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return [1, 2]\n"},
        {"uuid": "export", "type": "data_exporter", "upstream": ["load"],
         "code": "@data_exporter\ndef f(data, **kw):\n    raise ValueError('warehouse unreachable')\n"},
    ])
    attach(root, "p", callbacks=[("notify", ["export"], f"""
        import json
        @callback('failure')
        def on_fail(data, *args, **kwargs):
            with open({str(out / 'failure.json')!r}, 'w') as fh:
                json.dump({{'data': data, 'parent': kwargs['parent_block_uuid'], 'error': repr(kwargs['__error'])}}, fh)
        @callback('success')
        def on_ok(data, *args, **kwargs):
            open({str(out / 'success.json')!r}, 'w').write('1')
        @callback('failure')
        def broken(*args, **kwargs):
            raise RuntimeError('slack is down')
    """)])
    obs = RecordingObserver()
    result = run(root, "p", executor, observer=obs)
    assert result.blocks["export"].status == "failed"
    failure = json.loads((out / "failure.json").read_text())
    assert failure["data"] == [1, 2] and failure["parent"] == "export" and "warehouse unreachable" in failure["error"]
    assert not (out / "success.json").exists()
    records = {r["function"]: r["status"] for r in result.blocks["export"].callbacks}
    assert records == {"on_fail": "completed", "broken": "failed"}
    end = [e[1] for e in obs.events if e[0] == "block_end" and e[1]["block_uuid"] == "export"][0]
    assert len(end["callbacks"]) == 2


def test_a_sensor_pokes_until_true(root, executor, tmp_path):
    counter = tmp_path / "pokes"
    add_pipeline(root, "p", [
        {"uuid": "wait", "type": "sensor", "configuration": {"poke_interval": 0.05}, "code": f"""
            from pathlib import Path
            @sensor
            def ready(*args, **kwargs) -> bool:
                p = Path({str(counter)!r})
                n = int(p.read_text()) + 1 if p.exists() else 1
                p.write_text(str(n))
                return n >= 3
        """},
        {"uuid": "after", "upstream": ["wait"], "code": "@transformer\ndef f(*a, **kw):\n    return 'went on'\n"},
    ])
    result = run(root, "p", executor)
    assert result.ok, {u: b.error for u, b in result.blocks.items()}
    assert counter.read_text() == "3" and stored(root, result, "after") == "went on"


def test_failed_tests_fail_the_block_and_are_not_retried(root, executor, tmp_path):
    runs = tmp_path / "runs"
    add_pipeline(root, "p", [{
        "uuid": "load", "type": "data_loader", "retry_config": {"retries": 2, "delay": 0.01},
        "code": f"""
            @data_loader
            def f(**kw):
                open({str(runs)!r}, 'a').write('x')
                return {{'rows': [1, 2]}}
            @test
            def has_three(out, *args):
                assert len(out['rows']) == 3, 'expected three rows'
            @test
            def positive(out, *args):
                assert all(v > 0 for v in out['rows'])
        """,
    }])
    result = run(root, "p", executor)
    block = result.blocks["load"]
    assert block.status == "failed" and "expected three rows" in block.error
    assert (block.tests_passed, block.tests_total) == (1, 2)
    assert runs.read_text() == "x" and block.attempts == 1


def test_transient_failures_are_retried_and_terminal_errors_are_not(root, executor, tmp_path):
    counter = tmp_path / "count"
    terminal = tmp_path / "terminal"
    add_pipeline(root, "p", [
        {"uuid": "flaky", "type": "data_loader", "retry_config": {"retries": 3, "delay": 0.01, "max_delay": 0.02},
         "code": f"""
            from pathlib import Path
            @data_loader
            def f(**kw):
                p = Path({str(counter)!r})
                n = int(p.read_text()) + 1 if p.exists() else 1
                p.write_text(str(n))
                if n < 3:
                    raise ConnectionError(f'attempt {{n}} failed')
                return n
         """},
        {"uuid": "misconfigured", "type": "data_loader", "retry_config": {"retries": 3, "delay": 0.01},
         "code": f"""
            from dagsmith.errors import ConfigError
            @data_loader
            def f(**kw):
                open({str(terminal)!r}, 'a').write('x')
                raise ConfigError("profile 'dev' has no POSTGRES_HOST")
         """},
    ])
    result = run(root, "p", executor)
    assert result.blocks["flaky"].status == "completed" and result.blocks["flaky"].attempts == 3
    assert stored(root, result, "flaky") == 3
    assert "attempt 1 failed: " in result.blocks["flaky"].stdout
    bad = result.blocks["misconfigured"]
    assert bad.status == "failed" and "POSTGRES_HOST" in bad.error
    assert terminal.read_text() == "x" and bad.attempts == 1


def test_a_block_past_its_timeout_fails_and_its_downstream_does_not_run(root, executor, tmp_path):
    ticks = tmp_path / "ticks"
    add_pipeline(root, "p", [
        {"uuid": "slow", "type": "data_loader", "timeout": 0.5, "code": f"""
            import time
            @data_loader
            def f(**kw):
                for _ in range(3000):
                    with open({str(ticks)!r}, 'a') as fh:
                        fh.write('x')
                    time.sleep(0.01)
                return 1
        """},
        {"uuid": "after", "upstream": ["slow"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
        {"uuid": "other", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 2\n"},
    ])
    result = run(root, "p", executor)
    assert result.blocks["slow"].status == "failed" and "timed out after 0.5 s" in result.blocks["slow"].error
    assert result.blocks["after"].status == "upstream_failed" and result.blocks["other"].status == "completed"
    time.sleep(0.3)
    seen = ticks.stat().st_size
    time.sleep(0.5)
    assert ticks.stat().st_size == seen  # the timeout reached the block: it no longer runs


def test_cancel_stops_the_running_block_and_what_follows(root, executor):
    add_pipeline(root, "p", [
        {"uuid": "slow", "type": "data_loader",
         "code": "import time\n@data_loader\ndef f(**kw):\n    print('working')\n    for _ in range(3000):\n        time.sleep(0.01)\n"},
        {"uuid": "after", "upstream": ["slow"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
    ])
    holder = {}

    class CancelWhenWorking(RecordingObserver):
        def on_block_log(self, **kw):
            super().on_block_log(**kw)
            if kw["record"]["message"] == "working":
                holder["run"].cancel()

    run_ = Run(RunConfig(project_root=root, pipeline_uuid="p"), observer=CancelWhenWorking(), executor=executor())
    holder["run"] = run_
    result = run_.execute()
    assert result.status == "cancelled"
    assert result.blocks["slow"].status == "cancelled" and result.blocks["after"].status == "cancelled"


def test_log_lines_reach_observers_while_the_block_runs(root, executor, tmp_path):
    go = tmp_path / "go"
    add_pipeline(root, "p", [{"uuid": "talk", "type": "data_loader", "code": f"""
        import time
        from pathlib import Path
        @data_loader
        def f(**kwargs):
            kwargs['logger'].info('waiting for the go file')
            for _ in range(1000):  # only an observer that saw the line above creates it
                if Path({str(go)!r}).exists():
                    return 'went'
                time.sleep(0.01)
            raise TimeoutError('nobody saw the log line while the block ran')
    """}])

    class Release(RecordingObserver):
        def on_block_log(self, **kw):
            super().on_block_log(**kw)
            if "waiting for the go file" in kw["record"]["message"]:
                go.write_text("1")

    obs = Release()
    result = run(root, "p", executor, observer=obs)
    assert result.ok, result.blocks["talk"].error
    messages = [e[1]["record"]["message"] for e in obs.events if e[0] == "block_log"]
    assert messages.count("waiting for the go file") == 1  # streamed once, not again with the outcome


def test_resume_runs_only_what_did_not_complete(root, executor, tmp_path):
    loads = tmp_path / "loads"
    switch = tmp_path / "fixed"
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": f"""
            import pandas as pd
            @data_loader
            def f(**kw):
                open({str(loads)!r}, 'a').write('x')
                return pd.DataFrame({{'v': [1, 2, 3]}})
        """},
        {"uuid": "check", "upstream": ["load"], "code": f"""
            import os
            @transformer
            def f(df, **kw):
                if not os.path.exists({str(switch)!r}):
                    raise RuntimeError('not fixed yet')
                return int(df['v'].sum())
        """},
    ])
    first = run(root, "p", executor)
    assert first.status == "failed" and first.blocks["load"].status == "completed"
    switch.write_text("1")
    manifest = VariableStore(data_dir(root)).read_manifest("p", first.partition)
    completed = {u: b["partition"] for u, b in manifest["blocks"].items() if b["status"] == "completed"}
    second = run(root, "p", executor, completed=completed)
    assert second.ok and loads.read_text() == "x" and stored(root, second, "check") == 6


def test_parallel_branches_run_at_the_same_time(root, executor, tmp_path):
    # each block waits until the other has started: they pass only when both run at once
    code = """
        import time
        from pathlib import Path
        @data_loader
        def f(**kw):
            Path({me!r}).write_text('1')
            for _ in range(1000):
                if Path({other!r}).exists():
                    return 1
                time.sleep(0.01)
            raise TimeoutError('the other branch never started')
    """
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    add_pipeline(root, "p", [
        {"uuid": "x", "type": "data_loader", "code": code.format(me=a, other=b)},
        {"uuid": "y", "type": "data_loader", "code": code.format(me=b, other=a)},
    ])
    result = run(root, "p", executor)
    assert result.ok, {u: bl.error for u, bl in result.blocks.items()}


def test_run_cancel_is_safe_from_another_thread(root, executor):
    add_pipeline(root, "p", [{"uuid": "slow", "type": "data_loader",
                              "code": "import time\n@data_loader\ndef f(**kw):\n    time.sleep(0.01)\n    for _ in range(3000):\n        time.sleep(0.01)\n"}])
    run_ = Run(RunConfig(project_root=root, pipeline_uuid="p"), executor=executor())
    threading.Timer(1.0, run_.cancel).start()
    assert run_.execute().status == "cancelled"
