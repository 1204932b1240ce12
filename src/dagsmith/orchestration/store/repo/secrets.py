"""Secret rows (ciphertext only: ``orchestration.secrets`` encrypts and decrypts)."""

from __future__ import annotations

import functools

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dagsmith.orchestration.store.models import Secret, utcnow


def put_secret(session: Session, name: str, ciphertext: bytes, *, scope: str = "project") -> Secret:
    row = session.scalars(select(Secret).where(Secret.scope == scope, Secret.name == name)).first()
    if row is None:
        row = Secret(name=name, scope=scope, value=ciphertext)
        session.add(row)
    else:
        row.value = ciphertext
        row.updated_at = utcnow()
    session.flush()
    return row



def get_secret_row(session: Session, name: str, *, scope: str = "project") -> Secret | None:
    return session.scalars(select(Secret).where(Secret.scope == scope, Secret.name == name)).first()



def list_secrets(session: Session, scope: str | None = None) -> list[Secret]:
    stmt = select(Secret).order_by(Secret.scope, Secret.name)
    if scope:
        stmt = stmt.where(Secret.scope == scope)
    return list(session.scalars(stmt))



def secret_ciphertexts(session: Session) -> list[bytes]:
    """Every stored value (ciphertext), oldest first: a worker reads them in its claim's transaction
    to know, without a transaction of its own, whether the masking source must be read again."""
    return list(session.scalars(_ciphertexts_stmt()))


@functools.cache
def _ciphertexts_stmt():
    return select(Secret.__table__.c.value).order_by(Secret.__table__.c.id)


def delete_secret(session: Session, name: str, *, scope: str = "project") -> bool:
    return bool(session.execute(delete(Secret).where(Secret.scope == scope, Secret.name == name)).rowcount)

