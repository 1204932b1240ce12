"""``/api/secrets``: set, list (names only) and delete encrypted secrets. Values are never returned."""

from __future__ import annotations

from fastapi import APIRouter

from dagsmith.server.api.common import listing
from dagsmith.server.deps import SecretsDep
from dagsmith.server.schemas import SecretBody

router = APIRouter(tags=["secrets"])


@router.get("/secrets", summary="List secret names")
def list_secrets(store: SecretsDep, pipeline_uuid: str | None = None) -> dict:
    return listing("secrets", store.names(pipeline_uuid=pipeline_uuid))


@router.post("/secrets", status_code=201, summary="Create or replace a secret")
def put_secret(body: SecretBody, store: SecretsDep) -> dict:
    store.set(body.secret.name, body.secret.value, pipeline_uuid=body.secret.pipeline_uuid)
    return {"secret": {"name": body.secret.name, "pipeline_uuid": body.secret.pipeline_uuid}}


@router.delete("/secrets/{name}", summary="Delete a secret")
def delete_secret(name: str, store: SecretsDep, pipeline_uuid: str | None = None) -> dict:
    from dagsmith.orchestration.store.repo import NotFound

    if not store.delete(name, pipeline_uuid=pipeline_uuid):
        raise NotFound(f"secret {name!r} does not exist", hint="list secrets with GET /api/secrets")
    return {"secret": {"name": name}}
