"""What every aggregate of the store shares: its error types, the dialect switch, tokens.

``NotFound`` and ``Conflict`` are the store's own errors (the API turns them into 404 and
409); ``insert_for`` picks the dialect's ``INSERT`` so ``ON CONFLICT`` works on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import secrets as _secrets

from sqlalchemy import text
from sqlalchemy.orm import Session

from dagsmith.errors import DagsmithError

#: PostgreSQL channel on which a transaction that makes runs claimable wakes the workers (``worker.QueueListener``)
QUEUE_CHANNEL = "dagsmith_queue"

BLOCK_DONE = ("completed", "failed", "cancelled", "upstream_failed", "condition_failed")


class NotFound(DagsmithError):
    """A row the caller asked for does not exist."""


class Conflict(DagsmithError):
    """The request clashes with the current state (e.g. retrying a running run)."""


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def insert_for(session: Session):
    """The dialect's ``insert`` construct (it has ``on_conflict_do_nothing/update``)."""
    return insert_for_dialect(dialect(session))


def insert_for_dialect(name: str):
    """``insert_for`` by dialect name (for statements built once and cached per dialect)."""
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def new_token() -> str:
    return _secrets.token_hex(16)


def announce_queued(session: Session) -> None:
    """Tell listening workers that runs can be claimed; PostgreSQL delivers it at commit (never on rollback).

    Several announcements in one transaction reach a listener once. SQLite has no
    notifications: its workers are in the process that queued the run, or poll.
    """
    if dialect(session) == "postgresql":
        session.connection().execute(_NOTIFY, {"channel": QUEUE_CHANNEL})


_NOTIFY = text("SELECT pg_notify(:channel, '')")
