"""Start, cancel or re-run a backfill by id with its audit entry (the web UI's buttons).

The date arithmetic and the run rows are ``scheduler.backfills``; this module is the one
short transaction around them, and stops the runs this process is executing on cancel.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

ACTIONS = ("start", "cancel", "rerun")


def change_backfill(db, backfill_id: int, action: str, *, actor: str, local_cancel: Callable[[int], None] | None = None) -> str:
    """Apply ``action`` (start, cancel or rerun its failed dates) to a backfill; returns its pipeline uuid.

    Raises ``DagsmithError`` for an unknown backfill or a change its state does not allow.
    """
    from dagsmith.orchestration.scheduler import backfills as bf
    from dagsmith.orchestration.store import repo

    now = datetime.now(timezone.utc)
    with db.session() as session:
        backfill = repo.get_backfill(session, backfill_id)
        pipeline_uuid = backfill.pipeline_uuid
        if action == "start":
            bf.start_backfill(session, backfill, now=now)
        elif action == "cancel":
            bf.cancel_backfill(session, backfill, now=now)
        elif action == "rerun":
            bf.rerun_failed(session, backfill, now=now)
        repo.audit(session, f"backfill.{action}", "backfill", backfill_id, {}, actor=actor)
    if action == "cancel" and local_cancel is not None:
        with db.read() as session:
            for run in repo.list_runs(session, backfill_id=backfill_id, status="running", limit=10000)[0]:
                local_cancel(run.id)
    return pipeline_uuid
