"""Mage's ``mage_ai.data_preparation.variable_manager`` on dagsmith's project and variables store.

- ``get_variable(pipeline, block, 'output_0', partition=None)``: a stored block output.
  ``partition`` names a run's partition (dagsmith: the run id); without it, the block's
  newest stored output. Missing → ``{}``, as in Mage.
- ``get_global_variable`` / ``get_global_variables`` / ``set_global_variable`` /
  ``delete_global_variable``: the pipeline's ``variables:`` in its metadata.yaml (only that
  key is rewritten; Mage rewrites the whole file). Values must be YAML-serialisable.

Differences from Mage 0.9.80: pipeline variables are read when a run starts, so a value
set by one block reaches the blocks of the *next* run (Mage re-reads per block).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from dagsmith.errors import ProjectError

__all__ = [
    "SerializationError",
    "VariableManager",
    "delete_global_variable",
    "get_global_variable",
    "get_global_variables",
    "get_variable",
    "set_global_variable",
]


class SerializationError(ProjectError):
    """A global variable's value cannot be written to YAML."""


def _root(repo_path: str | os.PathLike[str] | None) -> Path:
    from dagsmith.project.layout import get_repo_path

    return Path(repo_path or get_repo_path()).resolve()


def _pipeline_raw(pipeline_uuid: str, repo_path: str | os.PathLike[str] | None) -> dict[str, Any]:
    from dagsmith.project.pipelines import read_pipeline_raw

    root = _root(repo_path)
    try:
        return read_pipeline_raw(root, pipeline_uuid)
    except ProjectError:
        raise ProjectError(
            f"Pipeline {pipeline_uuid} does not exist in repo_path {root}.",
            hint="check the pipeline uuid (the folder name under pipelines/)",
        ) from None


def get_variable(
    pipeline_uuid: str,
    block_uuid: str,
    key: str,
    partition: str | None = None,
    repo_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Output ``key`` (``output_0``, ``output_1``, …) of ``block_uuid``; ``{}`` when nothing is stored."""
    from dagsmith.data.store import OutputsMissing, VariableStore
    from dagsmith.project.layout import data_dir

    root = _root(repo_path)
    store = VariableStore(data_dir(root))
    partition = partition or store.latest_partition(pipeline_uuid, block_uuid)
    if not partition:
        return {}
    try:
        values, _ = store.read_outputs(pipeline_uuid, str(partition), block_uuid)
    except (OutputsMissing, OSError, ValueError):
        return {}
    index = 0
    if isinstance(key, str) and key.startswith("output_") and key[7:].isdigit():
        index = int(key[7:])
    elif key not in (None, "", "df"):
        return {}
    return values[index] if index < len(values) else {}


def get_global_variables(
    pipeline_uuid: str, pipeline: Any = None, context_data: Any = None, repo_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """The pipeline's ``variables:`` mapping."""
    return dict(_pipeline_raw(pipeline_uuid, repo_path).get("variables") or {})


def get_global_variable(pipeline_uuid: str, key: str, repo_path: str | os.PathLike[str] | None = None) -> Any:
    """One pipeline variable: ``None`` when the pipeline has variables but not this one, ``{}`` when it has none."""
    data = _pipeline_raw(pipeline_uuid, repo_path)
    if "variables" not in data or data["variables"] is None:
        return {}
    return dict(data["variables"]).get(key)


def set_global_variable(pipeline_uuid: str, key: str, value: Any, repo_path: str | os.PathLike[str] | None = None) -> None:
    """Set one pipeline variable in metadata.yaml (the value must be YAML-serialisable: no tuples or objects)."""
    from dagsmith.project.pipelines import write_pipeline_raw

    if not _plain(value):
        raise SerializationError(
            f"Failed to update variable {key} because the value is not serializable.",
            hint="use strings, numbers, booleans, dates, lists or dicts of them",
        ) from None
    data = _pipeline_raw(pipeline_uuid, repo_path)
    variables = dict(data.get("variables") or {})
    variables[key] = value
    data["variables"] = variables
    write_pipeline_raw(_root(repo_path), pipeline_uuid, data)


def _plain(value: Any) -> bool:
    """YAML-plain values (what Mage can store): scalars, dates, and lists/dicts of them — no tuples or objects."""
    import datetime as dt

    if value is None or isinstance(value, (str, bool, int, float, dt.date)):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int, float, bool)) and _plain(v) for k, v in value.items())
    return False


def delete_global_variable(pipeline_uuid: str, key: str, repo_path: str | os.PathLike[str] | None = None) -> None:
    from dagsmith.project.pipelines import write_pipeline_raw

    data = _pipeline_raw(pipeline_uuid, repo_path)
    variables = dict(data.get("variables") or {})
    if key in variables:
        del variables[key]
        data["variables"] = variables
        write_pipeline_raw(_root(repo_path), pipeline_uuid, data)


class VariableManager:
    """Mage's object form of the functions above, bound to one project."""

    def __init__(self, repo_path: str | os.PathLike[str] | None = None, variables_dir: str | None = None) -> None:
        self.repo_path = str(_root(repo_path))

    @classmethod
    def get_manager(cls, repo_path: str | os.PathLike[str] | None = None, variables_dir: str | None = None) -> "VariableManager":
        return cls(repo_path, variables_dir)

    def get_variable(self, pipeline_uuid: str, block_uuid: str, variable_uuid: str, partition: str | None = None, **kwargs: Any) -> Any:
        return get_variable(pipeline_uuid, block_uuid, variable_uuid, partition=partition, repo_path=self.repo_path)

    def get_global_variables(self, pipeline_uuid: str, **kwargs: Any) -> Mapping[str, Any]:
        return get_global_variables(pipeline_uuid, repo_path=self.repo_path)
