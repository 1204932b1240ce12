"""Static checks of a Python block file, without running any of its code.

Parses the file and reports: syntax errors, no function decorated with the
block's type, and an entry function whose positional parameters cannot take
the block's upstream outputs. Each problem names the pipeline, block and file:line.
"""

from __future__ import annotations

import ast
from pathlib import Path

from dagsmith.blocks.decorators import ENTRY_KINDS

_parsed: dict[str, tuple[tuple[int, int], ast.Module]] = {}


def parse_block(path: Path, source: str) -> ast.Module:
    """Parse a block file once per version on disk; the loader compiles the same tree."""
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _parsed.get(str(path))
    if hit and hit[0] == stamp:
        return hit[1]
    tree = ast.parse(source, filename=str(path))
    _parsed[str(path)] = (stamp, tree)
    return tree


def cached_tree(path: Path) -> ast.Module | None:
    """The tree ``parse_block`` made for the file as it is now on disk, if any."""
    hit = _parsed.get(str(path))
    if not hit:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return hit[1] if hit[0] == (st.st_mtime_ns, st.st_size) else None


def _decorator_name(node: ast.expr) -> str | None:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    return None


def entry_function(tree: ast.Module, block_type: str) -> ast.FunctionDef | None:
    """The first top-level function decorated with the block's type (or, failing that, any entry kind)."""
    fallback = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = {_decorator_name(d) for d in node.decorator_list}
            if block_type in names:
                return node  # type: ignore[return-value]
            if fallback is None and names & set(ENTRY_KINDS):
                fallback = node
    return fallback  # type: ignore[return-value]


def check_python_block(
    path: Path,
    *,
    pipeline_uuid: str,
    block_uuid: str,
    block_type: str,
    n_inputs: int,
    display_path: str | None = None,
) -> list[str]:
    """Problems with a Python block file as sentences; empty when it looks runnable."""
    shown = display_path or str(path)
    prefix = f"pipeline '{pipeline_uuid}', block '{block_uuid}'"
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return [f"{prefix}: {shown} is not UTF-8 text ({exc.reason} at byte {exc.start})"]
    except OSError as exc:
        return [f"{prefix}: cannot read {shown}: {exc.strerror or exc}"]
    try:
        tree = parse_block(path, source)
    except SyntaxError as exc:
        return [f"{prefix}: syntax error at {shown}:{exc.lineno}: {exc.msg}"]
    if block_type not in ENTRY_KINDS:
        return []
    fn = entry_function(tree, block_type)
    if fn is None:
        return [
            f"{prefix}: {shown} has no function decorated with @{block_type}"
            f" (add @{block_type} above the function this block should run)"
        ]
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    n_defaults = len(args.defaults)
    required = len(positional) - n_defaults
    if n_inputs < required:
        names = ", ".join(a.arg for a in positional[n_inputs:required])
        return [
            f"{prefix}: {shown}:{fn.lineno}: {fn.name}() takes {required} positional parameter(s) but the "
            f"block has {n_inputs} upstream block(s); nothing would be passed for: {names}"
            " (add the upstream blocks or remove the parameters)"
        ]
    if args.vararg is None and n_inputs > len(positional):
        return [
            f"{prefix}: {shown}:{fn.lineno}: {fn.name}() takes {len(positional)} positional parameter(s) but the "
            f"block has {n_inputs} upstream block(s) whose outputs are passed positionally"
            " (add a parameter per upstream block, or *args)"
        ]
    return []
