"""The run engine: hand-off, kwargs, outputs, tests, parallelism, retries, timeouts, resume."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from dagsmith.engine import RecordingObserver, run_pipeline
from dagsmith.errors import ValidationError
from tests.projects import add_pipeline, make_project


@pytest.fixture()
def root(tmp_path):
    return make_project(tmp_path)


def test_upstream_outputs_arrive_positionally_in_declared_order(root):
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 'A'\n"},
            {"uuid": "b", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 'B'\n"},
            {
                "uuid": "c",
                "upstream": ["b", "a"],
                "code": "@transformer\ndef f(first, second, **kw):\n    return first + second\n",
            },
        ],
    )
    result = run_pipeline(root, "p")
    assert result.status == "completed"
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    stored = VariableStore(data_dir(root)).read_block_value("p", result.partition, "c")
    assert stored == "BA"


def test_kwargs_carry_runtime_and_pipeline_variables(root):
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "a",
                "type": "data_loader",
                "configuration": {"color": "blue"},
                "code": """
                    @data_loader
                    def f(**kwargs):
                        ed = kwargs['execution_date']
                        kwargs['logger'].info('hello from logger')
                        return {
                            'tz': str(ed.tzinfo), 'date': ed.strftime('%Y/%m/%d'), 'ds': kwargs['ds'],
                            'hr': kwargs['hr'], 'env': kwargs['env'], 'pipeline': kwargs['pipeline_uuid'],
                            'block': kwargs['block_uuid'], 'color': kwargs['configuration']['color'],
                            'year': kwargs['year'], 'month': kwargs['month'],
                            'start': kwargs['interval_start_datetime'].isoformat(),
                            'event': kwargs['event'],
                        }
                """,
            }
        ],
        extra={"variables": {"year": 2020, "month": 1}},
    )
    obs = RecordingObserver()
    result = run_pipeline(
        root,
        "p",
        variables={"month": 3},
        execution_date=datetime(2021, 1, 5, 7, tzinfo=timezone.utc),
        observer=obs,
    )
    assert result.ok
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    out = VariableStore(data_dir(root)).read_block_value("p", result.partition, "a")
    assert out == {
        "tz": "UTC",
        "date": "2021/01/05",
        "ds": "2021-01-05",
        "hr": "07",
        "env": "dev",
        "pipeline": "p",
        "block": "a",
        "color": "blue",
        "year": 2020,
        "month": 3,
        "start": "2021-01-05T07:00:00+00:00",
        "event": {},
    }
    logs = [e[1]["record"]["message"] for e in obs.events if e[0] == "block_log"]
    assert "hello from logger" in logs


def test_ad_hoc_runs_get_a_tz_aware_execution_date(root):
    add_pipeline(
        root,
        "p",
        [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return kw['execution_date'].strftime('%Y/%m/%d')\n"}],
    )
    result = run_pipeline(root, "p")
    assert result.ok
    assert result.execution_date.tzinfo is not None


def test_tuple_return_gives_multiple_outputs_and_tests_see_each(root):
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "a",
                "type": "data_loader",
                "code": """
                    @data_loader
                    def f(**kw):
                        return 1, 2
                    @test
                    def t(first, second, *args):
                        assert (first, second) == (1, 2)
                """,
            },
            {"uuid": "b", "upstream": ["a"], "code": "@transformer\ndef f(pair, **kw):\n    assert pair == [1, 2]\n    return sum(pair)\n"},
        ],
    )
    result = run_pipeline(root, "p")
    assert result.ok, result.blocks["b"].error
    assert result.blocks["a"].tests_passed == 1


def test_failing_test_fails_block_with_message_and_count(root):
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "a",
                "type": "data_loader",
                "code": """
                    @data_loader
                    def f(**kw):
                        return {'items': [1, 2, 3]}
                    @test
                    def good(output, *args):
                        assert output['items']
                    @test
                    def bad(output, *args):
                        assert len(output['items']) == 5, 'expected five items'
                """,
            },
            {"uuid": "b", "upstream": ["a"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
        ],
    )
    result = run_pipeline(root, "p")
    a = result.blocks["a"]
    assert result.status == "failed"
    assert a.status == "failed"
    assert (a.tests_passed, a.tests_total) == (1, 2)
    assert "expected five items" in a.error
    assert "1/2 tests passed." in a.stdout
    assert result.blocks["b"].status == "upstream_failed"


def test_failure_stops_downstream_while_other_branch_finishes(root):
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "bad", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    raise ValueError('boom')\n"},
            {"uuid": "after_bad", "upstream": ["bad"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
            {"uuid": "good", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 1\n"},
            {"uuid": "after_good", "upstream": ["good"], "code": "@transformer\ndef f(x, **kw):\n    return x + 1\n"},
        ],
    )
    result = run_pipeline(root, "p")
    status = {u: b.status for u, b in result.blocks.items()}
    assert status == {"bad": "failed", "after_bad": "upstream_failed", "good": "completed", "after_good": "completed"}
    err = result.blocks["bad"].error
    assert "ValueError: boom" in err and "data_loaders/bad.py:3" in err


def test_independent_branches_run_in_parallel(root):
    # Both blocks wait at one barrier: they only pass if they run at the same time.
    barrier = "import threading\nBARRIER = threading.Barrier(2, timeout=10)\n"
    code = "from proj.utils.sync import BARRIER\n@data_loader\ndef f(**kw):\n    BARRIER.wait()\n    return 1\n"
    add_pipeline(
        root,
        "p",
        [{"uuid": "x", "type": "data_loader", "code": code}, {"uuid": "y", "type": "data_loader", "code": code}],
        files={"utils/sync.py": barrier},
    )
    result = run_pipeline(root, "p")
    assert result.ok, {u: b.error for u, b in result.blocks.items()}


def test_retries_until_success(root, tmp_path):
    counter = tmp_path / "count.txt"
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "flaky",
                "type": "data_loader",
                "retry_config": {"retries": 2, "delay": 0.01, "exponential_backoff": True, "max_delay": 0.05},
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
                """,
            }
        ],
    )
    result = run_pipeline(root, "p")
    assert result.ok
    assert result.blocks["flaky"].attempts == 3
    assert counter.read_text() == "3"


