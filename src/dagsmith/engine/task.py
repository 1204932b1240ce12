"""One block attempt as a pure function: ``execute_block(task, ctx) -> BlockOutcome``.

A ``BlockTask`` is picklable: the block and pipeline specs, its upstream outputs
*by reference* (``Input``/``Ref``: which node, which stored partition and
version), the runtime variables, the attempt number and the timeout. The
outcome is picklable too: status, error, rows, test results, log records and
the outputs — as values when the run loop shares this process (the ``local``
executor hands them to downstream blocks in memory), or as a ``Ref`` to the
variables store when ``task.publish`` is set (remote executors: the outputs are
stored before the task returns, so a finished block never needs its worker).

What differs between processes is behind ``ExecContext``: how a reference
becomes a value, where log records go while the block runs, the cancel flag,
and the per-run caches (block modules shared by dynamic siblings, the
conditionals and callbacks of the pipeline). This module never decides
retries or timeouts: the run loop does (``engine.runner``); it only reports
whether a failure is worth retrying (``TerminalError`` and failed ``@test``\\s
are not).

``action="callbacks"`` runs the callback functions attached to a block once its
final status is known (the run loop submits it after the last attempt).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

from dagsmith.blocks.context import BlockCall
from dagsmith.blocks.loader import LoadedBlock, call_with, entry_for, load_python_block, user_error
from dagsmith.data.serde import row_count
from dagsmith.data.store import OutputsMissing, as_input, handoff
from dagsmith.engine import plan as P
from dagsmith.engine.capture import BlockSink, block_logger, capturing
from dagsmith.engine.dynamic import FanOut, reduce_outputs, split_dynamic_output
from dagsmith.errors import BlockError, BlockTestFailure, BlockTimeout, DagsmithError, RunCancelled, TerminalError
from dagsmith.project.specs import BlockSpec, PipelineSpec
from dagsmith.util.clock import utcnow


@dataclass(frozen=True)
class Ref:
    """A node's output: in the store at ``partition`` (``version`` keys caches), or in the run's memory."""

    node: str
    partition: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Input:
    """One positional input of a block: a node's value, one item of a fan-out, or a reduced list."""

    kind: str  # "value" | "item" | "reduce"
    refs: tuple[Ref, ...]
    item: int | None = None


@dataclass(frozen=True)
class FanShape:
    """What the run loop needs of a dynamic block's output: the children's keys and metadata."""

    keys: tuple[str, ...]
    metadata: tuple[dict, ...]


@dataclass
class BlockTask:
    """One attempt of one plan node (picklable)."""

    run_id: str
    node: str
    attempt: int
    block: BlockSpec
    pipeline: PipelineSpec
    project_root: str
    partition: str
    variables: dict[str, Any]
    inputs: tuple[Input, ...] = ()
    action: str = "run"
    metadata: dict[str, Any] = field(default_factory=dict)
    """A dynamic child's item metadata (merged into its kwargs, as Mage does)."""
    index: tuple[int, ...] = ()
    """A dynamic child's item positions, outermost first."""
    check_conditions: bool = False
    fans_out: bool = False
    run_tests: bool = True
    timeout: float | None = None
    publish: bool = False
    """Store the outputs and return a ``Ref`` (remote executors) instead of returning the values."""
    store_root: str | None = None
    lookup: Mapping[str, Ref] = field(default_factory=dict)
    """Stored outputs any block may read by uuid (SQL ``block_output('uuid')``)."""
    callback_status: str | None = None
    callback_error: BaseException | None = None

    @property
    def key(self) -> str:
        return f"{self.run_id}/{self.node}/{self.attempt}" + ("" if self.action == "run" else f"/{self.action}")


@dataclass
class BlockOutcome:
    """What one attempt produced (picklable)."""

    node: str
    attempt: int
    status: str = P.FAILED
    outputs: list[Any] | None = None
    multi: bool = False
    ref: Ref | None = None
    fanout: FanShape | None = None
    rows: int | None = None
    error: BaseException | None = None
    cause: BaseException | None = None
    """The user's own exception behind ``error`` (what failure callbacks get as ``__error``)."""
    retryable: bool = False
    reason: str | None = None
    stdout: str = ""
    records: list[dict] = field(default_factory=list)
    tests_passed: int = 0
    tests_total: int = 0
    test_failures: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    callbacks: list[dict] | None = None
    worker: str | None = None

    @property
    def value(self) -> Any:
        """What downstream blocks receive (outputs held in memory only)."""
        return as_input(self.outputs or [], self.multi)


