"""Turning a Python block file into callables, and calling user code at one boundary.

The file is executed as a fresh module whose globals are pre-seeded with the
decorators (as Mage does, so ``if 'data_loader' not in globals():`` guards
work), with ``mage_ai.*`` imports aliased to dagsmith while it runs. Marked
functions are collected in definition order.

``call_user`` is the one boundary around user code: it passes upstream
outputs positionally and runtime variables as keywords (all of them to
``**kwargs``, matching names otherwise), and turns any exception into a
``BlockError`` naming the block and the user's file:line, with the traceback
trimmed to the user's frames.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dagsmith.blocks.decorators import CALLBACK_ON_ATTR, ENTRY_KINDS, KIND_ATTR, SEEDED
from dagsmith.errors import BlockError, DagsmithError, MageNameUnavailable, NotAvailableInDagsmith, ProjectError

_DAGSMITH_DIR = str(Path(__file__).resolve().parents[1])


@dataclass
class LoadedBlock:
    """The callables found in one block file."""

    path: Path
    entry: Callable[..., Any] | None
    tests: list[Callable[..., Any]] = field(default_factory=list)
    conditions: list[Callable[..., Any]] = field(default_factory=list)
    callbacks: list[tuple[tuple[str, ...], Callable[..., Any]]] = field(default_factory=list)
    module: types.ModuleType | None = None

    def callbacks_for(self, status: str) -> list[Callable[..., Any]]:
        return [fn for statuses, fn in self.callbacks if status in statuses]


_cache: dict[tuple[str, str], tuple[tuple[int, int], LoadedBlock]] = {}
_cache_lock = threading.Lock()


def load_python_block(path: Path, block_type: str, *, block_uuid: str, fresh: bool = False) -> LoadedBlock:
    """Execute ``path`` as a block module and collect its marked functions.

    Loads are cached per (file, type) until the file changes on disk, so a
    file shared by several blocks or pipelines is compiled once. ``fresh``
    re-executes module-level code (what a run wants: module code may read
    environment variables).
    """
    from dagsmith.blocks.mage_imports import aliasing

    key = (os.fspath(path), block_type)
    try:
        st = os.stat(key[0])
    except OSError as exc:
        raise ProjectError(f"block '{block_uuid}': cannot read {path}: {exc.strerror or exc}") from None
    stamp = (st.st_mtime_ns, st.st_size)
    if not fresh:
        with _cache_lock:
            hit = _cache.get(key)
        if hit and hit[0] == stamp:
            return hit[1]
    from dagsmith.blocks.checks import analyze

    facts = analyze(path, stamp)
    if facts.read_error:
        raise ProjectError(f"block '{block_uuid}': {path} {facts.read_error}")
    if facts.syntax_error or facts.code is None:
        line, msg = facts.syntax_error or (0, "cannot compile")
        raise ProjectError(f"block '{block_uuid}': syntax error at {path}:{line}: {msg}")
    code = facts.code
    module = types.ModuleType(f"dagsmith_blocks.{block_type}.{block_uuid}")
    module.__file__ = str(path)
    module.__dict__.update(SEEDED)
    with aliasing():
        try:
            exec(code, module.__dict__)
        except (NotAvailableInDagsmith, MageNameUnavailable) as exc:  # name the block and the import line
            raise user_error(exc, block_uuid, path, "while loading the block file") from None
        except DagsmithError:
            raise
        except BaseException as exc:  # user module code failed at import time
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not isinstance(exc, SystemExit):
                raise
            raise user_error(exc, block_uuid, path, "while loading the block file") from None
    loaded = _collect(path, module, block_type)
    with _cache_lock:
        _cache[key] = (stamp, loaded)
    return loaded


def _collect(path: Path, module: types.ModuleType, block_type: str) -> LoadedBlock:
    entry = None
    fallback = None
    tests, conditions, callbacks = [], [], []
    seen: set[int] = set()
    for value in list(module.__dict__.values()):
        kind = getattr(value, KIND_ATTR, None)
        if kind is None or not callable(value) or id(value) in seen:
            continue
        if getattr(value, "__module__", None) not in (None, module.__name__) and getattr(
            value, "__code__", None
        ) is not None and value.__code__.co_filename != str(path):
            continue  # a marked function imported from elsewhere is not this block's
        seen.add(id(value))
        if kind == block_type and entry is None:
            entry = value
        elif kind in ENTRY_KINDS and fallback is None:
            fallback = value
        elif kind == "test":
            tests.append(value)
        elif kind == "condition":
            conditions.append(value)
        elif kind == "callback":
            callbacks.append((getattr(value, CALLBACK_ON_ATTR, ("success",)), value))
        elif kind == "on_success":
            callbacks.append((("success",), value))
        elif kind == "on_failure":
            callbacks.append((("failure",), value))
    return LoadedBlock(
        path=path,
        entry=entry or fallback,
        tests=tests,
        conditions=conditions,
        callbacks=callbacks,
        module=module,
    )


_sig_cache: dict[Any, tuple[bool, frozenset[str]]] = {}


def _signature_info(fn: Callable[..., Any]) -> tuple[bool, frozenset[str]]:
    """(takes **kwargs, names of keyword-capable parameters), cached per function."""
    key = getattr(fn, "__code__", fn)
    info = _sig_cache.get(key)
    if info is None:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return True, frozenset()
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        names = frozenset(
            p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )
        info = (var_kw, names)
        _sig_cache[key] = info
    return info


def call_with(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Call user code Mage's way: positional inputs, and keywords it can take.

    ``mage_ai`` imports inside the function resolve to dagsmith while it runs
    (``blocks.mage_imports``). The keywords are also made current for connectors the code
    calls (``dagsmith.io.runtime``).
    """
    from dagsmith.blocks.mage_imports import aliasing

    with aliasing():
        try:
            return _call(fn, args, kwargs)
        except (NotAvailableInDagsmith, MageNameUnavailable) as exc:
            # a Mage name dagsmith lacks: say which block and line used it
            block = kwargs.get("block_uuid")
            code = getattr(fn, "__code__", None)
            if not block or code is None:
                raise
            raise user_error(exc, str(block), Path(code.co_filename)) from None


