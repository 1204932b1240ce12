"""``mage_ai.data_cleaner.column_types.constants``: re-exports only."""

from dagsmith.compat.column_types import CATEGORICAL_TYPES, NUMBER_TYPES, STRING_TYPES, ColumnType

__all__ = ["CATEGORICAL_TYPES", "NUMBER_TYPES", "STRING_TYPES", "ColumnType"]
