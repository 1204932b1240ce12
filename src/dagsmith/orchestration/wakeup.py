"""Waking workers when runs are queued in another process: PostgreSQL ``LISTEN``.

A transaction that makes runs claimable (a run created by the API or the scheduler in
another process, a retry, a run handed back or recovered) calls
``repo.announce_queued``, a ``pg_notify`` on ``repo.QUEUE_CHANNEL`` that PostgreSQL
delivers at commit. ``QueueListener`` holds one connection of its own that listens on
that channel and calls ``on_wake`` (the worker's ``notify``) for each delivery, so a
worker-only process claims a new run at once instead of at its next poll. The poll
stays as the safety net: a lost connection is reopened with backoff, and a wake is
given after every (re)connect because notifications sent while nobody listened are gone.
SQLite has no notifications; there the worker is woken in process or polls.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("dagsmith.worker")


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://…`` (SQLAlchemy) → ``postgresql://…`` (libpq), password kept."""
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class QueueListener:
    """A daemon thread listening on the queue channel until ``stop`` is set (see the module docstring)."""

    def __init__(self, url: str, on_wake: Callable[[], None], *, check_every: float = 1.0, backoff_cap: float = 5.0) -> None:
        self.url = libpq_url(url)
        self.on_wake = on_wake
        self.check_every = check_every
        self.backoff_cap = backoff_cap
        #: set once the channel is listened on (tests wait for it; a wake before it may be missed)
        self.listening = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, args=(stop,), name="dagsmith-worker-listen", daemon=True)
        self._thread.start()
        return self._thread

    def _run(self, stop: threading.Event) -> None:
        import psycopg
        from psycopg import sql

        from dagsmith.orchestration.store.repo import QUEUE_CHANNEL

        delay = 0.1
        while not stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(QUEUE_CHANNEL)))
                    self.listening.set()
                    delay = 0.1
                    self.on_wake()  # runs queued while nobody listened were announced to nobody
                    while not stop.is_set():
                        # returns after check_every seconds without a notification, to look at ``stop``
                        for _ in conn.notifies(timeout=self.check_every):
                            self.on_wake()
            except Exception as exc:  # noqa: BLE001 - the poll loop covers the gap; try again later
                self.listening.clear()
                if stop.is_set():
                    return
                log.warning("queue listener lost its database connection (%s); reconnecting in %.1f s", type(exc).__name__, delay)
                stop.wait(delay)
                delay = min(self.backoff_cap, delay * 2)
        self.listening.clear()