class ExecContext:
    """What the process running a task provides. Subclasses override ``read`` and ``emit``.

    The defaults keep per-run caches in memory: block modules for dynamic siblings,
    the pipeline's conditionals and callbacks, and fan-out splits read from the store.
    """

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self.cancel = cancel or threading.Event()
        self._lock = threading.Lock()
        self._modules: dict[tuple[str, str], LoadedBlock] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}  # one load at a time per (run, block)
        self._hooks: dict[str, Any] = {}
        self._fans: dict[Ref, FanOut] = {}

    # ---- values
    def read(self, task: BlockTask, ref: Ref) -> Any:
        """The value behind ``ref`` (``OutputsMissing`` when it is nowhere)."""
        raise OutputsMissing(ref.node)

    def fanout(self, task: BlockTask, ref: Ref) -> FanOut:
        with self._lock:
            fan = self._fans.get(ref)
        if fan is None:
            fan = split_dynamic_output(self.read(task, ref), ref.node)
            with self._lock:
                if len(self._fans) > 8:
                    self._fans.pop(next(iter(self._fans)))
                self._fans[ref] = fan
        return fan

    def publish(self, task: BlockTask, outputs: list[Any], multi: bool) -> Ref:
        """Store ``outputs`` durably; returns their reference."""
        raise NotImplementedError

    # ---- records
    def emit(self, task: BlockTask, record: dict) -> None:
        """A log record of a running block, as it happens."""

    # ---- per-run caches
    def module(self, task: BlockTask) -> LoadedBlock:
        block = task.block
        if not task.index:
            return load_python_block(block.path, block.type, block_uuid=block.uuid, fresh=True)
        key = (task.run_id, block.uuid)  # dynamic siblings share one load per run: per-child cost stays tiny
        with self._lock:
            loaded = self._modules.get(key)
            gate = self._loading.setdefault(key, threading.Lock()) if loaded is None else None
        if gate is None:
            return loaded
        # siblings that start together wait for the first one's load instead of loading the file
        # again: two loads would give them two modules, so module-level state would not be shared
        with gate:
            with self._lock:
                loaded = self._modules.get(key)
            if loaded is not None:
                return loaded
            try:
                loaded = load_python_block(block.path, block.type, block_uuid=block.uuid, fresh=True)
                with self._lock:
                    if len(self._modules) > 64:
                        self._modules.pop(next(iter(self._modules)))
                    self._modules[key] = loaded
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return loaded

    def hooks(self, task: BlockTask) -> Any:
        from dagsmith.engine.hooks import HookSet

        with self._lock:
            hooks = self._hooks.get(task.run_id)
            if hooks is None:
                if len(self._hooks) > 8:
                    self._hooks.pop(next(iter(self._hooks)))
                hooks = self._hooks[task.run_id] = HookSet(task.pipeline)
        return hooks


@dataclass
class RunInfo:
    """What callbacks get as ``pipeline_run`` (Mage passes its PipelineRun row)."""

    id: str
    pipeline_uuid: str
    execution_date: Any
    status: str


# ---------------------------------------------------------------------------- the function


