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
    """The process's DB at once; its worker and scheduler are built by ``start()``.

    Building them imports the scheduler and worker machinery, which the server's first page
    does not need: ``dagsmith start`` calls ``start()`` once that page is out. Before it,
    ``notify`` and ``cancel_local`` do nothing (the worker's first poll finds queued runs).
    """

    def __init__(self, settings, *, roles: Iterable[str] = ROLES, run_fn: Callable | None = None, clock=None, db=None) -> None:
        from dagsmith.orchestration.db import get_database

        self.settings = settings
        self.roles = tuple(roles)
        self.db = db or get_database(settings)
        self.stop_event = threading.Event()
        self._run_fn = run_fn
        self._clock = clock
        self.worker = None
        self.scheduler = None
        self._started = False

    def _build(self) -> None:
        from dagsmith.orchestration.scheduler.loop import Scheduler
        from dagsmith.orchestration.worker import Worker

        kwargs = {"clock": self._clock} if self._clock else {}
        if "worker" in self.roles:
            self.worker = Worker(self.settings, self.db, run_fn=self._run_fn, **kwargs)
        if "scheduler" in self.roles:
            self.scheduler = Scheduler(self.settings, self.db, on_created=self.notify, **kwargs)
        if self.scheduler is not None and self.worker is not None:
            self.scheduler.local_worker_id = self.worker.worker_id

    def notify(self) -> None:
        if self.worker is not None:
            self.worker.notify()

    def cancel_local(self, run_id: int) -> bool:
        return bool(self.worker and self.worker.cancel_local(run_id))

    def start(self) -> "Runtime":
        if self._started:
            return self
        self._started = True
        self._build()
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
