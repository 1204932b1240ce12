"""Time helpers: the one ``utcnow`` and the one ISO 8601 parser.

Callers decide what a naive value means (UTC, the trigger's zone, …) and how bad text is
reported (their own error naming the field); this module only parses.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now, tz-aware in UTC."""
    return datetime.now(timezone.utc)


def parse_iso(text: str) -> datetime:
    """ISO 8601 text → datetime (``Z`` means UTC; surrounding space ignored; naive stays naive).

    Raises ``ValueError`` for text that is not ISO 8601.
    """
    return datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
