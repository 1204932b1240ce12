"""``mage_ai.io.file``: re-exports only."""

from dagsmith.io.files import FileIO

__all__ = ["FileIO"]
