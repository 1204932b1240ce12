"""Reading and writing the project's YAML files safely.

Reading names the file and line of a syntax error, and refuses hostile files: one
larger than ``max_yaml_bytes()`` (8 MiB unless ``DAGSMITH_MAX_YAML_BYTES`` says
otherwise), and one whose aliases (``*name``) would expand it by more than
``ALIAS_NODE_BUDGET`` values or ``ALIAS_CHAR_BUDGET`` characters — a few hundred
bytes of nested aliases otherwise become gigabytes once the data is walked or sent
as JSON. Writing is atomic (temp file + rename in the same folder) so a crash or a
bad value never leaves a half-written ``metadata.yaml``.

PyYAML is imported only when a file has to be parsed or written: importing it costs
more than a small pipeline's whole run, and a parsed file is kept (marshal data keyed
by a hash of its text, in the folder's ``__pycache__``) so the next process needs no
parser at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagsmith.errors import ProjectError
from dagsmith.util import fs
from dagsmith.util.fs import write_bytes_atomic

# files that hold connection secrets: new ones are created readable by their owner only
_PRIVATE_NAMES = frozenset({"io_config.yaml", "io_config.yml", ".env"})

if TYPE_CHECKING:
    import yaml


def _yaml() -> Any:
    """PyYAML, imported on first use."""
    import yaml

    return yaml


def _loader() -> type:
    yaml = _yaml()
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is several times faster


def _dumper() -> type:
    yaml = _yaml()
    return getattr(yaml, "CSafeDumper", yaml.SafeDumper)


#: values (nodes) and scalar characters that aliases may add to a document
ALIAS_NODE_BUDGET = 10_000
ALIAS_CHAR_BUDGET = 1_000_000


def max_yaml_bytes() -> int:
    """The largest project YAML file read, in bytes (``DAGSMITH_MAX_YAML_BYTES``, default 8 MiB)."""
    from dagsmith.settings import get

    return get("max_yaml_bytes")


def _too_big(source: str | os.PathLike[str], size: int, limit: int) -> ProjectError:
    return ProjectError(
        f"{source}: the file is {size:,} bytes; project YAML files may be at most {limit:,} bytes",
        hint="keep data out of YAML files (use a block or a file in the project), or raise DAGSMITH_MAX_YAML_BYTES",
    )


def _alias_growth(root: yaml.Node) -> tuple[int, int, bool]:
    """(values, scalar characters) that aliases add when ``root`` is expanded, and whether an alias is recursive.

    An alias reuses its anchor's node object, so a node reached again is an alias use; its
    expanded size (memoised per node) is what the alias adds. Iterative: no recursion limit.
    """
    yaml = _yaml()
    size: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()
    added_nodes = added_chars = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            nodes, chars = 1, 0
            for child in _children(node):
                n, c = size[id(child)]
                nodes += n
                chars += c
            size[key] = (nodes, chars)
            open_nodes.discard(key)
            continue
        if key in open_nodes:
            return added_nodes, added_chars, True  # an alias inside its own anchor
        if key in size:
            nodes, chars = size[key]
            added_nodes += nodes
            added_chars += chars
            if added_nodes > ALIAS_NODE_BUDGET or added_chars > ALIAS_CHAR_BUDGET:
                break
            continue
        if isinstance(node, yaml.ScalarNode):
            size[key] = (1, len(node.value))
            continue
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    return added_nodes, added_chars, False


def _children(node: yaml.Node) -> list[yaml.Node]:
    yaml = _yaml()
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _load_guarded(text: str, source: str | os.PathLike[str]) -> Any:
    """Compose, check what aliases add, then construct (one parse)."""
    loader = _loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes, chars, recursive = _alias_growth(node)
        if recursive:
            raise ProjectError(
                f"{source}: a YAML alias (*name) is used inside its own anchor (&name), which makes the data endless",
                hint="remove the alias, or point it at an anchor outside the value that defines it",
            )
        if nodes > ALIAS_NODE_BUDGET or chars > ALIAS_CHAR_BUDGET:
            raise ProjectError(
                f"{source}: YAML aliases (*name) expand this file by more than {ALIAS_NODE_BUDGET:,} values "
                f"or {ALIAS_CHAR_BUDGET:,} characters; it is refused (an alias bomb?)",
                hint="write the repeated values out, or use fewer and smaller anchors (&name)",
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str | os.PathLike[str]) -> Any:
    """Parse YAML text; a syntax error becomes a ``ProjectError`` naming ``source:line``.

    Text longer than ``max_yaml_bytes()`` and aliases beyond the budget are refused too.
    """
    limit = max_yaml_bytes()
    if len(text) > limit:
        raise _too_big(source, len(text.encode("utf-8", "surrogatepass")), limit)
    try:
        if "&" in text and "*" in text:  # an alias needs an anchor: plain files take the direct path
            return _load_guarded(text, source)
        return _yaml().load(text, Loader=_loader())
    except Exception as exc:
        if not isinstance(exc, _yaml().YAMLError):
            raise
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProjectError(
            f"{where}: malformed YAML: {problem}",
            hint="fix the YAML syntax at that line (indentation, a missing ':' or an unclosed quote)",
        ) from None


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Read and parse a YAML file, with errors that name the file.

    The parsed value is kept in the folder's ``__pycache__`` as marshal data keyed by a
    hash of the text, like Python's own .pyc files (and not written under
    ``PYTHONDONTWRITEBYTECODE``): a file parsed once needs neither PyYAML nor a parse again.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_yaml_bytes():  # refused before reading: a huge file never reaches memory
            raise _too_big(p, size, max_yaml_bytes())
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{p}: cannot read file: {exc}") from None
    return parse_yaml_cached(text, p)


def parse_yaml_cached(text: str, path: Path) -> Any:
    """``parse_yaml(text, path)``, remembered in ``path``'s ``__pycache__`` folder per content.

    Only for text that is the file's own content: a value rendered from a template (with
    environment variables, perhaps secrets) must never be written to the project folder.
    The key is a hash of the text, so an edit (however quick, whatever the file's
    timestamps say) is always parsed again; values marshal cannot hold (dates) are not kept.
    """
    import marshal
    import sys

    try:
        from _blake2 import blake2b  # hashlib's own BLAKE2, without loading OpenSSL (hashlib's import cost)
    except ImportError:  # pragma: no cover - other Pythons
        from hashlib import blake2b
    digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    cache = path.parent / "__pycache__" / f"{path.name}.dagsmith-yaml.bin"
    try:
        stored, value = marshal.loads(cache.read_bytes())
        if stored == digest:
            return value
    except (OSError, ValueError, EOFError, TypeError):
        pass
    value = parse_yaml(text, path)
    if not sys.dont_write_bytecode:
        try:
            data = marshal.dumps((digest, value))  # ValueError for values marshal cannot hold (dates)
            write_bytes_atomic(cache, data)
        except (OSError, ValueError):
            pass
    return value


def dump_yaml(data: Any) -> str:
    return _yaml().dump(data, Dumper=_dumper(), sort_keys=False, default_flow_style=False, allow_unicode=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` in one step: readers see the old or the new file.

    A file that exists keeps its permission bits (a project shared through a group or a
    checkout stays readable to the others); a new file gets the usual ``0666`` less the
    umask, as an editor would make it — except the files that hold connection secrets
    (``io_config.yaml``, ``.env``), which start private (``0600``).
    """
    private = Path(path).name in _PRIVATE_NAMES
    fs.write_text_atomic(path, text, perms=0o600 if private else 0o666, keep_mode=True)


def write_yaml(path: str | os.PathLike[str], data: Any) -> None:
    """Serialize first, then write atomically: a value YAML cannot hold changes nothing."""
    write_text_atomic(path, dump_yaml(data))
