"""Dynamic blocks: fan-out, metadata, reduce, nesting, failure isolation, retry of failed children."""

from __future__ import annotations

import pytest

from dagsmith.engine.dynamic import split_dynamic_output
from dagsmith.engine.observer import RecordingObserver
from dagsmith.engine.runner import run_pipeline
from dagsmith.errors import ProjectError
from tests.projects import add_pipeline, make_project


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path)


def _fan_pipeline(root, *, items="[[1, 2, 3], [{'block_uuid': 'jan', 'month': 1}, {'block_uuid': 'feb', 'month': 2}, {'block_uuid': 'mar', 'month': 3}]]"):
    add_pipeline(root, "fan", [
        {"uuid": "months", "type": "data_loader", "configuration": {"dynamic": True}, "code": f"""
            @data_loader
            def load(*args, **kwargs):
                return {items}
        """},
        {"uuid": "double", "upstream": ["months"], "code": """
            @transformer
            def t(x, **kwargs):
                return {'v': x * 2, 'month': kwargs.get('month'), 'index': kwargs['dynamic_block_index']}
        """},
        {"uuid": "plus", "upstream": ["double"], "configuration": {"reduce_output": True}, "code": """
            @transformer
            def t(x, **kwargs):
                return x['v'] + 1
        """},
        {"uuid": "total", "upstream": ["plus"], "type": "data_exporter", "code": """
            @data_exporter
            def e(xs, **kwargs):
                print('got', xs)
        """},
    ])


def test_fan_out_names_children_merges_metadata_and_reduces_in_item_order(root):
    _fan_pipeline(root)
    obs = RecordingObserver()
    result = run_pipeline(root, "fan", observer=obs)
    assert result.status == "completed"
    children = [u for u, b in result.blocks.items() if b.parent == "double"]
    assert children == ["double:jan", "double:feb", "double:mar"]
    assert [result.blocks[c].dynamic_index for c in children] == [0, 1, 2]
    assert [u for u, b in result.blocks.items() if b.parent == "plus"] == ["plus:jan", "plus:feb", "plus:mar"]
    assert result.blocks["total"].stdout.strip() == "got [3, 5, 7]"
    # each child's output is stored under its own uuid; metadata reached its kwargs
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    store = VariableStore(data_dir(root))
    assert store.read_block_value("fan", result.partition, "double:feb") == {"v": 4, "month": 2, "index": 1}
    # observers see each child with its parent and index
    ends = {e[1]["block_uuid"]: e[1] for e in obs.events if e[0] == "block_end"}
    assert ends["double:mar"]["parent"] == "double" and ends["double:mar"]["dynamic_index"] == 2
    assert ends["double"]["is_dynamic_group"] and ends["double"]["children"] == children
    added = [e[1] for e in obs.events if e[0] == "blocks_added"]
    assert {"parent": "double", "blocks": children} in [{"parent": a["parent"], "blocks": a["blocks"]} for a in added]


def test_plain_list_uses_indexes_and_empty_list_reduces_to_empty(root):
    _fan_pipeline(root, items="['a', 'b']")
    result = run_pipeline(root, "fan", persist=False)
    assert [u for u, b in result.blocks.items() if b.parent == "double"] == ["double:0", "double:1"]
    _fan_pipeline(root, items="[]")
    result = run_pipeline(root, "fan", persist=False)
    assert result.status == "completed"
    assert result.blocks["total"].stdout.strip() == "got []"


def test_a_dynamic_block_must_return_a_list(root):
    _fan_pipeline(root, items="{'a': 1}")
    result = run_pipeline(root, "fan", persist=False)
    assert result.blocks["months"].status == "failed"
    assert "must return a list" in result.blocks["months"].error
    assert result.blocks["total"].status == "upstream_failed"


