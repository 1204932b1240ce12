"""``mage_ai.io.bigquery``: re-exports only."""

from dagsmith.io.bigquery import BigQuery

__all__ = ["BigQuery"]
