"""``mage_ai.settings.repo``: the project path helpers block code calls."""

from dagsmith.project.layout import get_repo_path

__all__ = ["get_repo_path"]
