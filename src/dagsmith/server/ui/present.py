"""Template helpers of the UI: number and clock formatting, error display (added to the Jinja environment)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def fmt_num(value: Any) -> str:
    """A number short enough for a profile line: 1,234,567 · 12.35 · 1.2e-05."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def fmt_clock(epoch: float | None) -> str:
    if not epoch:
        return "—"
    return datetime.fromtimestamp(float(epoch), timezone.utc).strftime("%H:%M:%S UTC")


def extend(env: Any) -> None:
    from dagsmith.server.ui.jobs import error_view

    env.filters["num"] = fmt_num
    env.filters["clock"] = fmt_clock
    env.globals["error_view"] = error_view
