"""REST routes under ``/api``, one module per resource; thin: schema → service/repo → JSON."""

from __future__ import annotations

from fastapi import APIRouter

from dagsmith.server.api import backfills, pipelines, runs, secrets, status, triggers

router = APIRouter()
for _module in (pipelines, triggers, runs, backfills, secrets, status):
    router.include_router(_module.router)
