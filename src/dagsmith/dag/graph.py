"""The one graph code of dagsmith: order, neighbours, cycles, layers, subsets.

Every walk over block edges goes through here: the run plan and dynamic layout
(``engine``), pipeline edits (``project.pipelines`` refuses a cycle before it is
written), the graph checks of a run (``project.checks``), a rerun's descendants
(``orchestration.service``) and the UI's drawing (``server.ui.dag``).

Edges are given as ``{node: upstream nodes}``; upstream order is kept because it is
the order of the positional inputs a block receives. Topological order comes from
``graphlib`` and is stable: declaration order, then the order in which nodes become
ready. This module imports nothing of dagsmith's but ``errors``, so every layer may
use it.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one loop as ``[a, b, …, a]`` if ``edges`` (node -> upstreams) has a cycle."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in edges}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for up in edges.get(node, ()):
            if up not in colour:
                continue
            if colour[up] == GREY:
                loop = stack[stack.index(up):] + [up]
                return list(reversed(loop))
            if colour[up] == WHITE:
                found = visit(up)
                if found:
                    return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in edges:
        if colour[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def known_upstream(edges: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """``edges`` with upstreams that are not nodes left out (validation reports those)."""
    return {n: tuple(u for u in ups if u in edges) for n, ups in edges.items()}


def downstream_of(upstream: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """node -> the nodes that list it upstream, in declaration order (upstreams must be nodes)."""
    down: dict[str, list[str]] = {n: [] for n in upstream}
    for n, ups in upstream.items():
        for u in ups:
            down[u].append(n)
    return down


def reachable(neighbours: Mapping[str, Iterable[str]], starts: str | Iterable[str]) -> list[str]:
    """Nodes reached from ``starts`` in one step or more, breadth first, each once.

    With ``neighbours`` the downstream map these are the descendants; with the upstream
    map, the ancestors. A start node is in the result only when a cycle leads back to it.
    """
    todo = list(neighbours.get(starts, ())) if isinstance(starts, str) else [
        n for s in starts for n in neighbours.get(s, ())
    ]
    seen: dict[str, None] = {}
    i = 0
    while i < len(todo):
        n = todo[i]
        i += 1
        if n not in seen:
            seen[n] = None
            todo.extend(neighbours.get(n, ()))
    return list(seen)


def topological_order(upstream: Mapping[str, Iterable[str]]) -> list[str]:
    """Every node after its upstreams (upstreams must be nodes); a cycle is a ``ValidationError``."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for n in upstream:  # declaration order first, so ties keep it
        sorter.add(n)
    for n, ups in upstream.items():
        sorter.add(n, *ups)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError:
        from dagsmith.errors import ValidationError

        loop = " -> ".join(find_cycle(upstream) or ())
        raise ValidationError(f"cycle: {loop}", problems=[f"cycle: {loop}"]) from None


def layers(upstream: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """node -> length of the longest path from a root to it (upstreams must be nodes).

    A cycle, which pipelines refuse on write but a hand-edited file may hold, is cut
    where the walk meets it instead of failing, so a broken pipeline can still be drawn.
    """
    layer: dict[str, int] = {}
    for start in upstream:
        if start in layer:
            continue
        stack = [(start, iter(upstream[start]))]
        visiting = {start}
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                visiting.discard(node)
                layer[node] = 1 + max((layer.get(p, -1) for p in upstream[node] if p in layer), default=-1)
            elif nxt not in layer and nxt not in visiting:
                visiting.add(nxt)
                stack.append((nxt, iter(upstream[nxt])))
    return layer


@dataclass(frozen=True)
class Graph:
    """A DAG of block uuids. Construct with ``Graph.build``; it is never mutated."""

    upstream: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    order: tuple[str, ...] = ()

    @classmethod
    def build(cls, edges: Mapping[str, Iterable[str]]) -> "Graph":
        """Build from node -> upstreams; unknown upstreams are ignored (validation reports them)."""
        up = known_upstream(edges)
        down = downstream_of(up)
        return cls(upstream=up, downstream={n: tuple(d) for n, d in down.items()}, order=tuple(topological_order(up)))

    def descendants(self, node: str) -> set[str]:
        return set(reachable(self.downstream, node))

    def ancestors(self, node: str) -> set[str]:
        return set(reachable(self.upstream, node))

    def roots(self) -> list[str]:
        return [n for n in self.order if not self.upstream[n]]
