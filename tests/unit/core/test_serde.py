"""Block outputs survive the variables store with their types intact."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from dagsmith.data.store import VariableStore


def test_pandas_dtypes_round_trip(tmp_path):
    df = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "when": pd.to_datetime(["2021-01-01 05:00", "2021-01-02 06:00", None]).tz_localize("America/New_York"),
            "kind": pd.Categorical(["a", "b", "a"]),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "s": pd.array(["x", None, "z"], dtype="string"),
            "f": [1.5, float("nan"), 2.0],
        }
    )
    store = VariableStore(tmp_path)
    store.write_outputs("p", "run1", "b", [df], multi=False)
    back = store.read_block_value("p", "run1", "b")
    pd.testing.assert_frame_equal(back, df)
    assert back["when"].dtype == df["when"].dtype and str(back["when"].dt.tz) == "America/New_York"


def test_other_values_round_trip(tmp_path):
    import polars as pl

    store = VariableStore(tmp_path)
    values = [
        {"a": [1, 2], "b": None},
        pa.table({"x": [1, 2]}),
        pl.DataFrame({"y": [1.0, None]}),
        dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc),
        (1, "tuple stays a tuple"),
        pd.Series([1, 2], name="s"),
    ]
    store.write_outputs("p", "r", "b", values, multi=True)
    back = store.read_block_value("p", "r", "b")
    assert back[0] == values[0]
    assert back[1].equals(values[1])
    assert back[2].equals(values[2])
    assert back[3] == values[3]
    assert back[4] == values[4]
    pd.testing.assert_series_equal(back[5], values[5])


def test_long_lists_are_stored_packed(tmp_path):
    store = VariableStore(tmp_path)
    store.write_outputs("p", "r", "b", [{"i": i} for i in range(1000)], multi=True)
    # small plain values: no folder, one line of the partition's inline log
    assert not store.block_dir("p", "r", "b").exists()
    assert [p.name for p in store.block_dir("p", "r", "b").parent.iterdir()] == ["_inline.jsonl"]
    store.write_outputs("p", "r", "big", [{"i": i, "pad": "x" * 100} for i in range(9000)], multi=True)
    big = store.block_dir("p", "r", "big")
    assert len([p for p in big.iterdir() if p.name.startswith("output_")]) == 1  # too big to inline: one packed file
    assert len(store.read_block_value("p", "r", "big")) == 9000
    assert store.read_block_value("p", "r", "b")[999] == {"i": 999}
    assert store.latest_partition("p", "b") == "r"
