"""Named points where fault-injection tests kill a writer (``DAGSMITH_FAULT_POINT``).

``fault_point("dataset.file_written")`` does nothing unless the environment says
``DAGSMITH_FAULT_POINT=dataset.file_written`` (or ``…:N`` for the N-th time the point is
reached in this process); then the process SIGKILLs itself right there — no cleanup,
no ``finally``, no atexit: what a crash, the OOM killer or a lost machine leaves.
Tests run the writer in a subprocess with that variable and check what is left.
"""

from __future__ import annotations

import os
import signal

from dagsmith.settings import get

ENV = "DAGSMITH_FAULT_POINT"
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process here when ``DAGSMITH_FAULT_POINT`` names this point (cheap otherwise)."""
    wanted = get("fault_point")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
