"""The typed configuration of one run, and how the executor of a run is chosen.

``RunConfig`` is everything a run needs to know before it starts (which
project, pipeline and blocks, the runtime variables, the executor); the live
objects a run talks to (observer, cancel event, an executor instance) are
passed beside it to ``engine.runner.execute_run``. ``run_pipeline(**keywords)``
builds one of these, so callers that pass keywords keep working.

Executor choice, first match wins: the ``executor`` field (``--executor``), a
pipeline whose metadata says ``executor_type: dask``, ``DAGSMITH_EXECUTOR``,
Mage's ``DEFAULT_EXECUTOR_TYPE`` (what Mage gives pipelines and blocks left at
``local_python``: ``dask`` is honoured, ``local_python``/``local_python_force`` mean
local, Mage's remote types are refused naming the variable and the pipeline, and a
value Mage does not know is ignored as Mage ignores it, with a warning), else ``local``. The Dask scheduler address: ``dask_scheduler``
(``--dask-scheduler``), ``DAGSMITH_DASK_SCHEDULER``, the project's
``dask: {scheduler: …}``; none means a ``LocalCluster`` of processes.

A block's own ``executor_type`` is honoured as Mage does (``block_executor``):
``local_python`` (what Mage writes for every block) or none follows the run's choice,
``local_python_force`` runs the block on this process's threads whatever the run uses,
``dask`` runs it on Dask. A run whose blocks ask for different executors routes each
block to its own (``engine.executors.routed``). Mage's remote executor types (``k8s``,
``ecs``, ``gcp_cloud_run``, ``azure_container_instance``, ``pyspark``) and unknown values
are refused before anything runs, naming pipeline, block and field (``executor_type_problems``).
Like Mage, a value may be a Jinja template (``{{ env_var('EXECUTOR') }}``).

Mage's other executor keys: ``executor_config`` (pipeline or block) configures the
Kubernetes, ECS and Cloud Run jobs Mage starts, and ``executor_count`` makes an ``@once``
trigger start that many copies of a (streaming) pipeline. Neither has a meaning on
dagsmith's executors, so a run with a non-default value warns, naming pipeline, block
and field (``executor_warnings``; ``RunResult.warnings``, printed by ``dagsmith run``
and ``dagsmith validate``) and runs as Mage's local executor would.
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
    cache: bool | None = None
    """``--cache`` (True) / ``--no-cache`` (False); None: the blocks' and pipeline's ``cache:`` decide (``engine.cache``)."""
    keep_exceptions: bool = False
    """Keep each failed block's own exception, traceback included, in ``RunResult.exceptions`` (``--pdb``)."""

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


#: Mage's ``executor_type`` values that run on this machine's threads
LOCAL_TYPES = frozenset({"local_python", "local_python_force", "local"})
#: every ``executor_type`` dagsmith runs (Mage's local ones, and ``dask``)
ACCEPTED_TYPES = LOCAL_TYPES | {"dask"}
#: Mage's remote executors, named for the error that refuses them
MAGE_REMOTE_TYPES = {
    "k8s": "Kubernetes", "ecs": "AWS ECS", "gcp_cloud_run": "Google Cloud Run",
    "azure_container_instance": "Azure Container Instances", "pyspark": "PySpark",
}


def executor_type_of(value: Any) -> str | None:
    """A YAML ``executor_type`` normalised (lower case; a Jinja template rendered); None when unset."""
    if value is None:
        return None
    text = str(value).strip()
    if "{{" in text:
        import os

        import jinja2

        env = jinja2.Environment(autoescape=False)
        env.globals["env_var"] = lambda name, default=None: os.environ.get(name, default)
        text = env.from_string(text).render().strip()
    text = text.lower()
    return None if text in ("", "none", "null") else text


def _type_problem(where: str, value: str, file: str) -> str:
    what = f" ({MAGE_REMOTE_TYPES[value]})" if value in MAGE_REMOTE_TYPES else ""
    return (
        f"{where}: executor_type {value!r}{what} is not supported by dagsmith; set executor_type to"
        f" local_python (threads of this process), local_python_force or dask (a Dask cluster) in {file}"
    )


def executor_type_problems(spec: Any, blocks: Any = None) -> list[str]:
    """One line per ``executor_type`` (the pipeline's, and each block's) that dagsmith cannot honour."""
    problems = []
    file = f"pipelines/{spec.uuid}/metadata.yaml"
    try:
        kind = executor_type_of((getattr(spec, "raw", None) or {}).get("executor_type"))
    except Exception as exc:  # noqa: BLE001 - a broken template is a problem to report, not a crash
        problems.append(f"pipeline '{spec.uuid}': executor_type cannot be rendered ({exc}); fix it in {file}")
        kind = None
    if kind is not None and kind not in ACCEPTED_TYPES:
        problems.append(_type_problem(f"pipeline '{spec.uuid}'", kind, file))
    for block in spec.blocks if blocks is None else blocks:
        try:
            value = executor_type_of(getattr(block, "executor_type", None))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"pipeline '{spec.uuid}', block '{block.uuid}': executor_type cannot be rendered ({exc}); fix it in {file}")
            continue
        if value is not None and value not in ACCEPTED_TYPES:
            problems.append(_type_problem(f"pipeline '{spec.uuid}', block '{block.uuid}'", value, file))
    return problems


