"""``mage_ai.io.google_cloud_storage``: re-exports only."""

from dagsmith.io.gcs import GoogleCloudStorage

__all__ = ["GoogleCloudStorage"]
