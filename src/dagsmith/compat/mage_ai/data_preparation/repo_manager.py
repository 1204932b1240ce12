"""``mage_ai.data_preparation.repo_manager``: old home of ``get_repo_path``."""

from dagsmith.project.layout import get_repo_path

__all__ = ["get_repo_path"]
