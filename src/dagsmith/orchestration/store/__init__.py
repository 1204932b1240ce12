"""The metadata store: ORM models (``models``), all queries (``repo``) and Alembic migrations."""
