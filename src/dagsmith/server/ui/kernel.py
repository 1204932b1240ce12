"""The editor's block runs happen in a child Python process (the "kernel"), not in the server.

Why: a block that imports pandas and builds a million-row frame leaves ~200 MB in the process
that ran it. In the child, that memory goes away when the kernel exits after a quiet spell
(``DAGSMITH_EDITOR_KERNEL_IDLE`` seconds, default 300), and the server stays near its idle size.
A block that crashes the interpreter (segfault, out of memory) takes the kernel with it, not the
server: its run ends ``failed`` with what happened, and the next run starts a new kernel.

The kernel runs each job through the ordinary engine entry point (``engine.run_pipeline``) on its
own thread, and talks to the server over a ``multiprocessing`` pipe with small dicts:

server → kernel: ``{"op": "run", "job", "pipeline", "block", "mode", "variables"}``,
``{"op": "cancel", "job"}``, ``{"op": "call", "req", "fn", "args"}`` (previews, chart data).
kernel → server: ``{"job", "event": "line", "text", "t"}``, ``{"job", "event": "block", "block",
"status", "result"}``, ``{"job", "event": "done", "status", "blocks", "partition", "preview",
"error"}``, ``{"req", "result"|"error"}``.

Every message the kernel sends passes the secret masker (``project.masking``) of the kernel
process, which knows what only the kernel saw: the values of the project's secrets store
(opened from the server's metadata DB URL when a block first reads a secret; a secret set
after the server started resolves through ``get_secret_value`` and is masked), and the
``.env``/``io_config.yaml`` passwords the block read. The server masks what it receives again
with its own masker, which knows every stored secret.

``DAGSMITH_EDITOR_KERNEL=0`` runs editor blocks in server threads instead (no child process).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def enabled() -> bool:
    from dagsmith.settings import get

    return get("editor_kernel")


# ---------------------------------------------------------------- server side


class Kernel:
    """The server's handle on the kernel process: started on first use, restarted after it exits."""

    def __init__(self, root: Path, on_message: Callable[[dict], None], on_exit: Callable[[int | None], None],
                 database_url: str | None = None) -> None:
        self.root = Path(root)
        self.database_url = database_url
        self.on_message = on_message
        self.on_exit = on_exit
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._pending: dict[str, tuple[threading.Event, dict]] = {}
        self._seq = 0

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def _ensure(self):
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                return self._conn
            import multiprocessing as mp

            ctx = mp.get_context("spawn")  # a clean interpreter: no server threads or sockets copied in
            parent, child = ctx.Pipe()
            from dagsmith.settings import get

            idle = get("editor_kernel_idle")
            proc = ctx.Process(target=kernel_main, args=(child, str(self.root), idle, self.database_url), name="dagsmith-editor-kernel", daemon=True)
            proc.start()
            child.close()
            self._proc, self._conn = proc, parent
            threading.Thread(target=self._reader, args=(proc, parent), name="dagsmith-kernel-reader", daemon=True).start()
            return parent

    def send(self, msg: dict) -> None:
        conn = self._ensure()
        with self._send_lock:
            conn.send(msg)

    def call(self, fn: str, *args: Any, timeout: float = 60.0) -> Any:
        """Run ``fn`` (a name in ``CALLS``) in the kernel and return its result (raises what it raised)."""
        with self._lock:
            self._seq += 1
            req = f"r{self._seq}"
        done, box = threading.Event(), {}
        self._pending[req] = (done, box)
        try:
            self.send({"op": "call", "req": req, "fn": fn, "args": list(args)})
            if not done.wait(timeout):
                raise TimeoutError(f"the editor process did not answer {fn} within {timeout:.0f} s")
        finally:
            self._pending.pop(req, None)
        if "error" in box:
            from dagsmith.errors import DagsmithError

            raise DagsmithError(box["error"])
        return box.get("result")

    def _reader(self, proc, conn) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            req = msg.get("req")
            if req is not None:
                waiter = self._pending.get(req)
                if waiter is not None:
                    waiter[1].update(msg)
                    waiter[0].set()
                continue
            try:
                self.on_message(msg)
            except Exception:  # noqa: BLE001 - one bad message never stops the reader
                log.exception("editor kernel message failed: %r", msg.get("event"))
        proc.join(5)
        with self._lock:
            if self._proc is proc:
                self._proc, self._conn = None, None
        for done, box in list(self._pending.values()):
            box["error"] = "the editor process stopped"
            done.set()
        self.on_exit(proc.exitcode)

    def stop(self) -> None:
        with self._lock:
            proc, conn = self._proc, self._conn
        if proc is None:
            return
        try:
            with self._send_lock:
                conn.send({"op": "exit"})
        except (OSError, ValueError):
            pass
        proc.join(3)
        if proc.is_alive():
            proc.kill()