def execute_block(task: BlockTask, ctx: ExecContext) -> BlockOutcome:
    """Run one attempt of ``task`` (or its callbacks); never raises for the block's own failures."""
    if task.action == "callbacks":
        return _run_callbacks(task, ctx)
    out = BlockOutcome(task.node, task.attempt, started_at=utcnow())
    sink = _sink(task, ctx, out)
    block = task.block
    try:
        inputs = resolve_inputs(task, ctx)
    except (OutputsMissing, DagsmithError, OSError) as exc:
        what = exc.message if isinstance(exc, DagsmithError) else str(exc)
        return _failed(out, sink, BlockError(
            f"block '{task.node}' could not read its upstream outputs: {what}",
            block_uuid=block.uuid,
            hint="check that the variables store is reachable from every worker",
        ), retryable=True)
    kwargs = block_kwargs(task, sink)
    if task.check_conditions:
        try:
            verdict = ctx.hooks(task).check(block.uuid, inputs, kwargs)
        except BlockError as exc:
            return _failed(out, sink, exc)
        if not verdict.passed:
            out.reason = f"condition {verdict.reason}"
            sink.emit_record(_record(task.node, f"skipped: {out.reason}", "info"))
            out.status = P.CONDITION_FAILED
            return _done(out, sink)
    call = BlockCall(
        project_root=_root_path(task.project_root),
        pipeline=task.pipeline,
        block=block,
        inputs=inputs,
        kwargs=kwargs,
        run_id=task.run_id,
        partition=task.partition,
        upstream_lookup=(lambda uid: ctx.read(task, task.lookup[uid]) if uid in task.lookup else _missing(uid)),
        extra=out.extra,
    )
    with capturing(sink):
        try:
            outputs, multi = _call_block(call, task, ctx, out)
            fan = split_dynamic_output(as_input(outputs, multi), task.node) if task.fans_out else None
            if fan is not None and fan.dropped:
                print(f"warning: several items name the child uuid(s) {', '.join(sorted(set(fan.dropped)))}; "
                      "as in Mage, only the first of each makes a child")
        except BlockTimeout as exc:
            return _failed(out, sink, exc)
        except RunCancelled as exc:
            out.status = P.CANCELLED
            out.error = exc
            return _done(out, sink)
        except BlockTestFailure as exc:
            return _failed(out, sink, exc)
        except TerminalError as exc:
            return _failed(out, sink, exc, cause=exc)
        except DagsmithError as exc:
            return _failed(out, sink, exc, cause=exc, retryable=True)
        except Exception as exc:  # the user's code raised
            cause = _portable(exc) if task.publish else exc
            return _failed(out, sink, user_error(exc, task.node, block.path), cause=cause, retryable=True)
        except SystemExit as exc:  # sys.exit() in a block ends the block, not dagsmith
            err = user_error(RuntimeError(f"the block called sys.exit({exc.code!r})"), task.node, block.path)
            return _failed(out, sink, err, retryable=True)
    if fan is not None:
        out.fanout = FanShape(tuple(fan.keys), tuple(fan.metadata))
        out.rows = len(fan.items)
    else:
        out.rows = row_count(outputs[0]) if len(outputs) == 1 and not multi else (len(outputs) if multi else None)
    out.multi = multi
    if task.publish:
        try:
            out.ref = ctx.publish(task, outputs, multi)
        except Exception as exc:  # noqa: BLE001 - storage trouble fails the attempt (worth a retry)
            return _failed(out, sink, BlockError(
                f"block '{task.node}' ran but its outputs could not be stored: {type(exc).__name__}: {exc}",
                block_uuid=block.uuid,
                hint="check the variables store (variables_dir) and its credentials",
            ), retryable=True)
    else:
        out.outputs = outputs
    out.status = P.COMPLETED
    return _done(out, sink)


@functools.lru_cache(maxsize=64)
def _root_path(root: str) -> Path:
    return Path(root)  # one Path per project, not one per block attempt


def resolve_inputs(task: BlockTask, ctx: ExecContext) -> list[Any]:
    """The positional inputs of ``task``, as copies a block may edit in place."""
    values = []
    for inp in task.inputs:
        if inp.kind == "item":
            fan = ctx.fanout(task, inp.refs[0])
            values.append(handoff(fan.items[inp.item or 0]))
        elif inp.kind == "reduce":
            values.append(reduce_outputs([handoff(ctx.read(task, r)) for r in inp.refs]))
        else:
            values.append(handoff(ctx.read(task, inp.refs[0])))
    return values


def block_kwargs(task: BlockTask, sink: BlockSink) -> dict[str, Any]:
    """The keyword arguments a block (or its conditions, tests, callbacks) receives."""
    kwargs = dict(task.variables)
    kwargs.update(
        block_uuid=task.block.uuid,
        configuration=dict(task.block.configuration),
        logger=block_logger(sink, task.pipeline.uuid),
        retry={"attempts": task.attempt},
        dynamic_block_index=task.index[-1] if task.index else None,
    )
    if task.metadata:
        kwargs.update(task.metadata)  # Mage merges the item's metadata last: its block_uuid wins
    if task.index:
        kwargs["dynamic_block_indexes"] = list(task.index)
        kwargs["dynamic_block_uuid"] = task.node
    return kwargs


