"""Small plain outputs on a local disk: one line each in the partition's ``_inline.jsonl``.

What a user relies on: what a block returned is what a later reader gets (``--from-run``,
``--resume``, the editor's preview), whichever way it was stored, and a crash mid-write
loses only the block that was being written.
"""

from __future__ import annotations

import json
import os

import pytest

from dagsmith.data.store import OutputsMissing, VariableStore


def test_the_last_write_of_a_block_wins_and_each_reader_sees_it(tmp_path):
    store = VariableStore(tmp_path)
    store.write_outputs("p", "r", "a", [1], multi=False, update_latest=False)
    store.write_outputs("p", "r", "b", [{"x": [1, 2]}, "two"], multi=True, update_latest=False)
    assert store.read_block_value("p", "r", "a") == 1
    store.write_outputs("p", "r", "a", [2], multi=False, update_latest=False)  # a re-run of the block
    other = VariableStore(tmp_path)  # another process reading the same store
    for reader in (store, other):
        assert reader.read_block_value("p", "r", "a") == 2
        assert reader.read_outputs("p", "r", "b") == ([{"x": [1, 2]}, "two"], True)
        assert reader.stored_blocks("p", "r") == ["a", "b"]
        assert reader.has_outputs("p", "r", "a") and not reader.has_outputs("p", "r", "c")
    with pytest.raises(OutputsMissing):
        other.read_outputs("p", "r", "c")


def test_a_block_folder_wins_over_the_log_whichever_size_comes_next(tmp_path):
    store = VariableStore(tmp_path)
    big = [{"i": i, "pad": "x" * 100} for i in range(9000)]  # too big to inline: a folder
    store.write_outputs("p", "r", "a", [1], multi=False, update_latest=False)
    store.write_outputs("p", "r", "a", big, multi=True, update_latest=False)
    assert len(store.read_block_value("p", "r", "a")) == 9000
    store.write_outputs("p", "r", "a", [3], multi=False, update_latest=False)  # small again: into the folder
    assert VariableStore(tmp_path).read_block_value("p", "r", "a") == 3
    assert store.stored_blocks("p", "r") == ["a"]


def test_a_line_torn_by_a_crash_is_not_stored_and_does_not_swallow_the_next(tmp_path):
    store = VariableStore(tmp_path)
    store.write_outputs("p", "r", "a", [1], multi=False, update_latest=False)
    log = store.variables_dir("p") / "r" / "_inline.jsonl"
    with open(log, "ab") as fh:  # a process killed half-way through its write
        fh.write(b'\n{"block": "b", "count": 1, "multi": false, "inl')
    reader = VariableStore(tmp_path)
    assert reader.stored_blocks("p", "r") == ["a"]
    store.write_outputs("p", "r", "c", [3], multi=False, update_latest=False)  # the resumed run goes on
    assert reader.stored_blocks("p", "r") == ["a", "c"]
    assert reader.read_block_value("p", "r", "c") == 3
    with pytest.raises(OutputsMissing):
        reader.read_outputs("p", "r", "b")


def test_concurrent_writers_of_one_partition_never_interleave(tmp_path):
    import threading

    store = VariableStore(tmp_path)
    pad = "y" * 3000

    def write(k: int) -> None:
        for i in range(50):
            store.write_outputs("p", "r", f"w{k}_{i}", [{"k": k, "i": i, "pad": pad}], multi=False, update_latest=False)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [ln for ln in (store.variables_dir("p") / "r" / "_inline.jsonl").read_bytes().split(b"\n") if ln]
    assert len(lines) == 200 and all(json.loads(ln)["inline"][0]["pad"] == pad for ln in lines)
    assert len(VariableStore(tmp_path).stored_blocks("p", "r")) == 200


def test_a_planted_link_in_place_of_the_log_is_refused(tmp_path):
    store = VariableStore(tmp_path)
    store.write_outputs("p", "r", "a", [1], multi=False, update_latest=False)
    log = store.variables_dir("p") / "r" / "_inline.jsonl"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.remove(log)
    log.symlink_to(victim)
    with pytest.raises(OSError):
        store.write_outputs("p", "r", "b", [2], multi=False, update_latest=False)
    assert victim.read_text() == "keep"


def test_a_chain_run_leaves_one_log_line_per_block_and_a_block_run_reads_its_upstream(tmp_path):
    from dagsmith.engine.runner import run_pipeline
    from dagsmith.engine.storage import project_store
    from tests.projects import add_pipeline, make_project

    root = make_project(tmp_path)
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return {'n': 20}\n"},
        {"uuid": "add", "upstream": ["load"], "code": "@transformer\ndef f(d, **kw):\n    return d['n'] + 1\n"},
        {"uuid": "twice", "upstream": ["add"], "code": "@transformer\ndef f(x, **kw):\n    return [x, x * 2]\n"},
    ])
    first = run_pipeline(root, "p")
    assert first.status == "completed"
    store = project_store(root)
    partition = store.variables_dir("p") / first.partition
    assert sorted(p.name for p in partition.iterdir()) == ["_inline.jsonl", "_run.json"]  # no block folders
    assert store.read_block_value("p", first.partition, "twice") == [21, 42]
    # the editor's "run this block": its upstream comes from the stored run
    again = run_pipeline(root, "p", block_uuids=["twice"])
    assert again.status == "completed"
    assert project_store(root).read_block_value("p", again.partition, "twice") == [21, 42]
