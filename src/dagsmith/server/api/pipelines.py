"""``/api/pipelines``: list and read pipelines and their blocks, pipeline variables, ad-hoc runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from dagsmith.server.deps import DbDep, RuntimeDep, SettingsDep, notify
from dagsmith.server.schemas import PipelineRunEnvelope, PipelineRunOut, RunBody, VariablesBody
from dagsmith.server.api.common import listing

router = APIRouter(tags=["pipelines"])


def _block_dict(block) -> dict[str, Any]:
    return {
        "uuid": block.uuid,
        "name": block.name,
        "type": block.type,
        "language": block.language,
        "upstream_blocks": list(block.upstream_blocks),
        "downstream_blocks": list(block.downstream_blocks),
        "configuration": dict(block.configuration or {}),
        "retry_config": block.retry_config,
        "timeout": block.timeout,
        "file_path": block.relpath,
    }


def _pipeline_dict(spec, *, with_blocks: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uuid": spec.uuid,
        "name": spec.name,
        "type": spec.type,
        "description": spec.description,
        "variables": dict(spec.variables or {}),
        "concurrency_config": dict(spec.concurrency_config or {}),
        "settings": dict(spec.settings or {}),
        "block_count": len(spec.blocks),
    }
    if with_blocks:
        out["blocks"] = [_block_dict(b) for b in spec.blocks]
        out["callbacks"] = [_block_dict(b) for b in spec.callbacks]
        out["conditionals"] = [_block_dict(b) for b in spec.conditionals]
    return out


@router.get("/pipelines", summary="List pipelines")
def list_pipelines(settings: SettingsDep) -> dict:
    from dagsmith.errors import DagsmithError
    from dagsmith.project.pipelines import list_pipelines as _list, load_pipeline

    items = []
    for uuid in _list(settings.project_root):
        try:
            items.append(_pipeline_dict(load_pipeline(settings.project_root, uuid), with_blocks=False))
        except DagsmithError as exc:  # a broken pipeline is listed with its problem, not hidden
            items.append({"uuid": uuid, "name": uuid, "error": str(exc)})
    return listing("pipelines", items)


@router.get("/pipelines/{pipeline_uuid}", summary="Read a pipeline with its blocks")
def get_pipeline(pipeline_uuid: str, settings: SettingsDep) -> dict:
    from dagsmith.orchestration.service import check_pipeline
    from dagsmith.project.pipelines import load_pipeline

    check_pipeline(settings.project_root, pipeline_uuid)
    return {"pipeline": _pipeline_dict(load_pipeline(settings.project_root, pipeline_uuid))}


@router.get("/pipelines/{pipeline_uuid}/blocks", summary="List a pipeline's blocks")
def list_blocks(pipeline_uuid: str, settings: SettingsDep) -> dict:
    from dagsmith.orchestration.service import check_pipeline
    from dagsmith.project.pipelines import load_pipeline

    check_pipeline(settings.project_root, pipeline_uuid)
    spec = load_pipeline(settings.project_root, pipeline_uuid)
    return listing("blocks", [_block_dict(b) for b in spec.blocks])


@router.get("/pipelines/{pipeline_uuid}/blocks/{block_uuid}", summary="Read one block of a pipeline")
def get_block(pipeline_uuid: str, block_uuid: str, settings: SettingsDep) -> dict:
    from dagsmith.orchestration.service import check_pipeline
    from dagsmith.project.pipelines import load_pipeline

    check_pipeline(settings.project_root, pipeline_uuid)
    spec = load_pipeline(settings.project_root, pipeline_uuid)
    return {"block": _block_dict(spec.block(block_uuid))}


@router.get("/pipelines/{pipeline_uuid}/variables", summary="Read pipeline variables")
def get_variables(pipeline_uuid: str, settings: SettingsDep) -> dict:
    from dagsmith.orchestration.service import check_pipeline
    from dagsmith.project.pipelines import read_pipeline_raw

    check_pipeline(settings.project_root, pipeline_uuid)
    return {"variables": dict(read_pipeline_raw(settings.project_root, pipeline_uuid).get("variables") or {})}


@router.put("/pipelines/{pipeline_uuid}/variables", summary="Replace pipeline variables (written to metadata.yaml)")
def put_variables(pipeline_uuid: str, body: VariablesBody, settings: SettingsDep, db: DbDep) -> dict:
    from dagsmith.orchestration.service import check_pipeline
    from dagsmith.orchestration.store import repo
    from dagsmith.project.pipelines import set_pipeline_variables

    check_pipeline(settings.project_root, pipeline_uuid)
    set_pipeline_variables(settings.project_root, pipeline_uuid, body.variables)
    with db.session() as session:
        repo.audit(session, "pipeline.variables", "pipeline", pipeline_uuid, {"names": sorted(body.variables)}, actor="api")
    return {"variables": body.variables}


@router.post("/pipelines/{pipeline_uuid}/pipeline_runs", status_code=201, response_model=PipelineRunEnvelope, summary="Queue a run of a pipeline now")
def create_run(pipeline_uuid: str, settings: SettingsDep, db: DbDep, runtime: RuntimeDep, body: RunBody | None = None) -> dict:
    from dagsmith.orchestration.service import create_run_now

    fields = body.pipeline_run if body else None
    run = create_run_now(
        db,
        settings.project_root,
        pipeline_uuid,
        variables=fields.variables if fields else None,
        event=fields.event if fields else None,
        execution_date=fields.execution_date if fields else None,
        source="ui",
    )
    notify(runtime)
    return {"pipeline_run": PipelineRunOut.of(run)}


@router.get("/pipelines/{pipeline_uuid}/logs", summary="Logs of a pipeline's recent runs")
def pipeline_logs(pipeline_uuid: str, db: DbDep, request: Request, limit: int = 10, level: str | None = None) -> dict:
    from dagsmith.orchestration.logs import read_logs
    from dagsmith.orchestration.store import repo

    with db.read() as session:
        runs, _ = repo.list_runs(session, pipeline_uuid=pipeline_uuid, limit=max(1, min(limit, 100)))
        items = [{"pipeline_run_id": r.id, "status": r.status, "log_dir": r.log_dir} for r in runs]
    for item in items:
        item["records"] = read_logs(item.pop("log_dir"), level=level, limit=1000)
    return {"logs": items}
