"""``mage_ai.data_cleaner.column_types``: re-exports only."""
