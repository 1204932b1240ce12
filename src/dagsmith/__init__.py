"""dagsmith: a fast, dependable data-pipeline orchestrator that runs Mage projects unchanged.

Block authors import the decorators from here::

    from dagsmith import data_loader, transformer, data_exporter, test

Everything else is reached through its package (``dagsmith.engine``,
``dagsmith.project``, ``dagsmith.io``…); names here load lazily to keep the
CLI's start-up fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

_DECORATORS = (
    "data_loader",
    "transformer",
    "data_exporter",
    "custom",
    "sensor",
    "test",
    "condition",
    "callback",
    "on_success",
    "on_failure",
)


def __getattr__(name: str) -> "object":  # no typing import: it would slow every CLI start
    if name in _DECORATORS:
        from dagsmith.blocks import decorators

        return getattr(decorators, name)
    if name == "run_pipeline":
        from dagsmith.engine.runner import run_pipeline

        return run_pipeline
    if name == "get_repo_path":
        from dagsmith.project.layout import get_repo_path

        return get_repo_path
    raise AttributeError(f"module 'dagsmith' has no attribute {name!r}")


__all__ = [*_DECORATORS, "run_pipeline", "get_repo_path", "__version__"]
