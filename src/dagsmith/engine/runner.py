"""Running one pipeline run: ready blocks go to worker threads, results come back to the plan.

``run_pipeline`` validates everything first (nothing runs if any block is
broken), then loops: hand every ready block to the executor, wait for the
first to finish (or a timeout/cancel), record the result in the ``RunPlan``.
Dynamic blocks fan out into child nodes added to the plan as their parent's
output becomes known (``engine.dynamic``); conditionals and callbacks run
around each block (``engine.hooks``). Outputs pass to downstream blocks in memory; persisting them to the variables
store happens on a separate writer thread so it never delays the next block,
and the run waits for the writer only at its end.

Blocks share one process (threads), which is what makes hand-off free. A block
past its ``timeout`` or a cancelled run gets an exception raised inside its
thread; the run does not wait for it.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import os
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from dagsmith.blocks.context import BlockCall
from dagsmith.blocks.loader import call_with, ensure_importable, entry_for, load_python_block, user_error
from dagsmith.data.serde import row_count
from dagsmith.data.store import OutputsMissing, VariableStore, as_input
from dagsmith.engine import plan as P
from dagsmith.engine.capture import BlockSink, block_logger, capturing
from dagsmith.engine.dynamic import DynamicLayout, FanOut, Node, node_id, split_dynamic_output
from dagsmith.engine.hooks import HookSet
from dagsmith.engine.observer import Fanout
from dagsmith.engine.results import BlockResult, RunResult
from dagsmith.engine.retry import RetryPolicy
from dagsmith.engine.validation import validate_for_run
from dagsmith.engine.variables import run_variables
from dagsmith.errors import BlockError, BlockTestFailure, BlockTimeout, DagsmithError, ProjectError, RunCancelled
from dagsmith.project.layout import EXECUTABLE_TYPES, REPO_PATH_ENV, data_dir
from dagsmith.project.specs import BlockSpec, PipelineSpec

DEFAULT_MAX_WORKERS = 8


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus a short random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuidlib.uuid4().hex[:6]


@dataclass
class _Outcome:
    status: str
    outputs: list[Any] = field(default_factory=list)
    multi: bool = False
    error: BaseException | None = None
    cause: BaseException | None = None
    """The user's own exception behind ``error`` (what failure callbacks get as ``__error``)."""
    reason: str | None = None
    """Why a block was skipped (``condition_failed``)."""
    callbacks: list[dict] | None = None


@dataclass
class _Running:
    future: cf.Future
    deadline: float | None
    thread_id: list[int]


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Ask CPython to raise ``exc_type`` inside another thread at its next bytecode."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


class _Workdir:
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


