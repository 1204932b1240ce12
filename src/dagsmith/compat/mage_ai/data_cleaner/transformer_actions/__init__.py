"""``mage_ai.data_cleaner.transformer_actions``: re-exports only (``dagsmith.compat.transformer_actions``)."""
