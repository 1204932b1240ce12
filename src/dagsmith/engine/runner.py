"""Running one pipeline run: ready blocks go to worker threads, results come back to the plan.

``run_pipeline`` validates everything first (nothing runs if any block is
broken), then loops: hand every ready block to the executor, wait for the
first to finish (or a timeout/cancel), record the result in the ``RunPlan``.
Dynamic blocks fan out into child nodes added to the plan as their parent's
output becomes known (``engine.dynamic``); conditionals and callbacks run
around each block (``engine.hooks``). Outputs pass to downstream blocks in
memory; persisting them to the variables store happens on a few writer
threads so it never delays the next block (and thousands of dynamic children
do not queue behind one writer), and the run waits for the writer only at its end.

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
from dagsmith.data.store import OutputsMissing, VariableStore, as_input, handoff
from dagsmith.engine import plan as P
from dagsmith.engine.capture import BlockSink, block_logger, capturing
from dagsmith.engine.dynamic import DynamicLayout, FanOut, Node, node_id, reduce_outputs, split_dynamic_output
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

    # a block with ``configuration.disabled`` is skipped unless asked for by name (the editor runs it);
    # blocks downstream of it read its latest stored output
    executable = [b for b in spec.blocks if b.type in EXECUTABLE_TYPES and not (b.configuration or {}).get("disabled")]
    selected = _select(spec, executable, block_uuids, with_upstream)
    for b in spec.blocks:
        if (b.configuration or {}).get("disabled") and b.uuid not in selected and b.uuid not in completed:
            stored = VariableStore(data_dir(root)).latest_partition(spec.uuid, b.uuid)
            if stored:
                completed[b.uuid] = stored
    validate_for_run(
        root, spec, [b for b in executable if b.uuid in selected and b.uuid not in completed],
        chosen=None if block_uuids is None else selected,
    )

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
        self.writer = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dagsmith-persist")
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
                    if self.plan.status[u] != P.INITIAL:  # settled by an expansion earlier in this pass
                        continue
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
                        timed_out = _Outcome(P.FAILED, error=err)
                        if self.hooks.has_callbacks(self._tpl(u)):
                            timed_out.callbacks = self._callbacks(u, P.FAILED, None, timed_out)
                        self._record(u, timed_out)
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
            outcome = _Outcome(P.CANCELLED, error=RunCancelled(f"block '{u}' was cancelled"))
            if self.hooks.has_callbacks(self._tpl(u)):
                outcome.callbacks = self._callbacks(u, P.CANCELLED, None, None)
            self._record(u, outcome)
        running.clear()
        self._settled(self.plan.cancel_pending())

    def _record(self, u: str, outcome: _Outcome) -> None:
        br = self.result.blocks[u]
        br.status = outcome.status
        br.ended_at = br.ended_at or _now()
        if outcome.error is not None:
            err = outcome.error
            br.error = str(err.message if isinstance(err, DagsmithError) else err)
            if getattr(err, "hint", None):
                br.extra["hint"] = err.hint  # how to fix it, shown under the error
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
        if outcome.reason:
            br.skip_reason = outcome.reason
        if outcome.callbacks:
            br.callbacks = outcome.callbacks
        changed = self.plan.finish(u, outcome.status)
        self._settled([u, *changed])

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

    def _settled(self, nodes: list[str], *, emit: bool = True) -> None:
        """Nodes reached a final status: tell observers, close finished groups (and their parents)."""
        todo = list(nodes)
        i = 0
        while i < len(todo):
            u = todo[i]
            i += 1
            status = self.plan.status[u]
            br = self.result.blocks[u]
            br.status = status
            if emit:
                kw = self._event_extra(u)
                if br.skip_reason:
                    kw["reason"] = br.skip_reason
                if br.callbacks:
                    kw["callbacks"] = br.callbacks
                self.observer.on_block_end(run_id=self.run_id, block_uuid=u, status=status, result=br, **kw)
            node = self.dyn.get(u)
            parent = self.dyn.get(node.parent) if node is not None and node.parent else None
            if parent is None or not parent.expanded:
                continue
            parent.open -= 1
            if parent.open == 0 and self.plan.status[node.parent] == P.RUNNING:
                todo.extend(self._close_group(node.parent))

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
        br.ended_at = _now()
        br.rows = len(node.children)
        if failed:
            shown = ", ".join(failed[:5]) + (", …" if len(failed) > 5 else "")
            br.error = f"{len(failed)} of {len(node.children)} dynamic children failed: {shown}"
        changed = self.plan.finish(g, status)
        return [g, *changed]

    def _fanout(self, u: str) -> FanOut:
        """The items of dynamic node ``u`` (from memory, or its stored output on a resumed run)."""
        fan = self.fanouts.get(u)
        if fan is None:
            fan = split_dynamic_output(self._input(u), u)
            self.fanouts[u] = fan
        return fan

    def _expand(self, g: str) -> None:
        """Group ``g`` is ready (its fan-out parent completed): add its children to the plan."""
        node = self.dyn[g]
        t, prefix = node.template, node.scope
        level = len(prefix) + 1
        source = node_id(self.layout.source(t, level), prefix)
        self.plan.start(g)
        br = self.result.blocks[g]
        br.status = P.RUNNING
        br.started_at = _now()
        try:
            fan = self._fanout(source)
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
        add = getattr(self.observer, "on_blocks_added", None)
        if add is not None and new_nodes:
            add(run_id=self.run_id, parent=g, blocks=[c for c, _u, _d in new_nodes])
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

    def _inputs(self, block: BlockSpec, u: str | None = None) -> list[Any]:
        node = self.dyn.get(u) if u is not None else None
        if node is not None:
            return self._child_inputs(block, node)
        values = []
        for up in block.upstream_blocks:
            if up not in self.by_uuid or self.by_uuid[up].type not in EXECUTABLE_TYPES:
                continue
            try:
                values.append(self._reduced(up) if up in self.dyn else self._input(up))
            except OutputsMissing:
                raise BlockError(
                    f"block '{block.uuid}' needs the output of upstream block '{up}', which has not been stored yet",
                    block_uuid=block.uuid,
                    hint=f"run it first: dagsmith run {self.root} {self.spec.uuid} --block {up}"
                    f"  (or add --with-upstream)",
                ) from None
        return values

    def _child_inputs(self, block: BlockSpec, node: Node) -> list[Any]:
        """Inputs of a dynamic child: its item, its upstream siblings' outputs, or reduced lists."""
        values = []
        for up in block.upstream_blocks:
            if up not in self.layout.depth:
                continue
            kind, ref, item = self.layout.upstream_ref(node.template, node.scope, node.index, up)
            try:
                if kind == "item":
                    values.append(self._fanout(ref).items[item])
                elif kind == "reduce":
                    values.append(self._reduced(ref))
                else:
                    values.append(self._input(ref))
            except OutputsMissing:
                raise BlockError(
                    f"block '{node_id(node.template, node.scope)}' needs the output of '{ref}', which was not stored",
                    block_uuid=block.uuid,
                    hint=f"re-run the whole pipeline: dagsmith run {self.root} {self.spec.uuid}",
                ) from None
        return values

    def _reduced(self, g: str) -> list[Any]:
        """What the downstream of a ``reduce_output`` block gets: its children's outputs, in item order."""
        group = self.dyn[g]
        return reduce_outputs([self._input(c) for c in group.children if self.plan.status[c] == P.COMPLETED])

    def _log(self, sink: BlockSink, message: str, level: str) -> None:
        sink.emit_record({"timestamp": _now().isoformat(), "level": level, "message": message, "block_uuid": sink.block_uuid})

    def _callbacks(self, u: str, status: str, inputs: list[Any] | None, outcome: _Outcome | None) -> list[dict]:
        """Run the callbacks of node ``u`` for ``status``; their records (never raises)."""
        block = self._spec_of(u)
        sink = BlockSink(u, lambda rec: self.observer.on_block_log(run_id=self.run_id, block_uuid=u, record=rec))
        if inputs is None:
            try:
                inputs = self._inputs(block, u)
            except (BlockError, DagsmithError):
                inputs = []
        kwargs = self._kwargs(block, sink, max(self.result.blocks[u].attempts, 1), u)
        kwargs["pipeline_run"] = _RunInfo(self.run_id, self.spec.uuid, self.shared_vars.get("execution_date"), status)
        error = None
        if outcome is not None and outcome.error is not None:
            error = outcome.cause or outcome.error
        with capturing(sink):
            records = self.hooks.run_callbacks(
                block.uuid, status, inputs=inputs, kwargs=kwargs, error=error,
                log=lambda m, lvl: self._log(sink, m, lvl), node_uuid=u,
            )
        br = self.result.blocks[u]
        text = sink.text
        if text:  # what the callbacks printed joins the block's output
            br.stdout = f"{br.stdout.rstrip(chr(10))}\n{text}" if br.stdout else text
        return records

    def _execute(self, u: str, holder: list[int]) -> _Outcome:
        outcome, inputs = self._execute_block(u, holder)
        if outcome.status in (P.COMPLETED, P.FAILED) and self.hooks.has_callbacks(self._tpl(u)):
            outcome.callbacks = self._callbacks(u, outcome.status, inputs, outcome)
        return outcome

    def _execute_block(self, u: str, holder: list[int]) -> tuple[_Outcome, list[Any] | None]:
        holder.append(threading.get_ident())
        block = self._spec_of(u)
        br = self.result.blocks[u]
        sink = BlockSink(u, lambda rec: self.observer.on_block_log(run_id=self.run_id, block_uuid=u, record=rec))
        policy = RetryPolicy.merged(self.project_retry, self.spec.retry_config, block.retry_config)
        last: BaseException | None = None
        cause: BaseException | None = None
        try:
            inputs = [handoff(v) for v in self._inputs(block, u)]
        except BlockError as exc:
            br.started_at = br.started_at or _now()
            return _Outcome(P.FAILED, error=exc), None
        if self.hooks.guarded(block.uuid):
            try:
                verdict = self.hooks.check(block.uuid, inputs, self._kwargs(block, sink, 1, u))
            except BlockError as exc:
                br.started_at = br.started_at or _now()
                return _Outcome(P.FAILED, error=exc), inputs
            if not verdict.passed:
                self._log(sink, f"skipped: condition {verdict.reason}", "info")
                return _Outcome(P.CONDITION_FAILED, reason=f"condition {verdict.reason}"), inputs
        for attempt in range(1, policy.retries + 2):
            wait = policy.wait_before(attempt)
            if wait and self.cancel_event.wait(wait):
                return _Outcome(P.CANCELLED, error=RunCancelled(f"block '{u}' was cancelled")), inputs
            br.attempts = attempt
            started = _now()
            br.started_at = br.started_at or started
            self.observer.on_block_start(
                run_id=self.run_id, block_uuid=u, attempt=attempt, started_at=started, **self._event_extra(u)
            )
            kwargs = self._kwargs(block, sink, attempt, u)
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
                    outputs, multi = self._call_block(call, u)
                    if block.is_dynamic and self.layout.fans_out(block.uuid):
                        fan = split_dynamic_output(as_input(outputs, multi), u)
                        self.fanouts[u] = fan
                        if fan.dropped:
                            print(f"warning: several items name the child uuid(s) {', '.join(sorted(set(fan.dropped)))}; "
                                  "as in Mage, only the first of each makes a child")
                except (BlockTimeout, RunCancelled):
                    raise
                except BlockTestFailure as exc:
                    br.stdout = sink.text
                    return _Outcome(P.FAILED, error=exc), inputs
                except DagsmithError as exc:
                    last, cause = exc, exc
                except Exception as exc:
                    last, cause = user_error(exc, u, block.path), exc
                except SystemExit as exc:  # sys.exit() in a block ends the block, not dagsmith
                    last = user_error(RuntimeError(f"the block called sys.exit({exc.code!r})"), u, block.path)
                else:
                    br.stdout = sink.text
                    if block.is_dynamic and u in self.fanouts:
                        br.rows = len(self.fanouts[u].items)
                    else:
                        br.rows = row_count(outputs[0]) if len(outputs) == 1 and not multi else (len(outputs) if multi else None)
                    return _Outcome(P.COMPLETED, outputs=outputs, multi=multi), inputs
            if attempt <= policy.retries:
                sink.write(f"attempt {attempt} failed: {last}; retrying\n", "warning")
        br.stdout = sink.text
        return _Outcome(P.FAILED, error=last, cause=cause), inputs

    def _kwargs(self, block: BlockSpec, sink: BlockSink, attempt: int, u: str | None = None) -> dict[str, Any]:
        kwargs = dict(self.shared_vars)
        node = self.dyn.get(u) if u is not None else None
        kwargs.update(
            block_uuid=block.uuid,
            configuration=dict(block.configuration),
            logger=block_logger(sink, self.spec.uuid),
            retry={"attempts": attempt},
            dynamic_block_index=node.index[-1] if node is not None and node.index else None,
        )
        if node is not None and node.metadata:
            kwargs.update(node.metadata)  # Mage merges the item's metadata last: its block_uuid wins
        if node is not None and node.index:
            kwargs["dynamic_block_indexes"] = list(node.index)
            kwargs["dynamic_block_uuid"] = u
        return kwargs

    def _call_block(self, call: BlockCall, u: str | None = None) -> tuple[list[Any], bool]:
        block = call.block
        if block.is_sql:
            from dagsmith.blocks.sql import run_sql_block

            result = run_sql_block(call)
            return ([result] if result is not None else []), False
        if u is not None and u in self.dyn:
            # siblings share one load of the block file per run: per-child overhead stays tiny
            loaded = self.modules.get(block.uuid)
            if loaded is None:
                loaded = self.modules[block.uuid] = load_python_block(block.path, block.type, block_uuid=block.uuid, fresh=True)
        else:
            loaded = load_python_block(block.path, block.type, block_uuid=block.uuid, fresh=True)
        fn = entry_for(loaded, block.uuid, block.type)
        if block.type == "sensor":
            result = self._poll_sensor(fn, call)
        else:
            result = call_with(fn, call.inputs, call.kwargs)
        outputs, multi = split_outputs(result)
        if self.run_tests and loaded.tests:
            self._run_tests(block, loaded.tests, outputs, call.kwargs, u)
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

    def _run_tests(
        self, block: BlockSpec, tests: list[Any], outputs: list[Any], kwargs: dict[str, Any], u: str | None = None
    ) -> None:
        br = self.result.blocks[u or block.uuid]
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


@dataclass
class _RunInfo:
    """What callbacks get as ``pipeline_run`` (Mage passes its PipelineRun row)."""

    id: str
    pipeline_uuid: str
    execution_date: Any
    status: str


def split_outputs(result: Any) -> tuple[list[Any], bool]:
    """Mage's output rule: None → no output; tuple or list → one output per element."""
    if result is None:
        return [], False
    if isinstance(result, (tuple, list)):
        return list(result), True
    return [result], False


def _now() -> datetime:
    return datetime.now(timezone.utc)
