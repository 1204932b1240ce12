"""``mage_ai.data_cleaner.transformer_actions.constants``: re-exports only."""

from dagsmith.compat.transformer_actions import ActionType, Axis, ImputationStrategy, Operator, VariableType

__all__ = ["ActionType", "Axis", "ImputationStrategy", "Operator", "VariableType"]
