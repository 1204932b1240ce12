"""Which ``dagsmith start`` processes run a project now, and at which address.

Each ``dagsmith start`` takes an exclusive, non-blocking ``flock`` per singleton role
(``scheduler``, ``server``) on ``<data_dir>/start-<role>.lock`` and keeps it for its
lifetime; the kernel drops the lock when the process dies, so a killed server never
leaves a stale lock behind. Next to the lock, ``start-<role>.json`` says who holds it
(pid, host, port, metadata DB), which is what a second ``start`` quotes when it refuses
and what ``dagsmith trigger url`` uses to print the server's real port.

Workers take no lock: any number may share a metadata DB.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SINGLETON_ROLES = ("scheduler", "server")


def _lock_path(data_dir: Path, role: str) -> Path:
    return Path(data_dir) / f"start-{role}.lock"


def _info_path(data_dir: Path, role: str) -> Path:
    return Path(data_dir) / f"start-{role}.json"


def _try_lock(path: Path) -> Any:
    """An open file holding an exclusive lock on ``path``, or None when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no guard
        return open(path, "a+")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def holder(data_dir: Path, role: str) -> dict[str, Any] | None:
    """What the live holder of ``role`` wrote about itself, or None when nobody holds it."""
    handle = _try_lock(_lock_path(data_dir, role))
    if handle is not None:  # nobody holds it (we just did): not running
        handle.close()
        return None
    try:
        return json.loads(_info_path(data_dir, role).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class Claim:
    """The singleton roles this process holds; released when the process exits (or ``release()``)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.handles: dict[str, Any] = {}

    def take(self, role: str, info: dict[str, Any]) -> dict[str, Any] | None:
        """Hold ``role``; returns None, or the other holder's info when it is taken."""
        handle = _try_lock(_lock_path(self.data_dir, role))
        if handle is None:
            return holder(self.data_dir, role) or {}
        self.handles[role] = handle
        self.note(role, info)
        return None

    def note(self, role: str, info: dict[str, Any]) -> None:
        """Record (or update, e.g. with the bound port) what this process says about ``role``."""
        if role not in self.handles:
            return
        from dagsmith.util.fs import write_text_atomic

        write_text_atomic(_info_path(self.data_dir, role), json.dumps({"pid": os.getpid(), **info}))

    def release(self) -> None:
        for role, handle in list(self.handles.items()):
            try:
                _info_path(self.data_dir, role).unlink()
            except OSError:
                pass
            handle.close()
        self.handles.clear()


def running_server(data_dir: Path) -> dict[str, Any] | None:
    """``{"host", "port", "pid"}`` of the ``dagsmith start`` serving this project now, or None."""
    info = holder(data_dir, "server")
    if not info or "port" not in info:
        return None
    return info
