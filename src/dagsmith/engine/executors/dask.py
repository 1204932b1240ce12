"""The ``dask`` executor: each block attempt is one task on a Dask distributed cluster.

- **The client is injected, not owned** (Hamilton's ``DaskExecutor(client=…)``):
  pass ``client=`` to use yours; otherwise one client per scheduler address is
  shared by the runs of this process (``shared_client``), and without an
  address a ``LocalCluster`` of worker processes is started once for the
  process (closed by ``close_shared_clients`` or at exit).
- **Keys are unique per run, block and attempt** (``dagsmith-<run>-<nonce>-<node>-<attempt>``,
  ``pure=False``): two runs of one pipeline never share a task (dagster#21418).
- **Outputs travel through the variables store, never through the scheduler.**
  A task stores its outputs (``task.publish``) before it returns a small
  ``BlockOutcome`` with a reference; the run loop releases each future as soon
  as it has the outcome, so the scheduler holds no result a dead worker could
  take with it and nothing finished is ever recomputed (prefect#15442).
- **A worker plugin prepares the project on each worker**: ``sys.path`` and the
  working directory as in local runs, the project's ``.env``, the ``mage_ai``
  import names, and any ``worker_setup`` hooks (the orchestration layer's
  secrets resolver), so Mage blocks run unchanged. The project must be at the
  same path on every worker (a shared checkout or mount).
- **Logs and events stream while the block runs**: the task logs each record
  under the run's topic (``Worker.log_event``); the run loop hands them to its
  observers; records not yet seen when the outcome arrives are sent then.
  The outcome itself travels with those events (no gather round trip), and
  the run loop is woken once per block: a task's start is noted on the
  client's event loop, and a finished future whose outcome already came is
  not told again.
- **The LocalCluster dagsmith starts is quiet** (``LOCAL_CLUSTER_CONFIG``):
  no stack-sampling profiler, slow health ticks, so CPU-bound blocks keep
  their cores.
- **Cancel and timeouts reach the task**: the run loop asks every worker
  (``Client.run``) to raise the exception inside the thread running that key.
- **Faults**: a worker that dies mid-block makes Dask run that block elsewhere;
  one killed by its nanny for exceeding its memory limit fails the block with a
  "memory limit" error (reported by the nanny's ``worker-restart-memory``
  event) instead of taking more workers down; a lost scheduler fails the run
  and ``dagsmith run … --resume RUN_ID`` continues it once the cluster is back.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import pickle
import threading
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

from dagsmith.engine import plan as P
from dagsmith.engine.executors.base import Executor, RunSession
from dagsmith.engine.task import BlockOutcome, BlockTask, ExecContext, Ref, execute_block
from dagsmith import settings
from dagsmith.errors import BlockError, ConfigError, DagsmithError, require

try:  # the plugin base class; the executor itself says which extra to install when it is missing
    from distributed import WorkerPlugin as _PluginBase
except ImportError:  # pragma: no cover - depends on the environment
    _PluginBase = object  # type: ignore[assignment,misc]



def _distributed() -> Any:
    return require("distributed", feature="the dask executor", extra="dask")


# ---------------------------------------------------------------------------- clients

_clients: dict[str | None, Any] = {}
_clients_lock = threading.Lock()

#: Dask settings of the LocalCluster dagsmith starts (a cluster of the user's keeps its own).
#: A pure-Python block holds the GIL: every wake-up of another thread of its worker takes
#: the GIL from it, and a process woken needs a core of the machine's few. Dask's defaults
#: sample every worker thread's stack each 10 ms (the dashboard's profile, which this
#: cluster does not serve), check event-loop health each 20 ms and sample system metrics
#: each 0.5 s: measured on a 2-worker cluster at rest, 130 ms of CPU per second in total,
#: 30 with these values. The nanny's memory monitor (the memory-limit restart) is unchanged.
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.gil.enabled": False,
}


def shared_client(address: str | None = None) -> Any:
    """A client of ``address`` shared by this process's runs; ``None`` starts a LocalCluster once."""
    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status in ("running", "connecting", "newly-created"):
            return client
        client = _clients[address] = _connect(address)
        return client


def _connect(address: str | None) -> Any:
    distributed = _distributed()
    if address:
        try:
            return distributed.Client(address, timeout=settings.get("dask_connect_timeout"),
                                      set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {address}: {exc}",
                hint="start it with: dask scheduler   (and workers: dask worker " + address + ")",
            ) from None
    import dask

    workers = settings.get("dask_workers") or max(1, os.cpu_count() or 1)
    # the nannies copy the configuration into the worker processes they spawn; the scheduler
    # (in this process) reads it once at start: the user's own configuration is left as it was
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=40,
        )
    client = distributed.Client(cluster, set_as_default=False)
    client._dagsmith_cluster = cluster  # closed with the client
    return client