def run_pipeline(
    project_root: str | os.PathLike[str],
    pipeline_uuid: str,
    *,
    run_id: str | None = None,
    variables: Mapping[str, Any] | None = None,
    execution_date: datetime | str | None = None,
    interval: tuple[datetime, datetime] | None = None,
    event: Mapping[str, Any] | None = None,
    env: str | None = None,
    trigger_name: str | None = None,
    partition: str | None = None,
    block_uuids: Iterable[str] | None = None,
    completed: Mapping[str, str] | None = None,
    observer: Any = None,
    cancel_event: threading.Event | None = None,
    parallel: bool = True,
    max_workers: int | None = None,
    run_tests: bool = True,
    allow_blocks_to_fail: bool = False,
    persist: bool = True,
    with_upstream: bool = False,
    spec: PipelineSpec | None = None,
) -> RunResult:
    """Run a pipeline (or some of its blocks) to the end and return what happened.

    Raises ``ValidationError`` before anything runs when the pipeline or a
    block file is broken. Block failures do not raise: they are in the result.
    """
    from dagsmith.project.env import load_project_env
    from dagsmith.project.pipelines import load_pipeline, load_project

    root = Path(project_root).resolve()
    load_project_env(root)
    project = load_project(root)
    spec = spec or load_pipeline(root, pipeline_uuid)
    run_id = run_id or new_run_id()
    partition = partition or run_id
    completed = dict(completed or {})

    executable = [b for b in spec.blocks if b.type in EXECUTABLE_TYPES]
    selected = _select(spec, executable, block_uuids, with_upstream)
    validate_for_run(root, spec, [b for b in executable if b.uuid in selected and b.uuid not in completed])

    runner = _Runner(
        root=root,
        project_retry=project.retry_config,
        spec=spec,
        selected=selected,
        completed=completed,
        run_id=run_id,
        partition=partition,
        observer=Fanout([observer]) if observer is not None else Fanout([]),
        cancel_event=cancel_event or threading.Event(),
        max_workers=(max_workers or _limit(spec) or DEFAULT_MAX_WORKERS) if parallel else 1,
        run_tests=run_tests,
        allow_blocks_to_fail=allow_blocks_to_fail,
        store=VariableStore(data_dir(root)) if persist or completed or block_uuids else None,
        persist=persist,
        shared_vars=run_variables(
            pipeline_uuid=spec.uuid,
            pipeline_variables=spec.variables,
            variables=variables,
            execution_date=execution_date,
            interval=interval,
            event=event,
            env=env,
            run_id=run_id,
            trigger_name=trigger_name,
            repo_path=str(root),
            partition=partition,
        ),
        standalone_inputs=block_uuids is not None,
    )
    return runner.run()


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
        by = spec.block_map()
        todo = list(chosen)
        while todo:
            for up in by[todo.pop()].upstream_blocks:
                if up in names and up not in chosen:
                    chosen.add(up)
                    todo.append(up)
    return chosen & names if chosen & names else chosen


