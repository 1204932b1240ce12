"""Structural checks of a pipeline on disk, all problems reported at once.

Checks what needs no user code: unknown upstreams, cycles (with their loop),
block files that do not exist. The graph itself (the cycle's loop) is
``dagsmith.dag``'s; code-level checks (syntax, decorators, parameters) live in
``dagsmith.blocks.checks``.
"""

from __future__ import annotations

import os

from dagsmith.dag.graph import find_cycle
from dagsmith.project.specs import PipelineSpec


def graph_problems(spec: PipelineSpec) -> list[str]:
    """Every graph-level problem of ``spec`` as a sentence naming pipeline, block and file."""
    problems: list[str] = []
    names = {b.uuid for b in spec.blocks}
    where = spec.metadata_path
    for block in spec.blocks:
        for up in block.upstream_blocks:
            if up not in names:
                hint = _did_you_mean(up, names)
                problems.append(
                    f"{where}: block '{block.uuid}' lists unknown upstream block '{up}'{hint}"
                )
        if block.type not in ("markdown", "dbt") and not os.path.isfile(block.path):
            problems.append(
                f"pipeline '{spec.uuid}', block '{block.uuid}': block file {block.relpath} does not exist"
            )
    for group in (spec.callbacks, spec.conditionals):
        for block in group:
            if not block.path.is_file():
                problems.append(
                    f"pipeline '{spec.uuid}', {block.type} '{block.uuid}': file {block.relpath} does not exist"
                )
            for parent in block.upstream_blocks:
                if parent not in names:
                    problems.append(
                        f"{where}: {block.type} '{block.uuid}' is attached to unknown block '{parent}'"
                    )
    cycle = find_cycle({b.uuid: b.upstream_blocks for b in spec.blocks})
    if cycle:
        problems.append(f"pipeline '{spec.uuid}' has a cycle: {' -> '.join(cycle)}")
    return problems


def _did_you_mean(name: str, names: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
