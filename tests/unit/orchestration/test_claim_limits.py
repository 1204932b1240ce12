"""The claim's limit arithmetic on its own (``repo.limits``): no database, every combination."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dagsmith.orchestration.store.repo import limits as L


@dataclass
class Q:
    id: int
    pipeline_uuid: str
    trigger_id: int | None = None
    backfill_id: int | None = None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), ("4", 4), (0, None), (-1, None), ("", None), (None, None), ("many", None), ([], None)],
)
def test_a_limit_is_a_positive_integer_or_none(value, expected):
    assert L.positive(value) == expected
    assert L.setting_limit({"pipeline_run_limit": value}) == expected


def test_the_tighter_limit_wins_and_missing_limits_do_not_count():
    assert L.tighter(None, None) is None
    assert L.tighter(5, None) == 5
    assert L.tighter(5, 2, None) == 2
    assert L.trigger_limit({"pipeline_run_limit": 5}, 2) == 2
    assert L.trigger_limit({}, 2) == 2
    assert L.trigger_limit({"pipeline_run_limit": 1}, None) == 1
    assert L.backfill_limit(3, None) == 3
    assert L.backfill_limit(0, None) is None  # concurrency 0 means unlimited, as in Mage
    assert L.backfill_limit(3, 2) == 2


def test_room_is_the_claim_size_cut_by_the_global_limit():
    assert L.room(5, None, 100) == 5
    assert L.room(5, 10, 7) == 3
    assert L.room(5, 10, 10) == 0
    assert L.room(5, 10, 12) == -2  # more running than allowed (limit lowered): nothing is claimed


def test_running_counts_group_by_trigger_backfill_and_pipeline():
    running = L.Running.from_rows([("p", 1, None, 2), ("p", None, 7, 3), ("q", None, None, 1), ("p", 1, None, 1)])
    assert running.by_trigger == {1: 3}
    assert running.by_backfill == {7: 3}
    assert running.by_pipeline == {"p": 6, "q": 1}
    assert (running.trigger_pipeline, running.backfill_pipeline) == ({1: "p"}, {7: "p"})
    assert running.total == 7


def test_saturated_lists_what_is_at_its_limit():
    running = L.Running.from_rows([("p", 1, None, 2), ("p", 2, None, 1), ("q", None, 9, 4)])
    limits = L.Limits(triggers={1: 2, 2: None}, backfills={9: 5}, all_triggers=lambda u: {"p": 3}.get(u))
    full = L.saturated(running, limits)
    assert (full.triggers, full.backfills, full.pipelines) == ([1], [], ["p"])


def test_choose_counts_each_chosen_run_before_judging_the_next():
    candidates = [Q(1, "p", trigger_id=1), Q(2, "p", trigger_id=1), Q(3, "p", trigger_id=1), Q(4, "p", trigger_id=2)]
    running = L.Running()
    chosen = L.choose(candidates, running, L.Limits(triggers={1: 2}), limit=10)
    assert [c.id for c in chosen] == [1, 2, 4]  # the third run of trigger 1 waits; trigger 2 is not held back
    assert running.by_trigger == {}  # the caller's counts are left alone


def test_choose_adds_to_what_already_runs_and_stops_at_the_claim_size():
    running = L.Running.from_rows([("p", None, 5, 1)])
    candidates = [Q(1, "p", backfill_id=5), Q(2, "p", backfill_id=5), Q(3, "q"), Q(4, "q"), Q(5, "q")]
    chosen = L.choose(candidates, running, L.Limits(backfills={5: 2}), limit=3)
    assert [c.id for c in chosen] == [1, 3, 4]


def test_choose_caps_a_pipeline_across_all_its_triggers_and_backfills():
    running = L.Running.from_rows([("p", 1, None, 1)])
    candidates = [Q(1, "p", trigger_id=2), Q(2, "p", backfill_id=3), Q(3, "p"), Q(4, "other")]
    chosen = L.choose(candidates, running, L.Limits(all_triggers=lambda u: 3 if u == "p" else None), limit=10)
    assert [c.id for c in chosen] == [1, 2, 4]


def test_a_run_must_fit_every_limit_that_applies_to_it():
    running = L.Running.from_rows([("p", 1, None, 1)])
    limits = L.Limits(triggers={1: 5}, all_triggers=lambda u: 1)
    assert L.choose([Q(1, "p", trigger_id=1)], running, limits, limit=5) == []
    limits = L.Limits(triggers={1: 1}, all_triggers=lambda u: 9)
    assert L.choose([Q(1, "p", trigger_id=1)], running, limits, limit=5) == []
    limits = L.Limits(triggers={1: 2}, all_triggers=lambda u: 9)
    assert [c.id for c in L.choose([Q(1, "p", trigger_id=1)], running, limits, limit=5)] == [1]
