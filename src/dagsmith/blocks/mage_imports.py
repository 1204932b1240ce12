"""Makes ``import mage_ai.…`` resolve to dagsmith's re-exports wherever block code imports it.

Mage block files import ``mage_ai.data_preparation.decorators``, ``mage_ai.io.postgres``
and friends — at the top of the file, inside the decorated function, in helpers under
``utils/``, in code imported lazily later. ``dagsmith.compat.mage_ai`` holds a module for
each name dagsmith supports; this finder maps ``mage_ai.X`` onto
``dagsmith.compat.mage_ai.X``. Two promises are kept at once:

1. **Imports work anywhere.** When no real ``mage-ai`` is installed (the usual case),
   the finder stays installed for the rest of the process once dagsmith has loaded a
   block, so ``mage_ai`` resolves at any time, from any module or thread. Nothing is
   shadowed: there is nothing to shadow.
2. **A real mage-ai is never shadowed outside block execution.** When one is installed,
   the finder maps ``mage_ai`` only while dagsmith loads or calls block code
   (``aliasing()``, re-entrant across threads); the real modules are set aside for that
   time and put back afterwards.

Names Mage ships that dagsmith does not support resolve too, so nothing fails with a bare
``ModuleNotFoundError`` (``blocks.mage_stubs``): a ``mage_ai.io`` connector module (MySQL,
Snowflake, …) imports and its class raises ``NotAvailableInDagsmith`` when used; taking
any other name from a module dagsmith lacks raises ``MageNameUnavailable`` (an
``ImportError``) naming it.

It lives in ``blocks`` because loading and calling block code needs it (``blocks.loader``,
the executors); it reaches ``dagsmith.compat.mage_ai`` by module name only, when block code
imports ``mage_ai``, so ``blocks`` never imports ``compat`` (the layers of
docs/architecture.md).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types

_PREFIX = "mage_ai"
_TARGET = "dagsmith.compat.mage_ai"


class _AliasLoader:  # a loader by protocol: importlib.abc costs more than a small run's blocks
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # the target module is already executed
        return None


class _StubLoader:
    """A Mage module dagsmith does not implement: importable, its names fail when used."""

    def __init__(self, fullname: str) -> None:
        self.fullname = fullname

    def create_module(self, spec):
        return None  # default module creation

    def exec_module(self, module: types.ModuleType) -> None:
        from dagsmith.blocks.mage_stubs import fill_stub_module

        fill_stub_module(module, self.fullname)


def _real_mage_spec():
    """The spec of a ``mage_ai`` package on ``sys.path`` (a real Mage install), or None."""
    try:
        return importlib.machinery.PathFinder.find_spec(_PREFIX)
    except (ImportError, ValueError):  # a broken sys.path entry must not break imports
        return None


class MageAliasFinder:  # a meta path finder by protocol (find_spec): importlib.abc is not imported
    """Resolves ``mage_ai[.x.y]`` to ``dagsmith.compat.mage_ai[.x.y]`` (see the module docstring)."""

    def __init__(self) -> None:
        self.real_installed = _real_mage_spec() is not None
        self.forced = 0  # aliasing() users while a real mage-ai is installed

    def active(self) -> bool:
        return self.forced > 0 or not self.real_installed

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _PREFIX and not fullname.startswith(_PREFIX + "."):
            return None
        if fullname == _PREFIX:
            if not self.active():
                return None
        else:
            parent = sys.modules.get(_PREFIX)
            if parent is None or getattr(parent, "__name__", "") != _TARGET:
                return None  # the real mage_ai (or nothing) is imported: not ours to answer
        ours = _TARGET + fullname[len(_PREFIX):]
        try:
            found = importlib.util.find_spec(ours)
        except ModuleNotFoundError:
            found = None
        if found is None:  # a Mage name dagsmith lacks: importable, fails clearly when used
            return importlib.util.spec_from_loader(fullname, _StubLoader(fullname), is_package=True)
        is_pkg = found.submodule_search_locations is not None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(ours), is_package=is_pkg)


_finder: MageAliasFinder | None = None
_lock = threading.RLock()
_saved: dict[str, object] = {}


def _ensure_finder() -> MageAliasFinder:
    global _finder
    if _finder is None:
        _finder = MageAliasFinder()
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    return _finder


def _mage_modules() -> list[str]:
    return [n for n in list(sys.modules) if n == _PREFIX or n.startswith(_PREFIX + ".")]


def _path_stamp() -> tuple:
    """``sys.path`` with each folder's modification time (and the working folder, for ``''``).

    A ``mage_ai`` package that appears in a folder changes the folder's time; looking for it
    again lists every folder of ``sys.path`` (import caches are invalidated at each run
    start), which cost a busy worker about a millisecond per run.
    """
    out: list = [os.getcwd() if "" in sys.path else None]
    for entry in sys.path:
        try:
            out.append((entry, os.stat(entry or ".").st_mtime_ns))
        except (OSError, TypeError, ValueError):
            out.append((entry, None))
    return tuple(out)


_checked_stamp: list[tuple] = []


def refresh() -> None:
    """Install the finder (once) and re-check whether a real mage-ai is on ``sys.path``.

    Called at the start of every run: a run may have put a folder on ``sys.path``, or a
    package may have been installed. Looked for again only when ``sys.path`` or one of its
    folders changed since the last look.
    """
    with _lock:
        finder = _ensure_finder()
        if finder.forced == 0:
            stamp = _path_stamp()
            if _checked_stamp and _checked_stamp[0] == stamp:
                return
            finder.real_installed = _real_mage_spec() is not None
            _checked_stamp[:] = [stamp]


def _install_forced(finder: MageAliasFinder) -> None:
    # A real mage_ai already imported by other code is set aside, not replaced for good.
    for name in _mage_modules():
        _saved[name] = sys.modules.pop(name)


def _uninstall_forced() -> None:
    for name in _mage_modules():
        del sys.modules[name]
    sys.modules.update(_saved)  # type: ignore[arg-type]
    _saved.clear()


class aliasing:
    """``mage_ai`` resolves to dagsmith inside the ``with`` body (re-entrant, thread-safe).

    Without a real mage-ai installed this only makes sure the finder is in place (it then
    stays for the process, and costs nothing more). A class, not a generator: it is entered
    twice for every block of every run.
    """

    __slots__ = ("forced",)

    def __enter__(self) -> None:
        with _lock:
            finder = _ensure_finder()
            self.forced = finder.real_installed
            if self.forced:
                if finder.forced == 0:
                    _install_forced(finder)
                finder.forced += 1

    def __exit__(self, *exc: object) -> None:
        if not self.forced:
            return
        with _lock:
            finder = _ensure_finder()
            finder.forced -= 1
            if finder.forced == 0:
                _uninstall_forced()


def activate_for_process() -> None:
    """Keep the alias for the rest of the process (worker processes that only run blocks): entered, never left."""
    aliasing().__enter__()
