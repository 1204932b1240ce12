"""The server-side DAG layout."""

from __future__ import annotations


def test_layers_follow_dependencies():
    from dagsmith.server.ui.dag import layout

    lay = layout([("load", "data_loader", []), ("clean", "transformer", ["load"]), ("other", "data_loader", []),
                  ("join", "transformer", ["clean", "other"]), ("export", "data_exporter", ["join"])])
    by = {n.uuid: n for n in lay.nodes}
    assert by["load"].layer == 0 and by["other"].layer == 0 and by["clean"].layer == 1
    assert by["join"].layer == 2 and by["export"].layer == 3
    assert by["export"].y > by["join"].y > by["clean"].y > by["load"].y
    assert len(lay.edges) == 4 and all(d.startswith("M") for _s, _t, d in lay.edges)
    assert all(0 <= n.x <= lay.width and 0 <= n.y <= lay.height for n in lay.nodes)


def test_big_graph_and_unknown_upstreams_and_cycles_do_not_break_it():
    from dagsmith.server.ui.dag import layout

    blocks = [(f"b{i}", "transformer", [f"b{i - 1}", f"b{i - 7}"] if i >= 7 else ([f"b{i - 1}"] if i else ["ghost"])) for i in range(500)]
    lay = layout(blocks)
    assert len(lay.nodes) == 500 and max(n.layer for n in lay.nodes) == 499
    cyclic = layout([("a", "transformer", ["b"]), ("b", "transformer", ["a"])])
    assert len(cyclic.nodes) == 2
