"""Conditionals and callbacks attached to blocks through a pipeline's ``conditionals:`` and ``callbacks:``.

Mage's formats: a conditional block (``conditionals/<uuid>.py``) holds ``@condition``
functions; its ``upstream_blocks`` name the blocks it guards. Before a guarded block
runs, every condition of every conditional attached to it is called with the
block's inputs and kwargs; all must return a truthy value, or the block (and its
descendants) is ``condition_failed`` — skipped, not failed.

A callback block (``callbacks/<uuid>.py``) holds ``@callback('success'|'failure'|
'cancelled')`` functions (bare ``@callback`` = success) and legacy ``@on_success`` /
``@on_failure`` ones; its ``upstream_blocks`` name its parent blocks. After a parent
ends, the matching functions are called: ``@callback`` ones with the parent's inputs
and kwargs (plus ``parent_block_uuid``, ``pipeline_run``, ``__error`` on failure),
legacy ones with the kwargs only. A callback that raises is logged and recorded;
it never changes the parent's status.

Block files are loaded once per run (``HookSet`` is per run) and shared by the
instances of a dynamic block.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from dagsmith.blocks.loader import LoadedBlock, call_with, load_python_block, user_error
from dagsmith.errors import BlockError, DagsmithError
from dagsmith.project.specs import BlockSpec, PipelineSpec

#: loader "types" for hook files: not an entry kind, so every marked function is collected
_CONDITIONAL_KIND = "conditional"
_CALLBACK_KIND = "callback_block"


@dataclass
class ConditionVerdict:
    passed: bool
    reason: str | None = None
    """Which condition said no (``conditional_uuid.function``)."""


class HookSet:
    """The conditionals and callbacks of one pipeline, for one run."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.guards: dict[str, list[BlockSpec]] = {}
        self.callbacks: dict[str, list[BlockSpec]] = {}
        for cond in spec.conditionals:
            for target in cond.upstream_blocks:
                self.guards.setdefault(target, []).append(cond)
        for cb in spec.callbacks:
            for parent in cb.upstream_blocks:
                self.callbacks.setdefault(parent, []).append(cb)
        self._loaded: dict[str, LoadedBlock] = {}
        self._lock = threading.Lock()

    def guarded(self, block_uuid: str) -> bool:
        return block_uuid in self.guards

    def has_callbacks(self, block_uuid: str) -> bool:
        return block_uuid in self.callbacks

    def _load(self, spec: BlockSpec, kind: str) -> LoadedBlock:
        with self._lock:
            hit = self._loaded.get(spec.uuid)
        if hit is not None:
            return hit
        loaded = load_python_block(spec.path, kind, block_uuid=spec.uuid, fresh=True)
        with self._lock:
            self._loaded.setdefault(spec.uuid, loaded)
        return loaded

    # ---------------------------------------------------------------- conditions
    def check(self, block_uuid: str, inputs: list[Any], kwargs: dict[str, Any]) -> ConditionVerdict:
        """Call every condition guarding ``block_uuid``; the first falsy one decides.

        A condition that raises fails the guarded block (``BlockError`` naming the
        conditional's file and line).
        """
        for cond in self.guards.get(block_uuid, ()):
            try:
                loaded = self._load(cond, _CONDITIONAL_KIND)
            except DagsmithError as exc:
                raise BlockError(
                    f"block '{block_uuid}': its conditional '{cond.uuid}' could not be loaded: {exc.message}",
                    block_uuid=block_uuid,
                    location=getattr(exc, "location", None),
                    user_traceback=getattr(exc, "user_traceback", None),
                ) from None
            fns = loaded.conditions or ([loaded.entry] if loaded.entry else [])
            for fn in fns:
                try:
                    ok = call_with(fn, inputs, kwargs)
                except Exception as exc:  # user code
                    err = user_error(exc, cond.uuid, cond.path, f"in condition {fn.__name__}")
                    raise BlockError(
                        f"block '{block_uuid}': {err.message}",
                        block_uuid=block_uuid,
                        location=err.location,
                        user_traceback=err.user_traceback,
                        hint=f"fix the condition in {cond.relpath}",
                    ) from None
                if not ok:
                    return ConditionVerdict(False, f"{cond.uuid}.{fn.__name__} returned {ok!r}")
        return ConditionVerdict(True)

    # ---------------------------------------------------------------- callbacks
    def run_callbacks(
        self,
        block_uuid: str,
        status: str,
        *,
        inputs: list[Any],
        kwargs: dict[str, Any],
        error: BaseException | None = None,
        log: Callable[[str, str], None] | None = None,
        node_uuid: str | None = None,
    ) -> list[dict[str, Any]]:
        """Run the callbacks of ``block_uuid`` for ``status`` (success | failure | cancelled).

        Returns one record per function called: ``{callback, function, on, status,
        error, seconds}``; ``status`` is ``completed`` or ``failed``. Never raises.
        """
        records: list[dict[str, Any]] = []
        on = {"completed": "success", "failed": "failure", "cancelled": "cancelled"}.get(status, status)
        log = log or (lambda message, level: None)
        for cb in self.callbacks.get(block_uuid, ()):
            try:
                loaded = self._load(cb, _CALLBACK_KIND)
            except DagsmithError as exc:
                msg = f"callback '{cb.uuid}' could not be loaded: {exc.message}"
                log(msg, "error")
                records.append({"callback": cb.uuid, "function": None, "on": on, "status": "failed", "error": msg, "seconds": 0.0})
                continue
            for statuses, fn in loaded.callbacks:
                if on not in statuses:
                    continue
                legacy = getattr(fn, "__dagsmith_kind__", "") in ("on_success", "on_failure")
                kw = dict(kwargs)
                kw["parent_block_uuid"] = node_uuid or block_uuid
                kw["callback_status"] = on
                if error is not None:
                    kw["__error"] = error
                started = time.perf_counter()
                rec: dict[str, Any] = {"callback": cb.uuid, "function": fn.__name__, "on": on, "status": "completed", "error": None}
                try:
                    call_with(fn, [] if legacy else inputs, kw)
                except Exception as exc:  # a callback's error is logged, never fatal
                    err = user_error(exc, cb.uuid, cb.path, f"in callback {fn.__name__}")
                    rec["status"] = "failed"
                    rec["error"] = err.message
                    log(f"callback {cb.uuid}.{fn.__name__} ({on}) failed: {err.message}", "error")
                else:
                    log(f"callback {cb.uuid}.{fn.__name__} ({on}) completed", "info")
                rec["seconds"] = round(time.perf_counter() - started, 6)
                records.append(rec)
        return records
