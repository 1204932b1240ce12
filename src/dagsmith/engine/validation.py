"""Everything checked before a run starts: the graph and each block's code, all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from dagsmith.blocks.checks import check_python_block
from dagsmith.dag.validate import graph_problems
from dagsmith.errors import ValidationError
from dagsmith.project.layout import EXECUTABLE_TYPES
from dagsmith.project.specs import BlockSpec, PipelineSpec


def pipeline_problems(root: Path, spec: PipelineSpec, blocks: Iterable[BlockSpec] | None = None) -> list[str]:
    """Every problem that would stop ``spec`` (or the given blocks of it) from running."""
    problems = graph_problems(spec)
    by_uuid = spec.block_map()
    for block in spec.blocks if blocks is None else blocks:
        if block.type in EXECUTABLE_TYPES and block.language == "sql":
            problems.extend(_sql_problems(spec, block))
        if block.type not in EXECUTABLE_TYPES or block.language != "python" or not block.path.is_file():
            continue
        n_inputs = sum(
            1 for u in block.upstream_blocks if u in by_uuid and by_uuid[u].type in EXECUTABLE_TYPES
        )
        problems.extend(
            check_python_block(
                block.path,
                pipeline_uuid=spec.uuid,
                block_uuid=block.uuid,
                block_type=block.type,
                n_inputs=n_inputs,
                display_path=block.relpath,
            )
        )
    if not problems:  # dynamic fan-outs that cannot be paired (needs an acyclic graph)
        from dagsmith.engine.dynamic import DynamicLayout
        from dagsmith.errors import ProjectError

        executable = {b.uuid: b for b in spec.blocks if b.type in EXECUTABLE_TYPES}
        try:
            DynamicLayout(executable, list(executable))
        except ProjectError as exc:
            problems.append(f"pipeline '{spec.uuid}': {exc.message} ({exc.hint})")
    for group in (spec.conditionals, spec.callbacks):
        for block in group:
            if block.path.is_file() and block.language == "python":
                problems.extend(
                    check_python_block(
                        block.path,
                        pipeline_uuid=spec.uuid,
                        block_uuid=block.uuid,
                        block_type=block.type,
                        n_inputs=0,
                        display_path=block.relpath,
                    )
                )
    return problems


SQL_PROVIDERS = ("postgres", "postgresql", "duckdb", "bigquery")


def _sql_problems(spec: PipelineSpec, block: BlockSpec) -> list[str]:
    """A SQL block runs against its configuration's data_provider; without one it cannot run."""
    provider = str((block.configuration or {}).get("data_provider") or "").strip().lower()
    if provider in SQL_PROVIDERS:
        return []
    what = "has no data_provider" if not provider else f"has data_provider {provider!r}, which SQL blocks do not support"
    return [
        f"pipeline '{spec.uuid}': SQL block '{block.uuid}' ({block.relpath}) {what}: set its configuration's"
        f" data_provider (postgres, duckdb or bigquery) and data_provider_profile in pipelines/{spec.uuid}/metadata.yaml"
    ]


def validate_for_run(root: Path, spec: PipelineSpec, blocks: Iterable[BlockSpec] | None = None) -> None:
    problems = pipeline_problems(root, spec, blocks)
    if problems:
        raise ValidationError(
            f"pipeline '{spec.uuid}' cannot run; nothing was run:\n  - " + "\n  - ".join(problems),
            problems=problems,
            hint=f"fix the problems above, then check with: dagsmith validate {root} {spec.uuid}",
        )
