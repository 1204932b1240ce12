"""``mage_ai.data_cleaner.transformer_actions.base``: re-exports only."""

from dagsmith.compat.transformer_actions import BaseAction

__all__ = ["BaseAction"]
