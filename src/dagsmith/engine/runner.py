"""The run loop: ready blocks go to an executor, outcomes come back to the plan.

``execute_run(config)`` (or ``run_pipeline(root, pipeline, **options)``) validates
everything first (nothing runs if any block is broken), then loops: submit every
ready block to the executor (``engine.executors``: ``local`` threads or ``dask``),
wait for the next event (an attempt done, an output stored, a deadline), and
record it in the ``RunPlan``. The loop alone decides retries (``retry_config``;
a ``TerminalError`` or a failed ``@test`` is not retried), timeouts (the
executor interrupts the attempt) and cancellation; each attempt is one call of
the pure ``engine.task.execute_block`` wherever the executor runs it.

Dynamic blocks fan out into child nodes added to the plan as their parent's
output shape becomes known (``engine.dynamic``); conditionals run inside the
attempt, callbacks as a follow-up task once a block's final status is known
(``engine.hooks``).

**A block counts as completed only once its outputs are durable.** With the
local executor the return value is handed to downstream blocks in memory at
once (the critical path never waits for storage), while a few writer threads
store it; the block's ``completed`` event (which the orchestration layer
records, and a resumed run trusts) is sent when the write has finished. Remote
executors store outputs inside the task, before it returns.

**A block that is the only thing to do runs on the loop's own thread** (local
executor): a chain of blocks then costs no thread hand-off per block (two
wake-ups, about a tenth of a millisecond each here, more than a trivial block's
work). The loop itself then runs on a block thread and the caller's thread
watches it (``_loop_beside``): that keeps the caller — the main thread of
``dagsmith run``, where Ctrl-C lands — free while a block runs. A cancel
interrupts such a block like any other; if it stays stuck in C code the watcher
takes the run over (``_take_over``), exactly as the loop abandons a stuck
thread, and the loop's thread leaves the run untouched when it comes back.
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from dagsmith.dag.graph import reachable
from dagsmith.data.store import OutputsMissing
from dagsmith.engine import plan as P
from dagsmith.engine.cache import CACHED as P_CACHED
from dagsmith.engine.config import RunConfig, choose_executor
from dagsmith.engine.dynamic import DynamicLayout, Node, node_id, split_dynamic_output
from dagsmith.engine.executors.base import Executor, RunSession
from dagsmith.engine.hooks import HookSet
from dagsmith.engine.observer import Fanout
from dagsmith.engine.results import BlockResult, RunResult
from dagsmith.engine.retry import RetryPolicy
from dagsmith.engine.task import BlockOutcome, BlockTask, ExecContext, FanShape, Input, Ref, execute_block, split_outputs
from dagsmith.engine.validation import validate_for_run
from dagsmith.engine.variables import run_variables
from dagsmith import settings
from dagsmith.errors import BlockError, BlockTimeout, DagsmithError, ProjectError, RunCancelled
from dagsmith.project.layout import EXECUTABLE_TYPES
from dagsmith.project.specs import BlockSpec, PipelineSpec
from dagsmith.util.clock import utcnow

__all__ = ["run_pipeline", "execute_run", "Run", "new_run_id", "split_outputs"]

#: how long a cancelled block running on the loop's thread may take to stop before the watcher takes the run over
TAKE_OVER_AFTER_S = 0.5


class _TakenOver(BaseException):
    """Raised on the loop's thread when the watcher took the run over: nothing of the run may be touched."""

