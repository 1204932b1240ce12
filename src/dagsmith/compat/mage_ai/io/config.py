"""``mage_ai.io.config``: re-exports only."""

from dagsmith.project.io_config import ConfigFileLoader, ConfigKey

__all__ = ["ConfigFileLoader", "ConfigKey"]
