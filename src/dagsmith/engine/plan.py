"""The pure state of one pipeline run: which blocks wait, run, finished, and how.

No threads, no I/O: the runner asks ``ready()`` for blocks whose upstreams all
completed, reports ``start``/``finish``, and the plan propagates consequences
(a failure marks every descendant ``upstream_failed``; a false condition marks
the block and its descendants ``condition_failed``). Statuses are Mage's.

Nodes can be added while the run goes (``add_node``): dynamic children, found
when their parent's output is known. Readiness is tracked incrementally (a
count of unsatisfied upstreams per node), so a run with thousands of children
costs O(edges), not O(nodes) per scheduling step.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from dagsmith.dag.graph import downstream_of, known_upstream, reachable

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


def follow_status(status: str) -> str:
    """The status a final, unsatisfied ``status`` gives the blocks downstream of it."""
    if status in (FAILED, UPSTREAM_FAILED):
        return UPSTREAM_FAILED
    return status


class RunPlan:
    """Block statuses of one run over a set of blocks and their upstream edges."""

    def __init__(
        self,
        upstream: Mapping[str, Iterable[str]],
        *,
        order: Iterable[str] | None = None,
        completed: Iterable[str] = (),
    ) -> None:
        self.upstream: dict[str, tuple[str, ...]] = known_upstream(upstream)
        self.order: list[str] = list(order) if order is not None else list(self.upstream)
        self.downstream: dict[str, list[str]] = downstream_of(self.upstream)
        self.status: dict[str, str] = {n: INITIAL for n in self.upstream}
        for n in completed:
            if n in self.status:
                self.status[n] = COMPLETED
        self._blocked: dict[str, int] = {}
        self._ready: dict[str, None] = {}  # insertion-ordered set of INITIAL nodes with all upstreams satisfied
        for n in self.order:
            self._init_counts(n)

    def _init_counts(self, n: str) -> None:
        self._blocked[n] = sum(1 for u in self.upstream[n] if self.status.get(u) not in SATISFIED)
        if self._blocked[n] == 0 and self.status[n] == INITIAL:
            self._ready[n] = None

    # ---------------------------------------------------------------- queries
    def ready(self) -> list[str]:
        """Blocks not started whose upstreams (within the plan) all completed, in the order they became ready."""
        return list(self._ready)

    def is_ready(self, node: str) -> bool:
        return node in self._ready

    def running(self) -> list[str]:
        return [n for n in self.order if self.status[n] in (RUNNING, QUEUED)]

    def finished(self) -> bool:
        return all(s in FINAL for s in self.status.values())

    def descendants(self, node: str) -> list[str]:
        return reachable(self.downstream, node)

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
    def add_node(
        self, node: str, upstream: Iterable[str], *, after: str | None = None, completed: bool = False
    ) -> list[str]:
        """Add a block discovered during the run (a dynamic child); see ``add_nodes``."""
        return self.add_nodes([(node, tuple(upstream), completed)], after=after)

    def add_nodes(self, nodes: Iterable[tuple[str, Iterable[str], bool]], *, after: str | None = None) -> list[str]:
        """Add blocks discovered during the run: ``(node, upstream, completed)`` each, in order.

        ``after`` places them in ``order`` right after that node. ``completed``
        marks a node done already (a child that completed in an earlier attempt
        of the run). Returns the nodes whose status this settled: a node whose
        upstream already failed, was skipped or was cancelled (and what follows it).
        """
        added: list[str] = []
        settled: list[str] = []
        for node, upstream, completed in nodes:
            ups = tuple(upstream)
            missing = [u for u in ups if u not in self.status]
            if missing:
                raise ValueError(f"block {node}: unknown upstream {missing}")
            self.upstream[node] = ups
            self.downstream.setdefault(node, [])
            for u in ups:
                self.downstream[u].append(node)
            self.status[node] = COMPLETED if completed else INITIAL
            added.append(node)
            self._init_counts(node)
            if completed:
                continue
            bad = [self.status[u] for u in ups if self.status[u] in FINAL and self.status[u] not in SATISFIED]
            if bad:
                worst = UPSTREAM_FAILED if any(s in (FAILED, UPSTREAM_FAILED) for s in bad) else bad[0]
                settled += [node, *self._set_final(node, follow_status(worst))]
        if after is not None and after in self.status:
            pos = self.order.index(after) + 1
            self.order[pos:pos] = added
        else:
            self.order.extend(added)
        return settled

    def start(self, node: str) -> None:
        if self.status[node] != INITIAL:
            raise ValueError(f"block {node} cannot start from status {self.status[node]}")
        self.status[node] = RUNNING
        self._ready.pop(node, None)

    def finish(self, node: str, status: str) -> list[str]:
        """Record a block's final status; returns the blocks this made unrunnable."""
        if status not in FINAL:
            raise ValueError(f"not a final status: {status}")
        return self._set_final(node, status)

    def _set_final(self, node: str, status: str) -> list[str]:
        self.status[node] = status
        self._ready.pop(node, None)
        if status in SATISFIED:
            for d in self.downstream.get(node, ()):
                self._blocked[d] -= 1
                if self._blocked[d] == 0 and self.status[d] == INITIAL:
                    self._ready[d] = None
            return []
        follow = follow_status(status)
        changed = []
        for d in self.descendants(node):
            if self.status[d] == INITIAL:
                self.status[d] = follow
                self._ready.pop(d, None)
                changed.append(d)
        return changed

    def cancel_pending(self) -> list[str]:
        changed = [n for n, s in self.status.items() if s == INITIAL]
        for n in changed:
            self.status[n] = CANCELLED
        self._ready.clear()
        return changed
