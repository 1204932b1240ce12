"""``mage_ai.settings.repo``: the project path helpers block code calls."""

from __future__ import annotations

import os
from typing import Any

from dagsmith.project.layout import get_repo_path

__all__ = ["get_repo_path", "get_variables_dir", "set_repo_path"]


def get_variables_dir(repo_path: str | None = None, root_project: bool = False, **kwargs: Any) -> str:
    """Where the project's block outputs live: dagsmith's data folder (``<project>/.dagsmith``
    unless ``DAGSMITH_DATA_DIR``), the counterpart of Mage's ``~/.mage_data/<project>``."""
    from dagsmith.project.layout import data_dir

    return str(data_dir(repo_path or get_repo_path()))


def set_repo_path(repo_path: str) -> None:
    """Point ``get_repo_path`` at ``repo_path`` (Mage sets ``MAGE_REPO_PATH``)."""
    os.environ["MAGE_REPO_PATH"] = str(repo_path)
