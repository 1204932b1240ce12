"""Running one pipeline run: plan, runner, observers, results.

Public API: ``run_pipeline`` (keywords) or ``execute_run(RunConfig)`` / ``Run(config).execute()``
(``Run.cancel()`` stops a run from any thread), ``RunResult``, ``BlockResult``,
``RunObserver``, ``NullObserver``, ``RecordingObserver``, ``pipeline_problems``, ``new_run_id``.
Imported lazily so ``import dagsmith.engine`` stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "run_pipeline": "dagsmith.engine.runner",
    "execute_run": "dagsmith.engine.runner",
    "Run": "dagsmith.engine.runner",
    "RunConfig": "dagsmith.engine.config",
    "new_run_id": "dagsmith.engine.runner",
    "split_outputs": "dagsmith.engine.runner",
    "RunResult": "dagsmith.engine.results",
    "BlockResult": "dagsmith.engine.results",
    "RunObserver": "dagsmith.engine.observer",
    "NullObserver": "dagsmith.engine.observer",
    "RecordingObserver": "dagsmith.engine.observer",
    "pipeline_problems": "dagsmith.engine.validation",
    "validate_for_run": "dagsmith.engine.validation",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dagsmith.engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = list(_EXPORTS)
