"""The one gate for names that come from outside: URLs, forms, API bodies, CLI arguments, YAML, block code.

Every pipeline, block, trigger, backfill and secret name, file path and variables folder
passes through here before it becomes part of a path or is stored:

* ``clean_name(text)`` turns a display name into a uuid the way Mage does (lower case,
  anything that is not a letter, digit or ``_`` becomes ``_``). Letters of any script are
  kept, so ``Données clients`` becomes ``données_clients``, not ``block``. A name that reads
  as a path (absolute, ``..``, backslash, NUL) is refused, not cleaned.
* ``check_name(value, kind)`` accepts an existing uuid only when it is one path segment
  (block uuids may be several, for Mage's nested block folders) that cannot leave its
  folder: no ``..``, no absolute path, no ``/`` or ``\\``, no NUL or control characters,
  no leading ``.`` (dagsmith's own folders are hidden), at most 255 characters.
* ``confined(base, *parts)`` joins checked names under ``base`` and proves the resolved
  path is still inside ``base`` (a symlink that points out is refused).
* ``project_file(root, relpath, forbidden=...)`` does the same for a relative file path of
  the file browser and refuses dagsmith's data folder wherever it lives; ``safe_path`` is that
  check with dagsmith's own paths (``private_paths``) as the forbidden list.

A refused name raises :class:`UnsafeName` (a ``ProjectError``): the API answers 422, the UI
shows the message, the CLI exits 2 — and nothing has been read or written.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Iterable

from dagsmith.errors import ProjectError

MAX_NAME = 255
#: kinds of names and what the error message calls them
KINDS = {
    "pipeline": "pipeline uuid",
    "block": "block uuid",
    "trigger": "trigger name",
    "backfill": "backfill name",
    "secret": "secret name",
    "partition": "partition",
    "name": "name",
}


class UnsafeName(ProjectError):
    """A name or path that would leave its folder, or cannot be a file name."""


def _path_like(text: str) -> str | None:
    """Why a display name reads as a path (absolute, ``..``, backslash, NUL), or None.

    Such a name is a mistake or an attack, never a name: refusing it beats quietly turning
    ``/srv/shared/v`` into ``srv_shared_v``, which the person did not ask for either.
    """
    if "\x00" in text:
        return "contains a NUL character"
    if "\\" in text:
        return "contains a backslash"
    if text.startswith("/") or os.path.isabs(text) or re.match(r"^[A-Za-z]:[\\/]", text):
        return "is an absolute path"
    if ".." in text.split("/"):
        return "contains '..'"
    return None


def clean_name(name: str, *, default: str = "block") -> str:
    """A display name → a uuid (Mage's rule, letters of every script kept, never a path).

    Raises :class:`UnsafeName` for a name that reads as a path (absolute, ``..``, backslash, NUL).
    """
    text = str(name or "")
    if not text.isascii():  # ASCII is NFC already (and unicodedata costs an import)
        import unicodedata

        text = unicodedata.normalize("NFC", text)
    problem = _path_like(text.strip())
    if problem:
        raise UnsafeName(f"name {text[:80]!r} {problem}",
                         hint="give a plain name, such as load_taxi_data; it becomes the file name inside the project")
    for ch in ("\ufeff", "\u200b", '"', "$"):
        text = text.replace(ch, "")
    cleaned = re.sub(r"\W+", "_", text.strip()).strip("_").lower()
    return cleaned[:MAX_NAME] or default


#: Unicode's control characters (category Cc, fixed by the standard): C0, DEL and C1
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (what ``unicodedata.category(ch) == "Cc"`` says, without the import)."""
    return _CONTROL.search(text) is not None


@functools.lru_cache(maxsize=4096)  # pure; every block name is checked several times per run
def _problem(value: str, *, allow_slash: bool) -> str | None:
    if not value:
        return "is empty"
    if len(value) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    if "\x00" in value:
        return "contains a NUL character"
    if _has_control(value):
        return "contains a control character"
    if "\\" in value:
        return "contains a backslash"
    if value.startswith("/") or os.path.isabs(value) or re.match(r"^[A-Za-z]:", value):
        return "is an absolute path"
    segments = value.split("/")
    if "/" in value and not allow_slash:
        return "contains '/'"
    for segment in segments:
        if segment in ("", ".", ".."):
            return "contains '.', '..' or an empty path segment"
        if segment.startswith("."):
            return "starts with '.' (hidden folders are dagsmith's own)"
        if segment != segment.strip():
            return "starts or ends with a space"
    return None


def check_name(value: object, kind: str = "name") -> str:
    """``value`` itself when it is a safe ``kind`` name; raises :class:`UnsafeName` otherwise."""
    text = value if isinstance(value, str) else str(value if value is not None else "")
    problem = _problem(text, allow_slash=(kind == "block"))
    if problem:
        what = KINDS.get(kind, kind)
        raise UnsafeName(
            f"{what} {text[:80]!r} {problem}",
            hint=f"a {what} is a plain name inside its folder, such as load_taxi_data",
        )
    return text


def is_safe_name(value: object, kind: str = "name") -> bool:
    try:
        check_name(value, kind)
    except UnsafeName:
        return False
    return True


def inside(path: Path, base: Path) -> bool:
    """True when ``path`` (already resolved) is ``base`` or below it."""
    return path == base or base in path.parents


def confined(base: str | os.PathLike[str], *parts: str, kinds: Iterable[str] | None = None) -> Path:
    """``base/part/…`` after checking each part; refuses a result outside ``base`` (symlinks included)."""
    base_path = Path(base)
    kinds = list(kinds or ())
    for index, part in enumerate(parts):
        check_name(part, kinds[index] if index < len(kinds) else "name")
    candidate = base_path.joinpath(*parts)
    real_base = base_path.resolve()
    if not inside(candidate.resolve(), real_base):
        raise UnsafeName(
            f"{'/'.join(parts)!r} resolves outside {base_path} (through a symbolic link)",
            hint="links that leave the folder are not followed; move the files inside it",
        )
    return candidate


def project_file(root: str | os.PathLike[str], relpath: str, *, forbidden: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """A file path of the project for the file browser/editor.

    Each segment must pass ``check_name`` (dot-files such as ``.env`` and ``.gitignore`` are
    allowed, dot-folders are not); no segment may be a symlink; the result may not be, or be
    inside, any ``forbidden`` folder or file (dagsmith's data folder, DB, key, logs).
    """
    root_path = Path(root).resolve()
    rel = str(relpath or "").strip()
    if rel in ("", ".", "/"):
        return root_path
    problem = None
    if "\x00" in rel or _has_control(rel):
        problem = "contains a control character"
    elif "\\" in rel:
        problem = "contains a backslash"
    elif rel.startswith("/") or os.path.isabs(rel) or re.match(r"^[A-Za-z]:", rel):
        problem = "is absolute; give a path inside the project"
    parts = [p for p in rel.split("/") if p not in ("",)]
    if problem is None:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part in (".", ".."):
                problem = "contains '..' or '.'; only files inside the project can be opened"
            elif part.startswith(".") and not last:
                problem = "goes through a hidden folder"
            elif len(part) > MAX_NAME:
                problem = "has a segment longer than 255 characters"
            if problem:
                break
    if problem:
        raise UnsafeName(f"path {rel[:120]!r} {problem}", hint="e.g. io_config.yaml or utils/helpers.py")
    current = root_path
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise UnsafeName(f"path {rel!r} goes through a symbolic link ({current.relative_to(root_path)}); links are not followed")
    target = current.resolve()
    if not inside(target, root_path):
        raise UnsafeName(f"path {rel!r} is outside the project")
    for item in forbidden:
        blocked = Path(item).resolve()
        if inside(target, blocked):
            raise UnsafeName(
                f"path {rel!r} is dagsmith's own data (run history, logs, keys) and cannot be opened here",
                hint="use the Runs and Settings pages, or the CLI, for what lives there",
            )
    return target


def private_paths(root: str | os.PathLike[str], settings=None) -> list[Path]:
    """dagsmith's own data wherever it lives: the data folder, ``.dagsmith``, and with ``settings``
    (``OrchestrationSettings``) its data and logs folders and SQLite file, plus the secret key
    file of ``DAGSMITH_SECRET_KEY_FILE``. The file browser never lists, reads or writes them."""
    from dagsmith.project.layout import data_dir

    paths = [data_dir(root), Path(root) / ".dagsmith"]
    if settings is not None:
        paths += [settings.data_dir, settings.logs_dir]
        url = str(getattr(settings, "url", "") or "")
        if url.startswith("sqlite:///"):
            paths.append(Path(url[len("sqlite:///"):]))
    from dagsmith.settings import get

    key_file = get("secret_key_file")
    if key_file:
        paths.append(Path(key_file))
    return paths


def safe_path(root: str | os.PathLike[str], relpath: str, private: Iterable[str | os.PathLike[str]] | None = None) -> Path:
    """A file path of the project through the name gate (``project_file``), refusing ``private``
    (default: the data folder and ``.dagsmith``): no absolute paths, ``..``, symlinks or dagsmith's data."""
    from dagsmith.project.layout import data_dir

    return project_file(root, relpath, forbidden=private if private is not None else [data_dir(root), Path(root) / ".dagsmith"])
