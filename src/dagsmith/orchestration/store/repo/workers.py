"""Worker rows: registration, heartbeat, the live list, pruning of long-dead ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dagsmith.orchestration.store.models import Worker, utcnow


def register_worker(session: Session, worker_id: str, role: str, hostname: str, pid: int, *, now: datetime | None = None) -> None:
    now = now or utcnow()
    session.merge(Worker(id=worker_id, role=role, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now))



def worker_heartbeat(session: Session, worker_id: str, *, now: datetime | None = None) -> None:
    session.connection().execute(update(Worker.__table__).where(Worker.id == worker_id).values(heartbeat_at=now or utcnow()))



def remove_worker(session: Session, worker_id: str) -> None:
    session.execute(delete(Worker).where(Worker.id == worker_id))



def live_workers(session: Session, *, now: datetime, timeout: float) -> list[Worker]:
    cutoff = now - timedelta(seconds=timeout)
    return list(session.scalars(select(Worker).where(Worker.heartbeat_at >= cutoff).order_by(Worker.started_at)))



def prune_workers(session: Session, *, now: datetime, timeout: float) -> None:
    session.execute(delete(Worker).where(Worker.heartbeat_at < now - timedelta(seconds=timeout * 10)))