class _Runner:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.by_uuid = self.spec.block_map()
        upstream = {u: self.by_uuid[u].upstream_blocks for u in self.selected}
        order = [b.uuid for b in self.spec.blocks if b.uuid in self.selected]
        # dynamic blocks: a block under a fan-out is a group node until its parent's output is known
        self.layout = DynamicLayout({u: self.by_uuid[u] for u in self.selected}, order)
        self.dyn: dict[str, Node] = {}
        self.fanouts: dict[str, FanOut] = {}
        self.modules: dict[str, Any] = {}
        for u in order:
            if self.layout.depth[u] > 0:
                upstream[u] = (self.layout.source(u, 1),)
                self.dyn[u] = Node(template=u, scope=(), index=(), group=True)
        self.plan = P.RunPlan(
            upstream, order=order, completed=[u for u in self.completed if u in self.selected and u not in self.dyn]
        )
        self.hooks = HookSet(self.spec)
        self.values: dict[str, Any] = {}
        self.values_lock = threading.Lock()
        self.result = RunResult(run_id=self.run_id, pipeline_uuid=self.spec.uuid, partition=self.partition)
        self.result.execution_date = self.shared_vars["execution_date"]
        self.writer = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagsmith-persist")
        self.writes: list[cf.Future] = []
        self.abandoned = False  # a timed-out or cancelled block may still hold its thread

    # ------------------------------------------------------------ the loop
    def run(self) -> RunResult:
        res = self.result
        res.started_at = _now()
        for u in self.plan.order:
            res.blocks[u] = BlockResult(block_uuid=u, status=self.plan.status[u])
        ensure_importable(self.root)
        os.environ[REPO_PATH_ENV] = str(self.root)
        _Workdir.enter(self.root.parent)
        self.observer.on_run_start(run_id=self.run_id, pipeline_uuid=self.spec.uuid, blocks=list(self.plan.order))
        pool = cf.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="dagsmith-block")
        running: dict[str, _Running] = {}
        try:
            while True:
                if self.cancel_event.is_set():
                    self._cancel(running)
                    break
                for u in self.plan.ready():
                    node = self.dyn.get(u)
                    if node is not None and node.group:
                        self._expand(u)
                        continue
                    if len(running) >= self.max_workers:
                        break
                    self.plan.start(u)
                    res.blocks[u].status = P.RUNNING
                    holder: list[int] = []
                    timeout = self._spec_of(u).timeout
                    fut = pool.submit(self._execute, u, holder)
                    running[u] = _Running(fut, time.monotonic() + timeout if timeout else None, holder)
                if not running:
                    if self.plan.finished() or not self.plan.ready():
                        break
                    continue
                wait_for = self._next_wakeup(running)
                done, _ = cf.wait([r.future for r in running.values()], timeout=wait_for, return_when=cf.FIRST_COMPLETED)
                for u, r in list(running.items()):
                    if r.future in done:
                        del running[u]
                        try:
                            outcome = r.future.result()
                        except BaseException as exc:  # a bug of ours must not kill the run loop
                            outcome = _Outcome(P.FAILED, error=exc)
                        self._record(u, outcome)
                    elif r.deadline is not None and time.monotonic() >= r.deadline:
                        del running[u]
                        if r.thread_id:
                            _raise_in_thread(r.thread_id[0], BlockTimeout)
                        self.abandoned = True
                        err = BlockTimeout(
                            f"block '{u}' timed out after {self._spec_of(u).timeout:g} s",
                            block_uuid=u,
                            hint="raise the block's timeout in the pipeline's metadata.yaml, or make it faster",
                        )
                        self._record(u, _Outcome(P.FAILED, error=err))
            if self.cancel_event.is_set():
                pending = self.plan.cancel_pending()
                for u in pending:
                    res.blocks[u].status = P.CANCELLED
                self._settled(pending, emit=False)
        finally:
            pool.shutdown(wait=not self.abandoned, cancel_futures=True)
            _Workdir.leave()
        for f in self.writes:
            try:
                f.result()
            except Exception as exc:  # a failed write is reported, the run result stands
                self.observer.on_block_log(
                    run_id=self.run_id,
                    block_uuid="",
                    record={"timestamp": _now().isoformat(), "level": "error", "message": f"could not store output: {exc}", "block_uuid": ""},
                )
        self.writer.shutdown(wait=True)
        for u, s in self.plan.status.items():
            res.blocks[u].status = s
        if self.dyn:  # children listed right after their parent, as in the plan
            res.blocks = {u: res.blocks[u] for u in self.plan.order}
        res.status = self.plan.outcome(allow_blocks_to_fail=self.allow_blocks_to_fail)
        res.ended_at = _now()
        res.abandoned_threads = self.abandoned
        if self.store is not None and self.persist:
            self._write_manifest()
        self.observer.on_run_end(run_id=self.run_id, status=res.status, result=res)
        return res

    def _next_wakeup(self, running: dict[str, _Running]) -> float:
        now = time.monotonic()
        deadlines = [r.deadline - now for r in running.values() if r.deadline is not None]
        wake = min([0.25, *deadlines]) if deadlines else 0.25
        return max(wake, 0.0)

    def _cancel(self, running: dict[str, _Running]) -> None:
        self.abandoned = self.abandoned or bool(running)
        for u, r in running.items():
            if r.thread_id:
                _raise_in_thread(r.thread_id[0], RunCancelled)
            self._record(u, _Outcome(P.CANCELLED, error=RunCancelled(f"block '{u}' was cancelled")))
        running.clear()
        for u in self.plan.cancel_pending():
            self.result.blocks[u].status = P.CANCELLED
            self.observer.on_block_end(run_id=self.run_id, block_uuid=u, status=P.CANCELLED, result=self.result.blocks[u])

    def _record(self, u: str, outcome: _Outcome) -> None:
        br = self.result.blocks[u]
        br.status = outcome.status
        br.ended_at = br.ended_at or _now()
        if outcome.error is not None:
            err = outcome.error
            br.error = str(err.message if isinstance(err, DagsmithError) else err)
            if isinstance(err, BlockError):
                br.error_location = err.location
                br.traceback = err.user_traceback
        if outcome.status == P.COMPLETED:
            with self.values_lock:
                self.values[u] = as_input(outcome.outputs, outcome.multi)
            if self.store is not None and self.persist:
                self.writes.append(
                    self.writer.submit(
                        self.store.write_outputs,
                        self.spec.uuid,
                        self.partition,
                        u,
                        outcome.outputs,
                        multi=outcome.multi,
                        update_latest=False,
                    )
                )
        changed = self.plan.finish(u, outcome.status)
        self.observer.on_block_end(run_id=self.run_id, block_uuid=u, status=outcome.status, result=br)
        for d in changed:
            self.result.blocks[d].status = self.plan.status[d]
            self.observer.on_block_end(run_id=self.run_id, block_uuid=d, status=self.plan.status[d], result=self.result.blocks[d])

    def _write_manifest(self) -> None:
        stored = [u for u, b in self.result.blocks.items() if b.status == P.COMPLETED and u not in self.completed]
        if stored:
            self.store.set_latest(self.spec.uuid, {u: self.partition for u in stored})
        blocks = {u: {"status": b.status, "partition": self.completed.get(u, self.partition)} for u, b in self.result.blocks.items()}
        self.store.write_manifest(
            self.spec.uuid,
            self.partition,
            {"run_id": self.run_id, "pipeline_uuid": self.spec.uuid, "status": self.result.status, "blocks": blocks},
        )

    # ------------------------------------------------------------ one block
    def _input(self, up: str) -> Any:
        with self.values_lock:
            if up in self.values:
                return self.values[up]
        if self.store is None:
            raise OutputsMissing(up)
        part = self.completed.get(up) or (self.store.latest_partition(self.spec.uuid, up) if self.standalone_inputs else None)
        if part is None:
            raise OutputsMissing(up)
        value = self.store.read_block_value(self.spec.uuid, part, up)
        with self.values_lock:
            self.values[up] = value
        return value

    def _inputs(self, block: BlockSpec) -> list[Any]:
        values = []
        for up in block.upstream_blocks:
            if up not in self.by_uuid or self.by_uuid[up].type not in EXECUTABLE_TYPES:
                continue
            try:
                values.append(self._input(up))
            except OutputsMissing:
                raise BlockError(
                    f"block '{block.uuid}' needs the output of upstream block '{up}', which has not been stored yet",
                    block_uuid=block.uuid,
                    hint=f"run it first: dagsmith run {self.root} {self.spec.uuid} --block {up}"
                    f"  (or add --with-upstream)",
                ) from None
        return values

    def _execute(self, u: str, holder: list[int]) -> _Outcome:
        holder.append(threading.get_ident())
        block = self.by_uuid[u]
        br = self.result.blocks[u]
        sink = BlockSink(u, lambda rec: self.observer.on_block_log(run_id=self.run_id, block_uuid=u, record=rec))
        policy = RetryPolicy.merged(self.project_retry, self.spec.retry_config, block.retry_config)
        last: BaseException | None = None
        try:
            inputs = self._inputs(block)
        except BlockError as exc:
            br.started_at = br.started_at or _now()
            return _Outcome(P.FAILED, error=exc)
        for attempt in range(1, policy.retries + 2):
            wait = policy.wait_before(attempt)
            if wait and self.cancel_event.wait(wait):
                return _Outcome(P.CANCELLED, error=RunCancelled(f"block '{u}' was cancelled"))
            br.attempts = attempt
            started = _now()
            br.started_at = br.started_at or started
            self.observer.on_block_start(run_id=self.run_id, block_uuid=u, attempt=attempt, started_at=started)
            kwargs = self._kwargs(block, sink, attempt)
            call = BlockCall(
                project_root=self.root,
                pipeline=self.spec,
                block=block,
                inputs=inputs,
                kwargs=kwargs,
                run_id=self.run_id,
                partition=self.partition,
                upstream_lookup=self._input,
                extra=br.extra,
            )
            with capturing(sink):
                try:
                    outputs, multi = self._call_block(call)
                except (BlockTimeout, RunCancelled):
                    raise
                except BlockTestFailure as exc:
                    br.stdout = sink.text
                    return _Outcome(P.FAILED, error=exc)
                except DagsmithError as exc:
                    last = exc
                except Exception as exc:
                    last = user_error(exc, u, block.path)
                except SystemExit as exc:  # sys.exit() in a block ends the block, not dagsmith
                    last = user_error(RuntimeError(f"the block called sys.exit({exc.code!r})"), u, block.path)
                else:
                    br.stdout = sink.text
                    br.rows = row_count(outputs[0]) if len(outputs) == 1 and not multi else (len(outputs) if multi else None)
                    return _Outcome(P.COMPLETED, outputs=outputs, multi=multi)
            if attempt <= policy.retries:
                sink.write(f"attempt {attempt} failed: {last}; retrying\n", "warning")
        br.stdout = sink.text
        return _Outcome(P.FAILED, error=last)

    def _kwargs(self, block: BlockSpec, sink: BlockSink, attempt: int) -> dict[str, Any]:
        kwargs = dict(self.shared_vars)
        kwargs.update(
            block_uuid=block.uuid,
            configuration=dict(block.configuration),
            logger=block_logger(sink, self.spec.uuid),
            retry={"attempts": attempt},
            dynamic_block_index=None,
        )
        return kwargs

    def _call_block(self, call: BlockCall) -> tuple[list[Any], bool]:
        block = call.block
        if block.is_sql:
            from dagsmith.blocks.sql import run_sql_block

            result = run_sql_block(call)
            return ([result] if result is not None else []), False
        loaded = load_python_block(block.path, block.type, block_uuid=block.uuid, fresh=True)
        fn = entry_for(loaded, block.uuid, block.type)
        if block.type == "sensor":
            result = self._poll_sensor(fn, call)
        else:
            result = call_with(fn, call.inputs, call.kwargs)
        outputs, multi = split_outputs(result)
        if self.run_tests and loaded.tests:
            self._run_tests(block, loaded.tests, outputs, call.kwargs)
        return outputs, multi

    def _poll_sensor(self, fn: Any, call: BlockCall) -> Any:
        cfg = call.block.configuration
        interval = float(cfg.get("poke_interval", cfg.get("interval", 60)) or 60)
        limit = cfg.get("sensor_timeout") or call.block.timeout
        deadline = time.monotonic() + float(limit) if limit else None
        while True:
            if call_with(fn, call.inputs, call.kwargs):
                return None
            if deadline is not None and time.monotonic() + interval > deadline:
                raise BlockTimeout(
                    f"sensor '{call.block.uuid}' did not become true within {float(limit):g} s",
                    block_uuid=call.block.uuid,
                )
            if self.cancel_event.wait(interval):
                raise RunCancelled(f"sensor '{call.block.uuid}' was cancelled")

    def _run_tests(self, block: BlockSpec, tests: list[Any], outputs: list[Any], kwargs: dict[str, Any]) -> None:
        br = self.result.blocks[block.uuid]
        failures = []
        for fn in tests:
            try:
                call_with(fn, outputs, kwargs)
            except AssertionError as exc:
                msg = str(exc) or "assertion failed"
                failures.append(f"{fn.__name__}: {msg}")
                print(f"FAIL: {fn.__name__} (block: {block.uuid}): {msg}")
            except Exception as exc:
                err = user_error(exc, block.uuid, block.path, f"in test {fn.__name__}")
                failures.append(f"{fn.__name__}: {err.message}")
                print(f"ERROR: {fn.__name__} (block: {block.uuid}): {exc}")
        br.tests_total = len(tests)
        br.tests_passed = len(tests) - len(failures)
        br.test_failures = failures
        print(f"{br.tests_passed}/{br.tests_total} tests passed.")
        if failures:
            raise BlockTestFailure(
                f"block '{block.uuid}': {len(failures)} of {len(tests)} tests failed: " + "; ".join(failures),
                block_uuid=block.uuid,
                location=str(block.path),
            )


def split_outputs(result: Any) -> tuple[list[Any], bool]:
    """Mage's output rule: None → no output; tuple or list → one output per element."""
    if result is None:
        return [], False
    if isinstance(result, (tuple, list)):
        return list(result), True
    return [result], False


def _now() -> datetime:
    return datetime.now(timezone.utc)
