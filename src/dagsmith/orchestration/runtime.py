"""The orchestration services of one process: database, scheduler and worker, started and stopped together.

``dagsmith start`` builds a ``Runtime`` for its roles (``server``, ``scheduler``,
``worker``; all three by default). The server uses ``notify()`` so a run queued by an
API call starts at once in this process, and ``cancel_local()`` so a cancel reaches a
running block without waiting for the next heartbeat.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable

ROLES = ("server", "scheduler", "worker")


class Runtime:
    def __init__(self, settings, *, roles: Iterable[str] = ROLES, run_fn: Callable | None = None, clock=None, db=None) -> None:
        from dagsmith.orchestration.db import get_database
        from dagsmith.orchestration.scheduler.loop import Scheduler
        from dagsmith.orchestration.worker import Worker

        self.settings = settings
        self.roles = tuple(roles)
        self.db = db or get_database(settings)
        self.stop_event = threading.Event()
        kwargs = {"clock": clock} if clock else {}
        self.worker = Worker(settings, self.db, run_fn=run_fn, **kwargs) if "worker" in self.roles else None
        self.scheduler = (
            Scheduler(settings, self.db, on_created=self.notify, **kwargs) if "scheduler" in self.roles else None
        )
        if self.scheduler is not None and self.worker is not None:
            self.scheduler.local_worker_id = self.worker.worker_id
        self._started = False

    def notify(self) -> None:
        if self.worker is not None:
            self.worker.notify()

    def cancel_local(self, run_id: int) -> bool:
        return bool(self.worker and self.worker.cancel_local(run_id))

    def start(self) -> "Runtime":
        if self._started:
            return self
        self._started = True
        if self.worker is not None:
            self.worker.start(self.stop_event)
        if self.scheduler is not None:
            self.scheduler.start(self.stop_event)
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop ticking and claiming; in-flight runs finish or go back to the queue."""
        self.stop_event.set()
        if self.worker is not None:
            self.worker.shutdown(grace)

    def __enter__(self) -> "Runtime":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
