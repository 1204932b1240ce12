"""Block runs started from the editor: one engine run per click, in a background thread.

``BlockJobs.start`` runs ``engine.run_pipeline(block_uuids=[b], with_upstream=…)`` in a
daemon thread and returns a job id at once; ``wait`` blocks (up to a timeout) until the
job ends, so the page long-polls and shows the result the moment it exists. When the run
ends, the block's stdout, test counts, error and a preview of its stored output are kept
in memory (the newest 200 jobs). Live stdout lines arrive through the engine observer.
As Mage does, each block that ran gets ``status: executed`` (or ``failed``) in its entry of
``pipelines/<p>/metadata.yaml``; the editor's conflict check guards block files, not that file.
"""

from __future__ import annotations

import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_JOBS = 200
#: engine block status → the ``status`` Mage keeps in a block's metadata.yaml entry
YAML_STATUS = {"completed": "executed", "failed": "failed"}
_yaml_lock = threading.Lock()


@dataclass
class BlockJob:
    id: str
    pipeline_uuid: str
    block_uuid: str
    with_upstream: bool
    status: str = "running"  # running | completed | failed | cancelled
    started: float = field(default_factory=time.time)
    ended: float | None = None
    #: when the engine reported the block itself finished (before outputs are stored and previewed)
    block_ended: float | None = None
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
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


class _Observer:
    def __init__(self, job: BlockJob) -> None:
        self.job = job

    def on_run_start(self, **kw: Any) -> None:
        pass

    def on_block_start(self, *, block_uuid: str = "", **kw: Any) -> None:
        self.job.blocks.setdefault(block_uuid, {})["status"] = "running"

    def on_block_log(self, *, block_uuid: str = "", record: dict | None = None, **kw: Any) -> None:
        msg = str((record or {}).get("message", ""))
        if msg and len(self.job.lines) < 5000:
            prefix = "" if block_uuid == self.job.block_uuid else f"[{block_uuid}] "
            self.job.lines.append(prefix + msg.rstrip("\n"))

    def on_block_end(self, *, block_uuid: str = "", status: str = "", result: Any = None, **kw: Any) -> None:
        if block_uuid == self.job.block_uuid and status in ("completed", "failed", "cancelled"):
            self.job.block_ended = time.time()
        info = self.job.blocks.setdefault(block_uuid, {})
        info["status"] = status
        if result is not None and hasattr(result, "to_dict"):
            info.update(result.to_dict())

    def on_run_end(self, **kw: Any) -> None:
        pass


class BlockJobs:
    """The editor's block runs of one project (thread-safe)."""

    def __init__(self, project_root: Path) -> None:
        self.root = Path(project_root)
        self._jobs: dict[str, BlockJob] = {}
        self._latest: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> BlockJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self, pipeline_uuid: str, block_uuid: str) -> BlockJob | None:
        with self._lock:
            job_id = self._latest.get((pipeline_uuid, block_uuid))
            return self._jobs.get(job_id) if job_id else None

    def start(self, pipeline_uuid: str, block_uuid: str, *, with_upstream: bool = False, run_fn=None) -> BlockJob:
        job = BlockJob(uuidlib.uuid4().hex[:12], pipeline_uuid, block_uuid, with_upstream)
        with self._lock:
            self._jobs[job.id] = job
            self._latest[(pipeline_uuid, block_uuid)] = job.id
            while len(self._jobs) > MAX_JOBS:
                oldest = next(iter(self._jobs))
                if not self._jobs[oldest].done.is_set():
                    break
                del self._jobs[oldest]
        thread = threading.Thread(target=self._run, args=(job, run_fn), name=f"dagsmith-editor-{job.id}", daemon=True)
        thread.start()
        return job

    def _run(self, job: BlockJob, run_fn) -> None:
        try:
            if run_fn is None:
                from dagsmith.engine import run_pipeline as run_fn
            result = run_fn(
                self.root,
                job.pipeline_uuid,
                block_uuids=[job.block_uuid],
                with_upstream=job.with_upstream,
                observer=_Observer(job),
                cancel_event=job.cancel,
                persist=True,
                env="dev",
            )
            for uuid, br in result.blocks.items():
                job.blocks.setdefault(uuid, {}).update(br.to_dict())
            mine = result.blocks.get(job.block_uuid)
            job.status = mine.status if mine is not None else result.status
            if job.status == "completed":
                job.preview = self._preview(job.pipeline_uuid, job.block_uuid, result.partition)
            self._record_status(job.pipeline_uuid, {u: br.status for u, br in result.blocks.items()})
        except Exception as exc:  # noqa: BLE001 - shown in the cell, never raised into the server
            from dagsmith.errors import DagsmithError

            job.status = "failed"
            job.error = exc.message + (f"\nhint: {exc.hint}" if exc.hint else "") if isinstance(exc, DagsmithError) else f"{type(exc).__name__}: {exc}"
            self._record_status(job.pipeline_uuid, {job.block_uuid: "failed"})
        finally:
            job.ended = time.time()
            job.done.set()

    def _record_status(self, pipeline_uuid: str, statuses: dict[str, str]) -> None:
        """Write ``status: executed|failed`` into the entries of the blocks that ran (only where it changes)."""
        import logging

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
            logging.getLogger(__name__).warning("could not record block status in pipeline %s: %s", pipeline_uuid, exc)

    def _preview(self, pipeline_uuid: str, block_uuid: str, partition: str) -> dict[str, Any] | None:
        return output_preview(self.root, pipeline_uuid, block_uuid, partition)

    def wait(self, job: BlockJob, timeout: float) -> bool:
        return job.done.wait(timeout)


def output_preview(root: Path, pipeline_uuid: str, block_uuid: str, partition: str | None = None, rows: int = 10) -> dict[str, Any] | None:
    """Preview of a block's stored output (its latest partition unless one is given); None if nothing is stored."""
    from dagsmith.data.preview import preview
    from dagsmith.engine.storage import project_store

    store = project_store(root)  # the project's variables_dir (a shared folder or s3://, gs://) when it sets one
    part = partition if partition and store.has_outputs(pipeline_uuid, partition, block_uuid) else store.latest_partition(pipeline_uuid, block_uuid)
    if part is None:
        return None
    try:
        outputs, multi = store.read_outputs(pipeline_uuid, part, block_uuid)
    except Exception as exc:  # noqa: BLE001
        return {"kind": "error", "text": f"could not read the stored output: {exc}", "rows": None}
    if not outputs:
        return {"kind": "none", "text": "(the block returned nothing)", "rows": None}
    out = preview(outputs[0], rows=rows)
    if multi and len(outputs) > 1:
        out["more_outputs"] = len(outputs) - 1
    return out
