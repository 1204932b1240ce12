"""Config flags written as text: what counts as "on" and "off"."""

from __future__ import annotations

from typing import Any

#: the words that switch a flag on / off (any case, surrounding space ignored)
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def truthy(value: Any, *, default: bool = False) -> bool:
    """A flag from YAML, a form or the environment: ``true``/``yes``/``on``/``1`` are on,
    ``false``/``no``/``off``/``0``/empty are off.

    Other text means ``default``: off for a flag that turns something on, so a typo never
    does; a caller whose flag protects something (``smtp_starttls``) passes ``default=True``
    so a typo never turns the protection off. Non-text values use Python truth (YAML
    already gives ``true`` as ``True``).
    """
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        return default
    return bool(value)
