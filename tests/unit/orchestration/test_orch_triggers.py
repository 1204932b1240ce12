"""Schedule arithmetic: presets, cron, time zones across DST, month ends, catch-up after downtime."""

from __future__ import annotations

from datetime import timezone

import pytest

from dagsmith.errors import ConfigError
from dagsmith.orchestration.scheduler.triggers import (
    ScheduleState,
    due_dates,
    latest_tick,
    next_tick,
    ticks_between,
    validate_schedule,
)
from tests.fixtures.clock import utc

UTC = timezone.utc


def test_presets_follow_mage_periods():
    at = utc(2024, 5, 15, 13, 37)  # a Wednesday
    assert latest_tick("@hourly", "UTC", at) == utc(2024, 5, 15, 13)
    assert latest_tick("@daily", "UTC", at) == utc(2024, 5, 15)
    assert latest_tick("@weekly", "UTC", at) == utc(2024, 5, 13)  # Monday
    assert latest_tick("@monthly", "UTC", at) == utc(2024, 5, 1)
    assert next_tick("0 5 * * *", "UTC", at) == utc(2024, 5, 16, 5)


@pytest.mark.parametrize("bad", ["@dialy", "61 * * * *", "every day", "", "* * *"])
def test_invalid_schedules_say_how_to_fix(bad):
    with pytest.raises(ConfigError) as err:
        validate_schedule(bad)
    assert "schedule_interval" in err.value.message and "cron" in err.value.hint and "'0 5 * * *'" in err.value.hint


@pytest.mark.parametrize("never", ["0 0 31 2 *", "0 0 30 2 *", "15 3 31 4,6,9,11 *"])
def test_cron_expressions_that_never_fire_are_refused(never):
    with pytest.raises(ConfigError) as err:
        validate_schedule(never)
    assert f"schedule_interval '{never}' never fires" in err.value.message and "day-of-month" in err.value.hint


def test_rare_but_real_dates_are_accepted():
    validate_schedule("0 0 29 2 *")  # leap days
    assert next_tick("0 0 29 2 *", "UTC", utc(2025, 3, 1)) == utc(2028, 2, 29)
    validate_schedule("0 0 L 2 *")


def test_unknown_time_zone_is_a_config_error():
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        validate_schedule("@daily", "Mars/Olympus")


def test_daily_in_a_time_zone_runs_at_local_midnight_across_spring_forward():
    ticks = ticks_between("@daily", "Europe/Berlin", utc(2024, 3, 29), utc(2024, 4, 2))
    # CET (UTC+1) until 31 March 02:00, then CEST (UTC+2)
    assert ticks == [utc(2024, 3, 29, 23), utc(2024, 3, 30, 23), utc(2024, 3, 31, 22), utc(2024, 4, 1, 22)]


def test_nonexistent_wall_time_runs_after_the_gap_once():
    # 02:30 does not exist in New York on 10 March 2024: it runs at 03:30 EDT (07:30 UTC)
    ticks = ticks_between("30 2 * * *", "America/New_York", utc(2024, 3, 9), utc(2024, 3, 12))
    assert ticks == [utc(2024, 3, 9, 7, 30), utc(2024, 3, 10, 7, 30), utc(2024, 3, 11, 6, 30)]


def test_repeated_wall_time_runs_once_at_fall_back():
    # 01:30 happens twice in New York on 3 November 2024: one run, at the first (EDT) one
    ticks = ticks_between("30 1 * * *", "America/New_York", utc(2024, 11, 2), utc(2024, 11, 5))
    assert ticks == [utc(2024, 11, 2, 5, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_hourly_runs_every_real_hour_through_both_dst_changes():
    fall = ticks_between("@hourly", "America/New_York", utc(2024, 11, 3, 3), utc(2024, 11, 3, 9))
    assert fall == [utc(2024, 11, 3, h) for h in range(3, 10)]
    spring = ticks_between("@hourly", "America/New_York", utc(2024, 3, 10, 5), utc(2024, 3, 10, 9))
    assert spring == [utc(2024, 3, 10, h) for h in range(5, 10)]


def test_month_ends_and_leap_day():
    last_days = ticks_between("0 0 L * *", "UTC", utc(2024, 1, 1), utc(2024, 5, 1))
    assert last_days == [utc(2024, 1, 31), utc(2024, 2, 29), utc(2024, 3, 31), utc(2024, 4, 30)]
    the_31st = ticks_between("0 0 31 * *", "UTC", utc(2024, 1, 1), utc(2024, 6, 1))
    assert the_31st == [utc(2024, 1, 31), utc(2024, 3, 31), utc(2024, 5, 31)]
    monthly = ticks_between("@monthly", "UTC", utc(2024, 1, 15), utc(2024, 4, 15))
    assert monthly == [utc(2024, 2, 1), utc(2024, 3, 1), utc(2024, 4, 1)]


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("all", [utc(2024, 3, 8), utc(2024, 3, 9), utc(2024, 3, 10)]),
        ("latest", [utc(2024, 3, 10)]),
        ("none", []),
    ],
)
def test_scheduler_down_for_three_days(policy, expected):
    # last handled period: 7 March; the scheduler comes back on 10 March at 10:00
    state = ScheduleState("@daily", cursor=utc(2024, 3, 7), catchup=policy)
    due = due_dates(state, utc(2024, 3, 10, 10))
    assert due.dates == expected
    assert due.cursor == utc(2024, 3, 10)  # missed periods are handled, never re-examined
    assert due_dates(ScheduleState("@daily", cursor=due.cursor, catchup=policy), utc(2024, 3, 10, 11)).dates == []


