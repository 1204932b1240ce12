"""Which variables store a project's runs use.

``DAGSMITH_VARIABLES_DIR`` wins; then the project's ``remote_variables_dir``
(Mage's key for ``s3://``/``gs://``); then its ``variables_dir`` when that is an
object-store URL or a local folder of the user's own; else dagsmith's data folder
(``<project>/.dagsmith`` or ``DAGSMITH_DATA_DIR``). Mage's default data folders
(``~/.mage_data``, the Docker image's ``/home/src/mage_data``) are Mage's, not
a choice of the user's: they are ignored. So is ``s3://bucket/path_prefix``, the
``remote_variables_dir`` placeholder of Mage's project template, which Mage 0.9.80 treats as
unset (projects made by older ``mage init`` still carry it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from dagsmith.data.store import VariableStore
from dagsmith.project.layout import data_dir
from dagsmith.settings import get

_MAGE_DEFAULTS = {"~/.mage_data", "/home/src/mage_data", "/home/src/mage_data/", "s3://bucket/path_prefix"}


def variables_root(project_root: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> str:
    """The store root (a folder path or an ``s3://``/``gs://`` URL) of a project's runs."""
    override = (get("variables_dir") or "").strip()
    if override:
        return _absolute(override, project_root)
    meta = metadata or {}
    for key in ("remote_variables_dir", "variables_dir"):
        value = str(meta.get(key) or "").strip()
        if not value or value in _MAGE_DEFAULTS:
            continue
        return _absolute(value, project_root)
    return str(data_dir(project_root))


def project_store(project_root: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> VariableStore:
    """The variables store of a project (reads ``metadata.yaml`` when ``metadata`` is not given)."""
    if metadata is None:
        from dagsmith.project.pipelines import load_project

        metadata = load_project(project_root).metadata
    return VariableStore(variables_root(project_root, metadata))


def store_at(root: str | os.PathLike[str]) -> VariableStore:
    """The variables store at ``root`` (a folder or an object-store URL).

    The layers above the engine (orchestration's retention) open stores through here, so
    they depend on the engine alone and never on ``dagsmith.data`` directly.
    """
    return VariableStore(root)


def _absolute(value: str, project_root: str | os.PathLike[str]) -> str:
    if "://" in value:
        return value
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = Path(project_root).resolve() / path
    return str(path)
