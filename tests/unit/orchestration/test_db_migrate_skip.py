"""``Database.migrate()`` skips Alembic for a new database (models + head stamp) and one already at the head; it migrates otherwise."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlalchemy import text


def test_head_revision_read_from_files_matches_alembic():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from dagsmith.orchestration.db import MIGRATIONS_DIR, head_revision

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def _start(settings) -> str:
    """migrate() in a fresh process; prints whether Alembic was imported and the stored revision."""
    code = textwrap.dedent(f"""
        import sys
        from dagsmith.orchestration.db import Database
        from dagsmith.orchestration.settings import OrchestrationSettings
        from sqlalchemy import text
        db = Database(OrchestrationSettings.from_env({str(settings.project_root)!r}))
        db.migrate()
        with db.read() as s:
            version = s.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        print("alembic" in sys.modules, version)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_current_database_starts_without_alembic_and_a_stale_one_is_migrated(settings):
    from dagsmith.orchestration.db import Database, head_revision

    assert _start(settings) == ["False", head_revision()]  # new database: the models' schema, stamped at head
    assert _start(settings) == ["False", head_revision()]  # already current: one query, no Alembic

    db = Database(settings)  # tables left but no revision recorded (emptied by hand): Alembic builds it again
    with db.session() as s:
        tables = [r[0] for r in s.execute(text("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'"))]
        s.execute(text("PRAGMA foreign_keys=OFF"))
        for table in tables:
            s.execute(text(f'DROP TABLE "{table}"'))
        s.execute(text("DELETE FROM alembic_version"))
    db.dispose()
    assert _start(settings) == ["True", head_revision()]  # not at head: Alembic runs again
    db = Database(settings)
    with db.read() as s:
        assert s.execute(text("SELECT count(*) FROM workers")).scalar_one() == 0
    db.dispose()
