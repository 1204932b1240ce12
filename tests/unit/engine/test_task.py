"""One block attempt as a pure function: a pickled task in, a picklable outcome out, any process."""

from __future__ import annotations

import pickle

import pandas as pd

from dagsmith.engine.task import BlockTask, ExecContext, Input, Ref, execute_block
from dagsmith.errors import ConfigError
from dagsmith.project.pipelines import load_pipeline
from tests.projects import add_pipeline, make_project


class DictContext(ExecContext):
    """Inputs from a dict; records kept in a list (what another process would stream)."""

    def __init__(self, values):
        super().__init__()
        self.values = values
        self.seen = []

    def read(self, task, ref):
        return self.values[ref.node]

    def emit(self, task, record):
        self.seen.append(record["message"])


def _task(root, uuid, **kw):
    spec = load_pipeline(root, "p")
    defaults = dict(run_id="r1", node=uuid, attempt=1, block=spec.block(uuid), pipeline=spec, project_root=str(root),
                    partition="r1", variables={"ds": "2021-01-01"})
    defaults.update(kw)
    return pickle.loads(pickle.dumps(BlockTask(**defaults)))  # whatever runs it gets a copy, not our objects


def test_a_pickled_task_runs_and_its_outcome_pickles(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return 1\n"},
        {"uuid": "sum", "upstream": ["load"], "code": """
            @transformer
            def f(df, **kwargs):
                kwargs['logger'].info('rows: %d', len(df))
                df['v'] = df['v'] * 2
                return int(df['v'].sum()), kwargs['ds']
            @test
            def positive(total, ds, *args):
                assert total > 0
        """},
    ])
    frame = pd.DataFrame({"v": [1, 2, 3]})
    ctx = DictContext({"load": frame})
    outcome = execute_block(_task(root, "sum", inputs=(Input("value", (Ref("load", "r0"),)),)), ctx)
    back = pickle.loads(pickle.dumps(outcome))
    assert back.status == "completed" and back.outputs == [12, "2021-01-01"] and back.multi
    assert (back.tests_passed, back.tests_total) == (1, 1)
    assert "rows: 3" in ctx.seen and any(r["message"] == "rows: 3" for r in back.records)
    assert frame["v"].tolist() == [1, 2, 3]  # the block edited its own copy


def test_the_outcome_says_whether_a_failure_is_worth_retrying(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(root, "p", [
        {"uuid": "flaky", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    raise ConnectionError('reset by peer')\n"},
        {"uuid": "config", "type": "data_loader",
         "code": "from dagsmith.errors import ConfigError\n@data_loader\ndef f(**kw):\n    raise ConfigError('no profile dev')\n"},
    ])
    flaky = execute_block(_task(root, "flaky"), DictContext({}))
    assert flaky.status == "failed" and flaky.retryable and "ConnectionError: reset by peer" in flaky.error.message
    config = execute_block(_task(root, "config"), DictContext({}))
    assert config.status == "failed" and not config.retryable and isinstance(config.error, ConfigError)
    assert pickle.loads(pickle.dumps(config)).error.message == "no profile dev"
