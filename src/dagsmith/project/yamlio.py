"""Reading and writing the project's YAML files safely.

Reading names the file and line of a syntax error. Writing is atomic (temp
file + rename in the same folder) so a crash or a bad value never leaves a
half-written ``metadata.yaml``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from dagsmith.errors import ProjectError

try:  # the C loader is several times faster on big pipelines
    _Loader: type = yaml.CSafeLoader
    _Dumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper


def parse_yaml(text: str, source: str | os.PathLike[str]) -> Any:
    """Parse YAML text; a syntax error becomes a ``ProjectError`` naming ``source:line``."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProjectError(
            f"{where}: malformed YAML: {problem}",
            hint="fix the YAML syntax at that line (indentation, a missing ':' or an unclosed quote)",
        ) from None


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Read and parse a YAML file, with errors that name the file.

    Big files (a pipeline of many blocks) are parsed once per content: the parsed value is
    kept in the folder's ``__pycache__`` as marshal data keyed by a hash of the text, like
    Python's own .pyc files (and not written under ``PYTHONDONTWRITEBYTECODE``).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{p}: cannot read file: {exc}") from None
    if len(text) < _CACHE_MIN_CHARS:
        return parse_yaml(text, p)
    import hashlib
    import marshal
    import sys

    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    cache = p.parent / "__pycache__" / f"{p.name}.dagsmith-yaml.bin"
    try:
        stored, value = marshal.loads(cache.read_bytes())
        if stored == digest:
            return value
    except (OSError, ValueError, EOFError, TypeError):
        pass
    value = parse_yaml(text, p)
    if not sys.dont_write_bytecode:
        try:
            data = marshal.dumps((digest, value))  # ValueError for values marshal cannot hold (dates)
            cache.parent.mkdir(exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cache)
        except (OSError, ValueError):
            pass
    return value


_CACHE_MIN_CHARS = 8192


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` in one step: readers see the old or the new file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_yaml(path: str | os.PathLike[str], data: Any) -> None:
    """Serialize first, then write atomically: a value YAML cannot hold changes nothing."""
    write_text_atomic(path, dump_yaml(data))
