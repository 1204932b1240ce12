"""Typed, read-only views of a project and its pipelines.

The YAML on disk stays the source of truth: each spec keeps the mapping it was
read from in ``raw`` so that saving writes back every key, including ones
dagsmith does not know. Specs are frozen; editing goes through
``dagsmith.project.pipelines``, which changes the raw mapping and re-reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class BlockSpec:
    """One block entry of a pipeline, with its file resolved on disk."""

    uuid: str
    name: str
    type: str
    language: str
    upstream_blocks: tuple[str, ...]
    downstream_blocks: tuple[str, ...]
    configuration: Mapping[str, Any]
    retry_config: Mapping[str, Any] | None
    timeout: float | None
    executor_type: str | None
    relpath: str
    """Path of the block file relative to the project (what will be read)."""
    path: Path
    """Absolute path of the block file."""
    path_note: str | None = None
    """Set when the file was found through a fallback (stale ``file_source.path``)."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_sql(self) -> bool:
        return self.language == "sql"

    @property
    def is_dynamic(self) -> bool:
        return bool(self.configuration.get("dynamic"))

    @property
    def reduce_output(self) -> bool:
        return bool(self.configuration.get("reduce_output"))


@dataclass(frozen=True)
class PipelineSpec:
    """A pipeline as declared in ``pipelines/<uuid>/metadata.yaml``."""

    uuid: str
    name: str
    type: str
    description: str | None
    blocks: tuple[BlockSpec, ...]
    callbacks: tuple[BlockSpec, ...]
    conditionals: tuple[BlockSpec, ...]
    variables: Mapping[str, Any]
    retry_config: Mapping[str, Any] | None
    concurrency_config: Mapping[str, Any]
    notification_config: Mapping[str, Any]
    settings: Mapping[str, Any]
    metadata_path: Path
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def block(self, uuid: str) -> BlockSpec:
        for spec in self.blocks:
            if spec.uuid == uuid:
                return spec
        from dagsmith.errors import ProjectError

        known = ", ".join(b.uuid for b in self.blocks) or "(none)"
        raise ProjectError(
            f"pipeline '{self.uuid}' has no block '{uuid}'",
            hint=f"blocks in this pipeline: {known}",
        )

    def block_map(self) -> dict[str, BlockSpec]:
        return {b.uuid: b for b in self.blocks}


@dataclass(frozen=True)
class Project:
    """A project folder and its ``metadata.yaml`` settings."""

    root: Path
    name: str
    metadata: Mapping[str, Any]

    @property
    def retry_config(self) -> Mapping[str, Any] | None:
        return self.metadata.get("retry_config")

    @property
    def notification_config(self) -> Mapping[str, Any]:
        return self.metadata.get("notification_config") or {}
