"""Schedules and backfills in words and dates, for people choosing one: what a preset or cron
expression means in English, its next few ticks in the trigger's time zone, and the dates a
backfill would run. Pure functions over ``scheduler.triggers`` and ``scheduler.backfills``;
the UI's preview fragments and the trigger list show them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from dagsmith.errors import ConfigError

#: the interval types a backfill can step by in the UI (Mage's list, without "second" and "custom")
INTERVAL_TYPES = ["minute", "hour", "day", "week", "month", "year"]

_DAYS = {"0": "Sunday", "1": "Monday", "2": "Tuesday", "3": "Wednesday", "4": "Thursday", "5": "Friday", "6": "Saturday", "7": "Sunday"}


def describe_schedule(interval: str) -> str:
    """A short English description of a preset or cron expression."""
    from dagsmith.orchestration.scheduler.triggers import cron_expression

    value = (interval or "").strip()
    if value == "@once":
        return "once, as soon as the trigger is enabled"
    expr = cron_expression(value)
    minute, hour, dom, month, dow = expr.split()

    def at() -> str | None:
        if minute.isdigit() and hour.isdigit():
            return f"at {int(hour):02d}:{int(minute):02d}"
        if hour.isdigit() and minute.startswith("*/"):
            return f"every {minute[2:]} minutes during hour {int(hour):02d}"
        return None

    if hour == "*" and dom == "*" and month == "*" and dow == "*":
        if minute.isdigit():
            return f"every hour at minute {int(minute)}"
        if minute == "*":
            return "every minute"
        if minute.startswith("*/"):
            return f"every {minute[2:]} minutes"
    if hour.startswith("*/") and minute.isdigit() and dom == month == dow == "*":
        return f"every {hour[2:]} hours at minute {int(minute)}"
    clock = at()
    if clock and dom == "*" and month == "*":
        if dow == "*":
            return f"every day {clock}"
        if dow in _DAYS:
            return f"every {_DAYS[dow]} {clock}"
        if dow == "1-5":
            return f"every weekday (Mon–Fri) {clock}"
    if clock and dom.isdigit() and month == "*" and dow == "*":
        return f"on day {int(dom)} of every month {clock}"
    return f"cron “{expr}” (minute hour day-of-month month day-of-week)"


def schedule_preview(interval: str, tz: str, *, count: int = 5, now: datetime | None = None, start: datetime | None = None) -> dict[str, Any]:
    """``{"description", "times", "tz"}``: the schedule in words and its next ``count`` ticks (after ``start`` if later)."""
    from dagsmith.orchestration.scheduler.triggers import get_zone, iter_ticks, validate_schedule

    validate_schedule(interval, tz)
    zone = get_zone(tz)
    now = now or datetime.now(timezone.utc)
    after = max(now, start) if start else now
    if interval.strip() == "@once":
        return {"description": describe_schedule(interval), "times": [], "tz": tz}
    times = []
    for tick in iter_ticks(interval, tz, after):
        times.append(tick.astimezone(zone))
        if len(times) >= count:
            break
    return {"description": describe_schedule(interval), "times": times, "tz": tz}


def check_backfill_interval(interval_type: str, units: int) -> None:
    """``ConfigError`` unless ``interval_type`` is one of ``INTERVAL_TYPES`` and ``units`` at least 1."""
    if interval_type not in INTERVAL_TYPES:
        raise ConfigError(f"interval {interval_type!r} is unknown", hint="use one of: " + ", ".join(INTERVAL_TYPES))
    if units < 1:
        raise ConfigError("the interval count must be at least 1")


def backfill_preview(start: datetime, end: datetime, interval_type: str, units: int, tz: str) -> dict[str, Any]:
    """``{"count", "dates", "tz"}``: the dates a backfill from ``start`` to ``end`` would run, in ``tz``."""
    from dagsmith.orchestration.scheduler.backfills import backfill_dates
    from dagsmith.orchestration.scheduler.triggers import get_zone

    check_backfill_interval(interval_type, units)
    dates = backfill_dates(start, end, interval_type, units, tz)
    zone = get_zone(tz)
    return {"count": len(dates), "dates": [d.astimezone(zone) for d in dates], "tz": tz}
