"""Run variables given on the command line: ``--runtime-vars JSON`` and ``-v/--var key=value``.

One parser for every command that takes them (``run``, ``backfill``, ``trigger create``), so
they accept the same things and fail with the same clear message.
"""

from __future__ import annotations

import json
from typing import Any, Iterable


def parse_vars(runtime_vars: str | None, pairs: Iterable[str] | None) -> dict[str, Any]:
    """``--runtime-vars`` (a JSON object) and then each ``key=value`` (JSON if it parses, else text)."""
    from dagsmith.errors import DagsmithError

    out: dict[str, Any] = {}
    if runtime_vars:
        try:
            loaded = json.loads(runtime_vars)
        except json.JSONDecodeError as exc:
            raise DagsmithError(
                f"--runtime-vars is not valid JSON: {exc.msg} at character {exc.pos}",
                hint='example: --runtime-vars \'{"year": 2021, "month": 1}\'',
            ) from None
        if not isinstance(loaded, dict):
            raise DagsmithError("--runtime-vars must be a JSON object of name: value")
        out.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DagsmithError(f"-v/--var expects key=value, got {pair!r}", hint="example: -v month=3")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
