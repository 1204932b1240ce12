"""What a run produced: per-block and whole-run results (plain, picklable data)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime
from typing import Any


@dataclass
class BlockResult:
    block_uuid: str
    status: str = "initial"
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    rows: int | None = None
    error: str | None = None
    error_location: str | None = None
    traceback: str | None = None
    tests_passed: int = 0
    tests_total: int = 0
    test_failures: list[str] = field(default_factory=list)
    stdout: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    """For a dynamic child: the node it belongs to (its block's uuid, or uuid:key when nested)."""
    dynamic_index: int | None = None
    """For a dynamic child: the position of its item in the parent's output."""
    skip_reason: str | None = None
    """For a ``condition_failed`` block: which condition said no."""
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    """Callback outcomes: ``{callback, function, on, status, error, seconds}`` each."""

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.ended_at:
            return (self.ended_at - self.started_at).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        # written out: ``dataclasses.asdict`` deep-copies every value (~1 ms a block), and even a loop
        # over the fields costs a long run's history file more than its blocks; containers are copied
        # one level down, scalars shared (a test keeps the keys equal to the fields)
        started, ended = self.started_at, self.ended_at
        return {
            "block_uuid": self.block_uuid,
            "status": self.status,
            "attempts": self.attempts,
            "started_at": started.isoformat() if started is not None else None,
            "ended_at": ended.isoformat() if ended is not None else None,
            "rows": self.rows,
            "error": self.error,
            "error_location": self.error_location,
            "traceback": self.traceback,
            "tests_passed": self.tests_passed,
            "tests_total": self.tests_total,
            "test_failures": _plain(self.test_failures) if self.test_failures else [],
            "stdout": self.stdout,
            "extra": _plain(self.extra) if self.extra else {},
            "parent": self.parent,
            "dynamic_index": self.dynamic_index,
            "skip_reason": self.skip_reason,
            "callbacks": _plain(self.callbacks) if self.callbacks else [],
            "seconds": (ended - started).total_seconds() if started and ended else None,
        }


_BLOCK_FIELDS = fields(BlockResult)
_SCALARS = frozenset((str, int, float, bool, type(None), datetime))


def _plain(value: Any) -> Any:
    """``value`` with its containers copied (as ``asdict`` would, nested dataclasses as dicts)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


@dataclass
class RunResult:
    run_id: str
    pipeline_uuid: str
    partition: str
    status: str = "running"
    blocks: dict[str, BlockResult] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    execution_date: datetime | None = None
    abandoned_threads: bool = False
    """True when a timed-out or cancelled block's thread may still be running."""
    error: str | None = None
    """Why the run as a whole stopped, when no block is to blame (e.g. the Dask scheduler was lost)."""
    warnings: list[str] = field(default_factory=list)
    """Settings the run could not honour and ran without (Mage's executor_config, executor_count, …)."""
    exceptions: dict[str, BaseException] = field(default_factory=dict, repr=False, compare=False)
    """block → the exception its code raised (only with ``RunConfig.keep_exceptions``; never serialized)."""

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def failed_blocks(self) -> list[str]:
        return [u for u, b in self.blocks.items() if b.status == "failed"]

    @property
    def tests(self) -> tuple[int, int]:
        return (
            sum(b.tests_passed for b in self.blocks.values()),
            sum(b.tests_total for b in self.blocks.values()),
        )

    def to_dict(self) -> dict[str, Any]:
        passed, total = self.tests
        return {
            "run_id": self.run_id,
            "pipeline_uuid": self.pipeline_uuid,
            "partition": self.partition,
            "status": self.status,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "execution_date": self.execution_date.isoformat() if self.execution_date else None,
            "tests_passed": passed,
            "tests_total": total,
            "error": self.error,
            "warnings": list(self.warnings),
            "blocks": {u: b.to_dict() for u, b in self.blocks.items()},
        }
