"""``mage_ai.data_preparation.shared.secrets``: Mage's ``get_secret_value`` on dagsmith's secrets store."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["get_secret_value"]


def get_secret_value(
    name: str,
    entity: Any = None,
    pipeline_uuid: str | None = None,
    project_uuid: str | None = None,
    repo_name: str | None = None,
    suppress_warning: bool = False,
    **kwargs: Any,
) -> str | None:
    """The secret's value, or None with a warning when it cannot be found (as Mage does)."""
    from dagsmith.errors import ConfigError
    from dagsmith.project.io_config import get_secret_value as resolve

    try:
        return resolve(name)
    except ConfigError as exc:
        if not suppress_warning:
            print(f"WARNING: Could not find secret value for secret {name}. ({exc.message})", file=sys.stderr)
        return None
