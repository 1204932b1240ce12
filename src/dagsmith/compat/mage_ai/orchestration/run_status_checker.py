"""``mage_ai.orchestration.run_status_checker``: re-exports only (``dagsmith.compat.triggers``)."""

from dagsmith.compat.triggers import check_status

__all__ = ["check_status"]
