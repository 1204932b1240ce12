"""Schedule arithmetic: presets, cron, time zones and catch-up → due execution dates.

Pure functions; nothing here reads a clock (``now`` is always passed in), a file or
the database. All datetimes in and out are tz-aware; results are in UTC.

Rules a data engineer can rely on:

* Presets: ``@hourly`` = minute 0, ``@daily`` = 00:00, ``@weekly`` = Monday 00:00,
  ``@monthly`` = the 1st 00:00, ``@yearly`` = 1 January — all in the trigger's time
  zone (UTC by default). Any 5-field cron (croniter syntax, ``L`` for last day) works.
* A run's ``execution_date`` is the tick that starts its period (as in Mage); its
  interval ends at the next tick.
* Time zones: cron fields are wall-clock time in the trigger's zone. A wall time that
  does not exist (spring forward) runs at the same offset after the gap (02:30 → 03:30);
  a wall time that occurs twice (fall back) runs once, at its first occurrence, except
  for schedules whose hour field is ``*``, which run every real hour.
* A trigger never creates runs for periods that began before it was enabled (so not
  for the period already under way when it is created: its first run is its next tick,
  which is what the UI's preview of the next run times shows) or before its
  ``start_time``; that is what backfills are for.
* Catch-up after downtime: ``all`` creates every missed period (oldest first, at most
  ``max_runs`` per call), ``latest`` only the newest missed one, ``none`` only periods
  that began within ``grace`` seconds of ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagsmith.errors import ConfigError

UTC = timezone.utc

PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 1",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
ONCE = "@once"
UNSUPPORTED = {"@always_on": "streaming pipelines (@always_on) are not supported by dagsmith's scheduler"}


@lru_cache(maxsize=256)
def get_zone(name: str | None) -> ZoneInfo | timezone:
    """The ``ZoneInfo`` for an IANA name (``None``/``UTC`` → UTC); ``ConfigError`` if unknown."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"time zone {name!r} is unknown",
            hint="use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'",
        ) from exc


@lru_cache(maxsize=4096)
def cron_expression(interval: str) -> str:
    """The cron expression of a preset or cron string; ``ConfigError`` if it is neither."""
    if not interval or not str(interval).strip():
        raise ConfigError("schedule_interval is empty", hint="use @hourly, @daily, @weekly, @monthly, @once or a cron such as '0 5 * * *'")
    value = str(interval).strip()
    if value in UNSUPPORTED:
        raise ConfigError(UNSUPPORTED[value], hint="use a time schedule or an API trigger instead")
    expr = PRESETS.get(value.lower(), value)
    from croniter import croniter

    if expr.startswith("@") or len(expr.split()) != 5:
        raise ConfigError(
            f"schedule_interval {value!r} is neither a preset nor a 5-field cron expression",
            hint="use @hourly, @daily, @weekly, @monthly, @once or a cron such as '0 5 * * *' (minute hour day month weekday)",
        )
    if not croniter.is_valid(expr):
        raise ConfigError(
            f"schedule_interval {value!r}: {_cron_field_problem(expr)}",
            hint="cron fields are minute (0-59) hour (0-23) day (1-31) month (1-12) weekday (0-6, Sunday = 0), e.g. '0 5 * * *'",
        )
    if not _ever_fires(expr):
        raise ConfigError(
            f"schedule_interval {value!r} never fires: no date has that day in that month (such as 31 February)",
            hint="check the day-of-month and month fields, e.g. '0 0 28 2 *' for 28 February, or 'L' for the last day of a month",
        )
    return expr


def _ever_fires(expr: str) -> bool:
    """False for a valid cron whose day and month never meet (``0 0 31 2 *``): refused when a trigger is made, not every tick."""
    from croniter import CroniterBadDateError, croniter

    try:
        # 29 February on a given weekday comes round within 28 years
        croniter(expr, datetime(2000, 1, 1), max_years_between_matches=30).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("weekday", 0, 7))


def _cron_field_problem(expr: str) -> str:
    """Which field of a 5-field cron is wrong, in words (``hour 25 is out of range 0-23``)."""
    import re

    for text, (field, low, high) in zip(expr.split(), _CRON_FIELDS):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                return f"the {field} field {text!r} has step {step!r}, which is not a positive number"
            for number in re.findall(r"\d+", base):
                if not low <= int(number) <= high:
                    return f"{field} {number} is out of range {low}-{high} (in the {field} field {text!r})"
            if not re.fullmatch(r"\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?|\?|L|[0-9]+W|[0-9A-Za-z]+#[1-5]", base):
                return f"the {field} field {text!r} is not valid cron syntax"
    return "not a valid cron expression"


def validate_schedule(interval: str, tz: str | None = "UTC") -> None:
    """Raise ``ConfigError`` with a fix if the interval or time zone is invalid."""
    get_zone(tz)
    if str(interval).strip() != ONCE:
        cron_expression(interval)


