"""The typed configuration of one run, and how the executor of a run is chosen.

``RunConfig`` is everything a run needs to know before it starts (which
project, pipeline and blocks, the runtime variables, the executor); the live
objects a run talks to (observer, cancel event, an executor instance) are
passed beside it to ``engine.runner.execute_run``. ``run_pipeline(**keywords)``
builds one of these, so callers that pass keywords keep working.

Executor choice, first match wins: the ``executor`` field (``--executor``), a
pipeline whose metadata says ``executor_type: dask``, ``DAGSMITH_EXECUTOR``,
else ``local``. The Dask scheduler address: ``dask_scheduler``
(``--dask-scheduler``), ``DAGSMITH_DASK_SCHEDULER``, the project's
``dask: {scheduler: …}``; none means a ``LocalCluster`` of processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from dagsmith.errors import ConfigError
from dagsmith.settings import get

EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class RunConfig:
    """What to run and how; immutable once the run starts."""

    project_root: Path
    pipeline_uuid: str
    run_id: str | None = None
    variables: Mapping[str, Any] | None = None
    execution_date: datetime | str | None = None
    interval: tuple[datetime, datetime] | None = None
    event: Mapping[str, Any] | None = None
    env: str | None = None
    trigger_name: str | None = None
    partition: str | None = None
    """Where outputs are stored (default: the run id)."""
    block_uuids: tuple[str, ...] | None = None
    """Run only these blocks (upstream outputs read from the store)."""
    with_upstream: bool = False
    completed: Mapping[str, str] = field(default_factory=dict)
    """Blocks already completed (block → partition of its stored outputs): a resumed run."""
    parallel: bool = True
    max_workers: int | None = None
    run_tests: bool = True
    allow_blocks_to_fail: bool = False
    persist: bool = True
    executor: str | None = None
    """``local`` or ``dask``; None: decided by the pipeline and the environment."""
    dask_scheduler: str | None = None
    worker_setup: tuple[str, ...] = ()
    """``module:function`` names each remote worker calls with the project root (e.g. a secrets resolver)."""
    spec: Any = None
    """A ``PipelineSpec`` to run instead of the one on disk (the editor's unsaved view)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "project_root", Path(self.project_root).resolve())
        if self.block_uuids is not None and not isinstance(self.block_uuids, tuple):
            object.__setattr__(self, "block_uuids", tuple(self.block_uuids))
        object.__setattr__(self, "completed", dict(self.completed or {}))
        if isinstance(self.worker_setup, (list, str)):
            value = (self.worker_setup,) if isinstance(self.worker_setup, str) else tuple(self.worker_setup)
            object.__setattr__(self, "worker_setup", value)
        if self.executor is not None and self.executor not in EXECUTORS:
            raise ConfigError(
                f"unknown executor {self.executor!r}",
                hint="use --executor local (threads in this process) or --executor dask",
            )

    @classmethod
    def from_keywords(cls, project_root: Any, pipeline_uuid: str, **options: Any) -> "RunConfig":
        """Build from ``run_pipeline``-style keywords; an unknown keyword is a ``TypeError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown run option(s): {', '.join(unknown)}")
        return cls(project_root=project_root, pipeline_uuid=pipeline_uuid, **options)


def choose_executor(config: RunConfig, spec: Any) -> str:
    """The executor name of a run (see the module docstring for the order)."""
    if config.executor:
        return config.executor
    pipeline_kind = str((getattr(spec, "raw", None) or {}).get("executor_type") or "").strip().lower()
    if pipeline_kind == "dask":
        return "dask"
    return get("executor") or "local"  # DAGSMITH_EXECUTOR, validated by the settings model


def dask_scheduler(config: RunConfig, project_metadata: Mapping[str, Any]) -> str | None:
    """The scheduler address of a Dask run, or None to start a ``LocalCluster``."""
    if config.dask_scheduler:
        return config.dask_scheduler
    value = (get("dask_scheduler") or "").strip()
    if value:
        return value
    section = project_metadata.get("dask") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(
            "metadata.yaml: 'dask' must be a mapping such as {scheduler: tcp://host:8786}",
        )
    address = section.get("scheduler") or section.get("scheduler_address")
    return str(address) if address else None
