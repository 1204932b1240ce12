"""Pictures of runs, computed server-side and drawn as plain HTML/SVG (no JavaScript library).

- ``gantt``: a run's block timeline on a time axis with one segment per attempt (a retried
  block shows its failed attempts and the wait before the next, not just the last one);
  attempts are read from the block's log records (``block X started (attempt N)`` and
  ``attempt N failed: …``), which the orchestration observer writes anyway.
- ``time_ticks``: round tick positions for a span of seconds.
- ``duration_chart``: a pipeline's runs over time (x = start time, y = duration, colour =
  status) as SVG coordinates.
- ``day_strip``: runs per day and status for the last N days (the Runs page's strip).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from dagsmith.util.clock import parse_iso

UTC = timezone.utc
_STARTED = re.compile(r"^block .+ started \(attempt (\d+)\)$")
_FAILED = re.compile(r"^attempt (\d+) failed: ")
NICE_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400]


def _ts(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = parse_iso(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def attempts_from_logs(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{attempt, start, end, failed}] of one block from its log records (oldest first)."""
    out: list[dict[str, Any]] = []
    for rec in records:
        msg = str(rec.get("message") or "")
        when = _ts(rec.get("timestamp"))
        if when is None:
            continue
        m = _STARTED.match(msg)
        if m:
            out.append({"attempt": int(m.group(1)), "start": when, "end": None, "failed": False})
            continue
        m = _FAILED.match(msg)
        if m and out and out[-1]["attempt"] == int(m.group(1)):
            out[-1]["end"] = when
            out[-1]["failed"] = True
    return out