def test_block_timeout_fails_the_block(root):
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "slow",
                "type": "data_loader",
                "timeout": 0.3,
                "code": "import time\n@data_loader\ndef f(**kw):\n    for _ in range(400):\n        time.sleep(0.01)\n    return 1\n",
            },
            {"uuid": "after", "upstream": ["slow"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
        ],
    )
    result = run_pipeline(root, "p")
    assert result.blocks["slow"].status == "failed"
    assert "timed out after 0.3 s" in result.blocks["slow"].error
    assert result.blocks["after"].status == "upstream_failed"


def test_resume_reruns_only_failed_blocks_and_reuses_stored_outputs(root, tmp_path):
    marker = tmp_path / "loads.txt"
    switch = tmp_path / "fixed"
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "load",
                "type": "data_loader",
                "code": f"""
                    import pandas as pd
                    @data_loader
                    def f(**kw):
                        with open({str(marker)!r}, 'a') as fh:
                            fh.write('x')
                        return pd.DataFrame({{'n': pd.array([1, None, 3], dtype='Int64')}})
                """,
            },
            {
                "uuid": "check",
                "upstream": ["load"],
                "code": f"""
                    import os
                    @transformer
                    def f(df, **kw):
                        if not os.path.exists({str(switch)!r}):
                            raise RuntimeError('not fixed yet')
                        return int(df['n'].sum())
                """,
            },
        ],
    )
    first = run_pipeline(root, "p")
    assert first.status == "failed" and first.blocks["load"].status == "completed"
    switch.write_text("1")
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    store = VariableStore(data_dir(root))
    manifest = store.read_manifest("p", first.partition)
    completed = {u: b["partition"] for u, b in manifest["blocks"].items() if b["status"] == "completed"}
    assert completed == {"load": first.partition}
    second = run_pipeline(root, "p", completed=completed)
    assert second.ok
    assert marker.read_text() == "x"  # the loader ran once, in the first run
    assert store.read_block_value("p", second.partition, "check") == 4


