"""``mage_ai.data_preparation.shared.secrets``: re-exports only."""

from dagsmith.project.io_config import get_secret_value

__all__ = ["get_secret_value"]
