"""dag.graph, the one graph code: order, neighbours, cycles and layers as every caller needs them."""

from __future__ import annotations

import pytest

from dagsmith.dag.graph import Graph, downstream_of, find_cycle, layers, reachable, topological_order
from dagsmith.errors import ValidationError


def test_order_keeps_declaration_order_among_ready_blocks() -> None:
    # d is declared first but waits for b; a and c are roots, in declaration order
    edges = {"d": ["b"], "a": [], "c": [], "b": ["a"], "e": ["c", "b"]}
    assert topological_order(edges) == ["a", "c", "b", "d", "e"]
    graph = Graph.build(edges)
    assert graph.order == ("a", "c", "b", "d", "e")
    assert graph.roots() == ["a", "c"]
    assert graph.downstream["b"] == ("d", "e")


def test_unknown_upstreams_are_left_to_validation() -> None:
    graph = Graph.build({"a": ["ghost"], "b": ["a"]})
    assert graph.upstream == {"a": (), "b": ("a",)}
    assert graph.order == ("a", "b")


def test_a_cycle_names_its_loop() -> None:
    edges = {"a": [], "b": ["a", "d"], "c": ["b"], "d": ["c"]}
    assert find_cycle(edges) == ["b", "c", "d", "b"]
    with pytest.raises(ValidationError) as caught:
        Graph.build(edges)
    assert "cycle: b -> c -> d -> b" in str(caught.value)


def test_reachable_walks_breadth_first_from_one_or_many_starts() -> None:
    up = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "x": []}
    down = downstream_of(up)
    assert down == {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": [], "x": []}
    assert reachable(down, "a") == ["b", "c", "d"]
    assert reachable(up, "d") == ["b", "c", "a"]
    assert reachable(down, ["b", "x"]) == ["d"]
    graph = Graph.build(up)
    assert graph.descendants("a") == {"b", "c", "d"} and graph.ancestors("d") == {"a", "b", "c"}


def test_layers_are_longest_paths_and_a_cycle_is_cut_not_refused() -> None:
    assert layers({"a": [], "b": ["a"], "c": ["a", "b"], "d": []}) == {"a": 0, "b": 1, "c": 2, "d": 0}
    cut = layers({"a": ["c"], "b": ["a"], "c": ["b"]})  # a hand-edited file may hold a loop
    assert set(cut) == {"a", "b", "c"} and sorted(cut.values()) == [0, 1, 2]
