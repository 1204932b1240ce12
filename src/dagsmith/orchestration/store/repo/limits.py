"""The claim's limit arithmetic, apart from the database: which waiting runs fit under the limits.

Pure functions over plain numbers, so every combination can be tested without a
database (``tests/unit/orchestration/test_claim_limits.py``); ``queue.claim_runs`` reads
the counts and limits, asks these functions, and writes the claim.

Limits, each ``None`` when absent (zero, negative or unreadable values mean no limit,
as in Mage):

* a trigger's ``settings.pipeline_run_limit``, tightened by its pipeline's
  ``concurrency_config.pipeline_run_limit`` (``per_trigger``);
* a backfill's ``concurrency``, tightened by the same ``per_trigger``;
* the pipeline's ``pipeline_run_limit_all_triggers`` (``all_triggers``): running runs
  of the pipeline, whatever made them;
* the global limit: running runs across all workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence, TypeVar


class Queued(Protocol):
    """What the arithmetic needs of a waiting run (a ``PipelineRun`` row has it)."""

    pipeline_uuid: str
    trigger_id: int | None
    backfill_id: int | None


Q = TypeVar("Q", bound=Queued)


def positive(value: Any) -> int | None:
    """A limit as written by a person: a positive integer, else no limit."""
    try:
        value = int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value and value > 0 else None


def setting_limit(settings: dict | None, key: str = "pipeline_run_limit") -> int | None:
    """The limit ``key`` of a trigger's ``settings``."""
    return positive((settings or {}).get(key))


def tighter(*limits: int | None) -> int | None:
    """The smallest of the limits that are set (``None`` when none is)."""
    present = [x for x in limits if x]
    return min(present) if present else None


def trigger_limit(settings: dict | None, per_trigger: int | None) -> int | None:
    """A trigger's own limit tightened by its pipeline's per-trigger limit."""
    return tighter(setting_limit(settings), per_trigger)


def backfill_limit(concurrency: int | None, per_trigger: int | None) -> int | None:
    """A backfill's concurrency tightened by its pipeline's per-trigger limit."""
    return tighter(concurrency if concurrency and concurrency > 0 else None, per_trigger)


def room(limit: int, global_limit: int | None, total_running: int) -> int:
    """How many runs one claim may take: ``limit``, less when the global limit is near (≤ 0: none)."""
    if global_limit is None:
        return limit
    return min(limit, global_limit - total_running)


@dataclass
class Running:
    """Running runs counted per trigger, backfill and pipeline."""

    by_trigger: dict[int, int] = field(default_factory=dict)
    by_backfill: dict[int, int] = field(default_factory=dict)
    by_pipeline: dict[str, int] = field(default_factory=dict)
    #: the pipeline of each counted trigger and backfill (their per-trigger limit is the pipeline's)
    trigger_pipeline: dict[int, str] = field(default_factory=dict)
    backfill_pipeline: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, int | None, int | None, int]]) -> "Running":
        """From ``(pipeline_uuid, trigger_id, backfill_id, count)`` rows (a GROUP BY of running runs)."""
        out = cls()
        for pipe, trig, back, n in rows:
            out._add(pipe, trig, back, n)
        return out

    @property
    def total(self) -> int:
        return sum(self.by_pipeline.values())

    def _add(self, pipe: str, trig: int | None, back: int | None, n: int = 1) -> None:
        self.by_pipeline[pipe] = self.by_pipeline.get(pipe, 0) + n
        if trig is not None:
            self.by_trigger[trig] = self.by_trigger.get(trig, 0) + n
            self.trigger_pipeline[trig] = pipe
        if back is not None:
            self.by_backfill[back] = self.by_backfill.get(back, 0) + n
            self.backfill_pipeline[back] = pipe

    def copy(self) -> "Running":
        return Running(dict(self.by_trigger), dict(self.by_backfill), dict(self.by_pipeline),
                       dict(self.trigger_pipeline), dict(self.backfill_pipeline))


@dataclass
class Limits:
    """The limits in force: per trigger and per backfill (already tightened), and per pipeline."""

    triggers: dict[int, int | None] = field(default_factory=dict)
    backfills: dict[int, int | None] = field(default_factory=dict)
    #: pipeline uuid → its all-triggers limit (None: none)
    all_triggers: Callable[[str], int | None] = lambda _uuid: None


@dataclass(frozen=True)
class Saturated:
    """Triggers, backfills and pipelines already at their limit: the claim's query leaves their runs out."""

    triggers: list[int]
    backfills: list[int]
    pipelines: list[str]


def saturated(running: Running, limits: Limits) -> Saturated:
    return Saturated(
        [t for t, n in running.by_trigger.items() if limits.triggers.get(t) and n >= limits.triggers[t]],
        [b for b, n in running.by_backfill.items() if limits.backfills.get(b) and n >= limits.backfills[b]],
        [p for p, n in running.by_pipeline.items() if limits.all_triggers(p) and n >= limits.all_triggers(p)],
    )


def choose(candidates: Sequence[Q], running: Running, limits: Limits, limit: int) -> list[Q]:
    """The candidates (oldest first) a claim takes: up to ``limit``, each counted before the next is judged.

    A candidate whose trigger, backfill or pipeline is full is passed over and later ones
    still considered, so one saturated trigger never holds back the rest of the queue.
    ``running`` is not changed.
    """
    counts = running.copy()
    chosen: list[Q] = []
    for run in candidates:
        if len(chosen) >= limit:
            break
        if run.trigger_id is not None:
            lim = limits.triggers.get(run.trigger_id)
            if lim and counts.by_trigger.get(run.trigger_id, 0) >= lim:
                continue
        if run.backfill_id is not None:
            lim = limits.backfills.get(run.backfill_id)
            if lim and counts.by_backfill.get(run.backfill_id, 0) >= lim:
                continue
        lim = limits.all_triggers(run.pipeline_uuid)
        if lim and counts.by_pipeline.get(run.pipeline_uuid, 0) >= lim:
            continue
        counts._add(run.pipeline_uuid, run.trigger_id, run.backfill_id)
        chosen.append(run)
    return chosen
