"""Shared helpers of the API routes: Mage-style list envelopes (the item shapes are ``server.schemas``)."""

from __future__ import annotations

from typing import Any

from fastapi.concurrency import run_in_threadpool

__all__ = ["listing", "run_in_threadpool"]


def listing(plural: str, items: list[Any], count: int | None = None, *, limit: int | None = None, offset: int = 0) -> dict[str, Any]:
    total = len(items) if count is None else count
    return {plural: items, "metadata": {"count": total, "next": bool(limit) and offset + len(items) < total}}
