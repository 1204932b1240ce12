"""Every dynamic-block output shape Mage 0.9.80 accepts, and the hand-off of plain outputs.

The expected children, uuids, arguments and kwargs are the measured facts of
MAGE_BEHAVIOUR.md §4 (Mage's scheduler path); where Mage fails, dagsmith's own rule is
checked (one child per element; no child for ``[]``).
"""

from __future__ import annotations

import pandas as pd
import pytest

from dagsmith.engine.dynamic import reduce_outputs, split_dynamic_output
from dagsmith.engine.runner import run_pipeline
from dagsmith.errors import ProjectError
from tests.projects import add_pipeline, make_project


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path)


def _fan(root, returns: str, *, setup: str = "") -> dict:
    """Run gen (dynamic, returns ``returns``) → child (records its arg and kwargs); the children."""
    add_pipeline(root, "fan", [
        {"uuid": "gen", "type": "data_loader", "configuration": {"dynamic": True}, "code": f"""
            import pandas as pd
            {setup}
            @data_loader
            def load(*args, **kwargs):
                return {returns}
        """},
        {"uuid": "child", "upstream": ["gen"], "code": """
            import pandas as pd

            @transformer
            def t(*args, **kwargs):
                arg = args[0] if args else None
                if isinstance(arg, pd.Series):
                    arg = {'series': arg.to_dict()}
                keep = {k: kwargs[k] for k in ('block_uuid', 'dynamic_block_index', 'x', 'foo') if k in kwargs}
                return {'nargs': len(args), 'arg': arg, 'kwargs': keep}
        """},
    ])
    result = run_pipeline(root, "fan", persist=False)
    assert result.status == "completed", {u: b.error for u, b in result.blocks.items()}
    return _outputs(root, result)


def _outputs(root, result) -> dict:
    """Child uuid → what the child function returned (read back from the run's values)."""
    return {uid: b.output for uid, b in result.blocks.items() if b.parent == "child"}


@pytest.fixture(autouse=True)
def _record_outputs(monkeypatch):
    """Give every BlockResult the value its block returned (children return what they saw)."""
    from dagsmith.engine import runner as runner_mod

    original = runner_mod._Runner._call_block

    def call_block(self, call, u=None):
        outputs, multi = original(self, call, u)
        self.result.blocks[u or call.block.uuid].output = outputs[0] if outputs else None
        return outputs, multi

    monkeypatch.setattr(runner_mod._Runner, "_call_block", call_block)


def test_items_in_a_one_element_list_make_one_child_per_item(root):
    kids = _fan(root, "[[10, 20, 30]]")
    assert list(kids) == ["child:0", "child:1", "child:2"]
    assert [k["arg"] for k in kids.values()] == [10, 20, 30]
    assert [k["kwargs"]["dynamic_block_index"] for k in kids.values()] == [0, 1, 2]
    assert all(k["kwargs"]["block_uuid"] == "child" for k in kids.values())


@pytest.mark.parametrize("outer", ["list", "tuple"])
def test_items_with_metadata_name_children_and_override_block_uuid(root, outer):
    pair = "[{'id': 1}, {'id': 2}], [{'block_uuid': 'u1'}, {'block_uuid': 'u2'}]"
    kids = _fan(root, f"[{pair}]" if outer == "list" else f"({pair})")
    assert list(kids) == ["child:u1", "child:u2"]
    assert kids["child:u1"]["arg"] == {"id": 1} and kids["child:u2"]["arg"] == {"id": 2}
    assert kids["child:u1"]["kwargs"]["block_uuid"] == "u1"  # Mage merges metadata last


def test_metadata_without_block_uuid_keeps_indexes_and_reaches_kwargs(root):
    kids = _fan(root, "[[1, 2], [{'x': 'u1'}, {'x': 'u2'}]]")
    assert list(kids) == ["child:0", "child:1"]
    assert kids["child:1"]["kwargs"]["x"] == "u2" and kids["child:1"]["arg"] == 2


def test_metadata_shorter_than_items_and_extra_keys(root):
    kids = _fan(root, "[[1, 2, 3], [{'block_uuid': 'only_first', 'foo': 'bar'}]]")
    assert list(kids) == ["child:only_first", "child:1", "child:2"]
    assert [k["arg"] for k in kids.values()] == [1, 2, 3]
    assert kids["child:only_first"]["kwargs"]["foo"] == "bar"
    assert "foo" not in kids["child:1"]["kwargs"]


def test_empty_metadata_list_is_metadata(root):
    kids = _fan(root, "[[7, 8], []]")
    assert list(kids) == ["child:0", "child:1"] and [k["arg"] for k in kids.values()] == [7, 8]


