"""``mage_ai.orchestration.triggers.api``: re-exports only (``dagsmith.compat.triggers``)."""

from dagsmith.compat.triggers import trigger_pipeline

__all__ = ["trigger_pipeline"]