def _nested(root):
    add_pipeline(root, "nested", [
        {"uuid": "outer", "type": "data_loader", "configuration": {"dynamic": True}, "code": """
            @data_loader
            def load(*args, **kwargs):
                return [1, 2]
        """},
        {"uuid": "inner", "upstream": ["outer"], "configuration": {"dynamic": True}, "code": """
            @transformer
            def t(x, **kwargs):
                return [[x * 10 + j for j in range(3)], [{'block_uuid': f'j{j}', 'j': j} for j in range(3)]]
        """},
        {"uuid": "leaf", "upstream": ["inner"], "configuration": {"reduce_output": True}, "code": """
            import os

            @transformer
            def t(x, **kwargs):
                if x == 21 and not os.path.exists(os.environ['DS_FLAG']):
                    raise ValueError('boom')
                return x * 100 + kwargs['j']
        """},
        {"uuid": "per_outer", "upstream": ["leaf"], "configuration": {"reduce_output": True}, "code": """
            @transformer
            def t(xs, **kwargs):
                return sum(xs)
        """},
        {"uuid": "grand", "upstream": ["per_outer"], "type": "data_exporter", "code": """
            @data_exporter
            def e(xs, **kwargs):
                print('grand', xs)
        """},
    ])


def test_nested_fan_out_failure_isolation_and_retry_of_failed_children(root, tmp_path, monkeypatch):
    _nested(root)
    flag = tmp_path / "flag"
    monkeypatch.setenv("DS_FLAG", str(flag))
    first = run_pipeline(root, "nested")
    assert first.status == "failed"
    leafs = [u for u in first.blocks if u.startswith("leaf:") and u.count(":") == 2]
    assert leafs == ["leaf:0:j0", "leaf:0:j1", "leaf:0:j2", "leaf:1:j0", "leaf:1:j1", "leaf:1:j2"]
    assert first.blocks["leaf:1:j1"].status == "failed" and "boom" in first.blocks["leaf:1:j1"].error
    # siblings and the other branch finished; only the failed branch and the reduce steps after it did not
    assert all(first.blocks[u].status == "completed" for u in leafs if u != "leaf:1:j1")
    assert first.blocks["per_outer:0"].status == "completed"
    assert first.blocks["per_outer:1"].status == "upstream_failed"
    assert first.blocks["grand"].status == "upstream_failed"
    assert "leaf:1" in first.blocks["leaf"].error and "leaf:1:j1" in first.blocks["leaf:1"].error

    flag.write_text("fixed")
    done = {u: first.partition for u, b in first.blocks.items() if b.status == "completed"}
    obs = RecordingObserver()
    second = run_pipeline(root, "nested", completed=done, observer=obs)
    assert second.status == "completed"
    ran = [e[1]["block_uuid"] for e in obs.events if e[0] == "block_start" and not e[1].get("is_dynamic_group")]
    assert ran == ["leaf:1:j1", "per_outer:1", "grand"]
    # outer 1 → 10,11,12 → 1000+1101+1202; outer 2 → 2000+2101+2202
    assert second.blocks["grand"].stdout.strip() == "grand [3303, 6303]"


def test_resume_from_the_cli_manifest_reruns_only_failed_children(root, tmp_path, monkeypatch):
    from dagsmith.cli.running import _resume_state

    _nested(root)
    monkeypatch.setenv("DS_FLAG", str(tmp_path / "flag"))
    first = run_pipeline(root, "nested")
    (tmp_path / "flag").write_text("ok")
    completed = _resume_state(str(root), "nested", first.run_id)
    assert "leaf:0:j1" in completed and "leaf:1:j1" not in completed
    obs = RecordingObserver()
    second = run_pipeline(root, "nested", completed=completed, observer=obs)
    assert second.ok
    assert "leaf:0:j1" not in [e[1]["block_uuid"] for e in obs.events if e[0] == "block_start"]


