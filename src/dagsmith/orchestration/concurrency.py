"""Pipeline-run concurrency limits: where they come from and what happens when one is reached.

Mage's knobs, resolved here for the scheduler and the workers:

* a trigger's ``settings.pipeline_run_limit`` — runs of that trigger at the same time;
* the pipeline's ``concurrency_config.pipeline_run_limit`` (``pipelines/<p>/metadata.yaml``,
  default env ``CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT``) — the same limit for every
  trigger of the pipeline; when both are set the smaller wins;
* the pipeline's ``concurrency_config.pipeline_run_limit_all_triggers`` — runs of the
  pipeline at the same time, whatever started them;
* ``on_pipeline_run_limit_reached`` (trigger ``settings`` first, then the pipeline's
  ``concurrency_config``): ``wait`` (default) keeps a new scheduled run queued until
  there is room; ``skip`` records it as a cancelled run at once.

Pipeline files are read with a small mtime cache, so calling ``limits_for`` on every
worker poll costs a ``stat``. Nothing here touches the database.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

ENV_PIPELINE_RUN_LIMIT = "CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT"
ON_LIMIT_POLICIES = ("wait", "skip")


def positive_int(value: Any) -> int | None:
    """``value`` as a limit: a whole number above 0, else None (no limit)."""
    try:
        number = int(value) if value not in (None, "", False) else None
    except (TypeError, ValueError):
        return None
    return number if number and number > 0 else None


@dataclass(frozen=True)
class PipelineLimits:
    """The concurrency settings a pipeline declares (env default applied)."""

    #: runs at the same time per trigger (None = no pipeline-wide per-trigger limit)
    per_trigger: int | None = None
    #: runs of the pipeline at the same time, all triggers together
    all_triggers: int | None = None
    #: ``wait`` or ``skip``; None when the pipeline does not say
    on_limit_reached: str | None = None


def limits_from_config(config: Mapping[str, Any] | None) -> PipelineLimits:
    """Limits of a ``concurrency_config`` mapping, with ``CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT`` as default."""
    config = config or {}
    per_trigger = positive_int(config.get("pipeline_run_limit"))
    if per_trigger is None:
        per_trigger = positive_int(os.environ.get(ENV_PIPELINE_RUN_LIMIT))
    policy = config.get("on_pipeline_run_limit_reached")
    policy = str(policy).strip().lower() if policy not in (None, "") else None
    return PipelineLimits(
        per_trigger=per_trigger,
        all_triggers=positive_int(config.get("pipeline_run_limit_all_triggers")),
        on_limit_reached=policy if policy in ON_LIMIT_POLICIES else None,
    )


def combined(*limits: int | None) -> int | None:
    """The tightest of several limits (None = unlimited)."""
    present = [x for x in limits if x]
    return min(present) if present else None


def trigger_limit(trigger_settings: Mapping[str, Any] | None, pipeline: PipelineLimits) -> int | None:
    """Runs of one trigger allowed at the same time: its own limit and the pipeline's, the smaller."""
    return combined(positive_int((trigger_settings or {}).get("pipeline_run_limit")), pipeline.per_trigger)


def on_limit_reached(trigger_settings: Mapping[str, Any] | None, pipeline: PipelineLimits) -> str:
    """``skip`` or ``wait`` for a trigger (its settings win over the pipeline's; default ``wait``)."""
    value = (trigger_settings or {}).get("on_pipeline_run_limit_reached")
    if value not in (None, ""):
        value = str(value).strip().lower()
        if value in ON_LIMIT_POLICIES:
            return value
    return pipeline.on_limit_reached or "wait"


class PipelineLimitsCache:
    """``limits_for(pipeline_uuid)``, re-reading a pipeline's metadata.yaml only when it changed."""

    def __init__(self, project_root: str | os.PathLike[str]) -> None:
        self.project_root = Path(project_root)
        self._cache: dict[str, tuple[float | None, str | None, PipelineLimits]] = {}
        self._lock = threading.Lock()

    def limits_for(self, pipeline_uuid: str) -> PipelineLimits:
        from dagsmith.project.pipelines import metadata_path

        path = metadata_path(self.project_root, pipeline_uuid)
        try:
            mtime: float | None = path.stat().st_mtime_ns
        except OSError:
            mtime = None
        env = os.environ.get(ENV_PIPELINE_RUN_LIMIT)
        with self._lock:
            hit = self._cache.get(pipeline_uuid)
            if hit is not None and hit[0] == mtime and hit[1] == env:
                return hit[2]
        limits = limits_from_config(None)
        if mtime is not None:
            try:
                from dagsmith.project.pipelines import read_pipeline_raw

                raw = read_pipeline_raw(self.project_root, pipeline_uuid)
                config = raw.get("concurrency_config")
                limits = limits_from_config(config if isinstance(config, Mapping) else None)
            except Exception:  # noqa: BLE001 - a broken pipeline file fails its run, not the queue
                limits = limits_from_config(None)
        with self._lock:
            self._cache[pipeline_uuid] = (mtime, env, limits)
        return limits

    __call__ = limits_for
