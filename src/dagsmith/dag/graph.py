"""The immutable graph of a pipeline: order, neighbours and subsets.

Built from ``{uuid: upstream uuids}``; upstream order is kept because it is the
order of the positional inputs a block receives.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Graph:
    """A DAG of block uuids. Construct with ``Graph.build``; it is never mutated."""

    upstream: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    order: tuple[str, ...] = ()

    @classmethod
    def build(cls, edges: Mapping[str, Iterable[str]]) -> "Graph":
        """Build from node -> upstreams; unknown upstreams are ignored (validation reports them)."""
        up = {n: tuple(u for u in ups if u in edges) for n, ups in edges.items()}
        down: dict[str, list[str]] = {n: [] for n in up}
        for n, ups in up.items():
            for u in ups:
                down[u].append(n)
        cycle = find_cycle(up)
        if cycle:
            from dagsmith.errors import ValidationError

            raise ValidationError(f"cycle: {' -> '.join(cycle)}", problems=[f"cycle: {' -> '.join(cycle)}"])
        # Kahn's algorithm, stable in declaration order
        remaining = {n: len(ups) for n, ups in up.items()}
        ready = [n for n in up if remaining[n] == 0]
        order: list[str] = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for d in down[n]:
                remaining[d] -= 1
                if remaining[d] == 0:
                    ready.append(d)
        return cls(upstream=up, downstream={n: tuple(d) for n, d in down.items()}, order=tuple(order))

    def descendants(self, node: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.downstream.get(node, ()))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.downstream.get(n, ()))
        return seen

    def ancestors(self, node: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.upstream.get(node, ()))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.upstream.get(n, ()))
        return seen

    def roots(self) -> list[str]:
        return [n for n in self.order if not self.upstream[n]]