# ---------------------------------------------------------------- kernel side


def _call_preview(root: str, pipeline: str, block: str, partition: str | None, profile: bool) -> Any:
    from dagsmith.server.ui.jobs import output_preview

    return output_preview(Path(root), pipeline, block, partition, profile=profile)


def _call_chart(root: str, pipeline: str, block: str, spec: dict) -> Any:
    from dagsmith.data.preview import chart_data
    from dagsmith.data.store import VariableStore
    from dagsmith.errors import ProjectError
    from dagsmith.project.layout import data_dir
    from dagsmith.server.ui.jobs import stored_output

    store = VariableStore(data_dir(root))
    part = store.latest_partition(pipeline, block)
    value = stored_output(store, pipeline, part, block) if part else None
    if value is None:
        raise ProjectError(f"block '{block}' has no stored output yet", hint="run the block first")
    return chart_data(value, spec)


CALLS = {"preview": _call_preview, "chart": _call_chart}


def open_secrets(root: str, database_url: str | None) -> None:
    """In the kernel: ``get_secret_value`` resolves from the project's secrets store, opened on first use.

    Opening the store (from the server's metadata DB URL) also makes it a masking source of the
    kernel, so every value a block reads, and any set later, is masked in what the kernel sends.
    A job that reads no secret never touches the metadata DB.
    """
    import threading as _threading

    from dagsmith.project.io_config import set_secret_resolver

    store: list = []
    lock = _threading.Lock()

    def resolve(name: str, **kw):
        with lock:
            if not store:
                from dagsmith.orchestration.db import get_database
                from dagsmith.orchestration.secrets import SecretStore
                from dagsmith.orchestration.settings import OrchestrationSettings

                settings = OrchestrationSettings.from_env(root, **({"database_url": database_url} if database_url else {}))
                store.append(SecretStore(get_database(settings, migrate=False), settings.data_dir))
        return store[0].get(name, **kw)

    set_secret_resolver(resolve)


def kernel_main(conn, root: str, idle: float, database_url: str | None = None) -> None:
    """The kernel's loop: run jobs on threads, answer calls, exit when the server goes or after ``idle`` quiet seconds."""
    import signal

    from dagsmith.project.masking import MASKER, mask_process_streams

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the server's terminal is the server's to handle
    # the kernel shares the server's terminal (its log): what reaches it outside a block's capture
    # (a thread's traceback, a logging warning) is masked like the server's own lines
    mask_process_streams()
    send_lock = threading.Lock()
    jobs: dict[str, threading.Event] = {}
    last_activity = [time.monotonic()]

    def send(msg: dict) -> None:
        msg = MASKER.mask_obj(msg)  # lines, results, errors, tracebacks: nothing leaves the kernel in clear
        with send_lock:
            try:
                conn.send(msg)
            except (OSError, ValueError, BrokenPipeError):
                pass

    open_secrets(root, database_url)

    def run_job(msg: dict, cancel: threading.Event) -> None:
        from dagsmith.server.ui.jobs import run_editor_job

        job = msg["job"]
        try:
            MASKER.refresh()  # once the store is open: a secret set a moment ago is masked in this job's first line
            done = run_editor_job(Path(root), msg["pipeline"], msg["block"], msg.get("mode") or "block", cancel,
                                  variables=msg.get("variables"), emit=lambda m: send({"job": job, **m}))
            send({"job": job, "event": "done", **done})
        finally:
            jobs.pop(job, None)
            last_activity[0] = time.monotonic()

    def answer(msg: dict) -> None:
        from dagsmith.server.ui.jobs import error_text

        try:
            send({"req": msg["req"], "result": CALLS[msg["fn"]](root, *msg.get("args", []))})
        except Exception as exc:  # noqa: BLE001 - the caller shows it
            send({"req": msg["req"], "error": error_text(exc)})
        finally:
            last_activity[0] = time.monotonic()

    while True:
        try:
            ready = conn.poll(1.0)
        except (OSError, EOFError):
            break
        if not ready:
            if not jobs and time.monotonic() - last_activity[0] > idle:
                break
            continue
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        last_activity[0] = time.monotonic()
        op = msg.get("op")
        if op == "exit":
            break
        if op == "run":
            cancel = threading.Event()
            jobs[msg["job"]] = cancel
            threading.Thread(target=run_job, args=(msg, cancel), name=f"dagsmith-editor-{msg['job']}", daemon=True).start()
        elif op == "cancel" and msg.get("job") in jobs:
            jobs[msg["job"]].set()
        elif op == "call":
            threading.Thread(target=answer, args=(msg,), daemon=True).start()
    for cancel in list(jobs.values()):
        cancel.set()
    os._exit(0)  # block threads may still run: the kernel ends now, as the server asked