def test_catchup_none_still_runs_a_period_that_just_began():
    state = ScheduleState("@daily", cursor=utc(2024, 3, 9), catchup="none")
    assert due_dates(state, utc(2024, 3, 10, 0, 2), grace=300).dates == [utc(2024, 3, 10)]


def test_catchup_all_is_capped_per_call_and_continues():
    state = ScheduleState("@hourly", cursor=utc(2024, 3, 1), catchup="all")
    first = due_dates(state, utc(2024, 3, 2), max_runs=10)
    assert len(first.dates) == 10 and first.cursor == utc(2024, 3, 1, 10)
    second = due_dates(ScheduleState("@hourly", cursor=first.cursor, catchup="all"), utc(2024, 3, 2), max_runs=100)
    assert second.dates[0] == utc(2024, 3, 1, 11) and second.dates[-1] == utc(2024, 3, 2)


@pytest.mark.parametrize("policy", ["all", "latest", "none"])
def test_new_trigger_waits_for_its_next_tick(policy):
    # created at 09:30: the preview promises 00:00 tomorrow as the first run, so nothing runs today
    enabled = utc(2024, 3, 10, 9, 30)
    state = ScheduleState("@daily", enabled_at=enabled, catchup=policy)
    assert due_dates(state, utc(2024, 3, 10, 9, 31)).dates == []
    assert due_dates(state, utc(2024, 3, 10, 23, 59)).dates == []
    assert due_dates(state, utc(2024, 3, 11, 0, 0, 1)).dates == [utc(2024, 3, 11)]


def test_trigger_enabled_exactly_on_a_tick_runs_that_tick():
    state = ScheduleState("@hourly", enabled_at=utc(2024, 3, 10, 9), catchup="latest")
    assert due_dates(state, utc(2024, 3, 10, 9, 0, 2)).dates == [utc(2024, 3, 10, 9)]


def test_start_time_gates_and_sets_the_first_period():
    state = ScheduleState("0 5 * * *", start_time=utc(2024, 3, 12, 5), enabled_at=utc(2024, 3, 10), catchup="all")
    assert due_dates(state, utc(2024, 3, 11, 6)).dates == []
    assert due_dates(state, utc(2024, 3, 12, 5, 0, 1)).dates == [utc(2024, 3, 12, 5)]


def test_once_fires_once_and_deactivates():
    state = ScheduleState("@once", enabled_at=utc(2024, 3, 10, 9))
    due = due_dates(state, utc(2024, 3, 10, 9, 0, 5))
    assert due.dates == [utc(2024, 3, 10, 9)] and due.deactivate
    assert due_dates(ScheduleState("@once", enabled_at=utc(2024, 3, 10, 9), cursor=due.cursor), utc(2024, 3, 11)).dates == []


def test_timezone_trigger_down_over_dst_with_catchup_all():
    state = ScheduleState("@daily", timezone="Europe/Berlin", cursor=utc(2024, 3, 29, 23), catchup="all")
    due = due_dates(state, utc(2024, 4, 1, 23, 30))
    assert due.dates == [utc(2024, 3, 30, 23), utc(2024, 3, 31, 22), utc(2024, 4, 1, 22)]


def test_far_past_cursor_with_latest_looks_back_from_now_not_forward_from_the_cursor(monkeypatch):
    """A per-minute trigger idle for 14 months: ``latest`` must not walk its ~620,000 missed ticks.

    (How fast that is, against a cursor one tick old: benchmarks/timing_claims.py.)"""
    from dagsmith.orchestration.scheduler import triggers

    walked = []
    real = triggers.iter_ticks

    def counting(*args, **kwargs):
        for tick in real(*args, **kwargs):
            walked.append(tick)
            yield tick

    monkeypatch.setattr(triggers, "iter_ticks", counting)
    state = ScheduleState("* * * * *", cursor=utc(2023, 1, 1), catchup="latest")
    due = due_dates(state, utc(2024, 3, 10, 10, 0, 30))
    assert due.dates == [utc(2024, 3, 10, 10)] and due.cursor == utc(2024, 3, 10, 10)
    assert walked and min(walked) >= utc(2024, 3, 10, 8)  # only the last two hours were generated
    assert len(walked) <= 125