#: a test hook (issue 12): SIGKILL this process after block <uuid> returned and before its outputs are stored


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus a short random suffix."""
    # os.urandom rather than uuid4: importing uuid (and platform with it) costs more than a small run
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()


def run_pipeline(
    project_root: str | os.PathLike[str],
    pipeline_uuid: str,
    *,
    observer: Any = None,
    cancel_event: threading.Event | None = None,
    executor: Any = None,
    **options: Any,
) -> RunResult:
    """Run a pipeline (or some of its blocks) to the end and return what happened.

    ``options`` are the fields of ``RunConfig``; ``executor`` is a name
    (``local``/``dask``) or an ``Executor`` instance. Raises ``ValidationError``
    before anything runs when the pipeline or a block file is broken. Block
    failures do not raise: they are in the result.
    """
    instance = None
    if executor is not None and not isinstance(executor, str):
        instance = executor
    elif executor is not None:
        options["executor"] = executor
    config = RunConfig.from_keywords(project_root, pipeline_uuid, **options)
    return Run(config, observer=observer, cancel_event=cancel_event, executor=instance).execute()


def execute_run(config: RunConfig, *, observer: Any = None, cancel_event: threading.Event | None = None,
                executor: Executor | None = None) -> RunResult:
    """Run ``config`` to the end; see ``run_pipeline``."""
    return Run(config, observer=observer, cancel_event=cancel_event, executor=executor).execute()


@dataclass
class _Attempt:
    node: str
    attempt: int
    kind: str  # "run" | "callbacks"
    deadline: float | None


class Run:
    """One pipeline run: build it, ``execute()`` it; ``cancel()`` from any thread stops it."""

    def __init__(self, config: RunConfig, *, observer: Any = None, cancel_event: threading.Event | None = None,
                 executor: Executor | None = None) -> None:
        from dagsmith.project.env import load_project_env
        from dagsmith.project.pipelines import load_pipeline, load_project

        self.config = config
        root = self.root = config.project_root
        load_project_env(root)
        self.project = load_project(root)
        self.spec: PipelineSpec = config.spec or load_pipeline(root, config.pipeline_uuid)
        self.run_id = config.run_id or new_run_id()
        self.partition = config.partition or self.run_id
        self.completed = dict(config.completed or {})
        self.cancel_event = cancel_event or threading.Event()
        self.observer = Fanout([observer]) if observer is not None else Fanout([])

        # a block with ``configuration.disabled`` is skipped unless asked for by name (the editor runs it);
        # blocks downstream of it read its latest stored output
        executable = [b for b in self.spec.blocks if b.type in EXECUTABLE_TYPES and not (b.configuration or {}).get("disabled")]
        self.selected = _select(self.spec, executable, config.block_uuids, config.with_upstream)
        from dagsmith.engine.storage import project_store

        for b in self.spec.blocks:
            if (b.configuration or {}).get("disabled") and b.uuid not in self.selected and b.uuid not in self.completed:
                stored = project_store(root, self.project.metadata).latest_partition(self.spec.uuid, b.uuid)
                if stored:
                    self.completed[b.uuid] = stored
        validate_for_run(
            root, self.spec, [b for b in executable if b.uuid in self.selected and b.uuid not in self.completed],
            chosen=None if config.block_uuids is None else self.selected,
        )

        self.executor = executor if executor is not None else _make_executor(
            config, self.spec, self.project, [u for u in self.selected if u not in self.completed]
        )
        from dagsmith.engine.config import executor_warnings

        self.warnings = executor_warnings(
            self.spec, [b for b in executable if b.uuid in self.selected], run_executor=config.executor or settings.get("executor")
        )
        self.remote = bool(getattr(self.executor, "remote", False))
        # blocks routed to different executors (Mage's per-block executor_type) pass values through the store
        self.routed = hasattr(self.executor, "remote_for")
        self.persist = config.persist or self.routed
        from dagsmith.engine.cache import cache_enabled

        # the block cache needs stored outputs to point at: a run that stores nothing caches nothing
        blocks_by_uuid = self.spec.block_map()
        self.cacheable = {
            u for u in self.selected
            if config.persist and u in blocks_by_uuid and cache_enabled(blocks_by_uuid[u], self.spec, config.cache)
        }
        needs_store = self.persist or self.completed or config.block_uuids is not None or self.remote
        self.store = project_store(root, self.project.metadata) if needs_store else None
        if self.store is not None:
            self.store.keep_logs_open()  # closed when the run ends (execute)
        self.shared_vars = run_variables(
            pipeline_uuid=self.spec.uuid,
            pipeline_variables=self.spec.variables,
            variables=config.variables,
            execution_date=config.execution_date,
            interval=config.interval,
            event=config.event,
            env=config.env,
            run_id=self.run_id,
            trigger_name=config.trigger_name,
            repo_path=str(root),
            partition=self.partition,
        )
        self.standalone_inputs = config.block_uuids is not None
        self.project_retry = self.project.retry_config
        self._kill_before_store = settings.get("fault_kill_before_store")

        self.by_uuid = self.spec.block_map()
        upstream = {u: self.by_uuid[u].upstream_blocks for u in self.selected}
        order = [b.uuid for b in self.spec.blocks if b.uuid in self.selected]
        # dynamic blocks: a block under a fan-out is a group node until its parent's output is known
        self.layout = DynamicLayout({u: self.by_uuid[u] for u in self.selected}, order)
        self.dyn: dict[str, Node] = {}
        for u in order:
            if self.layout.depth[u] > 0:
                upstream[u] = (self.layout.source(u, 1),)
                self.dyn[u] = Node(template=u, scope=(), index=(), group=True)
        self.plan = P.RunPlan(
            upstream, order=order, completed=[u for u in self.completed if u in self.selected and u not in self.dyn]
        )
        self.hooks = HookSet(self.spec)
        self.result = RunResult(run_id=self.run_id, pipeline_uuid=self.spec.uuid, partition=self.partition,
                                warnings=list(self.warnings))
        self.result.execution_date = self.shared_vars["execution_date"]

        self.values: dict[str, Any] = {}
        self.values_lock = threading.Lock()
        self.refs: dict[str, Ref] = {}
        self.fanshapes: dict[str, FanShape] = {}
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.running: dict[Any, _Attempt] = {}
        self.retries: list[tuple[float, int, str, int]] = []
        self.finals: dict[str, BlockOutcome] = {}
        self.saving: dict[cf.Future, str] = {}
        self.writer: cf.ThreadPoolExecutor | None = None
        self.cancelled = False
        self.run_error: str | None = None
        self.cache_keys: dict[str, str] = {}
        """block → its cache key, for blocks that missed (recorded when the run ends)"""
        self.cached: dict[str, str] = {}
        """block → partition of the stored outputs a cache hit reused"""
        self._fingerprints: dict[Ref, str] = {}
        self._seq = 0
        self._slim_specs: dict[str, PipelineSpec] = {}
        self._here_ok = False
        """blocks alone may run on the loop's thread (the loop runs beside a watcher: ``_loop_beside``)"""
        self._here: Any = None
        """the attempt running on the loop's thread now"""
        self._here_lock = threading.Lock()
        self._taken_over = False
        self._watch = threading.Event()

    # ------------------------------------------------------------ public
    def cancel(self) -> None:
        """Stop the run: running blocks are interrupted, nothing new starts (safe from any thread)."""
        self.cancel_event.set()
        self.events.put(("wake",))
        self._watch.set()

    def execute(self) -> RunResult:
        res = self.result
        res.started_at = utcnow()
        for u in self.plan.order:
            res.blocks[u] = BlockResult(block_uuid=u, status=self.plan.status[u])
        self.observer.on_run_start(run_id=self.run_id, pipeline_uuid=self.spec.uuid, blocks=list(self.plan.order),
                                   warnings=list(self.warnings))
        session = RunSession(
            run_id=self.run_id,
            pipeline_uuid=self.spec.uuid,
            project_root=self.root,
            cancel_event=self.cancel_event,
            post=self.events.put,
            emit_log=self._emit_log,
            read=self._read,
            store_root=self.store.url if self.store is not None else None,
            worker_setup=self.config.worker_setup,
        )
        try:
            self.executor.open(session)
            try:
                if hasattr(self.executor, "run_here"):
                    self._loop_beside()
                else:
                    self._loop()
            finally:
                self.executor.close()
        except DagsmithError as exc:  # the executor could not start (no scheduler, missing package)
            self.run_error = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
            for u in self.plan.cancel_pending():
                res.blocks[u].status = P.CANCELLED
            self._settled([], emit=False)
        for fut in list(self.saving):
            self._saved(fut)
        if self.writer is not None:
            self.writer.shutdown(wait=True)
        for u, s in self.plan.status.items():
            res.blocks[u].status = P_CACHED if u in self.cached else s
        if self.dyn:  # children listed right after their parent, as in the plan
            res.blocks = {u: res.blocks[u] for u in self.plan.order}
        res.status = P.FAILED if self.run_error else self.plan.outcome(allow_blocks_to_fail=self.config.allow_blocks_to_fail)
        res.error = self.run_error
        res.ended_at = utcnow()
        res.abandoned_threads = self.executor.abandons_threads
        if self.store is not None and self.persist:
            try:
                self._write_manifest()
            except Exception as exc:  # noqa: BLE001 - an unreachable store is the run's error, not a crash
                # completed means stored: a run whose manifest is not stored has not completed
                res.status = P.FAILED
                res.error = self.run_error = res.error or (
                    f"the run's outputs could not be stored in {self.store.url}: {type(exc).__name__}: {exc} "
                    "(hint: check the project's variables_dir / remote_variables_dir and its credentials)"
                )
        if self.store is not None:
            self.store.close()
        self.observer.on_run_end(run_id=self.run_id, status=res.status, result=res)
        return res

    # ------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while True:
            if self.cancel_event.is_set():
                self._cancel_everything()
                return
            problem = self.executor.problem()
            if problem:
                self._executor_lost(problem)
                return
            self._start_due_retries()
            self._start_ready()
            if not (self.running or self.retries or self.saving):
                if self.plan.finished() or not self.plan.ready():
                    return
                continue
            try:
                event = self.events.get(timeout=self._next_wakeup())
            except queue.Empty:
                event = None
            while event is not None:
                self._handle(event)
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    event = None
            self._check_deadlines()

    def _loop_beside(self) -> None:
        """``_loop`` on a block thread, watched from this one (see the module doc)."""
        failed: list[BaseException] = []
        ended = threading.Event()

        def body() -> None:
            try:
                self._loop()
            except _TakenOver:
                return  # the watcher finished the run
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                failed.append(exc)
            ended.set()
            self._watch.set()

        self._here_ok = True
        self.executor.start_loop(body)  # type: ignore[attr-defined]
        interrupted: tuple[Any, float] | None = None
        while not ended.is_set():
            self._watch.wait(0.25)
            self._watch.clear()
            if ended.is_set() or not self.cancel_event.is_set():
                continue
            with self._here_lock:
                here = self._here
            if here is None:
                continue  # the loop is not inside a block: it cancels the run itself
            now = time.monotonic()
            if interrupted is None or interrupted[0] is not here:
                self.executor.interrupt(here, RunCancelled)
                interrupted = (here, now)
            elif now - interrupted[1] >= TAKE_OVER_AFTER_S and self._take_over(here):
                return
        if failed:
            raise failed[0]

    def _take_over(self, here: Any) -> bool:
        """The block on the loop's thread ignores its cancel (C code): finish the run from this thread."""
        with self._here_lock:
            if self._here is not here:
                return False  # it ended meanwhile: the loop goes on by itself
            self._taken_over = True
        self._cancel_everything()
        return True

    def _run_here(self, handle: Any) -> None:
        """Run an attempt on this (the loop's) thread; its end is handled like any other."""
        with self._here_lock:
            self._here = handle
        self.executor.run_here(handle)  # type: ignore[attr-defined]
        with self._here_lock:
            self._here = None
            if self._taken_over:
                raise _TakenOver
        if self.cancel_event.is_set():  # as for an interrupted thread: the loop's cancel records it, whatever came back
            self.events.put(("wake",))
            return
        self.events.put(("done", handle))

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "done":
            self._done(event[1])
        elif kind == "saved":
            self._saved(event[1])
        elif kind == "log":
            self._emit_log(event[1], event[2])
        elif kind == "call":
            event[1](self, *event[2:])

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        wake = 0.25
        for att in self.running.values():
            if att.deadline is not None:
                wake = min(wake, att.deadline - now)
        if self.retries:
            wake = min(wake, self.retries[0][0] - now)
        return max(wake, 0.0)

    def _start_ready(self) -> None:
        res = self.result
        capacity = self._capacity()
        ready = self.plan.ready()
        # the only thing to do: it may run right here (see the module doc)
        alone = self._here_ok and len(ready) == 1 and not (self.running or self.retries or self.saving)
        for u in ready:
            if self.plan.status[u] != P.INITIAL:  # settled by an expansion earlier in this pass
                continue
            node = self.dyn.get(u)
            if node is not None and node.group:
                self._expand(u)
                continue
            if len(self.running) >= capacity:
                break
            self.plan.start(u)
            res.blocks[u].status = P.RUNNING
            self._submit(u, 1, here=alone)

    def _capacity(self) -> int:
        limit = self.executor.capacity
        if not self.config.parallel:
            return 1
        configured = self.config.max_workers or _limit(self.spec)
        return min(limit, configured) if configured else limit

    def _start_due_retries(self) -> None:
        now = time.monotonic()
        while self.retries and self.retries[0][0] <= now:
            _due, _seq, u, attempt = heapq.heappop(self.retries)
            self._submit(u, attempt)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for handle, att in list(self.running.items()):
            if att.deadline is None or now < att.deadline or att.kind != "run":
                continue
            del self.running[handle]
            self.executor.interrupt(handle, BlockTimeout)
            timeout = self._spec_of(att.node).timeout or 0
            err = BlockTimeout(
                f"block '{att.node}' timed out after {timeout:g} s",
                block_uuid=self._tpl(att.node),
                hint="raise the block's timeout in the pipeline's metadata.yaml, or make it faster",
            )
            self._final(att.node, BlockOutcome(att.node, att.attempt, status=P.FAILED, error=err, ended_at=utcnow()))

    # ------------------------------------------------------------ attempts
    def _submit(self, u: str, attempt: int, *, here: bool = False) -> None:
        block = self._spec_of(u)
        br = self.result.blocks[u]
        try:
            inputs = self._input_refs(block, u)
        except BlockError as exc:
            br.started_at = br.started_at or utcnow()
            self._final(u, BlockOutcome(u, attempt, status=P.FAILED, error=exc))
            return
        node = self.dyn.get(u)
        if attempt == 1 and u in self.cacheable and node is None and self._from_cache(u, block, inputs):
            return
        task = BlockTask(
            run_id=self.run_id,
            node=u,
            attempt=attempt,
            block=block,
            pipeline=self._task_spec(block),
            project_root=str(self.root),
            partition=self.partition,
            variables=self.shared_vars,
            inputs=inputs,
            metadata=dict(node.metadata) if node is not None else {},
            index=tuple(node.index) if node is not None else (),
            check_conditions=attempt == 1 and self.hooks.guarded(block.uuid),
            fans_out=block.is_dynamic and self.layout.fans_out(block.uuid),
            run_tests=self.config.run_tests,
            timeout=block.timeout,
            publish=self._remote(block),
            store_root=self.store.url if self.store is not None else None,
            lookup=self._lookup() if block.is_sql else {},
        )
        br.attempts = attempt
        started = utcnow()
        br.started_at = br.started_at or started
        self.observer.on_block_start(
            run_id=self.run_id, block_uuid=u, attempt=attempt, started_at=started, **self._event_extra(u)
        )
        if here and not block.timeout and block.type != "sensor":  # a deadline or a long poll needs a thread of its own
            handle = self.executor.handle(task)  # type: ignore[attr-defined]
            self.running[handle] = _Attempt(u, attempt, "run", None)
            self._run_here(handle)
            return
        handle = self.executor.submit(task)
        deadline = time.monotonic() + block.timeout if block.timeout else None
        self.running[handle] = _Attempt(u, attempt, "run", deadline)

    # ------------------------------------------------------------ the block cache
    def _from_cache(self, u: str, block: BlockSpec, inputs: tuple[Input, ...]) -> bool:
        """Look ``u`` up in the block cache; on a hit settle it as ``cached`` and return True."""
        from dagsmith.data.fingerprint import fingerprint
        from dagsmith.engine.cache import cache_key, key_variables, uses_dates

        try:
            prints = []
            for inp in inputs:
                for ref in inp.refs:
                    fp = self._fingerprints.get(ref)
                    if fp is None:
                        fp = self._fingerprints[ref] = fingerprint(self._read(ref))
                    prints.append(fp if inp.kind != "item" else f"{fp}[{inp.item}]")
            dated = uses_dates(block, self.root)
            key = cache_key(block, self.root, prints, key_variables(self.shared_vars, dated=dated))
            entry = self.store.cache_lookup(self.spec.uuid, u, key)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - the cache is an optimisation: trouble with it means "run the block"
            self._emit_log(u, {"timestamp": utcnow().isoformat(), "level": "warning", "block_uuid": u,
                               "message": f"block cache not used: {type(exc).__name__}: {exc}"})
            return False
        if entry is None:
            self.cache_keys[u] = key
            return False
        part = str(entry["partition"])
        br = self.result.blocks[u]
        now = utcnow()
        br.started_at, br.ended_at, br.attempts = now, now, 0
        br.rows = entry.get("rows")
        br.extra["cached_from"] = entry.get("run_id") or part
        self.refs[u] = Ref(u, part)
        self.cached[u] = part
        self.observer.on_block_start(run_id=self.run_id, block_uuid=u, attempt=1, started_at=now, cached=True)
        line = f"cached: same code, inputs and variables as run {entry.get('run_id') or part}; not run"
        self._emit_log(u, {"timestamp": now.isoformat(), "level": "info", "message": line, "block_uuid": u})
        self._add_stdout(u, line)
        changed = self.plan.finish(u, P.COMPLETED)
        self._settled([u, *changed])
        return True

    def _record_cache(self) -> None:
        for u, key in self.cache_keys.items():
            br = self.result.blocks.get(u)
            if br is None or br.status != P.COMPLETED:
                continue
            try:
                self.store.cache_record(  # type: ignore[union-attr]
                    self.spec.uuid, u, key, {"partition": self.partition, "run_id": self.run_id, "rows": br.rows},
                )
            except Exception:  # noqa: BLE001 - a lost cache entry only costs a re-run next time
                pass

    def _done(self, handle: Any) -> None:
        att = self.running.pop(handle, None)
        if att is None:  # timed out or cancelled already (or told twice): the late outcome is dropped
            return
        outcome = self.executor.outcome(handle)
        if att.kind == "callbacks":
            final = self.finals.pop(att.node)
            final.callbacks = outcome.callbacks or []
            self._add_stdout(att.node, outcome.stdout)
            self._record(att.node, final)
            return
        u = att.node
        if not outcome.node:  # the executor failed before the block could report
            outcome.node, outcome.attempt = u, att.attempt
        br = self.result.blocks[u]
        self._add_stdout(u, outcome.stdout)
        br.extra.update(outcome.extra)
        if outcome.tests_total:
            br.tests_total, br.tests_passed, br.test_failures = outcome.tests_total, outcome.tests_passed, outcome.test_failures
        if outcome.status == P.COMPLETED:
            br.rows = outcome.rows
        if outcome.status == P.FAILED and outcome.retryable and not self.cancel_event.is_set():
            policy = RetryPolicy.merged(self.project_retry, self.spec.retry_config, self._spec_of(u).retry_config)
        else:
            policy = None
        if policy is not None and att.attempt <= policy.retries:
            line = f"attempt {att.attempt} failed: {outcome.error}; retrying"
            self._emit_log(u, {"timestamp": utcnow().isoformat(), "level": "warning", "message": line, "block_uuid": u})
            self._add_stdout(u, line)
            self._seq += 1
            due = time.monotonic() + policy.wait_before(att.attempt + 1)
            heapq.heappush(self.retries, (due, self._seq, u, att.attempt + 1))
            return
        self._final(u, outcome)

    def _final(self, u: str, outcome: BlockOutcome) -> None:
        """The last attempt of ``u`` ended: run its callbacks (a follow-up task), then record it."""
        if outcome.status in (P.COMPLETED, P.FAILED) and self.hooks.has_callbacks(self._tpl(u)):
            self.finals[u] = outcome
            task = self._callback_task(u, outcome.status, outcome)
            handle = self.executor.submit(task)
            self.running[handle] = _Attempt(u, outcome.attempt, "callbacks", None)
            return
        self._record(u, outcome)

    def _callback_task(self, u: str, status: str, outcome: BlockOutcome | None) -> BlockTask:
        block = self._spec_of(u)
        node = self.dyn.get(u)
        try:
            inputs = self._input_refs(block, u)
        except BlockError:
            inputs = ()
        error = None
        if outcome is not None and outcome.error is not None:
            error = outcome.cause or outcome.error
            if self._remote(block):
                from dagsmith.engine.task import _portable

                error = _portable(error)
        return BlockTask(
            run_id=self.run_id, node=u, attempt=max(self.result.blocks[u].attempts, 1), block=block,
            pipeline=self._task_spec(block),
            project_root=str(self.root), partition=self.partition, variables=self.shared_vars, inputs=inputs,
            action="callbacks", metadata=dict(node.metadata) if node is not None else {},
            index=tuple(node.index) if node is not None else (), publish=self._remote(block),
            store_root=self.store.url if self.store is not None else None,
            callback_status=status, callback_error=error,
        )

    def _remote(self, block: BlockSpec) -> bool:
        """Whether ``block``'s attempts run in another process (their task stores their outputs)."""
        return self.executor.remote_for(block.uuid) if self.routed else self.remote

    def _task_spec(self, block: BlockSpec) -> PipelineSpec:
        """The pipeline as a task needs it: for remote executors, only this block and its upstreams.

        A task is pickled for every attempt of every dynamic child; the whole pipeline
        (with its raw YAML) would make each one many times larger than it needs to be.
        """
        if not self._remote(block):
            return self.spec
        slim = self._slim_specs.get(block.uuid)
        if slim is None:
            import dataclasses

            keep = {block.uuid, *block.upstream_blocks}
            slim = dataclasses.replace(
                self.spec, raw={}, blocks=tuple(dataclasses.replace(b, raw={}) for b in self.spec.blocks if b.uuid in keep),
            )
            self._slim_specs[block.uuid] = slim
        return slim

    def _record(self, u: str, outcome: BlockOutcome) -> None:
        br = self.result.blocks[u]
        br.ended_at = outcome.ended_at or utcnow()
        if outcome.error is not None:
            err = outcome.error
            br.error = str(err.message if isinstance(err, DagsmithError) else err)
            if getattr(err, "hint", None):
                br.extra["hint"] = err.hint  # how to fix it, shown under the error
            if isinstance(err, BlockError):
                br.error_location = err.location
                br.traceback = err.user_traceback
            if self.config.keep_exceptions:
                self.result.exceptions[u] = outcome.cause or err
        if outcome.reason:
            br.skip_reason = outcome.reason
        if outcome.callbacks:
            br.callbacks = outcome.callbacks
        hold = False
        if outcome.status == P.COMPLETED:
            if outcome.fanout is not None:
                self.fanshapes[u] = outcome.fanout
            if outcome.ref is not None:  # stored by the task itself (remote executors)
                self.refs[u] = outcome.ref
            else:
                with self.values_lock:
                    self.values[u] = outcome.value
                persisting = self.store is not None and self.persist
                self.refs[u] = Ref(u, self.partition if persisting else None)
                if persisting and not self.store.remote and _small_plain(outcome.outputs or []):  # type: ignore[union-attr]
                    # one small file: stored right here, before anything downstream starts (as cheap as
                    # a hand-off to a writer thread, and the block is completed-and-stored at once)
                    outcome = self._store_now(u, outcome)
                elif persisting:
                    self._store_async(u, outcome)
                    hold = True
        changed = self.plan.finish(u, outcome.status)
        self._settled([u, *changed], hold=u if hold else None)

    def _store_async(self, u: str, outcome: BlockOutcome) -> None:
        if self._kill_before_store == u:  # test hook: the "returned but not stored" window of issue 12
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        if self.writer is None:
            # a few writers, so thousands of dynamic children do not queue behind one
            self.writer = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dagsmith-persist")
        fut = self.writer.submit(
            self.store.write_outputs, self.spec.uuid, self.partition, u, outcome.outputs or [],  # type: ignore[union-attr]
            multi=outcome.multi, update_latest=False,
        )
        self.saving[fut] = u
        post = self.events.put
        fut.add_done_callback(lambda f: post(("saved", f)))

    def _store_now(self, u: str, outcome: BlockOutcome) -> BlockOutcome:
        if self._kill_before_store == u:  # test hook: the "returned but not stored" window of issue 12
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        try:
            self.store.write_outputs(  # type: ignore[union-attr]
                self.spec.uuid, self.partition, u, outcome.outputs or [], multi=outcome.multi, update_latest=False,
            )
        except Exception as exc:  # noqa: BLE001 - not stored: the block did not complete
            err = f"block '{u}' ran but its outputs could not be stored: {type(exc).__name__}: {exc}"
            self.result.blocks[u].error = err
            with self.values_lock:
                self.values.pop(u, None)
            self.refs.pop(u, None)
            outcome.status = P.FAILED
        return outcome

    def _saved(self, fut: cf.Future) -> None:
        u = self.saving.pop(fut, None)
        if u is None:
            return
        br = self.result.blocks[u]
        try:
            fut.result()
        except Exception as exc:  # noqa: BLE001 - not durable: the block did not complete
            br.error = f"block '{u}' ran but its outputs could not be stored: {type(exc).__name__}: {exc}"
            changed = self.plan.finish(u, P.FAILED)
            br.status = P.FAILED
            self._emit_end(u)
            self._settled(changed)
            return
        br.status = self.plan.status[u]
        self._emit_end(u)

    # ------------------------------------------------------------ cancel and lost executors
    def _cancel_everything(self) -> None:
        self.cancelled = True
        self.executor.cancel_all()
        for handle, att in list(self.running.items()):
            del self.running[handle]
            self.executor.interrupt(handle, RunCancelled)
            if att.kind == "callbacks":
                self._record(att.node, self.finals.pop(att.node))
                continue
            outcome = BlockOutcome(att.node, att.attempt, status=P.CANCELLED,
                                   error=RunCancelled(f"block '{att.node}' was cancelled"), ended_at=utcnow())
            if self.hooks.has_callbacks(self._tpl(att.node)):
                cb = execute_block(self._callback_task(att.node, P.CANCELLED, None), _InlineContext(self))
                outcome.callbacks = cb.callbacks
                self._add_stdout(att.node, cb.stdout)
            self._record(att.node, outcome)
        for _due, _seq, u, attempt in self.retries:
            self._record(u, BlockOutcome(u, attempt, status=P.CANCELLED, error=RunCancelled(f"block '{u}' was cancelled")))
        self.retries.clear()
        pending = self.plan.cancel_pending()
        for u in pending:
            self.result.blocks[u].status = P.CANCELLED
        self._settled(pending)

    def _executor_lost(self, problem: str) -> None:
        """The executor cannot go on (its scheduler is gone): fail what runs, start nothing more."""
        self.run_error = problem
        for handle, att in list(self.running.items()):
            del self.running[handle]
            try:
                self.executor.interrupt(handle, RunCancelled)
            except Exception:  # noqa: BLE001 - the executor is already broken
                pass
            if att.kind == "callbacks":
                self._record(att.node, self.finals.pop(att.node))
                continue
            err = BlockError(problem, block_uuid=self._tpl(att.node))
            self._record(att.node, BlockOutcome(att.node, att.attempt, status=P.FAILED, error=err, ended_at=utcnow()))
        for _due, _seq, u, attempt in self.retries:
            self._record(u, BlockOutcome(u, attempt, status=P.FAILED, error=BlockError(problem, block_uuid=self._tpl(u))))
        self.retries.clear()
        pending = self.plan.cancel_pending()
        for u in pending:
            self.result.blocks[u].status = P.CANCELLED
        self._settled(pending)

    # ------------------------------------------------------------ values
    def _read(self, ref: Ref) -> Any:
        """A node's value: from memory, else from the store (then kept for its other readers)."""
        with self.values_lock:
            if ref.node in self.values:
                return self.values[ref.node]
        if self.store is None or ref.partition is None:
            raise OutputsMissing(ref.node)
        value = self.store.read_block_value(self.spec.uuid, ref.partition, ref.node)
        with self.values_lock:
            self.values[ref.node] = value
        return value

    def _ref(self, up: str) -> Ref:
        ref = self.refs.get(up)
        if ref is not None:
            return ref
        part = self.completed.get(up)
        if part is None and self.standalone_inputs and self.store is not None:
            part = self.store.latest_partition(self.spec.uuid, up)
        if part is None:
            raise OutputsMissing(up)
        ref = self.refs[up] = Ref(up, part)
        return ref

    def _lookup(self) -> dict[str, Ref]:
        """Every top-level block output a SQL block may name (``block_output('uuid')``)."""
        out = {}
        for uid in self.by_uuid:
            try:
                out[uid] = self._ref(uid)
            except OutputsMissing:
                continue
        return out

    def _input_refs(self, block: BlockSpec, u: str) -> tuple[Input, ...]:
        node = self.dyn.get(u)
        if node is not None:
            return self._child_inputs(block, node)
        values = []
        for up in block.upstream_blocks:
            if up not in self.by_uuid or self.by_uuid[up].type not in EXECUTABLE_TYPES:
                continue
            try:
                if up in self.dyn:
                    values.append(Input("reduce", self._reduced(up)))
                else:
                    values.append(Input("value", (self._ref(up),)))
            except OutputsMissing:
                raise BlockError(
                    f"block '{block.uuid}' needs the output of upstream block '{up}', which has not been stored yet",
                    block_uuid=block.uuid,
                    hint=f"run it first: dagsmith run {self.root} {self.spec.uuid} --block {up}"
                    f"  (or add --with-upstream)",
                ) from None
        return tuple(values)

    def _child_inputs(self, block: BlockSpec, node: Node) -> tuple[Input, ...]:
        """Inputs of a dynamic child: its item, its upstream siblings' outputs, or reduced lists."""
        values = []
        for up in block.upstream_blocks:
            if up not in self.layout.depth:
                continue
            kind, ref, item = self.layout.upstream_ref(node.template, node.scope, node.index, up)
            try:
                if kind == "item":
                    values.append(Input("item", (self._ref(ref),), item))
                elif kind == "reduce":
                    values.append(Input("reduce", self._reduced(ref)))
                else:
                    values.append(Input("value", (self._ref(ref),)))
            except OutputsMissing:
                raise BlockError(
                    f"block '{node_id(node.template, node.scope)}' needs the output of '{ref}', which was not stored",
                    block_uuid=block.uuid,
                    hint=f"re-run the whole pipeline: dagsmith run {self.root} {self.spec.uuid}",
                ) from None
        return tuple(values)

    def _reduced(self, g: str) -> tuple[Ref, ...]:
        """What the downstream of a ``reduce_output`` block gets: its children's outputs, in item order."""
        group = self.dyn[g]
        return tuple(self._ref(c) for c in group.children if self.plan.status[c] == P.COMPLETED)

    # ------------------------------------------------------------ observers
    def _emit_log(self, u: str, record: dict) -> None:
        self.observer.on_block_log(run_id=self.run_id, block_uuid=u, record=record)

    def _add_stdout(self, u: str, text: str) -> None:
        if not text:
            return
        br = self.result.blocks[u]
        br.stdout = f"{br.stdout.rstrip(chr(10))}\n{text}" if br.stdout else text

    def _emit_end(self, u: str) -> None:
        br = self.result.blocks[u]
        kw = self._event_extra(u)
        if br.skip_reason:
            kw["reason"] = br.skip_reason
        if br.callbacks:
            kw["callbacks"] = br.callbacks
        self.observer.on_block_end(run_id=self.run_id, block_uuid=u, status=br.status, result=br, **kw)

    def _settled(self, nodes: list[str], *, emit: bool = True, hold: str | None = None) -> None:
        """Nodes reached a final status: tell observers, close finished groups (and their parents).

        ``hold`` completed but its outputs are still being stored: its end is told once they are.
        """
        todo = list(nodes)
        i = 0
        while i < len(todo):
            u = todo[i]
            i += 1
            br = self.result.blocks[u]
            if u == hold:
                br.status = P.RUNNING
            else:
                br.status = P_CACHED if u in self.cached else self.plan.status[u]
                if emit:
                    self._emit_end(u)
            node = self.dyn.get(u)
            parent = self.dyn.get(node.parent) if node is not None and node.parent else None
            if parent is None or not parent.expanded:
                continue
            parent.open -= 1
            if parent.open == 0 and self.plan.status[node.parent] == P.RUNNING:
                todo.extend(self._close_group(node.parent))

    # ------------------------------------------------------------ dynamic blocks
    def _tpl(self, u: str) -> str:
        node = self.dyn.get(u)
        return node.template if node is not None else u

    def _spec_of(self, u: str) -> BlockSpec:
        return self.by_uuid[self._tpl(u)]

    def _event_extra(self, u: str) -> dict[str, Any]:
        node = self.dyn.get(u)
        if node is None:
            return {}
        extra: dict[str, Any] = {"block_template": node.template, "parent": node.parent}
        if node.index:
            extra["dynamic_index"] = node.index[-1]
            extra["dynamic_key"] = node.scope[-1]
        if node.group:
            extra["is_dynamic_group"] = True
            extra["children"] = list(node.children)
        return extra

    def _close_group(self, g: str) -> list[str]:
        """All children of group ``g`` are final: give the group its status; returns the nodes settled."""
        node = self.dyn[g]
        statuses = [self.plan.status[c] for c in node.children]
        failed = [c for c in node.children if self.plan.status[c] == P.FAILED]
        if failed:
            status = P.FAILED
        elif P.UPSTREAM_FAILED in statuses:
            status = P.UPSTREAM_FAILED
        elif P.CANCELLED in statuses:
            status = P.CANCELLED
        elif statuses and all(s == P.CONDITION_FAILED for s in statuses):
            status = P.CONDITION_FAILED
        else:
            status = P.COMPLETED
        br = self.result.blocks[g]
        br.ended_at = utcnow()
        br.rows = len(node.children)
        if failed:
            shown = ", ".join(failed[:5]) + (", …" if len(failed) > 5 else "")
            br.error = f"{len(failed)} of {len(node.children)} dynamic children failed: {shown}"
        changed = self.plan.finish(g, status)
        return [g, *changed]

    def _fanshape(self, u: str) -> FanShape:
        """The children's keys and metadata of dynamic node ``u`` (from its outcome, or its stored output)."""
        shape = self.fanshapes.get(u)
        if shape is None:
            fan = split_dynamic_output(self._read(self._ref(u)), u)
            shape = self.fanshapes[u] = FanShape(tuple(fan.keys), tuple(fan.metadata))
        return shape

    def _expand(self, g: str) -> None:
        """Group ``g`` is ready (its fan-out parent completed): add its children to the plan."""
        node = self.dyn[g]
        t, prefix = node.template, node.scope
        level = len(prefix) + 1
        source = node_id(self.layout.source(t, level), prefix)
        self.plan.start(g)
        br = self.result.blocks[g]
        br.status = P.RUNNING
        br.started_at = utcnow()
        try:
            fan = self._fanshape(source)
        except (DagsmithError, OutputsMissing) as exc:
            msg = exc.message if isinstance(exc, DagsmithError) else f"no stored output of '{source}'"
            br.error = f"cannot fan out '{t}': {msg}"
            self._settled([g, *self.plan.finish(g, P.FAILED)])
            return
        leaf = self.layout.depth[t] == level
        spec = self.by_uuid[t]
        new_nodes: list[tuple[str, tuple[str, ...], bool]] = []
        for i, key in enumerate(fan.keys):
            scope, index = prefix + (key,), node.index + (i,)
            cid = node_id(t, scope)
            meta = {**node.metadata, **fan.metadata[i]}
            child = Node(template=t, scope=scope, index=index, metadata=meta, group=not leaf, parent=g)
            self.dyn[cid] = child
            node.children.append(cid)
            if leaf:
                ups = []
                for up in spec.upstream_blocks:
                    if up not in self.layout.depth:
                        continue
                    ups.append(self._ensure_node(up, self.layout.upstream_scope(t, scope, up)))
                done = cid in self.completed
            else:
                ups, done = [self._ensure_node(self.layout.source(t, level + 1), scope)], False
            self.result.blocks[cid] = BlockResult(
                block_uuid=cid, status=P.COMPLETED if done else P.INITIAL, parent=g, dynamic_index=i
            )
            new_nodes.append((cid, tuple(ups), done))
        node.expanded = True
        node.open = sum(1 for _c, _u, done in new_nodes if not done)
        br.rows = len(new_nodes)
        settled = self.plan.add_nodes(new_nodes, after=g)
        self.observer.on_block_start(
            run_id=self.run_id, block_uuid=g, attempt=1, started_at=br.started_at, **self._event_extra(g)
        )
        self.observer.on_blocks_added(run_id=self.run_id, parent=g, blocks=[c for c, _u, _d in new_nodes])
        if settled:
            self._settled(settled)
        if node.open == 0 and self.plan.status[g] == P.RUNNING:
            self._settled(self._close_group(g))

    def _ensure_node(self, template: str, scope: tuple[str, ...]) -> str:
        """The node of ``template`` at ``scope``, expanding its (ready) groups first when needed."""
        for k in range(len(scope)):
            g = node_id(template, scope[:k])
            group = self.dyn.get(g)
            if group is None:
                break
            if not group.expanded and self.plan.is_ready(g):
                self._expand(g)
        ref = node_id(template, scope)
        if ref not in self.plan.status:
            raise ProjectError(
                f"dynamic block '{ref}' is needed before the block it fans out from has completed",
                hint="a dynamic child can only join blocks of the same fan-out",
            )
        return ref

    def _write_manifest(self) -> None:
        stored = [
            u for u, b in self.result.blocks.items()
            if b.status == P.COMPLETED and u not in self.completed and not (u in self.dyn and self.dyn[u].group)
        ]
        latest = {u: self.partition for u in stored}
        latest.update(self.cached)
        if latest:
            self.store.set_latest(self.spec.uuid, latest)  # type: ignore[union-attr]
        self._record_cache()
        blocks = {
            u: {"status": b.status, "partition": self.cached.get(u) or self.completed.get(u, self.partition)}
            for u, b in self.result.blocks.items()
        }
        self.store.write_manifest(  # type: ignore[union-attr]
            self.spec.uuid,
            self.partition,
            {"run_id": self.run_id, "pipeline_uuid": self.spec.uuid, "status": self.result.status,
             "error": self.run_error, "blocks": blocks, "inputs": self._replay_inputs()},
        )

    def _replay_inputs(self) -> dict[str, Any]:
        """What ``dagsmith run --from-run`` needs to give a block the same inputs again (JSON-able)."""
        cfg = self.config
        interval = None
        if cfg.interval is not None:
            interval = [str(v.isoformat() if hasattr(v, "isoformat") else v) for v in cfg.interval]
        return {
            "variables": dict(cfg.variables or {}),
            "execution_date": self.shared_vars["execution_date"].isoformat(),
            "interval": interval,
            "event": dict(cfg.event or {}),
            "env": cfg.env,
            "trigger_name": cfg.trigger_name,
        }


