"""The pure run plan: readiness, propagation, children added while a run goes."""

from __future__ import annotations

from dagsmith.engine import plan as P


def test_ready_follows_completions_and_failures_propagate():
    plan = P.RunPlan({"a": [], "b": ["a"], "c": ["b"], "d": []})
    assert plan.ready() == ["a", "d"]
    plan.start("a")
    assert plan.ready() == ["d"]
    assert plan.finish("a", P.COMPLETED) == []
    assert plan.ready() == ["d", "b"]
    plan.start("b")
    assert plan.finish("b", P.FAILED) == ["c"]
    assert plan.status["c"] == P.UPSTREAM_FAILED
    assert plan.outcome() == P.FAILED


def test_condition_failed_skips_descendants_and_the_run_completes():
    plan = P.RunPlan({"load": [], "export": ["load"], "after": ["export"]})
    plan.start("load")
    plan.finish("load", P.COMPLETED)
    plan.start("export")
    assert plan.finish("export", P.CONDITION_FAILED) == ["after"]
    assert plan.status["after"] == P.CONDITION_FAILED
    assert plan.finished() and plan.outcome() == P.COMPLETED


def test_added_children_are_placed_after_their_parent_and_settle_on_failed_upstreams():
    plan = P.RunPlan({"src": [], "grp": ["src"], "x": [], "end": ["grp"]})
    plan.start("src")
    plan.finish("src", P.COMPLETED)
    plan.start("x")
    plan.finish("x", P.FAILED)
    plan.start("grp")
    settled = plan.add_nodes([("grp:0", ("src",), False), ("grp:1", ("src", "x"), False), ("grp:2", ("src",), True)], after="grp")
    assert plan.order[:5] == ["src", "grp", "grp:0", "grp:1", "grp:2"]
    assert settled == ["grp:1"] and plan.status["grp:1"] == P.UPSTREAM_FAILED
    assert plan.status["grp:2"] == P.COMPLETED
    assert plan.ready() == ["grp:0"]
    assert plan.is_ready("grp:0") and not plan.is_ready("end")


def test_thousands_of_children_run_through_the_plan():
    plan = P.RunPlan({"src": [], "grp": ["src"]})
    plan.start("src")
    plan.finish("src", P.COMPLETED)
    plan.start("grp")
    plan.add_nodes([(f"grp:{i}", ("src",), False) for i in range(5000)], after="grp")
    while plan.ready():
        n = plan.ready()[0]
        plan.start(n)
        plan.finish(n, P.COMPLETED)
    assert all(plan.status[f"grp:{i}"] == P.COMPLETED for i in range(5000))
