"""Static checks of a Python block file, without running any of its code.

Parses the file and reports: syntax errors, no function decorated with the
block's type, and an entry function whose positional parameters cannot take
the block's upstream outputs. Each problem names the pipeline, block and file:line.
"""

from __future__ import annotations

import ast
import marshal
import os
import sys
import threading
from pathlib import Path
from types import CodeType
from typing import NamedTuple

from dagsmith.blocks.decorators import ENTRY_KINDS
from dagsmith.util.fs import write_bytes_atomic


class FunctionFacts(NamedTuple):
    """What validation needs of one top-level function (plain values, so it can be cached)."""

    name: str
    lineno: int
    decorators: tuple[str, ...]
    positional: tuple[str, ...]
    n_defaults: int
    has_vararg: bool


class Analysis(NamedTuple):
    """A block file parsed once: its syntax error or its functions, and its compiled code."""

    stamp: tuple[int, int]
    read_error: str | None
    syntax_error: tuple[int, str] | None
    functions: tuple[FunctionFacts, ...]
    code: CodeType | None


# Parsing and compiling is most of what a small block costs; the result is kept in memory and,
# like Python's own .pyc files, in the block folder's __pycache__ for the next process.
_CACHE_TAG = f"dagsmith-{sys.implementation.cache_tag}-1"
_memo: dict[str, Analysis] = {}
_memo_lock = threading.Lock()


def _cache_file(path: Path | str) -> str:
    # plain strings: this runs for every block of every run, and pathlib's joins cost more than the read
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, "__pycache__", f"{name}.{_CACHE_TAG}.bin")


def analyze(path: Path, stamp: tuple[int, int] | None = None) -> Analysis:
    """Parse and compile ``path`` once per version on disk (memory, then __pycache__, then source).

    ``stamp`` is the file's (mtime_ns, size) when the caller has just read it (saves a stat).
    """
    key = os.fspath(path)
    if stamp is None:
        st = os.stat(key)
        stamp = (st.st_mtime_ns, st.st_size)
    with _memo_lock:
        hit = _memo.get(key)
    if hit is not None and hit.stamp == stamp:
        return hit
    result = _read_cache(path, stamp) or _analyze_source(path, stamp)
    with _memo_lock:
        _memo[key] = result
    return result


def _read_cache(path: Path, stamp: tuple[int, int]) -> Analysis | None:
    try:
        data = marshal.loads(_read_small(_cache_file(path)))
        # the code object names its file: a moved project must compile again
        if tuple(data[0]) != stamp or data[3] != str(path):
            return None
        return Analysis(stamp, None, None, tuple(FunctionFacts(*f) for f in data[1]), data[2])
    except Exception:  # missing, stale or from another Python: parse the source again
        return None


def _read_small(path: str) -> bytes:
    """A small file's bytes without a buffered file object (read once per block per run: the
    object's setup cost more than the read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            chunks.append(chunk)
            if len(chunk) < 1 << 16:  # a short read of a regular file: its end
                return b"".join(chunks)
    finally:
        os.close(fd)


def _analyze_source(path: Path, stamp: tuple[int, int]) -> Analysis:
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return Analysis(stamp, f"is not UTF-8 text ({exc.reason} at byte {exc.start})", None, (), None)
    except OSError as exc:
        return Analysis(stamp, f"cannot be read: {exc.strerror or exc}", None, (), None)
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        return Analysis(stamp, None, (exc.lineno or 0, exc.msg), (), None)
    functions = tuple(
        FunctionFacts(
            node.name,
            node.lineno,
            tuple(n for n in (_decorator_name(d) for d in node.decorator_list) if n),
            tuple(a.arg for a in (*node.args.posonlyargs, *node.args.args)),
            len(node.args.defaults),
            node.args.vararg is not None,
        )
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    )
    try:
        code = compile(tree, str(path), "exec")
    except SyntaxError as exc:  # errors only the compiler finds (e.g. 'return' outside a function)
        return Analysis(stamp, None, (exc.lineno or 0, exc.msg), (), None)
    _write_cache(path, stamp, functions, code)
    return Analysis(stamp, None, None, functions, code)


def _write_cache(path: Path, stamp: tuple[int, int], functions: tuple[FunctionFacts, ...], code: CodeType) -> None:
    if sys.dont_write_bytecode:  # PYTHONDONTWRITEBYTECODE / -B: no cache files, as for .pyc
        return
    target = _cache_file(path)
    try:
        write_bytes_atomic(Path(target), marshal.dumps((stamp, tuple(tuple(f) for f in functions), code, str(path))))
    except OSError:  # a read-only project still runs; it just parses again next time
        pass


def _decorator_name(node: ast.expr) -> str | None:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    return None


def entry_function(functions: tuple[FunctionFacts, ...], block_type: str) -> FunctionFacts | None:
    """The first top-level function decorated with the block's type (or, failing that, any entry kind)."""
    fallback = None
    for fn in functions:
        if block_type in fn.decorators:
            return fn
        if fallback is None and set(fn.decorators) & set(ENTRY_KINDS):
            fallback = fn
    return fallback


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
        facts = analyze(path)
    except OSError as exc:
        return [f"{prefix}: cannot read {shown}: {exc.strerror or exc}"]
    if facts.read_error:
        return [f"{prefix}: {shown} {facts.read_error}"]
    if facts.syntax_error:
        return [f"{prefix}: syntax error at {shown}:{facts.syntax_error[0]}: {facts.syntax_error[1]}"]
    if block_type not in ENTRY_KINDS:
        return []
    fn = entry_function(facts.functions, block_type)
    if fn is None:
        return [
            f"{prefix}: {shown} has no function decorated with @{block_type}"
            f" (add @{block_type} above the function this block should run)"
        ]
    positional = fn.positional
    required = len(positional) - fn.n_defaults
    if n_inputs < required:
        names = ", ".join(positional[n_inputs:required])
        return [
            f"{prefix}: {shown}:{fn.lineno}: {fn.name}() takes {required} positional parameter(s) but the "
            f"block has {n_inputs} upstream block(s); nothing would be passed for: {names}"
            " (add the upstream blocks or remove the parameters)"
        ]
    if not fn.has_vararg and n_inputs > len(positional):
        return [
            f"{prefix}: {shown}:{fn.lineno}: {fn.name}() takes {len(positional)} positional parameter(s) but the "
            f"block has {n_inputs} upstream block(s) whose outputs are passed positionally"
            " (add a parameter per upstream block, or *args)"
        ]
    return []
