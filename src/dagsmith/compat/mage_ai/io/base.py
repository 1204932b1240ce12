"""``mage_ai.io.base``: re-exports only."""

from dagsmith.io.base import QUERY_ROW_LIMIT, ExportWritePolicy
from dagsmith.io.base import Connector as BaseIO

__all__ = ["QUERY_ROW_LIMIT", "ExportWritePolicy", "BaseIO"]
