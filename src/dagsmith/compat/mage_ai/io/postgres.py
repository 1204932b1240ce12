"""``mage_ai.io.postgres``: re-exports only."""

from dagsmith.io.postgres import Postgres

__all__ = ["Postgres"]
