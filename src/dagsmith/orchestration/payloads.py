"""Rules for JSON that callers hand to runs: variables, events, request bodies, idempotency keys.

One rule for every way in (REST API, UI, CLI) and both metadata databases: values must
be plain JSON — no ``NaN`` or ``Infinity`` (SQLite would store them, PostgreSQL's
``json`` refuses them) — nested at most ``MAX_JSON_DEPTH`` levels, and a bad value is a
``ConfigError`` naming the field (``pipeline_run.variables.rate``), answered 422.
"""

from __future__ import annotations

import json
import math
from typing import Any

from dagsmith.errors import ConfigError

MAX_JSON_DEPTH = 64
MAX_KEY_LENGTH = 255


def parse_json_body(raw: bytes | str, *, hint: str) -> Any:
    """Parse a request body; invalid JSON, nesting past ``MAX_JSON_DEPTH`` and NaN/Infinity are ``ConfigError``."""
    try:
        value = json.loads(raw)
    except RecursionError:  # the C parser gives up near the interpreter's recursion limit
        raise ConfigError(f"the request body nests deeper than {MAX_JSON_DEPTH} levels", hint=hint) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the request body is not valid JSON: {exc}", hint=hint) from None
    check_json(value, "body")
    return value


def check_json(value: Any, field: str) -> None:
    """Raise ``ConfigError`` naming the place of a NaN/Infinity, or of nesting deeper than ``MAX_JSON_DEPTH``."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ConfigError(
                    f"{path} is {item!r}: JSON numbers cannot be NaN or Infinity",
                    hint='send null, a finite number, or the text as a string ("NaN")',
                )
            continue
        if not isinstance(item, (dict, list, tuple)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise ConfigError(
                f"{field} nests deeper than {MAX_JSON_DEPTH} levels (at {path})",
                hint="flatten the value, or pass large structures as a file or table the pipeline reads",
            )
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in item.items())
        else:
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))


def check_idempotency_key(key: Any) -> str | None:
    """The caller's idempotency key, checked (text of 1–255 printable characters), or None."""
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ConfigError(
            f"the idempotency key must be text of 1 to {MAX_KEY_LENGTH} printable characters",
            hint="send a unique id per logical call, e.g. a UUID, as the Idempotency-Key header or body idempotency_key",
        )
    return key.strip()
