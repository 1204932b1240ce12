"""``DbContact``: may this process judge other workers' heartbeats as stale right now?

A run is taken over when its heartbeat is older than ``heartbeat_timeout``. That is only
fair if its worker could have written a heartbeat during that time: after a database
outage, or a long lock that stalled every writer (a 40 s table lock), every heartbeat
is old, and taking runs over then re-runs work whose end is about to be written.

So each scheduler and worker notes its own contact with the database: a failed call,
or a gap between two successful calls longer than half the timeout, means it was cut
off too, and it judges nobody until it has had working contact for a full timeout —
the time the others get to catch up. A new process counts as in contact since a full
timeout before it started, so a worker started after a crash takes over at once.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class DbContact:
    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = float(timeout)
        self.clock = clock
        now = clock()
        self._healthy_since: float = now - self.timeout
        self._last_ok: float = now
        self._failed = False
        self._lock = threading.Lock()

    def ok(self) -> None:
        """A database call just succeeded."""
        with self._lock:
            now = self.clock()
            if self._failed or now - self._last_ok > self.timeout / 2:
                self._healthy_since = now
            self._failed = False
            self._last_ok = now

    def failed(self) -> None:
        """A database call just failed."""
        with self._lock:
            self._failed = True

    def may_judge(self) -> bool:
        """True when this process has had working contact for a full timeout."""
        with self._lock:
            now = self.clock()
            if self._failed or now - self._last_ok > self.timeout / 2:
                return False
            return now - self._healthy_since >= self.timeout
