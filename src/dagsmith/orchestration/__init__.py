"""Orchestration: the metadata database, the scheduler, the workers and the run records.

Owner: orchestration. Key contracts:

* Every run (CLI, schedule, API, backfill, UI) is a ``pipeline_runs`` row; a schedule's
  (trigger, execution date) pair is unique in the database, so a period runs once even
  with several schedulers on one PostgreSQL database.
* Only ``store/repo/`` writes SQL. Everything else calls it with a ``Session``.
* Time is injected (``now`` arguments, ``Clock``) so schedules are tested without sleeping.
* ``engine`` never imports this package; ``history.RunHistory`` records what the engine
  reports, for server runs and (replayed from the inbox) CLI runs alike.

Imports stay lazy: the CLI imports this package at start-up.
"""

from __future__ import annotations

__all__ = ["OrchestrationSettings", "Database"]


def __getattr__(name: str):
    if name == "OrchestrationSettings":
        from dagsmith.orchestration.settings import OrchestrationSettings

        return OrchestrationSettings
    if name == "Database":
        from dagsmith.orchestration.db import Database

        return Database
    raise AttributeError(name)
