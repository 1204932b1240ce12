"""The audit trail: who did what to which object, appended in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dagsmith.orchestration.store.models import AuditEvent, utcnow


def audit(
    session: Session,
    action: str,
    object_type: str,
    object_id: Any = None,
    details: dict | None = None,
    *,
    actor: str = "system",
    now: datetime | None = None,
) -> None:
    session.add(
        AuditEvent(
            at=now or utcnow(),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            details=details or {},
        )
    )



def list_audit(session: Session, *, limit: int = 100) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))