def test_a_dataframe_gives_one_child_per_row_as_a_series(root):
    kids = _fan(root, "pd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})")
    assert list(kids) == ["child:0", "child:1", "child:2"]
    assert kids["child:1"]["arg"] == {"series": {"a": 2, "b": "y"}}


def test_a_dataframe_with_metadata(root):
    kids = _fan(root, "[pd.DataFrame({'a': [1, 2]}), [{'block_uuid': 'first'}, {'block_uuid': 'second'}]]")
    assert list(kids) == ["child:first", "child:second"]
    assert kids["child:second"]["arg"] == {"series": {"a": 2}}


def test_where_mage_fails_every_element_is_an_item(root):
    # Mage 0.9.80: TypeError / KeyError / AttributeError in its controller, run failed
    assert [k["arg"] for k in _fan(root, "[10, 20, 30]").values()] == [10, 20, 30]
    assert [k["arg"] for k in _fan(root, "[{'id': 1}, {'id': 2}]").values()] == [{"id": 1}, {"id": 2}]
    assert [k["arg"] for k in _fan(root, "[[1, 2], [3, 4], [5, 6]]").values()] == [[1, 2], [3, 4], [5, 6]]


def test_an_empty_list_makes_no_child(root):
    assert _fan(root, "[]") == {}


def test_a_child_uuid_given_twice_makes_one_child_and_warns(root):
    add_pipeline(root, "dup", [
        {"uuid": "gen", "type": "data_loader", "configuration": {"dynamic": True}, "code": """
            @data_loader
            def load(*args, **kwargs):
                return [[1, 2, 3], [{'block_uuid': 'a'}, {'block_uuid': 'a'}, {'block_uuid': 'b'}]]
        """},
        {"uuid": "child", "upstream": ["gen"], "code": "@transformer\ndef t(x, **k):\n    return x\n"},
    ])
    result = run_pipeline(root, "dup", persist=False)
    assert [u for u, b in result.blocks.items() if b.parent == "child"] == ["child:a", "child:b"]
    assert [result.blocks[u].output for u in ("child:a", "child:b")] == [1, 3]
    assert "child uuid(s) a" in result.blocks["gen"].stdout


def test_reduce_output_flattens_list_outputs_one_level(root):
    add_pipeline(root, "red", [
        {"uuid": "gen", "type": "data_loader", "configuration": {"dynamic": True}, "code": """
            @data_loader
            def load(*args, **kwargs):
                return [[0, 1, 2, 3]]
        """},
        {"uuid": "child", "upstream": ["gen"], "configuration": {"reduce_output": True}, "code": """
            import pandas as pd

            @transformer
            def t(i, **kwargs):
                return [{'v': 1}, [{'v': 2}], [[{'v': 3}, {'v': 33}]], pd.DataFrame({'v': [4]})][i]
        """},
        {"uuid": "after", "upstream": ["child"], "code": """
            import pandas as pd

            @transformer
            def t(xs, **kwargs):
                return {'xs': [x.to_dict('list') if isinstance(x, pd.DataFrame) else x for x in xs]}
        """},
    ])
    result = run_pipeline(root, "red", persist=False)
    assert result.status == "completed"
    assert result.blocks["after"].output == {"xs": [{"v": 1}, {"v": 2}, {"v": 3}, {"v": 33}, {"v": [4]}]}


def test_plain_outputs_reach_downstream_as_in_mage(root):
    cases = {"one_element": ("[5]", 5), "none": ("None", []), "pair": ("(1, 2)", [1, 2]),
             "nested": ("[[1, 2, 3]]", [1, 2, 3]), "scalar": ("7", 7)}
    for name, (returns, expected) in cases.items():
        add_pipeline(root, name, [
            {"uuid": "up", "type": "data_loader", "code": f"@data_loader\ndef l(*a, **k):\n    return {returns}\n"},
            {"uuid": "down", "upstream": ["up"], "code": "@transformer\ndef t(x, **k):\n    return {'got': x}\n"},
        ])
        result = run_pipeline(root, name, persist=False)
        assert result.blocks["down"].output == {"got": expected}, name


def test_split_and_reduce_rules():
    fan = split_dynamic_output([[10, 20], [{"block_uuid": "a"}, {"block_uuid": "a"}]], "b")
    assert fan.items == [10] and fan.keys == ["a"] and fan.dropped == ["a"]
    assert split_dynamic_output((1, 2, 3), "b").keys == ["0", "1", "2"]
    frame = split_dynamic_output(pd.DataFrame({"a": [1, 2]}), "b")
    assert [row["a"] for row in frame.items] == [1, 2]
    assert reduce_outputs([1, [2, 3], [[4]], None]) == [1, 2, 3, [4], None]
    with pytest.raises(ProjectError, match="dynamic block 'b'"):
        split_dynamic_output(42, "b")
