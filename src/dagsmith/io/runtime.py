"""The runtime variables of the block that is running now, for connectors called from block code.

A Mage exporter calls ``Postgres.export(df, …)`` without passing its ``**kwargs``;
connectors still need two things from the run: the default partition of
``if_exists='replace_partition'`` (the run's interval) and the block's
``on_schema_change`` setting. ``blocks.loader.call_with`` sets them here, in a
context variable, for as long as the user's function runs (threads started by
user code do not see them: pass ``partition_value=`` there).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Mapping

_VARIABLES: ContextVar[Mapping[str, Any] | None] = ContextVar("dagsmith_block_variables", default=None)


class block_variables:
    """Make ``variables`` (a block's runtime keyword arguments) current while the block runs (``with``)."""

    __slots__ = ("variables", "token")

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables

    def __enter__(self) -> None:
        self.token = _VARIABLES.set(self.variables)

    def __exit__(self, *exc: object) -> None:
        _VARIABLES.reset(self.token)


def current_variables() -> Mapping[str, Any]:
    """The running block's runtime variables (empty outside a block)."""
    return _VARIABLES.get() or {}


def block_setting(name: str, default: Any = None) -> Any:
    """A key of the running block's ``configuration`` (pipeline metadata.yaml), else ``default``."""
    config = current_variables().get("configuration")
    if isinstance(config, Mapping):
        value = config.get(name)
        if value not in (None, ""):
            return value
    return default
