"""Loading a project's ``.env`` file into the process environment.

Variables already set in the environment win over the file, as with
docker-compose and python-dotenv's defaults; the file is read once per process
per project.
"""

from __future__ import annotations

import os
from pathlib import Path

_loaded: set[str] = set()


def load_project_env(project_root: str | os.PathLike[str]) -> None:
    """Load ``<project>/.env`` and ``<project parent>/.env`` (Mage keeps it beside the project)."""
    root = Path(project_root).resolve()
    key = str(root)
    if key in _loaded:
        return
    _loaded.add(key)
    for candidate in (root / ".env", root.parent / ".env"):
        if candidate.is_file():
            from dotenv import dotenv_values

            from dagsmith.project.masking import add_secret, looks_secret

            for name, value in dotenv_values(candidate).items():
                if value is not None and looks_secret(name):
                    add_secret(value)  # a password from .env is masked wherever it is printed
                if value is not None and name not in os.environ:
                    os.environ[name] = value
