"""Mage's ``trigger_pipeline`` (``mage_ai.orchestration.triggers.api``) on dagsmith's orchestration.

``trigger_pipeline('other_pipeline', variables={...})`` from a block:

- finds or creates the pipeline's API trigger named ``schedule_name`` (default
  ``API_TRIGGER_CREATED_FROM_CODE``, as in Mage) and creates a run of it in the project's
  metadata database with ``variables`` and ``execution_date`` = now;
- when a ``dagsmith start`` server (any live worker of the project) is running, that
  server runs it, exactly as Mage's scheduler would, and the call returns at once unless
  ``check_status``;
- otherwise (``dagsmith run``, a script) it runs the pipeline in this process before
  returning — where Mage would leave the run waiting forever;
- ``check_status=True`` waits for the run to finish, printing ``Pipeline run N for
  pipeline X: <status>.`` every ``poll_interval`` seconds when ``verbose``; a failed run
  raises when ``error_on_failure``; ``poll_timeout`` seconds without an end raise.

The return value has Mage's ``PipelineRun`` attributes users read: ``id``, ``status``,
``pipeline_uuid``, ``execution_date``, ``variables``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping

from dagsmith.errors import DagsmithError, ProjectError
from dagsmith.util.clock import parse_iso

__all__ = ["TriggeredRun", "TriggeredRunFailed", "TriggeredRunTimeout", "UpstreamRunFailed", "check_status", "trigger_pipeline"]

DEFAULT_TRIGGER_NAME = "API_TRIGGER_CREATED_FROM_CODE"
_FINISHED = ("completed", "failed", "cancelled")
_local = threading.local()


class TriggeredRunFailed(DagsmithError):
    """A run started by ``trigger_pipeline(..., check_status=True, error_on_failure=True)`` failed."""


class TriggeredRunTimeout(DagsmithError):
    """A run started by ``trigger_pipeline`` did not finish within ``poll_timeout``."""


@dataclass
class TriggeredRun:
    """The run ``trigger_pipeline`` created (the attributes of Mage's ``PipelineRun`` that code reads)."""

    id: int
    pipeline_uuid: str
    status: str
    execution_date: datetime
    variables: dict[str, Any] = field(default_factory=dict)
    pipeline_schedule_id: int | None = None
    _db: Any = field(default=None, repr=False, compare=False)

    def refresh(self) -> "TriggeredRun":
        from dagsmith.orchestration.store import repo

        with self._db.read() as session:
            self.status = repo.get_run(session, self.id).status
        return self


def trigger_pipeline(
    pipeline_uuid: str,
    repo_path: str | os.PathLike[str] | None = None,
    variables: Mapping[str, Any] | None = None,
    check_status: bool = False,
    error_on_failure: bool = False,
    poll_interval: float = 60,
    poll_timeout: float | None = None,
    schedule_name: str | None = None,
    verbose: bool = True,
    remote_blocks: Any = None,
    return_remote_blocks: bool = False,
    **kwargs: Any,
) -> TriggeredRun:
    """Run ``pipeline_uuid`` of this project (see the module docstring)."""
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo
    from dagsmith.project.layout import get_repo_path
    from dagsmith.project.pipelines import metadata_path

    root = Path(repo_path or get_repo_path()).resolve()
    if not metadata_path(root, pipeline_uuid).is_file():
        raise ProjectError(
            f"Pipeline {pipeline_uuid} does not exist in repo_path {root}.",
            hint="trigger_pipeline takes the uuid of a pipeline of this project (its folder under pipelines/)",
        )
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    now = datetime.now(timezone.utc)
    with db.session() as session:
        server_running = bool(repo.live_workers(session, now=now, timeout=settings.heartbeat_timeout))
    name = schedule_name or DEFAULT_TRIGGER_NAME
    if server_running:
        run = _queue(db, pipeline_uuid, name, dict(variables or {}), now)
    else:
        run = _run_here(db, settings, pipeline_uuid, name, dict(variables or {}), now)
    if check_status:
        _wait(run, error_on_failure=error_on_failure, poll_interval=poll_interval, poll_timeout=poll_timeout, verbose=verbose)
    return run


def _trigger(session: Any, pipeline_uuid: str, name: str, now: datetime) -> Any:
    from dagsmith.orchestration.store import repo

    trigger = repo.find_trigger(session, pipeline_uuid, name)
    if trigger is None:
        trigger = repo.create_trigger(session, pipeline_uuid, name, now=now, schedule_type="api", status="active")
    elif trigger.status != "active":  # Mage re-activates a trigger that is called
        repo.update_trigger(session, trigger, now=now, status="active")
    return trigger


def _record(db: Any, run: Any) -> TriggeredRun:
    return TriggeredRun(
        id=run.id,
        pipeline_uuid=run.pipeline_uuid,
        status=run.status,
        execution_date=run.execution_date,
        variables=dict(run.variables or {}),
        pipeline_schedule_id=run.trigger_id,
        _db=db,
    )


def _queue(db: Any, pipeline_uuid: str, name: str, variables: dict, now: datetime) -> TriggeredRun:
    from dagsmith.orchestration.store import repo

    with db.session() as session:
        trigger = _trigger(session, pipeline_uuid, name, now)
        run = repo.create_run(
            session, pipeline_uuid, source="api", trigger_id=trigger.id, execution_date=now,
            variables={**(trigger.variables or {}), **variables}, now=now,
        )
        return _record(db, run)


def _run_here(db: Any, settings: Any, pipeline_uuid: str, name: str, variables: dict, now: datetime) -> TriggeredRun:
    """No server: run the pipeline now, in this thread, recorded like a server's run."""
    from dagsmith.orchestration.store import repo
    from dagsmith.orchestration.store.models import RUN_RUNNING
    from dagsmith.orchestration.worker import Worker

    chain = getattr(_local, "chain", ())
    if pipeline_uuid in chain:
        raise ProjectError(
            f"trigger_pipeline('{pipeline_uuid}') would start the pipeline inside its own run "
            f"({' -> '.join([*chain, pipeline_uuid])})",
            hint="trigger a different pipeline, or run the server (dagsmith start) to queue it instead",
        )
    worker = Worker(settings, db, role="trigger_pipeline", concurrency=1)
    with db.session() as session:
        trigger = _trigger(session, pipeline_uuid, name, now)
        run = repo.create_run(
            session, pipeline_uuid, source="api", trigger_id=trigger.id, execution_date=now,
            variables={**(trigger.variables or {}), **variables}, status=RUN_RUNNING,
            worker_id=worker.worker_id, now=now,
        )
        record = _record(db, run)
    _local.chain = (*chain, pipeline_uuid)
    cwd = os.getcwd()
    repo_env = {k: os.environ.get(k) for k in ("DAGSMITH_REPO_PATH",)}
    try:
        worker.run_claimed(record.id)
    finally:
        _local.chain = chain
        os.chdir(cwd)
        for key, value in repo_env.items():  # the nested run points get_repo_path at its project
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return record.refresh()


def _wait(run: TriggeredRun, *, error_on_failure: bool, poll_interval: float, poll_timeout: float | None, verbose: bool) -> None:
    started = time.monotonic()
    while True:
        run.refresh()
        if run.status == "failed":
            if error_on_failure:
                raise TriggeredRunFailed(f"Pipeline run {run.id} for pipeline {run.pipeline_uuid}: failed.")
            return
        if verbose:
            print(f"Pipeline run {run.id} for pipeline {run.pipeline_uuid}: {run.status}.")
        if run.status in _FINISHED:
            return
        waited = time.monotonic() - started
        if poll_timeout is not None and waited > poll_timeout:
            raise TriggeredRunTimeout(
                f"Pipeline run {run.id} for pipeline {run.pipeline_uuid}: time out after "
                f"{timedelta(seconds=waited)}. Last status was {run.status}."
            )
        time.sleep(poll_interval)


class UpstreamRunFailed(DagsmithError):
    """``check_status`` found the awaited pipeline (or block) run failed."""


def check_status(
    pipeline_uuid: str,
    execution_date: datetime,
    repo_path: str | os.PathLike[str] | None = None,
    block_uuid: str | None = None,
    hours: int = 24,
    **kwargs: Any,
) -> bool:
    """Mage's sensor helper: has the newest run of ``pipeline_uuid`` within ``hours`` before
    ``execution_date`` completed (or its block ``block_uuid``)? A failed one raises."""
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo
    from dagsmith.project.layout import get_repo_path
    from dagsmith.project.pipelines import load_pipeline

    root = Path(repo_path or get_repo_path()).resolve()
    spec = load_pipeline(root, pipeline_uuid)  # unknown pipeline: a clear ProjectError
    if block_uuid is not None:
        spec.block(block_uuid)
    end = _utc(execution_date)
    start = end - timedelta(hours=hours)
    db = get_database(OrchestrationSettings.from_env(root))
    with db.read() as session:
        runs, _ = repo.list_runs(session, pipeline_uuid=pipeline_uuid, limit=1000)
        window = [r for r in runs if start <= _utc(r.execution_date) <= end]
        if not window:
            return False
        run = max(window, key=lambda r: _utc(r.execution_date))
        if block_uuid is None:
            status = run.status
        else:
            found = [b for b in repo.list_block_runs(session, run.id) if b.block_uuid == block_uuid]
            if not found:
                return False
            status = found[0].status
    if status in ("failed", "cancelled", "upstream_failed"):
        what = f"block {block_uuid} of pipeline {pipeline_uuid}" if block_uuid else f"pipeline {pipeline_uuid}"
        raise UpstreamRunFailed(f"Upstream {what} run failed, stopping sensor...")
    return status == "completed"


def _utc(value: datetime) -> datetime:
    if isinstance(value, str):
        value = parse_iso(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
