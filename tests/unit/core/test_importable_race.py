"""Several runs starting at once in one worker: ``ensure_importable`` must not race on the import caches."""

from __future__ import annotations

import sys
import threading

from dagsmith.blocks.loader import ensure_importable


def test_concurrent_calls_never_fail_on_the_importer_cache(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    errors: list[BaseException] = []
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within a few calls

    def start_runs() -> None:
        for i in range(200):
            sys.path_importer_cache[f"/no/such/folder{i % 7}.zip"] = None  # entries invalidate_caches deletes
            try:
                ensure_importable(project)
            except KeyError as exc:  # what a run failed with: KeyError('/…/python311.zip')
                errors.append(exc)

    try:
        threads = [threading.Thread(target=start_runs) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
        sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
    assert errors == []
