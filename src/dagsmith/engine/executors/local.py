"""The ``local`` executor: block attempts on threads of this process (the default).

Blocks share the process, so an upstream block's return value reaches its
downstream blocks in memory (``RunSession.read``): nothing is serialised on the
critical path. A timed-out or cancelled attempt gets the exception raised
inside its thread (CPython's async exceptions); a block stuck in C code keeps
its thread until that call returns, and the run does not wait for it. The threads are
the process's (``BlockThreads``), kept between runs: a worker running many short runs does
not start a thread per block.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable

from dagsmith.engine import plan as P
from dagsmith.engine.executors.base import Executor, RunSession
from dagsmith.engine.task import BlockOutcome, BlockTask, ExecContext, Ref, execute_block

DEFAULT_MAX_WORKERS = 8
#: block threads kept for the whole process, shared by every run (each run still runs at most
#: its own ``max_workers`` blocks at once: the run loop submits no more than ``capacity``)
SHARED_THREADS = 256


class BlockThreads:
    """The process's block threads: an idle one takes the next job, a new one starts only when none is idle.

    A pool per run started a thread for every block of every run, which cost a busy worker more
    than running a trivial block; and ``concurrent.futures`` (a Future with its condition, a work
    item, an idle semaphore, done callbacks) cost about as much again as the block: a job here is
    one queue put, and its end is one post to the run loop. Threads are daemons: a block stuck in C
    code must not keep the process alive once its run has given up on it.
    """

    def __init__(self, limit: int = SHARED_THREADS) -> None:
        self.limit = limit
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads = 0
        self.idle = 0
        self.backlog = 0
        """jobs queued while every thread was busy and no new one could start"""

    def start(self, job: Callable[[], None]) -> None:
        """Hand ``job`` to an idle thread, else a new one; past ``limit`` it waits for a thread."""
        with self.lock:
            if self.idle:
                self.idle -= 1
                new = False
            else:
                new = self.threads < self.limit
                self.threads += new
                self.backlog += not new
        self.jobs.put(job)
        if new:
            threading.Thread(target=self._serve, name=f"dagsmith-block-{self.threads}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                job()
            except BaseException:  # noqa: BLE001 - a late interrupt of a finished job; the job reported already
                pass
            job = None
            with self.lock:
                if self.backlog:  # the next get takes a queued job: this thread is not idle
                    self.backlog -= 1
                else:
                    self.idle += 1


_shared: BlockThreads | None = None
_loops: BlockThreads | None = None
_shared_lock = threading.Lock()


def _shared_threads() -> BlockThreads:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = BlockThreads()
        return _shared


def _loop_threads() -> BlockThreads:
    """Threads for run loops (``start_loop``): apart from the block threads and without a limit, so
    loops never wait behind blocks that wait for their loops (runs are bounded by their callers)."""
    global _loops
    with _shared_lock:
        if _loops is None:
            _loops = BlockThreads(limit=1 << 30)
        return _loops


class LocalContext(ExecContext):
    """Inputs come from the run loop's memory (or its store); log records go straight to observers."""

    def __init__(self, session: RunSession) -> None:
        super().__init__(session.cancel_event)
        self.session = session

    def read(self, task: BlockTask, ref: Ref) -> Any:
        return self.session.read(ref)

    def emit(self, task: BlockTask, record: dict) -> None:
        self.session.emit_log(task.node, record)


class Attempt:
    """The handle of one attempt: the thread running it (while it runs) and, once done, its outcome."""

    __slots__ = ("task", "thread_id", "lock", "outcome", "error", "started", "skip")

    def __init__(self, task: BlockTask) -> None:
        self.task = task
        self.thread_id: int | None = None
        self.lock = threading.Lock()
        self.outcome: BlockOutcome | None = None
        self.error: BaseException | None = None
        self.started = False
        self.skip = False
        """set by ``close`` for an attempt still queued: it never starts"""


def _settle() -> None:
    """A Python call: an interrupt sent just before the attempt let go of its thread is raised here, at the
    latest (CPython checks for pending async exceptions when a function starts), inside the attempt's try."""


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max(1, int(max_workers or DEFAULT_MAX_WORKERS))
        self.threads: BlockThreads | None = None
        self.ctx: LocalContext | None = None
        self.attempts: set[Attempt] = set()
        """this run's attempts not yet done"""
        self.abandoned = False
        self._entered = False
        self._ended = threading.Condition()
        self._closing = False

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
        self.threads = _shared_threads()

    def close(self) -> None:
        if self.threads is not None:
            # this run's attempts only: queued ones never start, running ones are waited for
            # (unless one was abandoned: a block stuck in C code keeps its thread, the run goes on)
            with self._ended:
                self._closing = True
                for att in self.attempts:
                    att.skip = True
                if not self.abandoned:
                    self._ended.wait_for(lambda: not any(a.started for a in self.attempts))
                self.attempts.clear()
            self.threads = None
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

    def submit(self, task: BlockTask) -> Attempt:
        assert self.threads is not None and self.ctx is not None, "open() the executor first"
        att = Attempt(task)
        self.attempts.add(att)
        post = self.session.post

        def job() -> None:
            try:
                self._attempt(att)
            finally:
                with self._ended:
                    self.attempts.discard(att)
                    att.started = False
                    if self._closing:
                        self._ended.notify_all()
            if not att.skip:
                post(("done", att))

        self.threads.start(job)
        return att

    def handle(self, task: BlockTask) -> Attempt:
        """A handle for ``task`` to run with ``run_here``."""
        return Attempt(task)

    def run_here(self, att: Attempt) -> None:
        """Run an attempt on the calling thread (the run loop's, when its block is the only thing to do).

        It is interrupted like any attempt (``interrupt``); its end is not posted: the outcome
        is on the handle when this returns.
        """
        assert self.ctx is not None, "open() the executor first"
        self._attempt(att)

    def start_loop(self, body: Callable[[], None]) -> None:
        """Run a run's loop on a thread of the loop set (``_loop_threads``); its caller stays free to watch it."""
        assert self.threads is not None, "open() the executor first"
        _loop_threads().start(body)

    def _attempt(self, att: Attempt) -> None:
        """One attempt on this thread; the outcome (or our own failure) lands on ``att``, nothing raises."""
        try:
            with att.lock:
                if att.skip:
                    return
                att.thread_id = threading.get_ident()
                att.started = True
            try:
                att.outcome = execute_block(att.task, self.ctx)  # type: ignore[arg-type]
            finally:
                with att.lock:
                    att.thread_id = None
                _settle()
        except BaseException as exc:  # noqa: BLE001 - a bug of ours, or an interrupt that came late
            att.error = exc

    def outcome(self, handle: Attempt) -> BlockOutcome:
        if handle.outcome is not None:
            return handle.outcome
        return BlockOutcome(node="", attempt=0, status=P.FAILED, error=handle.error or RuntimeError("the attempt never ran"))

    def interrupt(self, handle: Attempt, exc_type: type[BaseException]) -> None:
        with handle.lock:
            if handle.thread_id is not None:
                _raise_in_thread(handle.thread_id, exc_type)
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
