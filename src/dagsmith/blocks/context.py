"""What a block needs to run, handed from the engine to the block runners (Python, SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from dagsmith.project.specs import BlockSpec, PipelineSpec


@dataclass
class BlockCall:
    """One invocation of one block within a run."""

    project_root: Path
    pipeline: PipelineSpec
    block: BlockSpec
    inputs: list[Any]
    """Upstream outputs in ``upstream_blocks`` order (what the entry function receives positionally)."""
    kwargs: dict[str, Any]
    """Runtime variables for ``**kwargs``."""
    run_id: str
    partition: str
    upstream_lookup: Callable[[str], Any] | None = None
    """Returns the output of any block of the pipeline by uuid (``block_output('uuid')`` in SQL)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Runner-specific facts to report back (e.g. ``rendered_sql``)."""

    @property
    def upstream_specs(self) -> list[BlockSpec]:
        by_uuid: Mapping[str, BlockSpec] = self.pipeline.block_map()
        return [by_uuid[u] for u in self.block.upstream_blocks if u in by_uuid]