def test_children_run_in_parallel_up_to_the_limit(root):
    add_pipeline(root, "par", [
        {"uuid": "src", "type": "data_loader", "configuration": {"dynamic": True}, "code": """
            @data_loader
            def load(*args, **kwargs):
                return list(range(8))
        """},
        {"uuid": "sleepy", "upstream": ["src"], "code": """
            import threading, time
            ACTIVE = []
            STARTED = [0]
            PEAK = [0]
            COND = threading.Condition()

            @transformer
            def t(x, **kwargs):
                with COND:
                    ACTIVE.append(1)
                    STARTED[0] += 1
                    PEAK[0] = max(PEAK[0], len(ACTIVE))
                    COND.notify_all()
                    # hold the slot until four children run together (a limit of 4 must let them), or
                    # until all 8 have started: the last ones of the second wave have no one left to wait for
                    COND.wait_for(lambda: len(ACTIVE) >= 4 or STARTED[0] == 8, timeout=20)
                time.sleep(0.2)  # and linger, so a fifth one let in by a broken limit would be seen
                with COND:
                    ACTIVE.pop()
                    print('peak', PEAK[0])
        """},
    ], extra={"concurrency_config": {"block_run_limit": 4}})
    result = run_pipeline(root, "par", persist=False)
    assert result.ok
    children = [b for uuid, b in result.blocks.items() if uuid.startswith("sleepy") and b.dynamic_index is not None]
    assert len(children) == 8
    # 8 children in waves of 4: four ran at once (in parallel), never five (the limit); every child saw
    # that peak, so all shared one load of the block file (siblings starting together must not load it twice)
    assert [int(b.stdout.split()[-1]) for b in children] == [4] * 8


def test_cancel_while_children_run_cancels_the_rest_and_runs_cancelled_callbacks(root, tmp_path, monkeypatch):
    import textwrap
    import threading

    import yaml

    add_pipeline(root, "slow", [
        {"uuid": "src", "type": "data_loader", "configuration": {"dynamic": True},
         "code": "@data_loader\ndef l(*a, **k):\n    return list(range(6))\n"},
        {"uuid": "nap", "upstream": ["src"], "code": """
            import time

            @transformer
            def t(x, **kwargs):
                time.sleep(0.4)
                return x
        """},
        {"uuid": "after", "upstream": ["nap"], "configuration": {"reduce_output": True},
         "code": "@transformer\ndef t(xs, **k):\n    return xs\n"},
    ], extra={"concurrency_config": {"block_run_limit": 2}})
    meta = root / "pipelines" / "slow" / "metadata.yaml"
    data = yaml.safe_load(meta.read_text())
    (root / "callbacks").mkdir(exist_ok=True)
    (root / "callbacks" / "on_cancel.py").write_text(textwrap.dedent("""
        import os
        @callback('cancelled')
        def note(*args, **kwargs):
            open(os.path.join(os.environ['CB_DIR'], kwargs['parent_block_uuid']), 'w').write('cancelled')
    """))
    data["callbacks"] = [{"uuid": "on_cancel", "type": "callback", "language": "python",
                          "upstream_blocks": ["nap"], "downstream_blocks": []}]
    meta.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("CB_DIR", str(tmp_path))
    cancel = threading.Event()
    threading.Timer(0.6, cancel.set).start()
    result = run_pipeline(root, "slow", cancel_event=cancel, persist=False)
    assert result.status == "cancelled"
    statuses = {u: b.status for u, b in result.blocks.items()}
    assert statuses["nap"] == "cancelled" and statuses["after"] == "cancelled"
    assert all(s in ("completed", "cancelled") for u, s in statuses.items() if u.startswith("nap:"))
    assert "initial" not in statuses.values() and "running" not in statuses.values()
    cancelled_running = [u for u, b in result.blocks.items() if u.startswith("nap:") and b.callbacks]
    assert cancelled_running and all((tmp_path / u).read_text() == "cancelled" for u in cancelled_running)


def test_joining_children_of_two_different_fan_outs_is_reported_before_anything_runs(root):
    from dagsmith.errors import ValidationError

    add_pipeline(root, "bad", [
        {"uuid": "a", "type": "data_loader", "configuration": {"dynamic": True}, "code": "@data_loader\ndef l(*a, **k):\n    return [1]\n"},
        {"uuid": "b", "type": "data_loader", "configuration": {"dynamic": True}, "code": "@data_loader\ndef l(*a, **k):\n    return [2]\n"},
        {"uuid": "join", "upstream": ["a", "b"], "code": "@transformer\ndef t(x, y, **k):\n    return x + y\n"},
    ])
    with pytest.raises(ValidationError, match="different dynamic fan-outs"):
        run_pipeline(root, "bad", persist=False)
