"""``mage_ai.io.duckdb``: re-exports only."""

from dagsmith.io.duckdb import DuckDB

__all__ = ["DuckDB"]
