"""The schema-drift comparison and the partition rules every table target shares (no services)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from dagsmith.errors import ConfigError, SchemaDriftError, TerminalConnectorError
from dagsmith.io.partitions import check_within, resolve_partition
from dagsmith.io.postgres import postgres_column, postgres_type
from dagsmith.io.runtime import block_variables
from dagsmith.io.schema import compare, conform, enforce, frame_columns, on_schema_change_setting

TABLE = [
    postgres_column("id", "bigint", has_default=True),
    postgres_column("fare", "numeric(10,2)"),
    postgres_column("passengers", "bigint"),
    postgres_column("pickup", "timestamp without time zone"),
    postgres_column("zone", "character varying(20)"),
    postgres_column("meta", "jsonb"),
]


def diff_for(table: pa.Table):
    return compare(TABLE, frame_columns(table, postgres_type), values=table)


def test_lossless_values_fit_and_are_cast_to_the_table_type():
    frame = pa.table({
        "fare": pa.array([1.5, 2.25]),  # fits numeric(10,2) exactly
        "passengers": pa.array([1.0, None]),  # whole numbers in a float column
        "pickup": pa.array([dt.date(2021, 1, 1), None]),  # dates into timestamps
        "zone": pa.array(["a", "b"]),
        "meta": pa.array(['{"a": 1}', None]),  # text into a type dagsmith does not map: the database parses it
    })
    diff = diff_for(frame)
    assert diff.changes == []  # id has a default: not missing
    assert set(diff.casts) == {"fare", "passengers"}
    cast = conform(frame, diff)
    assert cast.schema.field("passengers").type == pa.int64() and cast.column("passengers").to_pylist() == [1, None]


def test_values_a_cast_would_change_are_named_with_an_example():
    frame = pa.table({"fare": pa.array([1.5, 2.125]), "passengers": pa.array([1.0, 3.5, 2.25][:2])})
    diff = diff_for(frame)
    changed = {c.column: c.detail for c in diff.changed}
    assert changed["fare"] == "1 of 2 values change, e.g. 2.125 would be stored as Decimal('2.13')"
    assert changed["passengers"] == "1 of 2 values change, e.g. 3.5 would be stored as 4"
    assert {c.column for c in diff.missing} == {"pickup", "zone", "meta"}


def test_overflow_and_kind_changes():
    frame = pa.table({"passengers": pa.array([2**40], pa.int64()), "zone": pa.array([7])})
    small = [postgres_column("passengers", "integer"), postgres_column("zone", "text")]
    diff = compare(small, frame_columns(frame, postgres_type), values=frame)
    details = {c.column: c.detail for c in diff.changed}
    assert details["passengers"].startswith("1 of 1 values change, e.g. 1099511627776")
    assert details["zone"] == "bigint values do not fit in text"


def test_a_query_result_is_checked_by_type_only():
    incoming = [postgres_column("passengers", "double precision"), postgres_column("zone", "text"),
                postgres_column("id", "integer")]
    table = [postgres_column("passengers", "bigint"), postgres_column("zone", "text"), postgres_column("id", "bigint")]
    diff = compare(table, incoming, label="query")
    assert [c.column for c in diff.changed] == ["passengers"]  # integer → bigint widens, double → bigint may not
    assert "cast them in the query" in diff.changed[0].detail


def test_enforce_renders_the_columns_side_by_side_and_respects_add_columns():
    frame = pa.table({"passengers": pa.array([1]), "tip": pa.array([0.5])})
    diff = compare([postgres_column("passengers", "bigint"), postgres_column("zone", "text")],
                   frame_columns(frame, postgres_type), values=frame)
    with pytest.raises(SchemaDriftError) as err:
        enforce(diff, on_schema_change="fail", target="ny.trips")
    assert str(err.value).splitlines()[:5] == [
        "cannot append to ny.trips: the columns differ from the table's (1 added, 1 missing); nothing was written",
        "  column      table   frame",
        "  passengers  bigint  bigint",
        "  zone        text    —                 ← missing",
        "  tip         —       double precision  ← added",
    ]
    enforce(diff, on_schema_change="add_columns", target="ny.trips")  # added and missing are allowed


def test_on_schema_change_values_and_the_blocks_configuration():
    assert on_schema_change_setting(None) == "fail"
    with block_variables({"configuration": {"on_schema_change": "add_columns"}}):
        assert on_schema_change_setting(None) == "add_columns"
        assert on_schema_change_setting("fail") == "fail"  # the call wins
    with pytest.raises(ConfigError) as err:
        on_schema_change_setting("sync")
    assert "add_columns" in (err.value.hint or "")


def test_partition_from_the_runs_interval_per_column_type():
    day = {"interval_start_datetime": dt.datetime(2021, 1, 5, tzinfo=dt.timezone.utc),
           "interval_end_datetime": dt.datetime(2021, 1, 6, tzinfo=dt.timezone.utc)}
    by_date = resolve_partition("d", None, pa.date32(), variables=day)
    assert (by_date.low, by_date.high) == (dt.date(2021, 1, 5), dt.date(2021, 1, 6))
    naive = resolve_partition("t", None, pa.timestamp("ns"), variables=day)
    assert naive.low == dt.datetime(2021, 1, 5) and naive.describe() == "t in [2021-01-05 00:00:00, 2021-01-06 00:00:00)"
    aware = resolve_partition("t", None, pa.timestamp("us", "UTC"), variables=day)
    assert aware.low.tzinfo is not None
    with pytest.raises(ConfigError) as err:
        resolve_partition("n", None, pa.int64(), variables=day)
    assert "pass partition_value" in (err.value.hint or "")
    hour = {"interval_start_datetime": dt.datetime(2021, 1, 5, 3), "interval_end_datetime": dt.datetime(2021, 1, 5, 4)}
    with pytest.raises(ConfigError):
        resolve_partition("d", None, pa.date32(), variables=hour)  # an hourly run cannot own a whole day
    with pytest.raises(ConfigError) as err:
        resolve_partition("d", None, pa.date32(), variables={})
    assert "not inside a pipeline run" in err.value.message


def test_explicit_partition_values_and_the_sql_they_bind():
    eq = resolve_partition("d", "2021-01-05", pa.date32())
    assert eq.sql('"d"', lambda n: f"${n}") == ('"d" = $1', [dt.date(2021, 1, 5)])
    rng = resolve_partition("n", (10, 20), pa.int64())
    assert rng.sql("n", lambda n: "?") == ("n >= ? AND n < ?", [10, 20])
    assert resolve_partition("zone", "a", pa.dictionary(pa.int32(), pa.string())).low == "a"


def test_rows_outside_the_partition_are_refused():
    table = pa.table({"d": pa.array([dt.date(2021, 1, 5), None, dt.date(2021, 1, 4)])})
    partition = resolve_partition("d", dt.date(2021, 1, 5), pa.date32())
    with pytest.raises(TerminalConnectorError) as err:
        check_within(table, partition, target="ny.trips")
    assert "2 of 3 rows are outside it (e.g. d = None); nothing was written" in err.value.message
    check_within(table.slice(0, 1), partition, target="ny.trips")
    assert partition.contains_text("2021-01-05", pa.date32()) and not partition.contains_text("x", pa.date32())