def _call(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    from dagsmith.io.runtime import block_variables

    var_kw, names = _signature_info(fn)
    with block_variables(kwargs):
        if var_kw:
            return fn(*args, **kwargs)
        n_pos = len(args)
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            params = []
        taken = {p.name for p in params[:n_pos] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
        return fn(*args, **{k: v for k, v in kwargs.items() if k in names and k not in taken})


def user_frames(tb: types.TracebackType | None) -> list[traceback.FrameSummary]:
    """Frames of a traceback outside dagsmith's own package (the user's code and libraries)."""
    frames = traceback.extract_tb(tb)
    kept = [f for f in frames if not f.filename.startswith(_DAGSMITH_DIR)]
    return kept or frames


def user_error(exc: BaseException, block_uuid: str, path: Path | None, doing: str = "") -> BlockError:
    """Wrap an exception raised by user code into a ``BlockError`` with file:line and a trimmed traceback."""
    if isinstance(exc, BlockError):
        return exc
    frames = user_frames(exc.__traceback__)
    location = None
    target = os.path.realpath(path) if path else None
    for frame in reversed(frames):
        if target and os.path.realpath(frame.filename) == target:
            location = f"{frame.filename}:{frame.lineno}"
            break
    if location is None and frames:
        location = f"{frames[-1].filename}:{frames[-1].lineno}"
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(exc), exc))
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    where = f" at {location}" if location else ""
    doing = f" {doing}" if doing else ""
    return BlockError(
        f"block '{block_uuid}' failed{doing}{where}: {detail}",
        block_uuid=block_uuid,
        location=location,
        user_traceback=text,
    )


def entry_for(loaded: LoadedBlock, block_uuid: str, block_type: str) -> Callable[..., Any]:
    if loaded.entry is None:
        raise ProjectError(
            f"block '{block_uuid}': {loaded.path} has no function decorated with @{block_type}",
            hint=f"add @{block_type} above the function this block should run",
        )
    return loaded.entry


def ensure_importable(project_root: Path) -> None:
    """Put the project's parent folder on ``sys.path`` so ``<project>.utils.x`` imports work,
    and make ``mage_ai`` imports resolve to dagsmith (``blocks.mage_imports.refresh``).

    A package of the same name imported earlier from another folder (another
    project with the same folder name) is dropped from ``sys.modules`` first.
    Serialised: a worker starts several runs at once, and two concurrent
    ``importlib.invalidate_caches()`` calls delete the same ``sys.path_importer_cache``
    entry (a ``KeyError`` naming a ``sys.path`` folder fails the run).
    """
    import importlib

    from dagsmith.blocks.mage_imports import refresh

    refresh()  # ``mage_ai`` imports resolve from here on (see blocks.mage_imports)
    with _IMPORTABLE_LOCK:
        parent = str(project_root.parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)
        name = project_root.name
        existing = sys.modules.get(name)
        if existing is not None:
            paths = [os.path.realpath(p) for p in getattr(existing, "__path__", [])]
            if os.path.realpath(project_root) not in paths:
                for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                    del sys.modules[mod]
        importlib.invalidate_caches()


_IMPORTABLE_LOCK = threading.Lock()