def time_ticks(span: float, target: int = 6) -> list[float]:
    """Tick offsets in seconds (0, step, 2·step, …) for an axis ``span`` seconds long."""
    if span <= 0:
        return [0.0]
    step = next((s for s in NICE_STEPS if span / s <= target), NICE_STEPS[-1])
    n = int(span // step)
    return [i * step for i in range(n + 1)]


def fmt_offset(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"+{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"+{seconds:g} s"
    if seconds < 3600:
        return f"+{seconds / 60:g} min"
    return f"+{seconds / 3600:g} h"


def gantt(run: Any, blocks: list[Any], attempts: dict[str, list[dict[str, Any]]], now: datetime | None = None) -> dict[str, Any]:
    """Rows of the run's timeline: each block's segments (attempts) as left/width percentages of the span."""
    now = now or datetime.now(UTC)
    starts = [_ts(b.started_at) for b in blocks if b.started_at] + ([_ts(run.started_at)] if run.started_at else [])
    for segs in attempts.values():
        starts += [s["start"] for s in segs]
    starts = [s for s in starts if s]
    t0 = min(starts) if starts else None
    ends: list[datetime] = []
    for b in blocks:
        end = _ts(b.completed_at) or (now if b.status == "running" else None)
        if end:
            ends.append(end)
    if run.completed_at:
        ends.append(_ts(run.completed_at))
    elif run.status == "running":
        ends.append(now)
    t1 = max(ends) if ends else None
    span = max(((t1 - t0).total_seconds() if t0 and t1 else 0.0), 0.001)

    def pct(when: datetime) -> float:
        return min(max((when - t0).total_seconds() / span * 100, 0.0), 100.0)

    rows = []
    for b in blocks:
        row: dict[str, Any] = {"block": b, "segments": [], "secs": None}
        start, end = _ts(b.started_at), _ts(b.completed_at) or (now if b.status == "running" else None)
        if t0 and start:
            end = end or start
            row["secs"] = (end - start).total_seconds()
            segs = attempts.get(b.block_uuid) or []
            if len(segs) > 1:
                for i, seg in enumerate(segs):
                    s_end = seg["end"] or (end if i == len(segs) - 1 else segs[i + 1]["start"])
                    status = "failed" if seg["failed"] else b.status
                    row["segments"].append(_segment(pct(seg["start"]), pct(s_end), status, seg["attempt"], (s_end - seg["start"]).total_seconds()))
                row["first_start"] = segs[0]["start"]
                row["secs"] = (end - segs[0]["start"]).total_seconds()
            else:
                row["segments"].append(_segment(pct(start), pct(end), b.status, max(int(b.attempts or 1), 1), row["secs"]))
        rows.append(row)
    ticks = [{"left": t / span * 100, "label": fmt_offset(t)} for t in time_ticks(span)] if t0 else []
    return {"rows": rows, "span": span, "t0": t0, "ticks": ticks}


def _segment(left: float, right: float, status: str, attempt: int, secs: float | None) -> dict[str, Any]:
    left = min(left, 99.6)
    return {"left": left, "width": max(min(right - left, 100 - left), 0.4), "status": status, "attempt": attempt, "secs": secs}


def duration_chart(runs: list[Any], width: int = 720, height: int = 150, pad: int = 34) -> dict[str, Any]:
    """SVG coordinates of runs (x: start time, y: duration in seconds; colour by status)."""
    points = []
    for r in runs:
        start = _ts(r.started_at)
        if start is None:
            continue
        end = _ts(r.completed_at)
        points.append((start, (end - start).total_seconds() if end else None, r))
    if not points:
        return {"points": [], "width": width, "height": height}
    xs = [p[0] for p in points]
    lo, hi = min(xs), max(xs)
    xspan = max((hi - lo).total_seconds(), 1.0)
    durations = [d for _s, d, _r in points if d is not None]
    ymax = max(durations) if durations else 1.0
    ymax = ymax if ymax > 0 else 1.0
    step = next((s for s in NICE_STEPS if ymax / s <= 4), NICE_STEPS[-1])
    top = step * (int(ymax // step) + 1)
    plot_w, plot_h = width - pad - 10, height - 26
    out = []
    spread = (hi - lo).total_seconds() < 1.0  # runs started together (a backfill): side by side, in order
    for i, (start, dur, r) in enumerate(points):
        if spread:
            x = pad + (i + 0.5) / len(points) * plot_w
        else:
            x = pad + (start - lo).total_seconds() / xspan * plot_w
        y = 8 + plot_h - ((dur if dur is not None else 0) / top) * plot_h
        out.append({"x": round(x, 1), "y": round(y, 1), "run": r, "secs": dur, "status": r.status})
    yticks = [{"y": round(8 + plot_h - v / top * plot_h, 1), "label": _fmt_secs_short(v)} for v in [i * step for i in range(int(top / step) + 1)]]
    xticks = [{"x": pad, "label": lo.strftime("%m-%d %H:%M")}, {"x": pad + plot_w, "label": hi.strftime("%m-%d %H:%M")}]
    return {"points": out, "width": width, "height": height, "yticks": yticks, "xticks": xticks, "pad": pad, "base": 8 + plot_h}


def _fmt_secs_short(v: float) -> str:
    if v == 0:
        return "0"
    if v < 1:
        return f"{v * 1000:.0f}ms"
    if v < 120:
        return f"{v:g}s"
    if v < 7200:
        return f"{v / 60:g}m"
    return f"{v / 3600:g}h"


STRIP_STATUSES = ("completed", "failed", "running", "initial", "cancelled")


def day_strip(counts: list[tuple[Any, str, int]], days: int = 30, today: datetime | None = None) -> dict[str, Any]:
    """Per day of the last ``days`` days: runs by status (stacked bar heights in %) from (day, status, count) rows."""
    today = (today or datetime.now(UTC)).date()
    first = today - timedelta(days=days - 1)
    per: dict[Any, dict[str, int]] = {}
    for day, status, n in counts:
        if isinstance(day, str):
            day = parse_iso(day).date()
        elif isinstance(day, datetime):
            day = day.date()
        if not first <= day <= today:
            continue
        per.setdefault(day, {})[status] = per.setdefault(day, {}).get(status, 0) + int(n)
    most = max((sum(v.values()) for v in per.values()), default=0) or 1
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        by = per.get(d, {})
        total = sum(by.values())
        stack = [{"status": s, "count": by[s], "height": by[s] / most * 100} for s in STRIP_STATUSES if by.get(s)]
        out.append({"day": d, "total": total, "stack": stack})
    return {"days": out, "max": most, "first": first, "last": today}
