"""Backfills: a date range → one run per date, progress, cancel, rerun of failed dates.

Dates are ``start, start+step, …`` up to and including ``end``. Fixed steps (second,
minute, hour, custom seconds) are added in absolute time; calendar steps (day, week,
month, year) in the backfill's time zone, so a daily backfill stays at local midnight
across DST and a monthly one started on the 31st gives Jan 31, Feb 29, Mar 31, ….
Each run gets ``execution_date`` = its date and the interval variables Mage sets
(``interval_start_datetime``, ``interval_end_datetime`` = next date, ``interval_seconds``,
``interval_start_datetime_previous``). Runs are inserted all at once with their unique
(backfill, date) key, so starting twice never doubles a date; the backfill's
``concurrency`` limits how many run at the same time.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone

from dagsmith.errors import ConfigError
from dagsmith.orchestration.scheduler.triggers import get_zone

UTC = timezone.utc
INTERVAL_TYPES = ("second", "minute", "hour", "day", "week", "month", "year", "custom")
MAX_BACKFILL_RUNS = 100_000


def _add_months(naive: datetime, months: int) -> datetime:
    month0 = naive.month - 1 + months
    year = naive.year + month0 // 12
    month = month0 % 12 + 1
    day = min(naive.day, calendar.monthrange(year, month)[1])
    return naive.replace(year=year, month=month, day=day)


def _normalise(interval_type: str, units: int) -> tuple[str, int]:
    kind = (interval_type or "").strip().lower().rstrip("s")
    if kind not in INTERVAL_TYPES:
        raise ConfigError(
            f"backfill interval type {interval_type!r} is unknown",
            hint="use one of: " + ", ".join(INTERVAL_TYPES) + " (custom = a number of seconds in interval_units)",
        )
    try:
        units = int(units)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"backfill interval_units {units!r} is not a whole number") from exc
    if units < 1:
        raise ConfigError(f"backfill interval_units must be at least 1, got {units}")
    return kind, units


def step(date: datetime, interval_type: str, units: int, tz: str | None = "UTC", n: int = 1) -> datetime:
    """``date`` moved forward by ``n`` steps of the interval (tz-aware in, UTC out)."""
    kind, units = _normalise(interval_type, units)
    date = date.astimezone(UTC)
    fixed = {"second": 1, "minute": 60, "hour": 3600, "custom": 1}
    if kind in fixed:
        return date + timedelta(seconds=fixed[kind] * units * n)
    zone = get_zone(tz)
    local = date.astimezone(zone).replace(tzinfo=None)
    if kind == "day":
        moved = local + timedelta(days=units * n)
    elif kind == "week":
        moved = local + timedelta(weeks=units * n)
    elif kind == "month":
        moved = _add_months(local, units * n)
    else:
        moved = _add_months(local, 12 * units * n)
    return moved.replace(tzinfo=zone).astimezone(UTC)


def backfill_dates(start: datetime, end: datetime, interval_type: str, units: int = 1, tz: str | None = "UTC") -> list[datetime]:
    """Every date of the backfill, inclusive of ``end`` (UTC, tz-aware)."""
    if start.tzinfo is None or end.tzinfo is None:
        zone = get_zone(tz)
        start = start if start.tzinfo else start.replace(tzinfo=zone)
        end = end if end.tzinfo else end.replace(tzinfo=zone)
    if end < start:
        raise ConfigError(
            f"backfill end {end.isoformat()} is before its start {start.isoformat()}",
            hint="swap --start and --end",
        )
    out: list[datetime] = []
    i = 0
    while True:
        # computed from the start each time, so month ends do not drift (Jan 31 → Feb 29 → Mar 31)
        date = step(start, interval_type, units, tz, n=i)
        if date > end.astimezone(UTC):
            break
        out.append(date)
        i += 1
        if i > MAX_BACKFILL_RUNS:
            raise ConfigError(
                f"the backfill would create more than {MAX_BACKFILL_RUNS} runs",
                hint="use a larger interval or a shorter date range",
            )
    return out


def run_rows(backfill, dates: list[datetime]) -> list[dict]:
    """Rows for ``repo.insert_keyed_runs``: one per date, with the interval variables."""
    rows = []
    previous = None
    for i, date in enumerate(dates):
        end = step(date, backfill.interval_type, backfill.interval_units, backfill.timezone)
        variables = dict(backfill.variables or {})
        variables.update(
            {
                "interval_start_datetime": date.isoformat(),
                "interval_end_datetime": end.isoformat(),
                "interval_seconds": int((end - date).total_seconds()),
                "interval_start_datetime_previous": previous.isoformat() if previous else None,
            }
        )
        previous = date
        rows.append(
            {
                "pipeline_uuid": backfill.pipeline_uuid,
                "backfill_id": backfill.id,
                "schedule_date": date,
                "execution_date": date,
                "interval_start": date,
                "interval_end": end,
                "timezone": backfill.timezone or "UTC",
                "variables": variables,
                "source": "backfill",
                "allow_blocks_to_fail": bool((backfill.settings or {}).get("allow_blocks_to_fail", False)),
            }
        )
    return rows


def start_backfill(session, backfill, *, now: datetime) -> int:
    """Create the backfill's runs (idempotent) and mark it running; returns runs created."""
    from dagsmith.orchestration.store import repo

    if backfill.status == "cancelled":
        raise repo.Conflict(f"backfill {backfill.id} was cancelled; create a new backfill to run it again")
    dates = backfill_dates(backfill.start_datetime, backfill.end_datetime, backfill.interval_type, backfill.interval_units, backfill.timezone)
    created = repo.insert_keyed_runs(session, run_rows(backfill, dates))
    backfill.total_runs = len(dates)
    if backfill.status in (None, "initial", "completed", "failed"):
        backfill.status = "running"
        backfill.started_at = backfill.started_at or now
        backfill.completed_at = None
    repo.audit(session, "backfill.start", "backfill", backfill.id, {"runs": len(dates), "created": created}, now=now)
    session.flush()
    return created


def cancel_backfill(session, backfill, *, now: datetime) -> int:
    from dagsmith.orchestration.store import repo

    cancelled = repo.cancel_backfill_runs(session, backfill.id, now=now)
    backfill.status = "cancelled"
    backfill.completed_at = now
    repo.audit(session, "backfill.cancel", "backfill", backfill.id, {"cancelled_waiting": cancelled}, now=now)
    session.flush()
    return cancelled


def rerun_failed(session, backfill, *, now: datetime) -> int:
    """Queue again only the dates whose run failed (or was cancelled), from their failed blocks."""
    from dagsmith.orchestration.store import repo

    runs, _ = repo.list_runs(session, backfill_id=backfill.id, status=("failed", "cancelled"), limit=MAX_BACKFILL_RUNS)
    for run in runs:
        repo.retry_run(session, run, now=now)
    if runs:
        backfill.status = "running"
        backfill.completed_at = None
    repo.audit(session, "backfill.rerun_failed", "backfill", backfill.id, {"runs": len(runs)}, now=now)
    session.flush()
    return len(runs)


def refresh_status(session, backfill, *, now: datetime) -> str | None:
    """Set a running backfill to completed/failed once every run has finished."""
    from dagsmith.orchestration.store import repo

    if backfill.status != "running":
        return backfill.status
    progress = repo.backfill_progress(session, backfill.id)
    if progress["total"] and progress["done"] == progress["total"]:
        backfill.status = "completed" if progress["completed"] == progress["total"] else "failed"
        backfill.completed_at = now
        session.flush()
    return backfill.status
