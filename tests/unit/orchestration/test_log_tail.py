"""``tail_logs``: what a live run page reads at each refresh — only the records written since its
last one, whole lines only, the last ``keep`` at most, and a rewritten log noticed."""

from __future__ import annotations

from dagsmith.orchestration.logs import RunLogWriter, tail_logs


def _messages(tail) -> list[str]:
    return [r["message"] for r in tail.records]


def test_each_read_returns_what_was_written_since_the_last(tmp_path):
    writer = RunLogWriter(tmp_path, 7, refresh=False)
    assert tail_logs(tmp_path) == ([], 0, False, 0)  # nothing written yet
    writer.info("one")
    writer.write("blk", {"message": "two"})
    first = tail_logs(tmp_path)
    assert _messages(first) == ["one", "two"] and first.next == (tmp_path / "pipeline.jsonl").stat().st_size
    assert tail_logs(tmp_path, after=first.next).records == []
    writer.write("blk", {"message": "three"})
    second = tail_logs(tmp_path, after=first.next)
    assert _messages(second) == ["three"] and not second.reset
    # one block's own log, and the last `keep` records with how many were left out
    assert _messages(tail_logs(tmp_path, block_uuid="blk")) == ["two", "three"]
    kept = tail_logs(tmp_path, keep=2)
    assert _messages(kept) == ["two", "three"] and kept.dropped == 1 and kept.next == second.next
    writer.close()


def test_a_line_still_being_written_waits_for_the_next_read(tmp_path):
    path = tmp_path / "pipeline.jsonl"
    path.write_text('{"message": "whole", "level": "INFO"}\n{"message": "ha')
    tail = tail_logs(tmp_path)
    assert _messages(tail) == ["whole"] and tail.next == len('{"message": "whole", "level": "INFO"}\n')
    with open(path, "a") as handle:
        handle.write('lf", "level": "INFO"}\nnot json\n')
    assert _messages(tail_logs(tmp_path, after=tail.next)) == ["half", "not json"]


def test_a_log_shorter_than_the_offset_is_read_again_from_its_start(tmp_path):
    path = tmp_path / "pipeline.jsonl"
    path.write_text('{"message": "new start"}\n')
    tail = tail_logs(tmp_path, after=10_000)
    assert tail.reset and _messages(tail) == ["new start"]
    assert tail_logs(tmp_path / "gone", after=5).reset
