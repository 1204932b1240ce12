"""The pure state of one pipeline run: which blocks wait, run, finished, and how.

No threads, no I/O: the runner asks ``ready()`` for blocks whose upstreams all
completed, reports ``start``/``finish``, and the plan propagates consequences
(a failure marks every descendant ``upstream_failed``; a false condition marks
the block and its descendants ``condition_failed``). Statuses are Mage's.
"""

from __future__ import annotations

from typing import Iterable, Mapping

INITIAL = "initial"
QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
UPSTREAM_FAILED = "upstream_failed"
CONDITION_FAILED = "condition_failed"

FINAL = frozenset({COMPLETED, FAILED, CANCELLED, UPSTREAM_FAILED, CONDITION_FAILED})
#: statuses whose blocks produced what their downstream needs
SATISFIED = frozenset({COMPLETED})


class RunPlan:
    """Block statuses of one run over a set of blocks and their upstream edges."""

    def __init__(
        self,
        upstream: Mapping[str, Iterable[str]],
        *,
        order: Iterable[str] | None = None,
        completed: Iterable[str] = (),
    ) -> None:
        self.upstream: dict[str, tuple[str, ...]] = {n: tuple(u for u in ups if u in upstream) for n, ups in upstream.items()}
        self.order: list[str] = list(order) if order is not None else list(self.upstream)
        self.downstream: dict[str, list[str]] = {n: [] for n in self.upstream}
        for n, ups in self.upstream.items():
            for u in ups:
                self.downstream[u].append(n)
        self.status: dict[str, str] = {n: INITIAL for n in self.upstream}
        for n in completed:
            if n in self.status:
                self.status[n] = COMPLETED

    # ---------------------------------------------------------------- queries
    def ready(self) -> list[str]:
        """Blocks not started whose upstreams (within the plan) all completed, in plan order."""
        out = []
        for n in self.order:
            if self.status[n] != INITIAL:
                continue
            if all(self.status[u] in SATISFIED for u in self.upstream[n]):
                out.append(n)
        return out

    def running(self) -> list[str]:
        return [n for n in self.order if self.status[n] in (RUNNING, QUEUED)]

    def finished(self) -> bool:
        return all(s in FINAL for s in self.status.values())

    def descendants(self, node: str) -> list[str]:
        seen: list[str] = []
        todo = list(self.downstream.get(node, ()))
        while todo:
            n = todo.pop(0)
            if n not in seen:
                seen.append(n)
                todo.extend(self.downstream.get(n, ()))
        return seen

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.status.values():
            out[s] = out.get(s, 0) + 1
        return out

    def outcome(self, *, allow_blocks_to_fail: bool = False) -> str:
        """``completed``, ``failed`` or ``cancelled`` for the whole run."""
        values = set(self.status.values())
        if CANCELLED in values:
            return CANCELLED
        if values & {FAILED, UPSTREAM_FAILED} and not allow_blocks_to_fail:
            return FAILED
        return COMPLETED

    # ---------------------------------------------------------------- changes
    def add_node(self, node: str, upstream: Iterable[str], *, after: str | None = None) -> None:
        """Add a block discovered during the run (dynamic children)."""
        ups = tuple(upstream)
        self.upstream[node] = ups
        self.downstream.setdefault(node, [])
        for u in ups:
            self.downstream.setdefault(u, []).append(node)
        self.status[node] = INITIAL
        if after is not None and after in self.order:
            self.order.insert(self.order.index(after) + 1, node)
        else:
            self.order.append(node)

    def start(self, node: str) -> None:
        if self.status[node] != INITIAL:
            raise ValueError(f"block {node} cannot start from status {self.status[node]}")
        self.status[node] = RUNNING

    def finish(self, node: str, status: str) -> list[str]:
        """Record a block's final status; returns the blocks this made unrunnable."""
        if status not in FINAL:
            raise ValueError(f"not a final status: {status}")
        self.status[node] = status
        if status == COMPLETED:
            return []
        follow = UPSTREAM_FAILED if status in (FAILED, UPSTREAM_FAILED) else status
        if status == CANCELLED:
            follow = CANCELLED
        changed = []
        for d in self.descendants(node):
            if self.status[d] == INITIAL:
                self.status[d] = follow
                changed.append(d)
        return changed

    def cancel_pending(self) -> list[str]:
        changed = [n for n, s in self.status.items() if s == INITIAL]
        for n in changed:
            self.status[n] = CANCELLED
        return changed