def test_single_block_run_reads_stored_upstream_outputs(root):
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return {'v': 20}\n"},
            {"uuid": "b", "upstream": ["a"], "code": "@transformer\ndef f(d, **kw):\n    return d['v'] + 1\n"},
        ],
    )
    lone = run_pipeline(root, "p", block_uuids=["b"])
    assert lone.blocks["b"].status == "failed"
    assert "has not been stored yet" in lone.blocks["b"].error
    assert run_pipeline(root, "p").ok
    again = run_pipeline(root, "p", block_uuids=["b"])
    assert list(again.blocks) == ["b"] and again.ok


def test_validation_reports_every_problem_and_runs_nothing(root, tmp_path):
    side_effect = tmp_path / "ran.txt"
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "ok", "type": "data_loader", "code": f"@data_loader\ndef f(**kw):\n    open({str(side_effect)!r}, 'w').write('ran')\n"},
            {"uuid": "syntax", "upstream": ["ok"], "code": "@transformer\ndef f(x, **kw)\n    return x\n"},
            {"uuid": "nodeco", "upstream": ["ok"], "code": "def f(x, **kw):\n    return x\n"},
            {"uuid": "params", "upstream": ["ok"], "code": "@transformer\ndef f(x, y, **kw):\n    return x\n"},
            {"uuid": "ghost", "upstream": ["ok"]},
            {"uuid": "orphan", "upstream": ["nope"], "code": "@transformer\ndef f(*args, **kw):\n    return 1\n"},
            {"uuid": "c1", "upstream": ["c2"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
            {"uuid": "c2", "upstream": ["c1"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
        ],
    )
    with pytest.raises(ValidationError) as info:
        run_pipeline(root, "p")
    text = "\n".join(info.value.problems)
    assert "syntax error at transformers/syntax.py:2" in text
    assert "transformers/nodeco.py has no function decorated with @transformer" in text
    assert "transformers/params.py:2: f() takes 2 positional parameter(s) but the block has 1 upstream" in text
    assert "block file transformers/ghost.py does not exist" in text
    assert "unknown upstream block 'nope'" in text
    assert "cycle: c1 -> c2 -> c1" in text or "cycle: c2 -> c1 -> c2" in text
    assert not side_effect.exists()


def test_mage_imports_work_in_blocks(root):
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "a",
                "type": "data_loader",
                "code": """
                    from mage_ai.settings.repo import get_repo_path
                    if 'data_loader' not in globals():
                        from mage_ai.data_preparation.decorators import data_loader
                    @data_loader
                    def f(*args, **kwargs):
                        return get_repo_path()
                """,
            }
        ],
    )
    result = run_pipeline(root, "p")
    assert result.ok
    import importlib.machinery

    # no real mage-ai package was put anywhere (tests/compat covers one installed beside us)
    assert importlib.machinery.PathFinder.find_spec("mage_ai") is None


def test_project_utils_import_and_working_directory(root):
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "a",
                "type": "data_loader",
                "code": "import os\nfrom proj.utils.helpers import double\n@data_loader\ndef f(**kw):\n    return [double(2), os.getcwd()]\n",
            }
        ],
        files={"utils/helpers.py": "def double(x):\n    return 2 * x\n"},
    )
    result = run_pipeline(root, "p")
    assert result.ok, result.blocks["a"].error
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    value = VariableStore(data_dir(root)).read_block_value("p", result.partition, "a")
    assert value == [4, str(root.parent)]


