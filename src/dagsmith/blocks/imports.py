"""Which project files a block's code depends on: the block file and the project modules it imports.

Found by parsing only (nothing is imported): every ``import x.y`` / ``from x.y import z`` /
``from . import z`` in the file is resolved against the folders a run puts on ``sys.path``
(the project folder and its parent, so both ``utils.helpers`` and ``<project>.utils.helpers``
work), and kept when the module's file lies inside the project. Followed transitively, so a
block that imports ``utils/a.py``, which imports ``utils/b.py``, depends on both.

Used by the block cache (a change of any of these files is a miss) and by ``dagsmith dev``
(a save of ``utils/b.py`` re-runs the blocks that depend on it).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Iterable


def _parse(path: Path) -> ast.AST | None:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _module_names(tree: ast.AST, package: str | None) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):  # imports inside functions count too (a lazy import is still code the block runs)
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if package is None:
                    continue
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, base] if base else parts)
            if not base:
                continue
            names.add(base)
            for alias in node.names:  # ``from utils import helpers`` imports the module utils.helpers
                names.add(f"{base}.{alias.name}")
    return names


def _resolve(name: str, roots: list[Path], project: Path) -> list[Path]:
    """Files of module ``name`` (and of its parent packages' ``__init__``) that lie inside ``project``."""
    found: list[Path] = []
    parts = name.split(".")
    for base in roots:
        for i in range(1, len(parts) + 1):
            stem = base.joinpath(*parts[:i])
            for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
                if candidate.is_file() and _inside(candidate, project):
                    found.append(candidate.resolve())
    return found


def _inside(path: Path, folder: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top + os.sep)


def _package_of(path: Path, roots: list[Path]) -> str | None:
    """The dotted package a project file belongs to (for relative imports), or None."""
    for base in roots:
        try:
            rel = path.resolve().relative_to(base.resolve())
        except ValueError:
            continue
        return ".".join(rel.parent.parts)
    return None


def project_dependencies(path: Path, project_root: Path) -> list[Path]:
    """The project files ``path`` imports, transitively (not ``path`` itself), sorted."""
    project = Path(project_root).resolve()
    roots = [project, project.parent]
    seen: set[Path] = set()
    todo = [Path(path).resolve()]
    start = todo[0]
    while todo:
        current = todo.pop()
        tree = _parse(current)
        if tree is None:
            continue
        for name in _module_names(tree, _package_of(current, roots)):
            for dep in _resolve(name, roots, project):
                if dep not in seen and dep != start:
                    seen.add(dep)
                    todo.append(dep)
    return sorted(seen)


def code_digest(path: Path, project_root: Path, *, extra: Iterable[str] = ()) -> str:
    """A digest of a block's code: its file and every project module it imports (by content)."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    project = Path(project_root).resolve()
    for file in [Path(path).resolve(), *project_dependencies(path, project)]:
        try:
            data = file.read_bytes()
        except OSError:
            data = b"<missing>"
        try:
            rel = str(file.relative_to(project))
        except ValueError:
            rel = str(file)
        h.update(rel.encode() + b"\0" + hashlib.blake2b(data, digest_size=16).digest())
    for item in extra:
        h.update(b"\0" + item.encode())
    return h.hexdigest()
