"""``mage_ai.data_cleaner.transformer_actions.utils``: re-exports only."""

from dagsmith.compat.transformer_actions import build_action_variables, build_transformer_action, clean_column_name

__all__ = ["build_action_variables", "build_transformer_action", "clean_column_name"]
