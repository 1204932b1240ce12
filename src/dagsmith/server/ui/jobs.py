"""Block runs started from the editor: one engine run per click, in the editor kernel process.

``BlockJobs.start`` hands ``engine.run_pipeline(block_uuids=[b], with_upstream=…)`` to the
kernel (``kernel``: a child process, so a block's memory never stays in the server; a server
thread when the kernel is off) and returns a job id at once; the kernel's messages (lines,
block statuses, the final result) are applied to the ``BlockJob`` here. The page follows it with ``state(job, since)``:
the lines printed since the last poll, the status and the elapsed time, so output streams
while the block runs (``views`` long-polls on it, waking within ~20 ms of a new line).
When the run ends, the block's stdout, test counts, error, a preview and a profile of its
stored output are kept in memory (the newest 200 jobs).

Each job also leaves a small record in ``<data dir>/ui/jobs/<id>.json`` (written when it
starts and when it ends): a server that stops while a block runs finds the record still
``running`` when it starts again and reports the job as interrupted, so the cell can say
what happened and offer to run again instead of waiting for a job nobody runs.

As Mage does, each block that ran gets ``status: executed`` (or ``failed``) in its entry of
``pipelines/<p>/metadata.yaml``; the editor's conflict check guards block files, not that file.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dagsmith.util.fs import write_text_atomic

MAX_JOBS = 200
INTERRUPTED = "The server stopped while this block was running, so the run was cut off and its output is lost. Run the block again."
MAX_LINES = 5000
#: engine block status → the ``status`` Mage keeps in a block's metadata.yaml entry
YAML_STATUS = {"completed": "executed", "failed": "failed"}
_yaml_lock = threading.Lock()
log = logging.getLogger(__name__)


@dataclass
class BlockJob:
    id: str
    pipeline_uuid: str
    block_uuid: str
    with_upstream: bool
    #: ``block`` (this block), ``upstream`` (with all upstream), ``downstream`` (this block and all downstream)
    mode: str = "block"
    status: str = "running"  # running | completed | failed | cancelled | interrupted
    started: float = field(default_factory=time.time)
    ended: float | None = None
    #: when the engine reported the block itself finished (before outputs are stored and previewed)
    block_ended: float | None = None
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: how many block status changes were applied (a poll also ends when this moves: the graph shows a start at once)
    block_events: int = 0
    lines: list[str] = field(default_factory=list)
    #: wall-clock time each line of ``lines`` was printed (for the live-output lag benchmark)
    line_times: list[float] = field(default_factory=list)
    preview: dict[str, Any] | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def result(self) -> dict[str, Any]:
        return self.blocks.get(self.block_uuid, {})

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "pipeline_uuid": self.pipeline_uuid, "block_uuid": self.block_uuid, "mode": self.mode,
                "status": self.status, "started": self.started, "ended": self.ended}


class _Observer:
    """Engine events of one editor run turned into small messages (sent to the server from the kernel)."""

    def __init__(self, block_uuid: str, emit: Callable[[dict], None]) -> None:
        self.block_uuid = block_uuid
        self.emit = emit
        self.lines = 0

    def on_run_start(self, **kw: Any) -> None:
        pass

    def on_block_start(self, *, block_uuid: str = "", **kw: Any) -> None:
        self.emit({"event": "block", "block": block_uuid, "status": "running", "t": time.time()})

    def on_block_log(self, *, block_uuid: str = "", record: dict | None = None, **kw: Any) -> None:
        if self.lines >= MAX_LINES:
            return
        self.lines += 1
        msg = str((record or {}).get("message", "")).rstrip("\n")
        prefix = "" if block_uuid == self.block_uuid else f"[{block_uuid}] "
        self.emit({"event": "line", "text": prefix + msg, "t": time.time()})

    def on_block_end(self, *, block_uuid: str = "", status: str = "", result: Any = None, **kw: Any) -> None:
        info = result.to_dict() if result is not None and hasattr(result, "to_dict") else {}
        self.emit({"event": "block", "block": block_uuid, "status": status, "result": info, "t": time.time()})

    def on_run_end(self, **kw: Any) -> None:
        pass


def _selection(root: Path, pipeline_uuid: str, block_uuid: str, mode: str) -> list[str]:
    """The blocks an editor run selects: the block, or the block and everything downstream of it."""
    if mode != "downstream":
        return [block_uuid]
    from dagsmith.dag.graph import downstream_of, known_upstream, reachable
    from dagsmith.project.pipelines import load_pipeline

    spec = load_pipeline(root, pipeline_uuid)
    down = downstream_of(known_upstream({b.uuid: b.upstream_blocks for b in spec.blocks}))
    seen = {block_uuid, *reachable(down, block_uuid)}
    return [b.uuid for b in spec.blocks if b.uuid in seen]


def run_editor_job(root: Path, pipeline_uuid: str, block_uuid: str, mode: str, cancel: threading.Event, *,
                   variables: dict[str, Any] | None = None, emit: Callable[[dict], None], run_fn=None) -> dict[str, Any]:
    """Run one editor job through the engine (in the kernel or a server thread); returns the ``done`` message."""
    out: dict[str, Any] = {"status": "failed", "blocks": {}, "partition": None, "preview": None, "error": None}
    try:
        if run_fn is None and _block_type(root, pipeline_uuid, block_uuid) == "scratchpad":
            return run_scratchpad(root, pipeline_uuid, block_uuid, emit)
        if run_fn is None:
            from dagsmith.engine import run_pipeline as run_fn
        result = run_fn(
            root,
            pipeline_uuid,
            block_uuids=_selection(root, pipeline_uuid, block_uuid, mode),
            with_upstream=mode == "upstream",
            observer=_Observer(block_uuid, emit),
            cancel_event=cancel,
            persist=True,
            env="dev",
            **({"variables": variables} if variables else {}),
        )
        out["blocks"] = {u: br.to_dict() for u, br in result.blocks.items()}
        mine = result.blocks.get(block_uuid)
        status = mine.status if mine is not None else result.status
        if mode == "downstream" and status == "completed" and result.status != "completed":
            status = result.status
        out["status"] = status
        out["partition"] = result.partition
        if mine is not None and mine.status == "completed":
            out["preview"] = output_preview(root, pipeline_uuid, block_uuid, result.partition, profile=True)
    except Exception as exc:  # noqa: BLE001 - shown in the cell, never raised into the server
        out["status"] = "failed"
        out["error"] = error_text(exc)
    return out


def _block_type(root: Path, pipeline_uuid: str, block_uuid: str) -> str:
    from dagsmith.project.pipelines import load_pipeline

    return load_pipeline(root, pipeline_uuid).block(block_uuid).type


def run_scratchpad(root: Path, pipeline_uuid: str, block_uuid: str, emit: Callable[[dict], None]) -> dict[str, Any]:
    """Run a scratchpad cell: its file as a script in the project's folder, printed lines streamed.

    Scratchpads are not steps of the pipeline (the engine never runs them); like Mage's, they
    are for trying things out. The code runs in the editor kernel with the project importable.
    """
    import traceback
    from datetime import datetime, timezone

    from dagsmith.blocks.loader import ensure_importable
    from dagsmith.engine.capture import BlockSink, capturing
    from dagsmith.project.pipelines import load_pipeline

    block = load_pipeline(root, pipeline_uuid).block(block_uuid)
    started = datetime.now(timezone.utc)
    sink = BlockSink(block_uuid, lambda rec: emit({"event": "line", "text": str(rec.get("message", "")), "t": time.time()}))
    info: dict[str, Any] = {"block_uuid": block_uuid, "status": "completed", "started_at": started.isoformat()}
    emit({"event": "block", "block": block_uuid, "status": "running", "t": time.time()})
    try:
        code = compile(block.path.read_text(encoding="utf-8"), str(block.path), "exec")
        ensure_importable(root)
        with capturing(sink):
            exec(code, {"__name__": "__dagsmith_scratchpad__", "__file__": str(block.path)})  # noqa: S102 - the user's own cell
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: a scratchpad never ends the kernel
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(block.path)]
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
        info.update(status="failed", error=f"{type(exc).__name__}: {exc}", error_location=where,
                    traceback="".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(exc), exc)))
    finally:
        sink.flush()
    info["ended_at"] = datetime.now(timezone.utc).isoformat()
    emit({"event": "block", "block": block_uuid, "status": info["status"], "result": info, "t": time.time()})
    return {"status": info["status"], "blocks": {block_uuid: info}, "partition": None, "preview": None, "error": None}


class BlockJobs:
    """The editor's block runs of one project (thread-safe); they run in the kernel process when it is on."""

    def __init__(self, project_root: Path, state_dir: Path | None = None, *, use_kernel: bool | None = None,
                 database_url: str | None = None) -> None:
        self.root = Path(project_root)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._jobs: dict[str, BlockJob] = {}
        self._latest: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._load_interrupted()
        from dagsmith.server.ui import kernel

        self.kernel = kernel.Kernel(self.root, self._on_kernel_message, self._on_kernel_exit, database_url) if (kernel.enabled() if use_kernel is None else use_kernel) else None

    # ---- records on disk (survive a restart)

    def _record_path(self, job_id: str) -> Path | None:
        if self.state_dir is None or not job_id.isalnum():
            return None
        return self.state_dir / f"{job_id}.json"

    def _write_record(self, job: BlockJob) -> None:
        path = self._record_path(job.id)
        if path is None:
            return
        try:
            write_text_atomic(path, json.dumps(job.record()))
        except OSError as exc:  # the run matters more than its record
            log.warning("could not write the editor job record %s: %s", path, exc)

    def _load_interrupted(self) -> None:
        """Jobs whose record still says ``running`` were cut off by a stop of the server."""
        if self.state_dir is None or not self.state_dir.is_dir():
            return
        records = []
        for path in self.state_dir.glob("*.json"):
            try:
                records.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue
        records.sort(key=lambda r: float(r[1].get("started") or 0))
        stopped = time.time()
        for path, _rec in records[:-MAX_JOBS] if len(records) > MAX_JOBS else []:
            path.unlink(missing_ok=True)
        for path, rec in records[-MAX_JOBS:]:
            if rec.get("status") == "running":
                rec["status"] = "interrupted"
                rec["ended"] = path.stat().st_mtime if path.exists() else stopped
                try:
                    path.write_text(json.dumps(rec), encoding="utf-8")
                except OSError:
                    pass
            if rec.get("status") != "interrupted":
                continue
            job = BlockJob(str(rec["id"]), str(rec["pipeline_uuid"]), str(rec["block_uuid"]), rec.get("mode") == "upstream",
                           mode=str(rec.get("mode") or "block"), status="interrupted", started=float(rec.get("started") or 0),
                           ended=float(rec.get("ended") or stopped))
            job.error = INTERRUPTED
            job.done.set()
            self._jobs[job.id] = job
            self._latest[(job.pipeline_uuid, job.block_uuid)] = job.id

    # ---- jobs

    def get(self, job_id: str) -> BlockJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self, pipeline_uuid: str, block_uuid: str) -> BlockJob | None:
        with self._lock:
            job_id = self._latest.get((pipeline_uuid, block_uuid))
            return self._jobs.get(job_id) if job_id else None

    def start(self, pipeline_uuid: str, block_uuid: str, *, with_upstream: bool = False, mode: str | None = None,
              variables: dict[str, Any] | None = None, run_fn=None) -> BlockJob:
        mode = mode or ("upstream" if with_upstream else "block")
        job = BlockJob(uuidlib.uuid4().hex[:12], pipeline_uuid, block_uuid, mode == "upstream", mode=mode)
        with self._lock:
            self._jobs[job.id] = job
            self._latest[(pipeline_uuid, block_uuid)] = job.id
            while len(self._jobs) > MAX_JOBS:
                oldest = next(iter(self._jobs))
                if not self._jobs[oldest].done.is_set():
                    break
                old = self._jobs.pop(oldest)
                path = self._record_path(old.id)
                if path is not None:
                    path.unlink(missing_ok=True)
        self._write_record(job)
        if self.kernel is not None and run_fn is None:
            try:
                self.kernel.send({"op": "run", "job": job.id, "pipeline": pipeline_uuid, "block": block_uuid, "mode": mode, "variables": variables})
                return job
            except Exception as exc:  # noqa: BLE001 - no child process here: run in a server thread instead
                log.warning("the editor kernel could not start (%s); running the block in the server", exc)
                self.kernel = None

        def work() -> None:
            from dagsmith.project.masking import MASKER

            MASKER.refresh()  # a secret set a moment ago (in any process) is masked in this job's first line
            done = run_editor_job(self.root, pipeline_uuid, block_uuid, mode, job.cancel, variables=variables,
                                  emit=lambda m: self._apply(job, m), run_fn=run_fn)
            self._apply(job, {"event": "done", **done})

        threading.Thread(target=work, name=f"dagsmith-editor-{job.id}", daemon=True).start()
        return job

    def cancel(self, job: BlockJob) -> None:
        job.cancel.set()
        if self.kernel is not None and not job.done.is_set():
            try:
                self.kernel.send({"op": "cancel", "job": job.id})
            except Exception:  # noqa: BLE001
                pass

    def _on_kernel_message(self, msg: dict) -> None:
        job = self.get(str(msg.get("job")))
        if job is not None:
            self._apply(job, msg)

    def _on_kernel_exit(self, code: int | None) -> None:
        with self._lock:
            cut = [j for j in self._jobs.values() if not j.done.is_set()]
        for job in cut:
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            self._apply(job, {"event": "done", "status": "failed", "blocks": {}, "preview": None,
                              "error": f"The editor's Python process {how} while this block ran (out of memory, or a crash in native code). Run it again."})

    def _apply(self, job: BlockJob, msg: dict) -> None:
        from dagsmith.project.masking import MASKER

        # masked here too (the kernel masked with what it knows): runs in server threads, and
        # secrets this process knows that the kernel has not seen yet
        msg = MASKER.mask_obj(msg)
        event = msg.get("event")
        if event == "line":
            if len(job.lines) < MAX_LINES:
                job.line_times.append(float(msg.get("t") or time.time()))
                job.lines.append(str(msg.get("text", "")))  # appended last: pollers read len(lines)
        elif event == "block":
            u = str(msg.get("block"))
            info = job.blocks.setdefault(u, {})
            info.update(msg.get("result") or {})
            info["status"] = msg.get("status")
            job.block_events += 1
            if u == job.block_uuid and msg.get("status") in ("completed", "failed", "cancelled"):
                job.block_ended = float(msg.get("t") or time.time())
        elif event == "done" and not job.done.is_set():
            for u, info in (msg.get("blocks") or {}).items():
                job.blocks.setdefault(u, {}).update(info)
            job.status = str(msg.get("status") or "failed")
            job.preview = msg.get("preview")
            job.error = msg.get("error")
            statuses = {u: str(info.get("status")) for u, info in job.blocks.items()}
            if job.error and not statuses:
                statuses = {job.block_uuid: "failed"}
            self._record_status(job.pipeline_uuid, statuses)  # before done: whoever sees the result sees the YAML too
            job.ended = time.time()
            job.done.set()
            self._write_record(job)
            if job.preview is not None and msg.get("partition"):
                self._cache_preview(job.pipeline_uuid, job.block_uuid, msg["partition"], job.preview)

    # ---- stored previews (read without pyarrow in the server)

    def _preview_path(self, pipeline_uuid: str, block_uuid: str) -> Path | None:
        if self.state_dir is None:
            return None
        return self.state_dir.parent / "previews" / pipeline_uuid / f"{block_uuid}.json"

    def _cache_preview(self, pipeline_uuid: str, block_uuid: str, partition: str, preview: dict[str, Any]) -> None:
        path = self._preview_path(pipeline_uuid, block_uuid)
        if path is None:
            return
        try:
            write_text_atomic(path, json.dumps({"partition": partition, "preview": preview}, default=str))
        except OSError as exc:
            log.warning("could not cache the preview of %s/%s: %s", pipeline_uuid, block_uuid, exc)

    def stored_preview(self, pipeline_uuid: str, block_uuid: str) -> dict[str, Any] | None:
        """The preview of a block's latest stored output: from the cache when it is current, else read now."""
        from dagsmith.data.store import VariableStore
        from dagsmith.project.layout import data_dir

        part = VariableStore(data_dir(self.root)).latest_partition(pipeline_uuid, block_uuid)
        if part is None:
            return None
        path = self._preview_path(pipeline_uuid, block_uuid)
        if path is not None and path.is_file():
            try:
                cached = json.loads(path.read_text(encoding="utf-8"))
                if cached.get("partition") == part:
                    return cached.get("preview")
            except (OSError, ValueError):
                pass
        preview = output_preview(self.root, pipeline_uuid, block_uuid, part, profile=True)
        if preview is not None and preview.get("kind") != "error":
            self._cache_preview(pipeline_uuid, block_uuid, part, preview)
        return preview

    def chart(self, pipeline_uuid: str, block_uuid: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Points of a chart of the block's latest output, computed in the kernel when there is one."""
        if self.kernel is not None:
            return self.kernel.call("chart", pipeline_uuid, block_uuid, spec)
        from dagsmith.server.ui.kernel import _call_chart

        return _call_chart(str(self.root), pipeline_uuid, block_uuid, spec)

    def close(self) -> None:
        """The server is stopping: runs still going are cut off (recorded as interrupted), the kernel ends."""
        with self._lock:
            cut = [j for j in self._jobs.values() if not j.done.is_set()]
        for job in cut:
            job.status = "interrupted"
            job.error = INTERRUPTED
            job.ended = time.time()
            job.done.set()
            self._write_record(job)
        if self.kernel is not None:
            self.kernel.stop()

    def _record_status(self, pipeline_uuid: str, statuses: dict[str, str]) -> None:
        """Write ``status: executed|failed`` into the entries of the blocks that ran (only where it changes)."""
        from dagsmith.project.pipelines import read_pipeline_raw, update_block_entry

        wanted = {u: YAML_STATUS[s] for u, s in statuses.items() if s in YAML_STATUS}
        if not wanted:
            return
        try:
            with _yaml_lock:
                current = {str(b.get("uuid")): b.get("status") for b in read_pipeline_raw(self.root, pipeline_uuid).get("blocks") or [] if isinstance(b, dict)}
                for block_uuid, status in wanted.items():
                    if block_uuid in current and current[block_uuid] != status:
                        update_block_entry(self.root, pipeline_uuid, block_uuid, {"status": status})
        except Exception as exc:  # noqa: BLE001 - the run's result matters more than its bookkeeping
            log.warning("could not record block status in pipeline %s: %s", pipeline_uuid, exc)

    def wait(self, job: BlockJob, timeout: float) -> bool:
        return job.done.wait(timeout)


def state(job: BlockJob, since: int = 0) -> dict[str, Any]:
    """What a poll needs: the lines printed since line ``since``, status, elapsed seconds."""
    count = len(job.lines)
    since = max(0, min(since, count))
    return {
        "id": job.id,
        "status": job.status if job.done.is_set() else "running",
        "done": job.done.is_set(),
        "seconds": round(job.seconds, 3),
        "lines": job.lines[since:count],
        "next": count,
        "blocks": {u: info.get("status") for u, info in job.blocks.items()},
        "block_events": job.block_events,
    }


#: hints that tell a terminal user which command to type; the cell has its own buttons
_CLI_HINT = re.compile(r"\bdagsmith (run|validate|start|backfill|trigger|history)\b|--with-upstream|--block\b")


def error_text(exc: BaseException) -> str:
    """One readable message for the cell: the error and its hint, without command-line advice."""
    from dagsmith.errors import DagsmithError

    if isinstance(exc, DagsmithError):
        hint = (exc.hint or "").strip()
        if _CLI_HINT.search(hint):
            hint = ""
        return exc.message + (f"\nhint: {hint}" if hint else "")
    return f"{type(exc).__name__}: {exc}"


def error_view(result: dict[str, Any], root: Path | None = None) -> dict[str, Any] | None:
    """A block's error split for display: message (location said once), location relative to the project, traceback."""
    message = str(result.get("error") or "").strip()
    if not message:
        return None
    location = str(result.get("error_location") or "")
    short = location
    if root is not None and location:
        try:
            path, _, line = location.rpartition(":")
            short = f"{Path(path).resolve().relative_to(Path(root).resolve().parent).as_posix()}:{line}"
        except (ValueError, OSError):
            short = location
    if location:
        message = message.replace(f" at {location}", "")
    hint = None
    if "has not been stored yet" in message:
        hint = "Use “▶ Run with all upstream” to run the upstream blocks first."
    return {"message": message, "location": short or None, "traceback": result.get("traceback") or None, "hint": hint}


def stored_output(store, pipeline_uuid: str, partition: str, block_uuid: str) -> Any:
    """A block's first stored output: a memory-mapped Arrow table for frames (no pandas conversion), else the value."""
    from dagsmith.data.preview import stored_table

    folder = store.block_dir(pipeline_uuid, partition, block_uuid) / "output_0"
    table = stored_table(folder) if folder.is_dir() else None
    if table is not None:
        return table
    outputs, _multi = store.read_outputs(pipeline_uuid, partition, block_uuid)
    return outputs[0] if outputs else None


def output_preview(root: Path, pipeline_uuid: str, block_uuid: str, partition: str | None = None, rows: int = 10,
                   profile: bool = False) -> dict[str, Any] | None:
    """Preview of a block's stored output (its latest partition unless one is given); None if nothing is stored.

    Frames are read memory-mapped from their Arrow file; with ``profile`` the preview also
    carries a profile of every column of the whole output (``data.preview.profile``).
    """
    from dagsmith.data.preview import preview
    from dagsmith.data.store import OutputsMissing
    from dagsmith.engine.storage import project_store

    store = project_store(root)  # the project's variables_dir (a shared folder or s3://, gs://) when it sets one
    part = partition if partition and store.has_outputs(pipeline_uuid, partition, block_uuid) else store.latest_partition(pipeline_uuid, block_uuid)
    if part is None:
        return None
    try:
        meta = store.read_meta(pipeline_uuid, part, block_uuid)
        if meta is None:
            raise OutputsMissing(f"no stored output of block '{block_uuid}' in partition {part}")
        count = len(meta["inline"]) if "inline" in meta else int(meta.get("count") or 0)
        if meta.get("packed"):
            count = 1
        value = stored_output(store, pipeline_uuid, part, block_uuid) if count else None
    except Exception as exc:  # noqa: BLE001
        return {"kind": "error", "text": f"could not read the stored output: {exc}", "rows": None}
    if not count:
        return {"kind": "none", "text": "(the block returned nothing)", "rows": None}
    out = preview(value, rows=rows)
    if profile and "columns" in out:
        from dagsmith.data.preview import profile as profile_of

        try:
            out["profile"] = profile_of(value)
        except Exception as exc:  # noqa: BLE001 - a profile that fails never hides the rows
            out["profile_error"] = f"{type(exc).__name__}: {exc}"
    out["partition"] = part
    if meta.get("multi") and count > 1:
        out["more_outputs"] = count - 1
    return out
