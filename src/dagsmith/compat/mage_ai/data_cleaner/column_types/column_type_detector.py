"""``mage_ai.data_cleaner.column_types.column_type_detector``: re-exports only."""

from dagsmith.compat.column_types import infer_column_types

__all__ = ["infer_column_types"]
