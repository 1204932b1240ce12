"""How a run reports what happens: the ``RunObserver`` protocol.

The engine calls these hooks with keyword-only arguments (and may add new
keywords later: implementations take ``**kw``). ``orchestration`` implements
one that writes the metadata DB and logs; the CLI one draws the live view;
tests use ``RecordingObserver``. A hook that raises is logged and ignored: an
observer can never break a run.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, Sequence

log = logging.getLogger("dagsmith.engine")


class RunObserver(Protocol):
    def on_run_start(self, *, run_id: str, pipeline_uuid: str, blocks: list[str], **kw: Any) -> None: ...
    def on_block_start(self, *, run_id: str, block_uuid: str, attempt: int, started_at: Any, **kw: Any) -> None: ...
    def on_block_log(self, *, run_id: str, block_uuid: str, record: dict, **kw: Any) -> None: ...
    def on_block_end(self, *, run_id: str, block_uuid: str, status: str, result: Any, **kw: Any) -> None: ...
    def on_run_end(self, *, run_id: str, status: str, result: Any, **kw: Any) -> None: ...


# Optional hook (called only on observers that define it):
#   on_blocks_added(*, run_id, parent, blocks, **kw): dynamic children of ``parent`` were created.


class NullObserver:
    """Does nothing; subclass it and override the hooks you need."""

    def on_run_start(self, **kw: Any) -> None:
        pass

    def on_block_start(self, **kw: Any) -> None:
        pass

    def on_block_log(self, **kw: Any) -> None:
        pass

    def on_block_end(self, **kw: Any) -> None:
        pass

    def on_blocks_added(self, **kw: Any) -> None:
        pass

    def on_run_end(self, **kw: Any) -> None:
        pass


class RecordingObserver(NullObserver):
    """Keeps every event as ``(hook name, kwargs)``; handy in tests."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def _rec(self, name: str, kw: dict) -> None:
        self.events.append((name, kw))

    def on_run_start(self, **kw: Any) -> None:
        self._rec("run_start", kw)

    def on_block_start(self, **kw: Any) -> None:
        self._rec("block_start", kw)

    def on_block_log(self, **kw: Any) -> None:
        self._rec("block_log", kw)

    def on_block_end(self, **kw: Any) -> None:
        self._rec("block_end", kw)

    def on_blocks_added(self, **kw: Any) -> None:
        self._rec("blocks_added", kw)

    def on_run_end(self, **kw: Any) -> None:
        self._rec("run_end", kw)


class Fanout:
    """Sends each event to several observers; a failing observer is logged, never raised."""

    def __init__(self, observers: Sequence[Any]) -> None:
        self.observers = [o for o in observers if o is not None]

    def _call(self, hook: str, kw: dict) -> None:
        for obs in self.observers:
            fn = getattr(obs, hook, None)
            if fn is None:
                continue
            try:
                fn(**kw)
            except Exception:  # an observer must never break a run
                log.exception("observer %r failed in %s", obs, hook)

    def on_run_start(self, **kw: Any) -> None:
        self._call("on_run_start", kw)

    def on_block_start(self, **kw: Any) -> None:
        self._call("on_block_start", kw)

    def on_block_log(self, **kw: Any) -> None:
        self._call("on_block_log", kw)

    def on_block_end(self, **kw: Any) -> None:
        self._call("on_block_end", kw)

    def on_blocks_added(self, **kw: Any) -> None:
        self._call("on_blocks_added", kw)

    def on_run_end(self, **kw: Any) -> None:
        self._call("on_run_end", kw)