def test_dagsmith_decorator_imports(root):
    add_pipeline(
        root,
        "p",
        [{"uuid": "a", "type": "data_loader", "code": "from dagsmith import data_loader, test\n@data_loader\ndef load():\n    return 5\n@test\ndef t(o):\n    assert o == 5\n"}],
    )
    result = run_pipeline(root, "p")
    assert result.ok and result.blocks["a"].tests_passed == 1


def test_cancel_stops_running_block_and_downstream(root):
    import threading

    add_pipeline(
        root,
        "p",
        [
            {"uuid": "slow", "type": "data_loader", "code": "import time\n@data_loader\ndef f(**kw):\n    for _ in range(1000):\n        time.sleep(0.01)\n"},
            {"uuid": "after", "upstream": ["slow"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
        ],
    )
    cancel = threading.Event()

    class Cancel(RecordingObserver):
        def on_block_start(self, **kw):
            cancel.set()

    result = run_pipeline(root, "p", cancel_event=cancel, observer=Cancel())
    assert result.status == "cancelled"
    assert result.blocks["slow"].status == "cancelled"
    assert result.blocks["after"].status == "cancelled"


def test_run_manifest_is_json_with_block_statuses(root):
    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 1\n"}])
    result = run_pipeline(root, "p")
    from dagsmith.project.layout import data_dir

    manifest = json.loads((data_dir(root) / "pipelines" / "p" / ".variables" / result.partition / "_run.json").read_text())
    assert manifest["status"] == "completed" and manifest["blocks"]["a"]["status"] == "completed"


def test_sys_exit_in_a_block_fails_only_that_block(root):
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "quits", "type": "data_loader", "code": "import sys\n@data_loader\ndef f(**kw):\n    sys.exit(3)\n"},
            {"uuid": "other", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 1\n"},
        ],
    )
    result = run_pipeline(root, "p")
    assert result.blocks["quits"].status == "failed" and "sys.exit(3)" in result.blocks["quits"].error
    assert result.blocks["other"].status == "completed"


def test_dotenv_values_reach_blocks(root):
    (root / ".env").write_text("TAXI_COLOR=green\n")
    add_pipeline(
        root,
        "p",
        [{"uuid": "a", "type": "data_loader", "code": "import os\n@data_loader\ndef f(**kw):\n    return os.environ['TAXI_COLOR']\n"}],
    )
    result = run_pipeline(root, "p")
    assert result.ok, result.blocks["a"].error


def test_in_place_edits_downstream_do_not_reach_stored_output_or_siblings(root):
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "load", "type": "data_loader", "code": "import pandas as pd\n@data_loader\ndef f(**kw):\n    return pd.DataFrame({'v': [1, 2, 3]})\n"},
            {"uuid": "double", "upstream": ["load"], "code": "@transformer\ndef f(df, **kw):\n    df['v'] *= 2\n    df.loc[0, 'v'] = 100\n    return df\n"},
            {"uuid": "sum", "upstream": ["load"], "code": "@transformer\ndef f(df, **kw):\n    return int(df['v'].sum())\n"},
        ],
    )
    result = run_pipeline(root, "p", parallel=False)
    assert result.ok
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    store = VariableStore(data_dir(root))
    assert store.read_block_value("p", result.partition, "load")["v"].tolist() == [1, 2, 3]
    assert store.read_block_value("p", result.partition, "sum") == 6
    assert store.read_block_value("p", result.partition, "double")["v"].tolist() == [100, 4, 6]


