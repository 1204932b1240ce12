"""Atomic file writes: readers see the old file or the new one, never half of one.

The data goes to a temporary file beside the target (same folder, so the rename stays
on one filesystem), which then replaces the target in one ``os.replace``. The temporary
name is hidden (``.name.<pid>.<thread>.tmp``), unique per process and thread so
concurrent writers never share one, and it is removed when writing fails.
"""

from __future__ import annotations

import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator


@contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    perms: int = 0o666,
    mkdir: bool = True,
    keep_mode: bool = False,
) -> Iterator[IO[Any]]:
    """Open a temporary file for ``mode`` (``"w"`` text, ``"wb"`` bytes); on success it replaces ``path``.

    ``perms`` are the new file's permission bits before the umask (``0o600`` for secrets).
    ``keep_mode`` gives a file that already exists its old permission bits back, exactly, so
    replacing a file someone made group-writable (a shared project) does not narrow it.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, perms)
    if keep_mode:
        try:
            os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode))
        except FileNotFoundError:
            pass
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(
    path: str | os.PathLike[str], text: str, *, perms: int = 0o666, keep_mode: bool = False
) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step."""
    with atomic_write(path, "w", perms=perms, keep_mode=keep_mode) as handle:
        handle.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, perms: int = 0o666) -> None:
    """Replace ``path`` with ``data`` in one step."""
    with atomic_write(path, "wb", perms=perms) as handle:
        handle.write(data)
