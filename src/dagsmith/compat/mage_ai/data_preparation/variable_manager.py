"""``mage_ai.data_preparation.variable_manager``: re-exports only (``dagsmith.compat.variables``)."""

from dagsmith.compat.variables import (
    VariableManager,
    delete_global_variable,
    get_global_variable,
    get_global_variables,
    get_variable,
    set_global_variable,
)

__all__ = [
    "VariableManager",
    "delete_global_variable",
    "get_global_variable",
    "get_global_variables",
    "get_variable",
    "set_global_variable",
]
