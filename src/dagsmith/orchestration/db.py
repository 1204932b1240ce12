"""Connecting to the metadata database and migrating it.

SQLite (default, ``<data dir>/dagsmith.db``) runs in WAL mode with a busy timeout,
and every write transaction starts with ``BEGIN IMMEDIATE`` so a reader never has to
upgrade its lock mid-transaction (the cause of "database is locked" under several
processes). PostgreSQL is used when ``DAGSMITH_DATABASE_URL`` is set. Migrations
(Alembic, ``store/migrations``) run on ``Database.migrate()``; concurrent starts are
serialised by a PostgreSQL advisory lock or SQLite's write lock. When the database is
already at the newest revision (one plain ``SELECT`` of ``alembic_version`` against the
head read from the revision files' text), Alembic is neither imported nor run, which keeps
``dagsmith start`` fast; a new, empty database gets the models' schema and the head revision
in one transaction (``create_all``, the same schema, held equal by the store's tests).
"""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from dagsmith.errors import ConfigError
from dagsmith.orchestration.settings import OrchestrationSettings

MIGRATIONS_DIR = Path(__file__).parent / "store" / "migrations"
_MIGRATION_LOCK_KEY = 7_351_218_044  # arbitrary, stable advisory-lock key
_REVISION_RE = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN_RE = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.M)
_head_cache: list[str | None] = []


def head_revision() -> str | None:
    """The newest migration revision, read from ``store/migrations/versions/*.py`` as text.

    None when it cannot be told (no files, several heads, an unreadable file); callers
    then let Alembic decide.
    """
    if _head_cache:
        return _head_cache[0]
    revisions: set[str] = set()
    parents: set[str] = set()
    head: str | None = None
    try:
        for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
            source = path.read_text(encoding="utf-8")
            found = _REVISION_RE.search(source)
            down = _DOWN_RE.search(source)
            if found is None or down is None:
                raise ValueError(f"{path.name}: no revision / down_revision line")
            revisions.add(found.group(1))
            parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
        heads = revisions - parents
        head = heads.pop() if len(heads) == 1 else None
    except (OSError, ValueError):
        head = None
    _head_cache.append(head)
    return head


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        hide_parameters=True,  # bound values (trigger tokens, variables) never appear in an error text
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_size=20,
        max_overflow=40,
        pool_timeout=60,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised through every test
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - exercised through every test
        if conn.get_execution_options().get("readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


#: a pooled PostgreSQL connection idle longer than this is pinged before it is handed out
PING_AFTER_IDLE = 5.0


def _postgres_engine(url: str) -> Engine:
    """PostgreSQL engine whose pool pings only connections that sat idle a while.

    ``pool_pre_ping`` costs a round trip on every checkout — a fifth of a busy worker's
    time in profiles. A connection used a moment ago is almost always alive; one that
    died anyway (the server restarted, ``pg_terminate_backend``) fails its statement,
    SQLAlchemy then discards the whole pool, and callers that matter (the run recorder,
    the poll loop) retry.
    """
    import time

    from sqlalchemy import exc

    engine = create_engine(url, pool_size=20, max_overflow=40, hide_parameters=True)  # bound values never reach error text

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_conn, record):  # pragma: no cover - exercised through every PostgreSQL test
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, proxy):  # pragma: no cover - exercised through every PostgreSQL test
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            dbapi_conn.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as error:  # noqa: BLE001 - any failure means: take another connection
            raise exc.DisconnectionError(f"pooled connection is gone: {error}") from error

    return engine


class Database:
    """An engine, a session factory and the migration entry point for one metadata DB."""

    def __init__(self, settings: OrchestrationSettings) -> None:
        self.settings = settings
        self.url = settings.url
        self.dialect = self.url.split(":", 1)[0].split("+", 1)[0]
        from dagsmith.project.masking import add_url_password

        add_url_password(self.url)
        if self.dialect == "sqlite":
            from dagsmith.project.layout import private_dir, private_file

            private_dir(settings.data_dir)
            db_file = self.url.split("///", 1)[-1]
            if db_file and db_file != ":memory:":
                private_file(Path(db_file))  # created 0600 before SQLite opens it; WAL/SHM files copy its mode
            self.engine = _sqlite_engine(self.url)
        elif self.dialect in ("postgresql", "postgres"):
            self.dialect = "postgresql"
            try:
                import psycopg  # noqa: F401
            except ImportError as exc:  # pragma: no cover
                from dagsmith.errors import MissingDependencyError

                raise MissingDependencyError("A PostgreSQL metadata database", "postgres", "psycopg") from exc
            self.engine = _postgres_engine(self.url)
        else:
            raise ConfigError(
                f"metadata database URL {self.url.split('@')[-1]!r} uses an unsupported database",
                hint="set DAGSMITH_DATABASE_URL to postgresql://user@host:port/db, or unset it for SQLite",
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.engine.execution_options(readonly=True), expire_on_commit=False)
        self._migrated = False
        self._lock = threading.Lock()

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A write session: committed when the block ends, rolled back on error."""
        with self._sessions() as session:
            with session.begin():
                yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (no write lock on SQLite)."""
        with self._read_sessions() as session:
            with session.begin():
                yield session

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent, safe to run concurrently)."""
        with self._lock:
            if self._migrated:
                return
            if not (self.is_current() or self._create_if_empty()):
                self.upgrade()
            self._migrated = True

    def upgrade(self) -> None:
        """Alembic's upgrade to the head revision (``migrate`` calls it when there is something to migrate)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.connect() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                if self.is_postgres:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                    conn.commit()

    def _create_if_empty(self) -> bool:
        """Give a database without tables the models' schema and the newest revision, in one transaction.

        That is the schema an Alembic upgrade from nothing leaves (the store's contract suite
        holds models, migrations and this path equal), without importing Alembic: a new
        project's first ``dagsmith start`` skips ~0.3 s. A database holding any table (an older
        revision, or another application's tables in a shared PostgreSQL schema) is left to
        Alembic. Concurrent starts: SQLite's write lock, PostgreSQL's migration advisory lock.
        """
        head = head_revision()
        if head is None:
            return False
        from sqlalchemy import inspect

        from dagsmith.orchestration.store.models import Base

        with self.engine.begin() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            if inspect(conn).get_table_names():
                return False
            Base.metadata.create_all(conn)
            conn.execute(text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            ))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head})
        return True

    def is_current(self) -> bool:
        """True when ``alembic_version`` holds exactly the newest revision (one plain query, no Alembic)."""
        from sqlalchemy.exc import SQLAlchemyError

        head = head_revision()
        if head is None:
            return False
        try:
            with self.engine.execution_options(readonly=True).connect() as conn:
                rows = [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
                conn.rollback()
        except SQLAlchemyError:  # no table yet (new database), or unreachable: Alembic decides and reports
            return False
        return rows == [head]

    def dispose(self) -> None:
        self.engine.dispose()


_cache: dict[tuple[str, str], Database] = {}
_cache_lock = threading.Lock()


def get_database(settings: OrchestrationSettings, *, migrate: bool = True) -> Database:
    """One shared ``Database`` per (URL, project) in this process, migrated on first use."""
    key = (settings.url, str(settings.project_root))
    with _cache_lock:
        db = _cache.get(key)
        if db is None:
            db = Database(settings)
            _cache[key] = db
    if migrate:
        db.migrate()
    return db
