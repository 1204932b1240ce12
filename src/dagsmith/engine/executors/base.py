"""The executor interface: where block attempts run. The run loop decides everything else.

An executor takes ``BlockTask``\\s (``submit`` → a handle), tells the run loop
when one is done (``session.post(("done", handle))``), turns a done handle into
a ``BlockOutcome`` (``outcome``; trouble of its own machinery becomes a failed
outcome, never an exception), can interrupt one attempt (a timeout) or all of
them (a cancelled run), says how many attempts can run at once (``capacity``)
and whether it has lost the means to go on (``problem``: a lost scheduler).
It is a context manager around one run (``open``/``close``).

Executors never retry, never time out on their own, and never touch the plan:
the run loop in ``engine.runner`` does (Dagster's ActiveExecution, Kedro's
runner). ``remote`` executors run tasks in other processes: those tasks publish
their outputs to the variables store before they return.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dagsmith.engine.task import BlockOutcome, BlockTask, Ref


@dataclass
class RunSession:
    """What a run tells its executor when it opens it."""

    run_id: str
    pipeline_uuid: str
    project_root: Path
    cancel_event: threading.Event
    post: Callable[[tuple], None]
    """Hand an event to the run loop; safe from any thread."""
    emit_log: Callable[[str, dict], None]
    """A running block's log record (node, record) to the run's observers; safe from any thread."""
    read: Callable[[Ref], Any]
    """A value the run loop holds in memory, or reads from the store."""
    store_root: str | None = None
    worker_setup: tuple[str, ...] = ()
    max_workers: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Executor(ABC):
    """Runs block attempts for one run at a time."""

    name = "executor"
    remote = False

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @abstractmethod
    def open(self, session: RunSession) -> None:
        """Get ready to run ``session``'s tasks."""

    @abstractmethod
    def close(self) -> None:
        """Release what ``open`` took; tasks still running are abandoned."""

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many attempts may run at once."""

    @abstractmethod
    def submit(self, task: BlockTask) -> Any:
        """Start ``task``; returns a handle that is posted as ``("done", handle)`` when it ends."""

    @abstractmethod
    def outcome(self, handle: Any) -> BlockOutcome:
        """The outcome of a done handle (a failed one when the executor itself failed)."""

    @abstractmethod
    def interrupt(self, handle: Any, exc_type: type[BaseException]) -> None:
        """Raise ``exc_type`` inside a running attempt (a timeout or a cancel)."""

    def cancel_all(self) -> None:
        """The run was cancelled: stop every attempt of it."""

    def problem(self) -> str | None:
        """Why this executor cannot go on (e.g. its scheduler is gone), or None."""
        return None

    @property
    def abandons_threads(self) -> bool:
        """True when interrupted attempts may keep a thread of this process busy."""
        return False
