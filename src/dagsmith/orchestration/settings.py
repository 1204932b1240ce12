"""Settings of the orchestration layer: database URL, intervals, limits, retention.

Values come from keyword arguments first, then ``DAGSMITH_*`` environment
variables (read and validated by ``dagsmith.settings``), then defaults. Nothing here
touches the database or the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from dagsmith.errors import ConfigError
from dagsmith.settings import get
from dagsmith.project.layout import data_dir

CATCHUP_POLICIES = ("none", "latest", "all")


@dataclass(frozen=True)
class OrchestrationSettings:
    """Everything the scheduler, workers and server need to know besides the project.

    ``database_url`` None means SQLite at ``<data dir>/dagsmith.db``.
    """

    project_root: Path
    database_url: str | None = None
    #: seconds between scheduler ticks
    scheduler_interval: float = 1.0
    #: seconds between a worker's polls for new runs (in-process calls wake it at once)
    poll_interval: float = 0.25
    #: seconds between worker heartbeats
    heartbeat_interval: float = 2.0
    #: a running run whose heartbeat is older than this is taken over by another worker
    heartbeat_timeout: float = 30.0
    #: runs one worker process executes at the same time
    worker_concurrency: int = 8
    #: runs executing at the same time across all workers (None = no limit)
    global_run_limit: int | None = None
    #: blocks of one run executing at the same time (None = engine default)
    block_run_limit: int | None = None
    #: default catch-up policy for triggers that do not set one
    catchup: str = "latest"
    #: with catch-up "none", a period that began at most this long ago still runs
    catchup_grace: float = 300.0
    #: at most this many missed periods are created per trigger and tick with catch-up "all"
    max_catchup_runs: int = 1000
    #: days to keep run logs (None or 0 keeps them forever)
    log_retention_days: float | None = 30.0
    #: days to keep finished runs with their block runs, logs and outputs (None or 0 keeps them)
    run_retention_days: float | None = None
    #: largest request body the API accepts, in bytes
    max_body_bytes: int = 1_048_576
    #: environment name matched against a trigger's ``envs``
    env: str | None = None
    #: seconds a stopping worker waits for its runs before handing them back to the queue
    shutdown_grace: float = 10.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, project_root: str | os.PathLike[str], **overrides) -> "OrchestrationSettings":
        """Build settings from ``DAGSMITH_*`` environment variables (docs/settings.md); ``overrides`` win."""
        root = Path(project_root).resolve()
        values: dict = {
            "database_url": get("database_url"),
            "scheduler_interval": get("scheduler_interval"),
            "poll_interval": get("poll_interval"),
            "heartbeat_interval": get("heartbeat_interval"),
            "heartbeat_timeout": get("heartbeat_timeout"),
            "worker_concurrency": get("worker_concurrency"),
            "global_run_limit": get("global_run_limit") or None,
            "block_run_limit": get("block_run_limit") or None,
            "catchup": get("catchup"),
            "log_retention_days": get("log_retention_days"),
            "run_retention_days": get("run_retention_days") or None,
            "max_body_bytes": get("max_body_bytes"),
            "env": get("env"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(project_root=root, **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.catchup not in CATCHUP_POLICIES:
            raise ConfigError(
                f"catch-up policy {self.catchup!r} is unknown",
                hint="use one of: none, latest, all (DAGSMITH_CATCHUP)",
            )

    def with_(self, **changes) -> "OrchestrationSettings":
        return replace(self, **changes)

    @property
    def data_dir(self) -> Path:
        return data_dir(self.project_root)

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the metadata database."""
        if self.database_url:
            url = self.database_url
            # plain postgresql:// means psycopg 3 here (psycopg2 is not a dependency)
            if url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url[len("postgres://"):]
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://"):]
            return url
        return f"sqlite:///{self.data_dir / 'dagsmith.db'}"