def test_block_code_is_cached_and_edits_are_picked_up(root, monkeypatch):
    import sys

    from dagsmith.blocks import checks

    monkeypatch.setattr(sys, "dont_write_bytecode", False)

    add_pipeline(root, "p", [{"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 1\n"}])
    assert run_pipeline(root, "p").ok
    cached = list((root / "data_loaders" / "__pycache__").glob("a.py.dagsmith-*.bin"))
    assert len(cached) == 1
    checks._memo.clear()  # as a new process would: the __pycache__ file is used
    first = run_pipeline(root, "p")
    path = root / "data_loaders" / "a.py"
    path.write_text("@data_loader\ndef f(**kw):\n    return 'edited, longer'\n")
    second = run_pipeline(root, "p")
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    store = VariableStore(data_dir(root))
    assert store.read_block_value("p", first.partition, "a") == 1
    assert store.read_block_value("p", second.partition, "a") == "edited, longer"


def test_a_cancelled_block_stuck_in_c_code_does_not_hold_the_run(root):
    """A block alone in its run runs on the loop's own thread; one that ignores its cancel (here a
    long sleep in C) is abandoned like a stuck block thread: the run ends as cancelled at once."""
    import threading
    import time

    add_pipeline(
        root,
        "p",
        [
            {"uuid": "fast", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 1\n"},
            {"uuid": "stuck", "upstream": ["fast"], "code": "import time\n@transformer\ndef f(x, **kw):\n    time.sleep(30)\n"},
            {"uuid": "after", "upstream": ["stuck"], "code": "@transformer\ndef f(x, **kw):\n    return x\n"},
        ],
    )
    cancel = threading.Event()

    class Cancel(RecordingObserver):
        def on_block_start(self, *, block_uuid, **kw):
            if block_uuid == "stuck":
                threading.Timer(0.3, cancel.set).start()

    started = time.monotonic()
    result = run_pipeline(root, "p", cancel_event=cancel, observer=Cancel())
    assert time.monotonic() - started < 10
    assert result.status == "cancelled" and result.abandoned_threads
    assert [result.blocks[u].status for u in ("fast", "stuck", "after")] == ["completed", "cancelled", "cancelled"]


def test_blocks_of_a_chain_see_their_own_output_capture_and_thread_state(root):
    """Blocks that run one after another (on the loop's thread) keep their prints apart and their inputs whole."""
    add_pipeline(
        root,
        "p",
        [
            {"uuid": "a", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    print('from a')\n    return [1, 2]\n"},
            {"uuid": "b", "upstream": ["a"], "code": "@transformer\ndef f(x, **kw):\n    print('from b', x)\n    kw['logger'].info('logged by b')\n    return sum(x)\n"},
            {"uuid": "c", "upstream": ["b"], "code": "@transformer\ndef f(x, **kw):\n    print('from c', x)\n    return x * 10\n"},
        ],
    )
    result = run_pipeline(root, "p")
    assert result.status == "completed"
    assert result.blocks["a"].stdout == "from a"
    assert result.blocks["b"].stdout == "from b [1, 2]\nlogged by b"
    assert result.blocks["c"].stdout == "from c 3"
    from dagsmith.engine.storage import project_store

    assert project_store(root).read_block_value("p", result.partition, "c") == 30


def test_more_concurrent_runs_than_block_threads_all_finish(root, monkeypatch):
    """Run loops have threads of their own: with every block thread taken, runs still make progress."""
    import threading

    from dagsmith.engine.executors import local

    monkeypatch.setattr(local, "_shared", local.BlockThreads(limit=2))
    code = "import time\n@transformer\ndef f(x, **kw):\n    time.sleep(0.05)\n    return x + 1\n"
    add_pipeline(root, "p", [
        {"uuid": "src", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 1\n"},
        {"uuid": "left", "upstream": ["src"], "code": code},
        {"uuid": "right", "upstream": ["src"], "code": code},
        {"uuid": "join", "upstream": ["left", "right"], "code": "@transformer\ndef f(a, b, **kw):\n    return a + b\n"},
    ])
    results: list = []
    runs = [threading.Thread(target=lambda: results.append(run_pipeline(root, "p"))) for _ in range(6)]
    for t in runs:
        t.start()
    for t in runs:
        t.join(60)
    assert len(results) == 6 and all(r.status == "completed" for r in results)