def block_executor(config: RunConfig, run_executor: str, block: Any) -> str:
    """Where one block runs: its ``executor_type`` when it names one, else the run's executor.

    ``local_python`` (Mage's default, written on every block) follows the run, as in Mage;
    ``local_python_force`` stays local and a block's ``dask`` goes to Dask, unless
    ``--executor`` named the executor of the whole run (then only ``_force`` stays local).
    """
    kind = executor_type_of(getattr(block, "executor_type", None))
    if kind == "local_python_force":
        return "local"
    if config.executor:
        return config.executor
    if kind == "dask":
        return "dask"
    return run_executor


def choose_executor(config: RunConfig, spec: Any) -> str:
    """The executor name of a run (see the module docstring for the order)."""
    if config.executor:
        return config.executor
    pipeline_kind = executor_type_of((getattr(spec, "raw", None) or {}).get("executor_type")) or ""
    if pipeline_kind == "dask":
        return "dask"
    chosen = get("executor")  # DAGSMITH_EXECUTOR, validated by the settings model
    if chosen:
        return chosen
    return mage_default_executor(getattr(spec, "uuid", "?")) or "local"


#: Mage's environment variable naming the executor of pipelines and blocks left at local_python
MAGE_DEFAULT_ENV = "DEFAULT_EXECUTOR_TYPE"
#: every value Mage's ExecutorType knows (a value outside these is ignored by Mage)
MAGE_TYPES = LOCAL_TYPES | set(MAGE_REMOTE_TYPES)


def mage_default_executor(pipeline_uuid: str) -> str | None:
    """What ``DEFAULT_EXECUTOR_TYPE`` asks of a run of ``pipeline_uuid``: ``dask``, ``local`` or None (unset/unknown).

    Mage's remote types are a ``ConfigError`` naming the variable and the pipeline: running
    such a run on this machine's threads would quietly give it another machine's resources.
    """
    import os

    raw = os.environ.get(MAGE_DEFAULT_ENV)
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value == "dask":
        return "dask"
    if value in LOCAL_TYPES:
        return "local"
    if value in MAGE_REMOTE_TYPES:
        raise ConfigError(
            f"{MAGE_DEFAULT_ENV}={raw.strip()!r} ({MAGE_REMOTE_TYPES[value]}) is not supported by dagsmith: pipeline "
            f"'{pipeline_uuid}' would run its local_python blocks on it",
            hint=f"unset {MAGE_DEFAULT_ENV} or set it to local_python or dask; or choose with --executor local|dask"
            " (or DAGSMITH_EXECUTOR)",
        )
    return None  # Mage ignores a value it does not know; executor_warnings says so


def executor_warnings(spec: Any, blocks: Any = None, *, run_executor: str | None = None) -> list[str]:
    """Mage executor settings a run of ``spec`` (or of ``blocks``) cannot honour, one sentence each.

    ``executor_config`` (pipeline or block, non-empty) and ``executor_count`` (other than 1)
    have no meaning on dagsmith's executors; an unknown ``DEFAULT_EXECUTOR_TYPE`` is ignored
    (as Mage ignores it) unless ``run_executor`` says the run's executor was named elsewhere.
    """
    import os

    file = f"pipelines/{spec.uuid}/metadata.yaml"
    raw = getattr(spec, "raw", None) or {}
    out = []
    if raw.get("executor_config"):
        out.append(
            f"pipeline '{spec.uuid}': executor_config is ignored: it configures Mage's Kubernetes, ECS and Cloud Run"
            f" jobs, and dagsmith runs blocks on threads or Dask (remove it from {file} to silence this)"
        )
    count = raw.get("executor_count")
    if count not in (None, "", 1, "1"):
        try:
            number = int(count)
        except (TypeError, ValueError):
            number = None
        what = f"{count!r} is not a positive whole number" if number is None or number < 1 else f"{number} is not honoured"
        out.append(
            f"pipeline '{spec.uuid}': executor_count {what}: in Mage it makes an @once trigger start that many copies"
            " of a streaming pipeline; dagsmith runs a pipeline once per trigger (parallel blocks:"
            f" concurrency_config.block_run_limit) — set executor_count: 1 or remove it from {file}"
        )
    for block in spec.blocks if blocks is None else blocks:
        if (getattr(block, "raw", None) or {}).get("executor_config"):
            out.append(
                f"pipeline '{spec.uuid}', block '{block.uuid}': executor_config is ignored: it configures Mage's"
                f" Kubernetes, ECS and Cloud Run jobs, and dagsmith runs blocks on threads or Dask ({file})"
            )
    value = (os.environ.get(MAGE_DEFAULT_ENV) or "").strip()
    if value and value.lower() not in MAGE_TYPES and value.lower() != "dask" and run_executor is None:
        out.append(
            f"{MAGE_DEFAULT_ENV}={value!r} is not an executor type Mage knows; ignored as Mage ignores it"
            " (use local_python or dask)"
        )
    return out


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
