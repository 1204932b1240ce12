"""Pictures of runs computed for the pages: attempts from log records, time axis ticks, the day strip."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from dagsmith.server.ui.insights import attempts_from_logs, day_strip, duration_chart, gantt, time_ticks

UTC = timezone.utc
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _rec(seconds: float, message: str) -> dict:
    return {"timestamp": (T0 + timedelta(seconds=seconds)).isoformat(), "message": message}


def test_attempts_of_a_retried_block_come_from_its_log_records():
    records = [_rec(0, "block flaky started (attempt 1)"), _rec(0.5, "some output"), _rec(1.0, "attempt 1 failed: boom; retrying"),
               _rec(3.0, "block flaky started (attempt 2)"), _rec(4.0, "block flaky completed")]
    segs = attempts_from_logs(records)
    assert [(s["attempt"], s["failed"]) for s in segs] == [(1, True), (2, False)]
    assert segs[0]["end"] == T0 + timedelta(seconds=1) and segs[1]["end"] is None
    run = SimpleNamespace(started_at=T0, completed_at=T0 + timedelta(seconds=4), status="completed")
    block = SimpleNamespace(block_uuid="flaky", started_at=T0 + timedelta(seconds=3), completed_at=T0 + timedelta(seconds=4), status="completed", attempts=2)
    row = gantt(run, [block], {"flaky": segs})["rows"][0]
    assert [(s["attempt"], s["status"], round(s["left"]), round(s["width"])) for s in row["segments"]] == [(1, "failed", 0, 25), (2, "completed", 75, 25)]
    assert row["secs"] == 4.0  # from the first attempt's start


def test_time_ticks_are_round():
    assert time_ticks(7.4) == [0, 2, 4, 6]
    assert time_ticks(0.3)[:3] == [0, 0.05, 0.1]
    assert time_ticks(3600)[1] == 600


def test_day_strip_and_duration_chart():
    today = datetime(2024, 3, 30, 15, tzinfo=UTC)
    strip = day_strip([("2024-03-30", "completed", 3), ("2024-03-30", "failed", 1), ("2024-03-01", "completed", 2), ("2024-02-01", "completed", 9)], today=today)
    assert len(strip["days"]) == 30 and strip["days"][-1]["total"] == 4 and strip["days"][0]["total"] == 2
    assert strip["max"] == 4  # February is outside the window
    assert [(s["status"], s["count"]) for s in strip["days"][-1]["stack"]] == [("completed", 3), ("failed", 1)]
    runs = [SimpleNamespace(id=i, started_at=T0, completed_at=T0 + timedelta(seconds=2 + i), status="completed") for i in range(3)]
    chart = duration_chart(runs)
    xs = [p["x"] for p in chart["points"]]
    assert xs == sorted(xs) and len(set(xs)) == 3  # started together: spread out, not on top of each other
    ys = [p["y"] for p in chart["points"]]
    assert ys[0] > ys[1] > ys[2]  # longer runs higher up
