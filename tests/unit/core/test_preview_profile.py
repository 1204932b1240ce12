"""Column profiles and chart data of block outputs (data.preview): exact where they claim to be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dagsmith.data.preview import as_table, chart_data, preview, profile, stored_table


def _by_name(cols):
    return {c["name"]: c for c in cols}


def test_profile_counts_are_exact_on_the_whole_frame():
    n = 30_000
    rng = np.random.default_rng(3)
    fare = rng.integers(250, 9000, n) / 100  # cents
    fare[:7] = np.nan
    frame = pd.DataFrame({
        "vendor": rng.integers(1, 4, n),
        "fare": fare,
        "noise": rng.normal(0, 1, n),
        "zone": pd.Series(rng.choice(["a", "b", "c"], n)).astype("category"),
        "flag": rng.random(n) < 0.25,
        "when": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
        "empty": [None] * n,
    })
    cols = _by_name(profile(frame))
    assert cols["vendor"]["distinct"] == 3 and cols["vendor"]["min"] == 1 and cols["vendor"]["max"] == 3
    assert sum(b["count"] for b in cols["vendor"]["histogram"]) == n
    assert cols["fare"]["nulls"] == 7 and cols["fare"]["distinct"] == len(set(fare[7:].round(2)))
    assert not cols["fare"].get("distinct_approx") and sum(b["count"] for b in cols["fare"]["histogram"]) == n - 7
    assert abs(cols["fare"]["mean"] - float(np.nanmean(fare))) < 1e-6
    assert cols["noise"]["distinct_approx"] and abs(cols["noise"]["distinct"] - n) < n * 0.05  # HyperLogLog estimate
    assert cols["zone"]["distinct"] == 3 and sum(t["count"] for t in cols["zone"]["top"]) == n
    assert {t["value"] for t in cols["flag"]["top"]} == {True, False} and cols["flag"]["kind"] == "bool"
    assert cols["when"]["kind"] == "date" and cols["when"]["min"].startswith("2021-01-01 00:00")
    assert cols["empty"]["kind"] == "empty" and cols["empty"]["nulls"] == n


def test_profile_of_infinite_values_and_non_frames():
    frame = pd.DataFrame({"x": [1.0, np.inf, -np.inf, 2.0, np.nan]})
    col = profile(frame)[0]
    assert col["min"] == 1.0 and col["max"] == 2.0 and sum(b["count"] for b in col["histogram"]) == 2
    assert profile([1, 2, 3]) == [] and profile({"a": 1}) == []


def test_stored_frames_are_read_memory_mapped_without_pandas(tmp_path):
    from dagsmith.data.serde import write_value

    frame = pd.DataFrame({"a": range(25), "b": ["x"] * 25})
    write_value(frame, tmp_path / "output_0")
    table = stored_table(tmp_path / "output_0")
    assert table.num_rows == 25 and table.column_names == ["a", "b"]
    p = preview(table)
    assert p["rows"] == 25 and len(p["data"]) == 10 and p["columns"][1] == {"name": "b", "type": "text"}
    write_value({"k": 1}, tmp_path / "output_1")
    assert stored_table(tmp_path / "output_1") is None


def test_chart_data_aggregates_the_whole_output():
    frame = pd.DataFrame({"zone": ["a", "b", "a", "c", "a"], "fare": [1.0, 2.0, 3.0, 4.0, 5.0], "n": [1, 2, 3, 4, 5]})
    bar = chart_data(frame, {"type": "bar", "x": "zone", "y": "fare", "agg": "sum"})
    assert dict(zip(bar["x"], bar["y"])) == {"a": 9.0, "b": 2.0, "c": 4.0}
    count = chart_data(frame, {"type": "bar", "x": "zone", "agg": "count"})
    assert dict(zip(count["x"], count["y"])) == {"a": 3, "b": 1, "c": 1}
    hist = chart_data(frame, {"type": "histogram", "x": "fare", "bins": 4})
    assert sum(hist["y"]) == 5 and len(hist["x"]) == 4
    line = chart_data(frame, {"type": "line", "x": "n", "y": "fare", "agg": "mean"})
    assert line["x"] == [1, 2, 3, 4, 5]
    big = pd.DataFrame({"x": np.arange(10_000), "y": np.arange(10_000) * 2})
    assert len(chart_data(big, {"type": "scatter", "x": "x", "y": "y"})["x"]) == 2000
    from dagsmith.errors import ConfigError

    with pytest.raises(ConfigError, match="histogram needs a numeric"):
        chart_data(frame, {"type": "histogram", "x": "zone"})
    with pytest.raises(ConfigError, match="not in the output"):
        chart_data(frame, {"type": "bar", "x": "nope"})
    assert as_table([1, 2]) is None


def test_profile_of_dates_over_a_month_counts_every_distinct_second_exactly():
    # nanosecond timestamps on whole seconds over a month: far too many nanoseconds for one
    # bincount, few enough seconds; and one column off the whole second, which is estimated
    n = 50_000
    rng = np.random.default_rng(5)
    seconds = rng.integers(0, 86400 * 31, n)
    when = pd.Timestamp("2021-01-01") + pd.to_timedelta(seconds, unit="s")
    odd = when + pd.to_timedelta(rng.integers(1, 999, n), unit="ns")
    cols = _by_name(profile(pd.DataFrame({"when": when, "odd": odd})))
    assert cols["when"]["distinct"] == len(set(seconds)) and not cols["when"].get("distinct_approx")
    assert sum(b["count"] for b in cols["when"]["histogram"]) == n
    assert cols["when"]["min"] == when.min().strftime("%Y-%m-%d %H:%M")
    assert cols["when"]["max"] == when.max().strftime("%Y-%m-%d %H:%M")
    assert cols["odd"]["distinct_approx"] and abs(cols["odd"]["distinct"] - len(set(odd))) < n * 0.05
    assert sum(b["count"] for b in cols["odd"]["histogram"]) == n


def test_histogram_of_nanosecond_timestamps_bins_them():
    """pandas' parse_dates gives timestamp[ns]: epoch nanoseconds are past float64's exact integers."""
    import pandas as pd

    frame = pd.DataFrame({"pickup": pd.to_datetime(["2021-01-01 00:30:10", "2021-01-01 00:51:20", "2021-01-02 10:00:00"])})
    hist = chart_data(frame, {"type": "histogram", "x": "pickup", "bins": 4})
    assert hist["y"] == [2, 0, 0, 1]
    assert hist["x"][0] == "2021-01-01 00:30" and hist["x_end"][-1] == "2021-01-02 10:00"
