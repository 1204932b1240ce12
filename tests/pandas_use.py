"""A pytest plugin that finds the test modules which never touch pandas (PANDAS_FREE in tests/conftest.py).

    python -m pytest -p tests.pandas_use -p no:xdist -m "not integration and not e2e" tests/unit tests/compat

Per test it records whether a pandas function ran in this process (any thread started from the
test on) and whether the test started a Python child, whose pandas use cannot be seen from here
(so such a module never counts as pandas-free). It prints the modules where neither happened.
Importing pandas is not using it: module-level code of pandas is ignored. Slow (a profile hook).
"""

from __future__ import annotations

import multiprocessing.process
import os
import subprocess
import sys
import threading

import pytest

_PANDAS = os.sep + "pandas" + os.sep
_state = {"pandas": False, "child": False}
_rows: list[tuple[str, bool, bool]] = []


def _profile(frame, event, arg):
    if event == "call" and not _state["pandas"]:
        code = frame.f_code
        if _PANDAS in code.co_filename and code.co_name != "<module>":
            _state["pandas"] = True


_popen_init = subprocess.Popen.__init__
_process_start = multiprocessing.process.BaseProcess.start


def _noting_popen_init(self, args, *a, **k):
    argv = [str(x) for x in (args if isinstance(args, (list, tuple)) else [args])]
    if argv and any(word in os.path.basename(argv[0]) for word in ("python", "dagsmith")):
        _state["child"] = True
    return _popen_init(self, args, *a, **k)


def _noting_process_start(self):
    _state["child"] = True
    return _process_start(self)


def pytest_configure(config):
    subprocess.Popen.__init__ = _noting_popen_init
    multiprocessing.process.BaseProcess.start = _noting_process_start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _state.update(pandas=False, child=False)
    sys.setprofile(_profile)
    threading.setprofile(_profile)
    try:
        yield
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        _rows.append((item.nodeid, _state["pandas"], _state["child"]))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = config.rootpath / ".pandas_use.tsv"
    modules: dict[str, list[bool]] = {}
    with open(path, "w", encoding="utf-8") as out:
        for nodeid, pandas, child in _rows:
            out.write(f"{nodeid}\t{int(pandas)}\t{int(child)}\n")
            modules.setdefault(nodeid.split("::", 1)[0], []).append(pandas or child)
    free = sorted(m for m, touched in modules.items() if not any(touched))
    terminalreporter.write_sep("=", f"{len(free)} of {len(modules)} modules never touch pandas (per test: {path})")
    for module in free:
        terminalreporter.write_line(module)
