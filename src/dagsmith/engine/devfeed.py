"""The live state of ``dagsmith dev``'s runs, in a file the web editor follows.

``dagsmith dev`` runs blocks in its own process; the server cannot see them. So the dev loop
writes what its current run looks like — why it ran (the saved files), each block's status,
time, rows, tests, printed output, error and a preview of its output — to
``<data dir>/ui/dev/<pipeline>.json`` (replaced atomically on every change, with a ``seq``
that only grows), and the editor page polls it (``server.ui.pages.editor.editor_dev``: 204 while
``seq`` is unchanged). A file whose ``pid`` is gone says the dev loop has stopped.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

#: printed lines kept per block (the newest)
MAX_LINES = 200


def feed_path(project_root: str | os.PathLike[str], pipeline: str) -> Path:
    from dagsmith.project.layout import data_dir
    from dagsmith.project.names import check_name

    check_name(pipeline, "pipeline")
    return data_dir(project_root) / "ui" / "dev" / f"{pipeline}.json"


def read_feed(project_root: str | os.PathLike[str], pipeline: str) -> dict[str, Any] | None:
    """The newest state of ``dagsmith dev`` for ``pipeline`` (None when it never ran); ``alive`` says whether it still runs."""
    try:
        data = json.loads(feed_path(project_root, pipeline).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    data["alive"] = _alive(data.get("pid"))
    return data


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, TypeError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class DevFeed:
    """A ``RunObserver`` that keeps the feed file current while ``dagsmith dev`` runs blocks."""

    def __init__(self, project_root: str | os.PathLike[str], pipeline: str) -> None:
        self.path = feed_path(project_root, pipeline)
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {"pipeline": pipeline, "pid": os.getpid(), "seq": 0, "status": "watching",
                                      "reason": "", "blocks": {}, "problems": []}

    # ---- what the dev loop says
    def begin(self, reason: str) -> None:
        with self.lock:
            self.state.update(status="running", reason=reason, blocks={}, problems=[], started=time.time(), ended=None)
            self._write()

    def invalid(self, reason: str, problems: list[str]) -> None:
        with self.lock:
            self.state.update(status="invalid", reason=reason, blocks={}, problems=list(problems), started=time.time(),
                              ended=time.time())
            self._write()

    def previews(self, previews: dict[str, dict[str, Any]]) -> None:
        with self.lock:
            for uid, info in previews.items():
                self.state["blocks"].setdefault(uid, {})["preview"] = info
            self._write()

    # ---- RunObserver
    def on_run_start(self, *, blocks: list[str] = (), run_id: str | None = None, **kw: Any) -> None:  # type: ignore[assignment]
        with self.lock:
            self.state["run_id"] = run_id
            for b in blocks:
                self.state["blocks"].setdefault(b, {"status": "initial"})
            self._write()

    def on_block_start(self, *, block_uuid: str, **kw: Any) -> None:
        if kw.get("parent"):
            return
        with self.lock:
            self.state["blocks"].setdefault(block_uuid, {})["status"] = "running"
            self._write()

    def on_block_log(self, **kw: Any) -> None:
        pass

    def on_block_end(self, *, block_uuid: str, status: str, result: Any = None, **kw: Any) -> None:
        if kw.get("parent"):
            return
        info: dict[str, Any] = {"status": status}
        if result is not None:
            lines = (result.stdout or "").splitlines()
            info.update(
                seconds=result.seconds, rows=result.rows, tests_passed=result.tests_passed, tests_total=result.tests_total,
                stdout="\n".join(lines[-MAX_LINES:]), error=result.error, traceback=result.traceback,
                test_failures=list(result.test_failures or []),
            )
        with self.lock:
            self.state["blocks"].setdefault(block_uuid, {}).update(info)
            self._write()

    def on_run_end(self, *, status: str = "", **kw: Any) -> None:
        with self.lock:
            self.state.update(status=status, ended=time.time())
            self._write()

    def _write(self) -> None:
        self.state["seq"] = max(int(self.state["seq"]) + 1, int(time.time() * 1000))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            from dagsmith.project.masking import mask

            tmp.write_text(mask(json.dumps(self.state, default=str)), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:  # the terminal is the dev loop's first screen; the editor's copy may lag
            pass
