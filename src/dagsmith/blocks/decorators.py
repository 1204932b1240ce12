"""The block decorators. They only mark functions; nothing runs at decoration time.

A block file defines one entry function decorated with its block type
(``@data_loader``, ``@transformer``, …) and any number of ``@test``,
``@condition`` and ``@callback`` functions. The mark is the attribute
``__dagsmith_kind__``; ``dagsmith.blocks.loader`` collects marked functions in
definition order.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

KIND_ATTR = "__dagsmith_kind__"
CALLBACK_ON_ATTR = "__dagsmith_callback_on__"

ENTRY_KINDS = ("data_loader", "transformer", "data_exporter", "custom", "sensor")


def _marker(kind: str) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        setattr(fn, KIND_ATTR, kind)
        return fn

    mark.__name__ = kind
    mark.__qualname__ = kind
    mark.__doc__ = f"Mark the function as this block's ``{kind}`` function."
    return mark


data_loader = _marker("data_loader")
transformer = _marker("transformer")
data_exporter = _marker("data_exporter")
custom = _marker("custom")
sensor = _marker("sensor")
test = _marker("test")
condition = _marker("condition")


def callback(*args: Any) -> Any:
    """``@callback`` (= on success) or ``@callback('success', 'failure', 'cancelled')``."""
    if len(args) == 1 and callable(args[0]):
        fn = args[0]
        setattr(fn, KIND_ATTR, "callback")
        setattr(fn, CALLBACK_ON_ATTR, ("success",))
        return fn
    statuses = tuple(str(a) for a in args) or ("success",)
    unknown = [s for s in statuses if s not in ("success", "failure", "cancelled")]
    if unknown:
        raise ValueError(f"@callback statuses must be success, failure or cancelled, not {unknown}")

    def mark(fn: F) -> F:
        setattr(fn, KIND_ATTR, "callback")
        setattr(fn, CALLBACK_ON_ATTR, statuses)
        return fn

    return mark


def on_success(fn: F) -> F:
    """Legacy Mage callback: called with the run's keyword arguments after success."""
    setattr(fn, KIND_ATTR, "on_success")
    return fn


def on_failure(fn: F) -> F:
    """Legacy Mage callback: called with the run's keyword arguments after failure."""
    setattr(fn, KIND_ATTR, "on_failure")
    return fn


def preprocesser(fn: F) -> F:
    """Accepted for Mage compatibility; preprocessers are called before the entry function."""
    setattr(fn, KIND_ATTR, "preprocesser")
    return fn


#: names seeded into every block module's globals (Mage pre-seeds them too)
SEEDED = {
    "data_loader": data_loader,
    "transformer": transformer,
    "data_exporter": data_exporter,
    "custom": custom,
    "sensor": sensor,
    "test": test,
    "condition": condition,
    "callback": callback,
    "on_success": on_success,
    "on_failure": on_failure,
    "preprocesser": preprocesser,
}