def _localize(naive: datetime, zone) -> list[datetime]:
    """UTC instants of a wall-clock time in ``zone``: one normally, two when it repeats."""
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    # fold=0/fold=1 differ: either the time repeats (second > first) or it does not exist
    back = first.astimezone(zone).replace(tzinfo=None)
    if back == naive and second.astimezone(zone).replace(tzinfo=None) == naive:
        return sorted({first, second})
    # nonexistent (gap): fold=0 keeps the pre-transition offset, landing after the gap
    return [first]


def _every_hour(expr: str) -> bool:
    return expr.split()[1] == "*"


@lru_cache(maxsize=1024)
def _prototype(expr: str):
    from croniter import croniter

    return croniter(expr, datetime(2000, 1, 1))


def iter_ticks(interval: str, tz: str | None, after: datetime, *, inclusive: bool = False):
    """Yield the schedule's ticks (UTC, increasing) after ``after`` (or at it when ``inclusive``)."""
    import copy

    expr = cron_expression(interval)
    zone = get_zone(tz)
    both_folds = _every_hour(expr)
    after = after.astimezone(UTC)
    # croniter yields ticks strictly after its start: start just before `after`; in zones
    # with DST also one hour earlier, so a tick shifted by a DST gap is not missed
    backoff = timedelta(seconds=1) if zone is UTC else timedelta(hours=1, seconds=1)
    local_start = (after - backoff).astimezone(zone).replace(tzinfo=None)
    it = copy.copy(_prototype(expr))
    it.set_current(local_start, force=True)
    last: datetime | None = None
    while True:
        naive = it.get_next(datetime)
        instants = _localize(naive, zone)
        if not both_folds:
            instants = instants[:1]
        for instant in instants:
            if last is not None and instant <= last:
                continue
            if instant < after or (instant == after and not inclusive):
                continue
            last = instant
            yield instant


def next_tick(interval: str, tz: str | None, after: datetime) -> datetime:
    """The first tick strictly after ``after``."""
    return next(iter_ticks(interval, tz, after))


def latest_tick(interval: str, tz: str | None, at: datetime) -> datetime | None:
    """The last tick at or before ``at`` (None if there is none within ~400 days)."""
    at = at.astimezone(UTC)
    for lookback in (timedelta(hours=2), timedelta(days=2), timedelta(days=35), timedelta(days=400)):
        found = None
        for tick in iter_ticks(interval, tz, at - lookback, inclusive=True):
            if tick > at:
                break
            found = tick
        if found is not None:
            return found
    return None


def ticks_between(interval: str, tz: str | None, start: datetime, end: datetime, *, include_start: bool = True, limit: int | None = None) -> list[datetime]:
    """Ticks in ``[start, end]`` (or ``(start, end]``), at most ``limit`` of them."""
    out: list[datetime] = []
    for tick in iter_ticks(interval, tz, start, inclusive=include_start):
        if tick > end:
            break
        out.append(tick)
        if limit is not None and len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class ScheduleState:
    """What the scheduler knows about one time trigger."""

    interval: str
    timezone: str = "UTC"
    start_time: datetime | None = None
    enabled_at: datetime | None = None
    #: the newest tick already handled (run created or deliberately skipped)
    cursor: datetime | None = None
    catchup: str = "latest"


@dataclass(frozen=True)
class Due:
    """Execution dates to create runs for now, and the cursor to store afterwards."""

    dates: list[datetime]
    cursor: datetime | None
    #: the trigger is @once and has now fired: switch it off
    deactivate: bool = False


def due_dates(state: ScheduleState, now: datetime, *, grace: float = 300.0, max_runs: int = 1000) -> Due:
    """The execution dates that should have runs at ``now`` and were not handled yet."""
    now = now.astimezone(UTC)
    interval = str(state.interval).strip()
    if interval == ONCE:
        if state.cursor is not None:
            return Due([], state.cursor, deactivate=True)
        when = state.start_time or state.enabled_at or now
        if when > now:
            return Due([], None)
        return Due([when.astimezone(UTC)], when.astimezone(UTC), deactivate=True)

    if state.start_time is not None and state.start_time > now:
        return Due([], state.cursor)
    tz = state.timezone
    if state.cursor is not None:
        lower, include = state.cursor.astimezone(UTC), False
    else:
        # the first period is the first tick at or after enabling: a @daily trigger created at
        # 09:30 first runs at 00:00 tomorrow, as its preview says (earlier periods: backfills)
        lower, include = min(state.enabled_at or now, now).astimezone(UTC), True
        if state.start_time is not None and state.start_time > lower:
            lower = state.start_time.astimezone(UTC)
    if state.catchup == "all":
        dates = ticks_between(interval, tz, lower, now, include_start=include, limit=max_runs)
        return Due(dates, dates[-1] if dates else state.cursor)
    newest = latest_tick(interval, tz, now)
    if newest is None or newest < lower or (newest == lower and not include):
        return Due([], state.cursor)
    if state.catchup == "latest":
        return Due([newest], newest)
    if state.catchup == "none":
        floor = max(lower, now - timedelta(seconds=grace))
        recent = ticks_between(interval, tz, floor, now, include_start=include or floor > lower)
        return Due(recent, newest)
    raise ConfigError(f"catch-up policy {state.catchup!r} is unknown", hint="use one of: none, latest, all")
