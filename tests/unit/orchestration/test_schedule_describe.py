"""Schedules in words and previews of their ticks and of backfill dates (orchestration.scheduler.describe)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dagsmith.errors import ConfigError
from dagsmith.orchestration.scheduler.describe import backfill_preview, describe_schedule, schedule_preview


@pytest.mark.parametrize(
    ("interval", "words"),
    [
        ("@once", "once, as soon as the trigger is enabled"),
        ("@daily", "every day at 00:00"),
        ("*/15 * * * *", "every 15 minutes"),
        ("30 5 * * 1-5", "every weekday (Mon–Fri) at 05:30"),
        ("0 6 1 * *", "on day 1 of every month at 06:00"),
        ("0 */3 * * *", "every 3 hours at minute 0"),
    ],
)
def test_schedules_in_words(interval, words):
    assert describe_schedule(interval) == words


def test_schedule_preview_lists_the_next_ticks_in_the_trigger_zone():
    now = datetime(2024, 3, 9, 12, 0, tzinfo=timezone.utc)
    preview = schedule_preview("0 5 * * *", "America/New_York", count=3, now=now)
    assert [t.strftime("%Y-%m-%d %H:%M %Z") for t in preview["times"]] == [
        "2024-03-10 05:00 EDT", "2024-03-11 05:00 EDT", "2024-03-12 05:00 EDT",
    ]
    assert preview["description"] == "every day at 05:00"


def test_backfill_preview_counts_dates_and_names_a_bad_interval():
    start, end = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 3, tzinfo=timezone.utc)
    preview = backfill_preview(start, end, "day", 1, "UTC")
    assert preview["count"] == 3 and [d.day for d in preview["dates"]] == [1, 2, 3]
    with pytest.raises(ConfigError, match="interval 'fortnight' is unknown"):
        backfill_preview(start, end, "fortnight", 1, "UTC")
