"""Everything checked before a run starts: the graph, each block's code and kind, all at once.

A block dagsmith cannot run (dbt, R, a data-integration source, a global data product; a
SQL block without a supported data_provider) is reported here, so a run that contains one
fails before anything runs instead of skipping it; so is a pipeline with no block to run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from dagsmith.blocks.checks import check_python_block
from dagsmith.project.checks import graph_problems
from dagsmith.errors import NothingToRun, ValidationError
from dagsmith.project.layout import EXECUTABLE_TYPES
from dagsmith.project.specs import BlockSpec, PipelineSpec

#: block types that Mage shows but never runs as steps of a pipeline run (notes, charts)
NOTE_TYPES = frozenset({"scratchpad", "chart", "markdown", "extension"})
#: languages dagsmith runs for the executable block types
RUNNABLE_LANGUAGES = frozenset({"python", "sql"})


def unsupported_reason(block: BlockSpec) -> str | None:
    """Why dagsmith cannot run ``block`` (None when it can, or when the block never runs)."""
    if block.type in NOTE_TYPES:
        return None
    if block.type not in EXECUTABLE_TYPES:
        what = {"dbt": "dbt", "global_data_product": "global data product"}.get(block.type, repr(block.type))
        return f"a {what} block, which dagsmith cannot run yet"
    if block.language not in RUNNABLE_LANGUAGES:
        what = {"r": "R", "yaml": "YAML (data integration / streaming)"}.get(block.language, repr(block.language))
        return f"a {block.type} block in {what}, which dagsmith cannot run yet (Python and SQL blocks run)"
    return None


def unsupported_problems(spec: PipelineSpec, blocks: Iterable[BlockSpec] | None = None) -> list[str]:
    """One line per block of ``spec`` (or of ``blocks``) that dagsmith cannot run, naming block and type."""
    problems = []
    for block in spec.blocks if blocks is None else blocks:
        if (block.configuration or {}).get("disabled"):
            continue  # a disabled block never runs
        reason = unsupported_reason(block)
        if reason:
            problems.append(f"pipeline '{spec.uuid}', block '{block.uuid}' ({block.relpath}): {reason}")
    if blocks is None and not any(b.type in EXECUTABLE_TYPES for b in spec.blocks):
        problems.append(nothing_to_run(spec))
    return problems


def nothing_to_run(spec: PipelineSpec) -> str:
    """The problem line of a pipeline without a block to run."""
    kinds = sorted({b.type for b in spec.blocks})
    return f"pipeline '{spec.uuid}' has no block to run" + (
        f" (only {', '.join(kinds)} blocks)" if kinds else " (it has no blocks)"
    )


def pipeline_problems(root: Path, spec: PipelineSpec, blocks: Iterable[BlockSpec] | None = None) -> list[str]:
    """Every problem that would stop ``spec`` (or the given blocks of it) from running."""
    from dagsmith.engine.config import executor_type_problems

    blocks = None if blocks is None else list(blocks)
    problems = graph_problems(spec)
    if blocks is None:
        problems.extend(unsupported_problems(spec))
    problems.extend(executor_type_problems(spec, blocks))
    by_uuid = spec.block_map()
    for block in spec.blocks if blocks is None else blocks:
        if block.type in EXECUTABLE_TYPES and block.language == "sql":
            problems.extend(_sql_problems(spec, block))
        if block.type not in EXECUTABLE_TYPES or block.language != "python" or not os.path.isfile(block.path):
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


def validate_for_run(
    root: Path,
    spec: PipelineSpec,
    blocks: Iterable[BlockSpec] | None = None,
    *,
    chosen: Iterable[str] | None = None,
) -> None:
    """Raise ``ValidationError`` listing every problem, before anything runs.

    ``blocks``: the executable blocks about to run; ``chosen``: the uuids a partial run
    asked for (``--block``), None for a whole run, whose every block must be runnable.
    """
    problems = pipeline_problems(root, spec, blocks)
    if chosen is None:
        if blocks is not None:  # pipeline_problems checked the whole pipeline already otherwise
            problems.extend(unsupported_problems(spec))
    else:
        wanted = set(chosen)
        problems.extend(unsupported_problems(spec, [b for b in spec.blocks if b.uuid in wanted]))
    if problems == [nothing_to_run(spec)]:
        raise NothingToRun(
            f"{problems[0]}; nothing was run",
            problems=problems,
            hint=f"add a block to pipelines/{spec.uuid}/metadata.yaml (dagsmith blocks new …)",
        )
    if problems:
        raise ValidationError(
            f"pipeline '{spec.uuid}' cannot run; nothing was run:\n  - " + "\n  - ".join(problems),
            problems=problems,
            hint=f"fix the problems above, then check with: dagsmith validate {root} {spec.uuid}",
        )