def close_shared_clients() -> None:
    """Close the clients (and LocalClusters) this process started."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        cluster = getattr(client, "_dagsmith_cluster", None)
        try:
            client.close(timeout=10)
        except Exception:  # noqa: BLE001 - a lost scheduler cannot be closed politely
            pass
        if cluster is not None:
            try:
                cluster.close(timeout=10)
            except Exception:  # noqa: BLE001
                pass


atexit.register(close_shared_clients)


# ---------------------------------------------------------------------------- the worker side

_running_lock = threading.Lock()
_running: dict[str, tuple[int, str, threading.Event]] = {}  # key -> (thread id, run id, cancel flag)
_stores: dict[str, Any] = {}
_shared_caches: dict[str, Any] = {}


class ProjectSetup(_PluginBase):  # type: ignore[misc,valid-type]
    """Worker plugin: make each worker ready to run the project's blocks as a local run would."""

    def __init__(self, project_root: str, hooks: tuple[str, ...] = ()) -> None:
        self.project_root = project_root
        self.hooks = tuple(hooks)
        digest = hashlib.sha1(f"{project_root}|{'|'.join(self.hooks)}".encode()).hexdigest()[:12]
        self.name = f"dagsmith-project-{digest}"

    def setup(self, worker: Any = None) -> None:
        prepare_worker(self.project_root, self.hooks)

    def teardown(self, worker: Any = None) -> None:
        pass


def prepare_worker(project_root: str, hooks: tuple[str, ...] = ()) -> None:
    """sys.path, working directory, ``.env``, ``mage_ai`` names and setup hooks in this worker process."""
    import importlib

    from dagsmith.blocks.loader import ensure_importable
    from dagsmith.blocks.mage_imports import activate_for_process
    from dagsmith.project.env import load_project_env
    from dagsmith.project.layout import REPO_PATH_ENV

    root = Path(project_root)
    ensure_importable(root)
    os.chdir(root.parent)
    os.environ[REPO_PATH_ENV] = str(root)
    load_project_env(root)
    activate_for_process()
    for hook in hooks:
        module, _, name = hook.partition(":")
        getattr(importlib.import_module(module), name)(str(root))


class WorkerContext(ExecContext):
    """Inputs from the variables store; outputs published there; records logged under the run's topic."""

    def __init__(self, cancel: threading.Event, topic: str, worker: Any) -> None:
        self.cancel = cancel
        self.topic = topic
        self.worker = worker
        caches = _shared_caches
        if not caches:
            caches.update(lock=threading.Lock(), modules={}, loading={}, hooks={}, fans={})
        self._lock = caches["lock"]
        self._modules = caches["modules"]
        self._loading = caches["loading"]
        self._hooks = caches["hooks"]
        self._fans = caches["fans"]
        self.seq = 0

    def store(self, task: BlockTask) -> Any:
        root = task.store_root
        if root is None:
            raise DagsmithError("the dask executor needs a variables store; this run has none")
        store = _stores.get(root)
        if store is None:
            from dagsmith.data.store import VariableStore

            store = _stores[root] = VariableStore(root)
        return store

    def read(self, task: BlockTask, ref: Ref) -> Any:
        from dagsmith.data.store import OutputsMissing

        if ref.partition is None:
            raise OutputsMissing(ref.node)
        return self.store(task).read_block_value(task.pipeline.uuid, ref.partition, ref.node)

    def publish(self, task: BlockTask, outputs: list[Any], multi: bool) -> Ref:
        version = self.store(task).write_outputs(task.pipeline.uuid, task.partition, task.node, outputs,
                                                 multi=multi, update_latest=False)
        return Ref(task.node, task.partition, version)

    def emit(self, task: BlockTask, record: dict) -> None:
        msg = {"kind": "log", "key": task.key, "node": task.node, "seq": self.seq, "record": record}
        self.seq += 1
        try:
            self.worker.log_event(self.topic, msg)
        except Exception:  # noqa: BLE001 - the record is in the outcome too
            pass


