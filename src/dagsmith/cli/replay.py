"""``dagsmith run PROJECT PIPELINE --from-run RUN_ID --block B``: replay one block of a past run.

The run's manifest in the variables store (``<partition>/_run.json``, local or
``s3://``/``gs://``) says where each block's outputs are and which variables,
``execution_date``, interval and event the run had; the block is run here with exactly
those upstream outputs and variables. A run recorded in the metadata DB (scheduled,
API-triggered, backfill) is found by its number too: its partition is its id. A run
whose process died before writing its manifest still has its stored outputs; its
variables then come from the metadata DB.

Nothing the replay produces is stored (``latest.json`` and the cache stay as they were):
it is for looking at a failure, not for repairing the run (``--resume`` does that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagsmith.errors import DagsmithError


def replay_options(project: str, pipeline: str, run_ref: str, blocks: list[str] | None) -> dict[str, Any]:
    """The ``run_pipeline`` keywords that replay ``blocks`` of run ``run_ref``."""
    from dagsmith.engine.storage import project_store
    from dagsmith.project.pipelines import load_pipeline, load_project

    if not blocks:
        raise DagsmithError(
            "--from-run needs the block to replay",
            hint=f"add --block BLOCK, e.g. dagsmith run {project} {pipeline} --from-run {run_ref} --block <failed block>",
        )
    root = load_project(project).root
    spec = load_pipeline(root, pipeline)
    for b in blocks:
        spec.block(b)  # an unknown block is a clear error naming the pipeline
    store = project_store(root)
    partition = str(run_ref)
    manifest = store.read_manifest(pipeline, partition)
    db_run = None
    if manifest is None or not manifest.get("inputs"):
        db_run = _db_run(root, pipeline, run_ref)
        if db_run is not None and db_run.get("partition") and db_run["partition"] != partition:
            partition = db_run["partition"]
            manifest = store.read_manifest(pipeline, partition)
    if manifest is not None:
        statuses = manifest.get("blocks") or {}
        done = {u: str(info.get("partition") or partition) for u, info in statuses.items()
                if info.get("status") in ("completed", "cached")}
    else:
        stored = store.stored_blocks(pipeline, partition)
        if not stored and db_run is None:
            raise DagsmithError(
                f"no run '{run_ref}' of pipeline '{pipeline}' in {store.describe(pipeline)} or the metadata DB",
                hint="use the run id printed at the end of a run, or the number on the UI's run page",
            )
        statuses = {}
        done = {u: partition for u in stored}
    for b in blocks:
        by = spec.block(b)
        for up in by.upstream_blocks:
            if up in done or up in blocks:
                continue
            status = (statuses.get(up) or {}).get("status", "not run")
            raise DagsmithError(
                f"block '{b}' cannot be replayed: its upstream block '{up}' has no stored output in run '{run_ref}' ({status})",
                hint=f"replay '{up}' first, or resume the run: dagsmith run {project} {pipeline} --resume {partition}",
            )
    inputs = (manifest or {}).get("inputs") or {}
    if not inputs and db_run is not None:
        inputs = db_run
    options: dict[str, Any] = {
        "block_uuids": tuple(blocks),
        "completed": {u: p for u, p in done.items() if u not in blocks},
        "variables": inputs.get("variables") or {},
        "persist": False,
    }
    if inputs.get("execution_date"):
        options["execution_date"] = inputs["execution_date"]
    if inputs.get("interval"):
        from dagsmith.engine.variables import as_aware

        start, end = inputs["interval"]
        options["interval"] = (as_aware(start), as_aware(end))
    if inputs.get("event"):
        options["event"] = inputs["event"]
    if inputs.get("env"):
        options["env"] = inputs["env"]
    if inputs.get("trigger_name"):
        options["trigger_name"] = inputs["trigger_name"]
    return options


def _db_run(root: Path, pipeline: str, run_ref: str) -> dict[str, Any] | None:
    """A run of the metadata DB by number or partition, as replay inputs (None when there is no such run or DB)."""
    from dagsmith.orchestration.settings import OrchestrationSettings

    settings = OrchestrationSettings.from_env(str(root))
    url = str(settings.url)
    if url.startswith("sqlite") and not _sqlite_exists(url):
        return None  # never started: no DB to ask (and none to create)
    from sqlalchemy import or_, select

    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.store.models import PipelineRun

    try:
        db = get_database(settings)
        with db.read() as session:
            cond = [PipelineRun.partition == str(run_ref)]
            if str(run_ref).isdigit():
                cond.append(PipelineRun.id == int(run_ref))
            run = session.execute(
                select(PipelineRun).where(PipelineRun.pipeline_uuid == pipeline, or_(*cond)).order_by(PipelineRun.id.desc())
            ).scalars().first()
            if run is None:
                return None
            interval = None
            if run.interval_start is not None and run.interval_end is not None:
                interval = [run.interval_start.isoformat(), run.interval_end.isoformat()]
            return {
                "partition": run.partition or str(run.id),
                "variables": dict(run.variables or {}),
                "execution_date": run.execution_date.isoformat() if run.execution_date else None,
                "interval": interval,
                "event": dict(run.event or {}),
            }
    except DagsmithError:
        raise
    except Exception:  # noqa: BLE001 - no DB (or not ours): the variables store is the only source
        return None


def _sqlite_exists(url: str) -> bool:
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return bool(path) and Path(path).exists()


def post_mortem(result: Any, console: Any) -> None:
    """Open pdb at the exception of the first failed block (``--pdb``)."""
    import pdb
    import traceback

    for uid, exc in result.exceptions.items():
        tb = getattr(exc, "__traceback__", None)
        if tb is None:
            continue
        console.print(f"[bold]--pdb: block {uid} raised {type(exc).__name__}: {exc}[/]", markup=True, soft_wrap=True)
        traceback.print_exception(type(exc), exc, tb)
        pdb.post_mortem(tb)
        return
    console.print("--pdb: no block raised an exception", markup=False)