def _call_block(call: BlockCall, task: BlockTask, ctx: ExecContext, out: BlockOutcome) -> tuple[list[Any], bool]:
    block = call.block
    if block.is_sql:
        from dagsmith.blocks.sql import run_sql_block

        result = run_sql_block(call)
        return ([result] if result is not None else []), False
    loaded = ctx.module(task)
    fn = entry_for(loaded, block.uuid, block.type)
    if block.type == "sensor":
        result = _poll_sensor(fn, call, ctx)
    else:
        result = call_with(fn, call.inputs, call.kwargs)
    outputs, multi = split_outputs(result)
    if task.run_tests and loaded.tests:
        _run_tests(task, loaded.tests, outputs, call.kwargs, out)
    return outputs, multi


def split_outputs(result: Any) -> tuple[list[Any], bool]:
    """Mage's output rule: None → no output; tuple or list → one output per element."""
    if result is None:
        return [], False
    if isinstance(result, (tuple, list)):
        return list(result), True
    return [result], False


def _poll_sensor(fn: Callable[..., Any], call: BlockCall, ctx: ExecContext) -> Any:
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
        if ctx.cancel.wait(interval):
            raise RunCancelled(f"sensor '{call.block.uuid}' was cancelled")


def _run_tests(task: BlockTask, tests: list[Any], outputs: list[Any], kwargs: dict[str, Any], out: BlockOutcome) -> None:
    block = task.block
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
    out.tests_total = len(tests)
    out.tests_passed = len(tests) - len(failures)
    out.test_failures = failures
    print(f"{out.tests_passed}/{out.tests_total} tests passed.")
    if failures:
        raise BlockTestFailure(
            f"block '{block.uuid}': {len(failures)} of {len(tests)} tests failed: " + "; ".join(failures),
            block_uuid=block.uuid,
            location=str(block.path),
        )


def _run_callbacks(task: BlockTask, ctx: ExecContext) -> BlockOutcome:
    out = BlockOutcome(task.node, task.attempt, status=task.callback_status or P.COMPLETED, started_at=utcnow())
    sink = _sink(task, ctx, out)
    try:
        inputs = resolve_inputs(task, ctx)
    except (OutputsMissing, DagsmithError, OSError):
        inputs = []
    kwargs = block_kwargs(task, sink)
    kwargs["pipeline_run"] = RunInfo(task.run_id, task.pipeline.uuid, task.variables.get("execution_date"), out.status)
    with capturing(sink):
        out.callbacks = ctx.hooks(task).run_callbacks(
            task.block.uuid, out.status, inputs=inputs, kwargs=kwargs, error=task.callback_error,
            log=lambda m, lvl: sink.emit_record(_record(task.node, m, lvl)), node_uuid=task.node,
        )
    return _done(out, sink)


# ---------------------------------------------------------------------------- helpers


def _sink(task: BlockTask, ctx: ExecContext, out: BlockOutcome) -> BlockSink:
    records = out.records

    def emit(rec: dict) -> None:
        records.append(rec)
        ctx.emit(task, rec)

    return BlockSink(task.node, emit)


def _failed(out: BlockOutcome, sink: BlockSink, error: BaseException, *, cause: BaseException | None = None,
            retryable: bool = False) -> BlockOutcome:
    out.status = P.FAILED
    out.error = error
    out.cause = cause
    out.retryable = retryable
    return _done(out, sink)


def _done(out: BlockOutcome, sink: BlockSink) -> BlockOutcome:
    sink.flush()
    out.stdout = sink.text
    out.ended_at = utcnow()
    return out


def _record(node: str, message: str, level: str) -> dict:
    return {"timestamp": utcnow().isoformat(), "level": level, "message": message, "block_uuid": node}


def _missing(uid: str) -> Any:
    raise OutputsMissing(uid)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (it may cross processes), else a ``RuntimeError`` saying what it was."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any user exception type may refuse pickling
        return RuntimeError(f"{type(exc).__name__}: {exc}")