def run_task(task: BlockTask, topic: str) -> BlockOutcome:
    """The Dask task: one attempt of one block on this worker."""
    distributed = _distributed()
    worker = distributed.get_worker()
    cancel = threading.Event()
    key = task.key
    with _running_lock:
        _running[key] = (threading.get_ident(), task.run_id, cancel)
    try:
        worker.log_event(topic, {"kind": "start", "key": key, "node": task.node, "worker": worker.address})
        ctx = WorkerContext(cancel, topic, worker)
        out = execute_block(task, ctx)
        out.worker = worker.address
        # the outcome also travels with the run's events: the client then needs no extra
        # round trip to this worker to fetch the task's result
        try:
            worker.log_event(topic, {"kind": "done", "key": key, "outcome": pickle.dumps(out, protocol=5)})
        except Exception:  # noqa: BLE001 - unpicklable odds and ends: the client fetches the result instead
            pass
        return out
    finally:
        with _running_lock:
            _running.pop(key, None)


async def interrupt_key(key: str, exc_name: str) -> bool:
    """On a worker: raise ``exc_name`` inside the thread running ``key`` (sent by ``Client.run``).

    A coroutine, so that ``Client.run(…, wait=False)`` can fire it without waiting for an answer.
    """
    with _running_lock:
        entry = _running.get(key)
        if entry is None:
            return False
        thread_id, _run, cancel = entry
        cancel.set()
        _raise(thread_id, exc_name)
    return True


async def interrupt_run(run_id: str) -> int:
    """On a worker: cancel every attempt of ``run_id`` running here."""
    n = 0
    with _running_lock:
        for thread_id, run, cancel in list(_running.values()):
            if run == run_id:
                cancel.set()
                _raise(thread_id, "RunCancelled")
                n += 1
    return n


def _raise(thread_id: int, exc_name: str) -> None:
    from dagsmith import errors

    exc_type = getattr(errors, exc_name, errors.RunCancelled)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


# ---------------------------------------------------------------------------- the client side

_memory_watchers: dict[int, dict[int, Any]] = {}
_memory_lock = threading.Lock()


def _watch_memory(client: Any, executor: "DaskExecutor") -> None:
    """One handler per client for nanny memory restarts, fanned out to the executors using it."""
    with _memory_lock:
        watchers = _memory_watchers.get(id(client))
        if watchers is None:
            watchers = _memory_watchers[id(client)] = {}

            def handler(event: Any) -> None:
                _when, msg = event
                for ex in list(watchers.values()):
                    ex._memory_event(msg)

            client.subscribe_topic("worker-restart-memory", handler)
        watchers[id(executor)] = executor


def _unwatch_memory(client: Any, executor: "DaskExecutor") -> None:
    with _memory_lock:
        watchers = _memory_watchers.get(id(client))
        if watchers is not None:
            watchers.pop(id(executor), None)


