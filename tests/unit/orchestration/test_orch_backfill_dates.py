"""Backfill date ranges: inclusive ends, calendar steps in a time zone, month ends, bad input."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from dagsmith.errors import ConfigError
from dagsmith.orchestration.scheduler.backfills import backfill_dates, run_rows
from tests.fixtures.clock import utc

UTC = timezone.utc


def test_daily_range_is_inclusive():
    dates = backfill_dates(utc(2024, 1, 1), utc(2024, 1, 30), "day")
    assert len(dates) == 30 and dates[0] == utc(2024, 1, 1) and dates[-1] == utc(2024, 1, 30)


def test_hour_units_and_custom_seconds():
    assert backfill_dates(utc(2024, 1, 1), utc(2024, 1, 1, 23), "hour", 6) == [utc(2024, 1, 1, h) for h in (0, 6, 12, 18)]
    assert backfill_dates(utc(2024, 1, 1), utc(2024, 1, 1, 0, 1), "custom", 20) == [utc(2024, 1, 1, 0, 0, s) for s in (0, 20, 40)] + [utc(2024, 1, 1, 0, 1)]


def test_monthly_from_the_31st_clamps_without_drifting():
    dates = backfill_dates(utc(2024, 1, 31), utc(2024, 5, 31), "month")
    assert dates == [utc(2024, 1, 31), utc(2024, 2, 29), utc(2024, 3, 31), utc(2024, 4, 30), utc(2024, 5, 31)]


def test_daily_in_a_time_zone_keeps_local_midnight_across_dst():
    start = datetime(2024, 3, 30, tzinfo=UTC).replace(tzinfo=None)
    dates = backfill_dates(start, datetime(2024, 4, 1), "day", 1, "Europe/Berlin")
    assert dates == [utc(2024, 3, 29, 23), utc(2024, 3, 30, 23), utc(2024, 3, 31, 22)]


def test_end_before_start_and_unknown_interval_are_explained():
    with pytest.raises(ConfigError, match="before its start"):
        backfill_dates(utc(2024, 2, 1), utc(2024, 1, 1), "day")
    with pytest.raises(ConfigError, match="fortnight"):
        backfill_dates(utc(2024, 1, 1), utc(2024, 2, 1), "fortnight")
    with pytest.raises(ConfigError, match="at least 1"):
        backfill_dates(utc(2024, 1, 1), utc(2024, 2, 1), "day", 0)


def test_run_rows_carry_mage_interval_variables():
    backfill = SimpleNamespace(id=3, pipeline_uuid="p", interval_type="day", interval_units=1, timezone="UTC", variables={"x": 1}, settings={})
    rows = run_rows(backfill, backfill_dates(utc(2024, 1, 1), utc(2024, 1, 3), "day"))
    assert [r["execution_date"] for r in rows] == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]
    last = rows[-1]["variables"]
    assert last["x"] == 1 and last["interval_end_datetime"] == utc(2024, 1, 4).isoformat()
    assert last["interval_seconds"] == 86400 and last["interval_start_datetime_previous"] == utc(2024, 1, 2).isoformat()
    assert rows[0]["variables"]["interval_start_datetime_previous"] is None