class _InlineContext(ExecContext):
    """Runs a task in the run loop's own thread (callbacks of a cancelled block)."""

    def __init__(self, run: Run) -> None:
        super().__init__(run.cancel_event)
        self.run = run

    def read(self, task: BlockTask, ref: Ref) -> Any:
        return self.run._read(ref)

    def emit(self, task: BlockTask, record: dict) -> None:
        self.run._emit_log(task.node, record)

    def hooks(self, task: BlockTask) -> Any:
        return self.run.hooks


def _make_executor(config: RunConfig, spec: PipelineSpec, project: Any, selected: Iterable[str] = ()) -> Executor:
    from dagsmith.engine.config import block_executor

    name = choose_executor(config, spec)
    by_uuid = spec.block_map()
    route = {u: block_executor(config, name, by_uuid[u]) for u in selected if u in by_uuid}
    names = set(route.values()) or {name}
    if len(names) == 1:
        return _one_executor(names.pop(), config, spec, project)
    from dagsmith.engine.executors.routed import RoutedExecutor

    return RoutedExecutor({n: _one_executor(n, config, spec, project) for n in sorted(names)}, route, default=name)


def _one_executor(name: str, config: RunConfig, spec: PipelineSpec, project: Any) -> Executor:
    if name == "dask":
        from dagsmith.engine.config import dask_scheduler
        from dagsmith.engine.executors.dask import DaskExecutor

        return DaskExecutor(address=dask_scheduler(config, project.metadata))
    from dagsmith.engine.executors.local import DEFAULT_MAX_WORKERS, LocalExecutor

    if not config.parallel:
        return LocalExecutor(1)
    return LocalExecutor(config.max_workers or _limit(spec) or DEFAULT_MAX_WORKERS)


def _small_plain(outputs: list[Any]) -> bool:
    """Outputs the store keeps inline in one small file (cheap enough to write on the run loop's thread)."""
    if len(outputs) > 16:
        return False
    for v in outputs:
        t = type(v)
        if t in (int, float, bool, type(None)) or (t is str and len(v) < 4096):
            continue
        if t in (list, dict) and len(v) <= 16:
            from dagsmith.data.serde import is_plain_json

            if is_plain_json(v) and len(repr(v)) < 4096:
                continue
        return False
    return True


def _limit(spec: PipelineSpec) -> int | None:
    value = (spec.concurrency_config or {}).get("block_run_limit")
    return int(value) if value else None


def _select(
    spec: PipelineSpec, executable: list[BlockSpec], block_uuids: Iterable[str] | None, with_upstream: bool
) -> set[str]:
    names = {b.uuid for b in executable}
    if block_uuids is None:
        return names
    chosen = set()
    for uid in block_uuids:
        spec.block(uid)  # raises a clear error for unknown uuids
        chosen.add(uid)
    if with_upstream:
        upstream = {b.uuid: [u for u in b.upstream_blocks if u in names] for b in spec.blocks}
        chosen.update(reachable(upstream, chosen))
    return chosen & names if chosen & names else chosen