class DaskExecutor(Executor):
    """Block attempts as Dask tasks; see the module docstring."""

    name = "dask"
    remote = True

    def __init__(self, *, client: Any = None, address: str | None = None) -> None:
        self._given = client
        self.address = address
        self.client: Any = None
        self.tasks: dict[Any, BlockTask] = {}
        self.by_key: dict[str, Any] = {}
        self.delivered: dict[Any, bytes] = {}  # future -> pickled outcome that came with the events
        self.workers: dict[str, list[str]] = {}  # key -> workers that ran it, the current one last
        self._workers_lock = threading.Lock()  # written on the client's event loop, read by the run loop
        self._outcome_posted: set[str] = set()  # keys whose outcome came with the events (client's event loop)
        self.streamed: dict[str, int] = {}  # key -> records already sent to observers
        self.memory_killed: dict[str, dict] = {}
        self.memory_limits: dict[str, int] = {}
        self._capacity = (0.0, 1)
        self._lost_since: float | None = None
        self._lost = False

    # ---- lifetime
    def open(self, session: RunSession) -> None:
        self.session = session
        if session.store_root is None:
            raise DagsmithError("the dask executor needs a variables store (outputs travel through it)")
        self.client = self._given if self._given is not None else shared_client(self.address)
        self.address = self.address or getattr(self.client.scheduler, "address", None)
        self.nonce = uuidlib.uuid4().hex[:6]
        self.topic = f"dagsmith-{session.run_id}-{self.nonce}"
        plugin = ProjectSetup(str(session.project_root), tuple(session.worker_setup))
        registered = getattr(self.client, "_dagsmith_plugins", None)
        if registered is None:
            registered = self.client._dagsmith_plugins = set()
        if plugin.name not in registered:
            self.client.register_plugin(plugin, name=plugin.name)
            registered.add(plugin.name)
        self.client.subscribe_topic(self.topic, self._on_event)
        _watch_memory(self.client, self)
        self._refresh_workers()

    def close(self) -> None:
        if self.client is None:
            return
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:  # noqa: BLE001 - the scheduler may be gone
            pass
        _unwatch_memory(self.client, self)
        for fut in list(self.tasks):
            try:
                fut.release()
            except Exception:  # noqa: BLE001
                pass
        self.tasks.clear()

    # ---- capacity and health
    def _refresh_workers(self) -> None:
        try:
            info = self.client.scheduler_info(n_workers=-1).get("workers", {})
        except TypeError:  # older distributed: no n_workers argument
            info = self.client.scheduler_info().get("workers", {})
        except Exception:  # noqa: BLE001 - asked again at the next refresh
            return
        total = sum(int(w.get("nthreads", 1) or 1) for w in info.values())
        self.memory_limits.update({addr: int(w.get("memory_limit") or 0) for addr, w in info.items()})
        self._capacity = (time.monotonic(), max(1, total))

    @property
    def capacity(self) -> int:
        stamp, value = self._capacity
        if time.monotonic() - stamp > 2.0:
            self._refresh_workers()
            value = self._capacity[1]
        return value

    def problem(self) -> str | None:
        if self._lost:
            return self._lost_message()
        status = getattr(self.client, "status", "running")
        if status == "running":
            self._lost_since = None
            return None
        if status in ("closing", "closed", "failed"):
            return self._lost_message()
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
        if now - self._lost_since > settings.get("dask_lost_after"):
            return self._lost_message()
        return None

    def _lost_message(self) -> str:
        return (
            f"lost the connection to the Dask scheduler at {self.address or 'the local cluster'}; the run stopped "
            "(blocks that completed are stored and will not run again when the run is resumed)"
        )

    # ---- tasks
    def submit(self, task: BlockTask) -> Any:
        suffix = "" if task.action == "run" else f"-{task.action}"
        key = f"dagsmith-{task.run_id}-{self.nonce}-{task.node}-{task.attempt}{suffix}"
        fut = self.client.submit(run_task, task, self.topic, key=key, pure=False)
        self.tasks[fut] = task
        self.by_key[task.key] = fut
        fut.add_done_callback(self._on_future_done)
        return fut

    def _on_future_done(self, fut: Any) -> None:
        """On Dask's callback thread: tell the run loop, unless the outcome already came with the events.

        A finished task whose outcome the run's events brought needs nothing more, and the
        run loop is not woken for it (one wake-up per block instead of two); errors and
        cancels are always told.
        """
        if fut.status == "finished" and fut.key in self._outcome_posted:
            self._outcome_posted.discard(fut.key)
            return
        self.session.post(("call", _future_done, self, fut))

    def _future_done(self, fut: Any) -> None:
        """The future ended: errors and cancels are told now; a success normally arrived as an event first."""
        if fut not in self.tasks or fut in self.delivered:
            return
        self.session.post(("done", fut))

    def outcome(self, handle: Any) -> BlockOutcome:
        task = self.tasks.pop(handle, None)
        node = task.node if task is not None else ""
        attempt = task.attempt if task is not None else 0
        key = task.key if task is not None else ""
        self.by_key.pop(key, None)
        delivered = self.delivered.pop(handle, None)
        try:
            if key in self.memory_killed:
                raise _MemoryKilled(self.memory_killed.pop(key))
            out = pickle.loads(delivered) if delivered is not None else handle.result()
        except _MemoryKilled as exc:
            out = BlockOutcome(node, attempt, status=P.FAILED, error=self._memory_error(task, exc.args[0]))
        except BaseException as exc:  # noqa: BLE001 - the executor's trouble becomes the block's failure
            out = BlockOutcome(node, attempt, status=P.FAILED, error=self._task_error(task, exc), retryable=False)
        finally:
            try:
                handle.release()
            except Exception:  # noqa: BLE001
                pass
        if out.records:  # what the stream has not delivered yet
            sent = self.streamed.get(key, 0)
            for rec in out.records[sent:]:
                self.session.emit_log(node, rec)
        self.streamed.pop(key, None)
        with self._workers_lock:
            self.workers.pop(key, None)
        self._outcome_posted.discard(getattr(handle, "key", None))
        return out

    def _task_error(self, task: BlockTask | None, exc: BaseException) -> BlockError:
        distributed = _distributed()
        name = task.node if task is not None else "?"
        uid = task.block.uuid if task is not None else None
        if isinstance(exc, distributed.KilledWorker):
            return BlockError(
                f"block '{name}': {exc.allowed_failures + 1} Dask workers died while running it "
                f"(last: {getattr(exc.last_worker, 'address', exc.last_worker)})",
                block_uuid=uid,
                hint="look at the workers' logs; a block that crashes its interpreter or uses too much memory kills its worker",
            )
        if "scheduler-connection-lost" in str(exc) or self.problem() is not None:
            self._lost = True  # the run loop stops at its next step
            return BlockError(self._lost_message(), block_uuid=uid)
        if type(exc).__name__ in ("CancelledError", "FutureCancelledError"):
            return BlockError(f"block '{name}': its Dask task was cancelled ({exc})", block_uuid=uid)
        return BlockError(f"block '{name}': the Dask executor failed: {type(exc).__name__}: {exc}", block_uuid=uid)

    def _memory_error(self, task: BlockTask | None, msg: dict) -> BlockError:
        worker = msg.get("worker", "?")
        limit = self.memory_limits.get(worker) or 0
        rss = int(msg.get("rss") or 0)
        name = task.node if task is not None else "?"
        return BlockError(
            f"block '{name}' went over the memory limit of its Dask worker {worker} "
            f"({_size(limit)}; it used {_size(rss)}): the nanny restarted the worker and the block failed",
            block_uuid=task.block.uuid if task is not None else None,
            hint="give the workers more memory (dask worker --memory-limit 8GiB) or make the block use less "
            "(read in chunks, select fewer columns)",
        )

    def interrupt(self, handle: Any, exc_type: type[BaseException]) -> None:
        task = self.tasks.get(handle)
        if task is None:
            return
        try:
            self.client.run(interrupt_key, task.key, exc_type.__name__, wait=False)
        except Exception:  # noqa: BLE001 - a lost scheduler: nothing more to stop
            pass
        try:
            handle.cancel()
        except Exception:  # noqa: BLE001
            pass

    def cancel_all(self) -> None:
        try:
            self.client.run(interrupt_run, self.session.run_id, wait=False)
            self.client.cancel(list(self.tasks))
        except Exception:  # noqa: BLE001
            pass

    # ---- events (called on the client's event loop: hand them to the run loop)
    def _on_event(self, event: Any) -> None:
        _when, msg = event
        kind = msg.get("kind")
        if kind == "start":  # bookkeeping only: the run loop is woken when the block moved to another worker
            self._started(msg)
            return
        if kind == "done":
            fut = self.by_key.get(msg.get("key", ""))
            if fut is not None:
                self._outcome_posted.add(fut.key)
        self.session.post(("call", _dispatch, self, msg))

    def _started(self, msg: dict) -> None:
        key, worker = msg.get("key", ""), msg.get("worker", "")
        with self._workers_lock:
            seen = self.workers.setdefault(key, [])
            before = seen[-1] if seen else None
            seen.append(worker)
        if before and before != worker:
            self.session.post(("call", _dispatch, self, {**msg, "kind": "moved", "before": before}))

    def _memory_event(self, msg: dict) -> None:
        self.session.post(("call", _dispatch, self, {"kind": "memory", **msg}))

    def _handle(self, run: Any, msg: dict) -> None:
        kind = msg.get("kind")
        key = msg.get("key", "")
        if kind == "log":
            seq = int(msg.get("seq", 0))
            if seq < self.streamed.get(key, 0) or key not in self.by_key:
                return
            self.streamed[key] = seq + 1
            self.session.emit_log(msg.get("node", ""), msg.get("record") or {})
        elif kind == "done":
            fut = self.by_key.get(key)
            if fut is not None and fut not in self.delivered:
                self.delivered[fut] = msg["outcome"]
                self.session.post(("done", fut))
        elif kind == "moved":
            line = f"Dask worker {msg['before']} was lost while running this block; it runs again on {msg.get('worker')}"
            self.session.emit_log(msg.get("node", ""), {
                "timestamp": _iso_now(), "level": "warning", "message": line, "block_uuid": msg.get("node", ""),
            })
            self.streamed[key] = 0  # the new attempt numbers its records from 0 again
        elif kind == "memory":
            worker = msg.get("worker")
            with self._workers_lock:
                ran = {k: tuple(v) for k, v in self.workers.items()}
            for fut, task in list(self.tasks.items()):
                if worker in ran.get(task.key, ()):
                    self.memory_killed[task.key] = msg
                    try:
                        fut.cancel()
                    except Exception:  # noqa: BLE001
                        pass


class _MemoryKilled(Exception):
    pass


def _dispatch(run: Any, executor: DaskExecutor, msg: dict) -> None:
    executor._handle(run, msg)


def _future_done(run: Any, executor: DaskExecutor, fut: Any) -> None:
    executor._future_done(fut)


def _size(n: int) -> str:
    if not n:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _iso_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat()
