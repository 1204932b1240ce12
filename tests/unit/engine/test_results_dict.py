"""``BlockResult.to_dict`` is written out by hand for speed; it must say what ``asdict`` would."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime, timezone

from dagsmith.engine.results import BlockResult


def _expected(b: BlockResult) -> dict:
    ref = asdict(b)
    for key in ("started_at", "ended_at"):
        if ref[key] is not None:
            ref[key] = ref[key].isoformat()
    ref["seconds"] = b.seconds
    return ref


def test_every_field_is_in_the_dict_in_order_with_asdicts_values():
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    full = BlockResult(
        "x", status="failed", attempts=2, started_at=start, ended_at=start.replace(second=3), rows=3, error="e",
        error_location="f.py:1", traceback="tb", tests_passed=1, tests_total=2, test_failures=["a"], stdout="out",
        extra={"k": [1, {"z": 2}]}, parent="p", dynamic_index=1, skip_reason="no", callbacks=[{"c": 1}],
    )
    for b in (full, BlockResult("y")):
        d = b.to_dict()
        assert d == _expected(b)
        assert list(d) == [f.name for f in fields(BlockResult)] + ["seconds"]
    # containers are copies: changing the dict leaves the result alone
    d = full.to_dict()
    d["extra"]["k"][1]["z"] = 99
    d["test_failures"].append("b")
    assert full.extra["k"][1]["z"] == 2 and full.test_failures == ["a"]
