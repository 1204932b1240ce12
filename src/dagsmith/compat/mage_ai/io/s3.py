"""``mage_ai.io.s3``: re-exports only."""

from dagsmith.io.s3 import S3

__all__ = ["S3"]
