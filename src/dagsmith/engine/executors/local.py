"""The ``local`` executor: block attempts on threads of this process (the default).

Blocks share the process, so an upstream block's return value reaches its
downstream blocks in memory (``RunSession.read``): nothing is serialised on the
critical path. A timed-out or cancelled attempt gets the exception raised
inside its thread (CPython's async exceptions); a block stuck in C code keeps
its thread until that call returns, and the run does not wait for it. The threads are
the process's (``_shared_pool``), kept between runs: a worker running many short runs does
not start a thread per block.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from pathlib import Path
from typing import Any

from dagsmith.engine import plan as P
from dagsmith.engine.executors.base import Executor, RunSession
from dagsmith.engine.task import BlockOutcome, BlockTask, ExecContext, Ref, execute_block

DEFAULT_MAX_WORKERS = 8
#: block threads kept for the whole process, shared by every run (each run still runs at most
#: its own ``max_workers`` blocks at once: the run loop submits no more than ``capacity``)
SHARED_THREADS = 256
_shared: cf.ThreadPoolExecutor | None = None
_shared_lock = threading.Lock()


def _shared_pool() -> cf.ThreadPoolExecutor:
    """The process's block threads: an idle one takes the next attempt, a new one starts only when
    none is idle. A pool per run started a thread for every block of every run, which cost a busy
    worker more than running a trivial block."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = cf.ThreadPoolExecutor(max_workers=SHARED_THREADS, thread_name_prefix="dagsmith-block")
        return _shared


class LocalContext(ExecContext):
    """Inputs come from the run loop's memory (or its store); log records go straight to observers."""

    def __init__(self, session: RunSession) -> None:
        super().__init__(session.cancel_event)
        self.session = session

    def read(self, task: BlockTask, ref: Ref) -> Any:
        return self.session.read(ref)

    def emit(self, task: BlockTask, record: dict) -> None:
        self.session.emit_log(task.node, record)


class _Slot:
    """The thread running one attempt, while it runs."""

    __slots__ = ("thread_id", "lock")

    def __init__(self) -> None:
        self.thread_id: int | None = None
        self.lock = threading.Lock()


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max(1, int(max_workers or DEFAULT_MAX_WORKERS))
        self.pool: cf.ThreadPoolExecutor | None = None
        self.ctx: LocalContext | None = None
        self.slots: dict[cf.Future, _Slot] = {}
        self.abandoned = False
        self._entered = False

    def open(self, session: RunSession) -> None:
        from dagsmith.blocks.loader import ensure_importable
        from dagsmith.project.layout import REPO_PATH_ENV

        self.session = session
        self.ctx = LocalContext(session)
        from dagsmith.blocks.mage_imports import aliasing

        ensure_importable(session.project_root)
        os.environ[REPO_PATH_ENV] = str(session.project_root)
        Workdir.enter(session.project_root.parent)
        self._entered = True
        # ``mage_ai.*`` names stay mapped while the run's blocks load and run (one install per
        # run: installing and removing it around every block load scans sys.modules each time)
        self._aliasing = aliasing()
        self._aliasing.__enter__()
        self.pool = _shared_pool()
        self.futures: set[cf.Future] = set()

    def close(self) -> None:
        if self.pool is not None:
            # this run's attempts only: not started ones are cancelled, running ones waited for
            # (unless one was abandoned: a block stuck in C code keeps its thread, the run goes on)
            for fut in list(self.futures):
                fut.cancel()
            if not self.abandoned:
                cf.wait(list(self.futures))
            self.futures.clear()
            self.pool = None
        if self._entered:
            self._entered = False
            Workdir.leave()
            self._aliasing.__exit__(None, None, None)

    @property
    def capacity(self) -> int:
        return self.max_workers

    @property
    def abandons_threads(self) -> bool:
        return self.abandoned

    def submit(self, task: BlockTask) -> cf.Future:
        assert self.pool is not None and self.ctx is not None, "open() the executor first"
        slot = _Slot()
        fut = self.pool.submit(self._run, task, slot)
        self.slots[fut] = slot
        self.futures.add(fut)
        post = self.session.post
        futures = self.futures

        def done(f: cf.Future) -> None:
            futures.discard(f)
            post(("done", f))

        fut.add_done_callback(done)
        return fut

    def _run(self, task: BlockTask, slot: _Slot) -> BlockOutcome:
        with slot.lock:
            slot.thread_id = threading.get_ident()
        try:
            return execute_block(task, self.ctx)  # type: ignore[arg-type]
        finally:
            with slot.lock:
                slot.thread_id = None

    def outcome(self, handle: cf.Future) -> BlockOutcome:
        self.slots.pop(handle, None)
        try:
            return handle.result()
        except BaseException as exc:  # noqa: BLE001 - a bug of ours must not kill the run loop
            return BlockOutcome(node="", attempt=0, status=P.FAILED, error=exc)

    def interrupt(self, handle: cf.Future, exc_type: type[BaseException]) -> None:
        slot = self.slots.pop(handle, None)
        if slot is None:
            return
        with slot.lock:
            if slot.thread_id is not None:
                _raise_in_thread(slot.thread_id, exc_type)
                self.abandoned = True


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Ask CPython to raise ``exc_type`` inside another thread at its next bytecode."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


class Workdir:
    """Runs use the project's parent folder as working directory (Mage's container layout)."""

    lock = threading.Lock()
    users = 0
    saved: str | None = None

    @classmethod
    def enter(cls, folder: Path) -> None:
        with cls.lock:
            if cls.users == 0:
                cls.saved = os.getcwd()
                os.chdir(folder)
            cls.users += 1

    @classmethod
    def leave(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users == 0 and cls.saved:
                try:
                    os.chdir(cls.saved)
                except OSError:
                    pass
