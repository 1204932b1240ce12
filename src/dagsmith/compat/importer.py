"""Makes ``import mage_ai.…`` resolve to dagsmith's re-exports while block code runs.

Mage block files import ``mage_ai.data_preparation.decorators``,
``mage_ai.io.postgres`` and friends. ``dagsmith.compat.mage_ai`` holds a module
for each such name that only re-exports dagsmith objects. This finder maps
``mage_ai.X`` onto ``dagsmith.compat.mage_ai.X``.

It is installed only while dagsmith loads or runs block code (``aliasing()``),
and when the last user leaves, the aliased ``mage_ai*`` entries are removed
from ``sys.modules`` again, so a real ``mage-ai`` installed beside dagsmith is
never shadowed for other code in the process.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_PREFIX = "mage_ai"
_TARGET = "dagsmith.compat.mage_ai"


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # the target module is already executed
        return None


class MageAliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``mage_ai[.x.y]`` to ``dagsmith.compat.mage_ai[.x.y]`` when that exists."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _PREFIX and not fullname.startswith(_PREFIX + "."):
            return None
        ours = _TARGET + fullname[len(_PREFIX):]
        if importlib.util.find_spec(ours) is None:
            return None
        is_pkg = hasattr(importlib.import_module(ours), "__path__")
        return importlib.util.spec_from_loader(fullname, _AliasLoader(ours), is_package=is_pkg)


_finder = MageAliasFinder()
_lock = threading.Lock()
_users = 0
_saved: dict[str, object] = {}


def _install() -> None:
    # A real mage_ai already imported by other code is set aside, not replaced for good.
    for name in [n for n in sys.modules if n == _PREFIX or n.startswith(_PREFIX + ".")]:
        _saved[name] = sys.modules.pop(name)
    sys.meta_path.insert(0, _finder)


def _uninstall() -> None:
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name in [n for n in sys.modules if n == _PREFIX or n.startswith(_PREFIX + ".")]:
        del sys.modules[name]
    sys.modules.update(_saved)  # type: ignore[arg-type]
    _saved.clear()


@contextmanager
def aliasing() -> Iterator[None]:
    """Keep the ``mage_ai`` alias active for the duration of the ``with`` body (re-entrant)."""
    global _users
    with _lock:
        if _users == 0:
            _install()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _uninstall()


def activate_for_process() -> None:
    """Keep the alias for the rest of the process (used by worker processes that only run blocks)."""
    global _users
    with _lock:
        if _users == 0:
            _install()
        _users += 1
