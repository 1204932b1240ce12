"""Connector names → classes, resolved lazily so listing connectors imports no driver.

Built-in names: postgres, duckdb, bigquery, gcs (google_cloud_storage), s3, file, http (api).
Third-party packages add theirs through the ``dagsmith.connectors`` entry-point
group (``name = "package.module:Class"``).
"""

from __future__ import annotations

import importlib
from typing import Any

from dagsmith.errors import ConfigError

BUILTIN: dict[str, str] = {
    "postgres": "dagsmith.io.postgres:Postgres",
    "duckdb": "dagsmith.io.duckdb:DuckDB",
    "bigquery": "dagsmith.io.bigquery:BigQuery",
    "gcs": "dagsmith.io.gcs:GoogleCloudStorage",
    "s3": "dagsmith.io.s3:S3",
    "file": "dagsmith.io.files:FileIO",
    "http": "dagsmith.io.http:HTTP",
}
ALIASES: dict[str, str] = {
    "postgresql": "postgres",
    "google_cloud_storage": "gcs",
    "googlecloudstorage": "gcs",
    "api": "http",
    "files": "file",
    "fileio": "file",
}


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    try:
        return {ep.name: ep.value for ep in entry_points(group="dagsmith.connectors")}
    except Exception:  # pragma: no cover - broken metadata should not break built-ins
        return {}


def available() -> list[str]:
    """Every connector name that :func:`get_connector_class` accepts (aliases excluded)."""
    return sorted(set(BUILTIN) | set(_entry_points()))


def get_connector_class(name: str) -> Any:
    """The connector class registered as ``name`` (imported now)."""
    key = ALIASES.get(name.lower(), name.lower())
    target = BUILTIN.get(key) or _entry_points().get(key)
    if target is None:
        raise ConfigError(
            f"unknown connector {name!r}",
            hint=f"known connectors: {', '.join(available())}",
        )
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def connector_from_profile(name: str, project_root: str, profile: str = "default", **kwargs: Any) -> Any:
    """Build connector ``name`` from ``profile`` of ``<project_root>/io_config.yaml``."""
    from pathlib import Path

    from dagsmith.project.io_config import ConfigFileLoader

    config = ConfigFileLoader(Path(project_root) / "io_config.yaml", profile)
    return get_connector_class(name).with_config(config, **kwargs)
