"""``RunRecorder``: one writer thread per worker for everything its runs write to the metadata DB.

Block-run changes, run heartbeats and run ends are queued by the engine's threads and
written by one thread, many at a time: whatever is queued when the thread wakes goes in
one transaction. Under load a transaction carries the events of many runs (one commit
instead of one per event). When idle, a run's end or a heartbeat is written as soon as it
is queued; block events nobody waits for linger up to ``LINGER`` seconds for more of their
run, so a short run's rows, its blocks' starts and ends and its end take one transaction.

Every transaction first touches the runs it writes for (``repo.heartbeat_runs`` with
each run's claim count as a fencing token): a run this worker no longer holds gets none
of its writes, and the worker is told (``on_lost``) so it stops its copy. A run handed
back to the queue while it was still running here — and claimed by nobody since — is
taken back.

A transaction that fails for a reason that may pass (the database restarting, a dropped
connection, a lock timeout) is retried with backoff, without end: the runs stay claimed
and heart-beaten by the retries, so a short outage at the end of a run delays its
``completed`` instead of leaving it to be re-run by another worker. Writes that can
never succeed (a value the schema refuses) are dropped one by one and logged, so they
cannot stall the others.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

log = logging.getLogger("dagsmith.worker")

#: seconds before the first retry of a failing transaction; doubles up to the cap (the heartbeat interval)
BACKOFF_START = 0.05
#: seconds block events wait for more of their run before they are written (see ``_loop``)
LINGER = 0.02


def is_transient(exc: BaseException) -> bool:
    """Whether a database error may pass by itself (connection lost, server restarting, lock timeout)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
    return isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError, ConnectionError, TimeoutError))


#: the columns an ensured block-run row gets besides its key and timestamps
_ENSURED = frozenset({"status", "attempts", "partition", "log_path"})


@dataclass
class _Item:
    kind: str  # block | ensure | finish | release | heartbeat
    run_id: int | None = None
    block_uuid: str | None = None
    values: dict = field(default_factory=dict)
    future: cf.Future | None = None


class RunRecorder:
    """Batches the metadata writes of one worker's runs; see the module docstring."""

    def __init__(self, db, worker_id: str, *, clock: Callable[[], datetime], on_lost: Callable[[int], None] | None = None,
                 register_worker: bool = False, backoff_cap: float = 2.0, linger: float = LINGER) -> None:
        self.db = db
        self.linger = linger
        self.backoff_cap = backoff_cap
        self.worker_id = worker_id
        self.clock = clock
        self.on_lost = on_lost
        self.register_worker = register_worker
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._claims: dict[int, int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="dagsmith-recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ API (any thread)
    def track(self, run_id: int, claims: int) -> None:
        """A run this worker now holds, with the claim count it saw (the fencing token)."""
        with self._lock:
            self._claims[int(run_id)] = int(claims)

    def untrack(self, run_id: int) -> None:
        with self._lock:
            self._claims.pop(int(run_id), None)

    def ensure_blocks(self, run_id: int, block_uuids: list[str], *, partition: str | None, log_dir: str | None) -> None:
        self._put(_Item("ensure", run_id, values={"blocks": list(block_uuids), "partition": partition, "log_dir": log_dir}))

    def block(self, run_id: int, block_uuid: str, values: dict[str, Any]) -> None:
        """Set columns of one block run (created if missing); later values for a column win."""
        self._put(_Item("block", run_id, block_uuid, dict(values)))

    def finish(self, run_id: int, status: str, error: str | None = None) -> cf.Future:
        """Record the end of a run; the future says True once written, False if the run was lost."""
        return self._put(_Item("finish", run_id, values={"status": status, "error": error}, future=cf.Future()))

    def release(self, run_id: int) -> cf.Future:
        """Hand a run back to the queue (shutdown); True once written, False if it was not ours."""
        return self._put(_Item("release", run_id, future=cf.Future()))

    def heartbeat(self) -> cf.Future:
        """Touch every tracked run (and the worker's row); the future gives ``{run_id: ok|cancel|lost}``."""
        return self._put(_Item("heartbeat", future=cf.Future()))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (retrying for at most ``timeout`` s), then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self._queue.put(None)
        self._thread.join(timeout + 5)

    def _put(self, item: _Item) -> cf.Future | None:
        if self._closed:
            if item.future is not None:
                item.future.set_exception(RuntimeError("the run recorder is closed"))
            return item.future
        self._queue.put(item)
        return item.future

    # ------------------------------------------------------------------ writer thread
    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            batch: list[_Item] = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            awaited = first is not None and first.future is not None
            deadline: float | None = None
            while True:  # everything queued meanwhile joins this transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    # Block events nobody waits for linger a moment for the rest of their run (its
                    # next events, its end): a short run is then written in one transaction, not
                    # one per event. Anything a caller waits for (a run's end, a heartbeat) goes at once.
                    if stop or awaited or not batch or self.linger <= 0:
                        break
                    if deadline is None:
                        deadline = time.monotonic() + self.linger
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        more = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
                    awaited = awaited or more.future is not None
            if batch:
                self._write_with_retries(batch)

    def _write_with_retries(self, batch: list[_Item]) -> None:
        delay = min(BACKOFF_START, self.backoff_cap)
        while True:
            try:
                results = self._write(batch)
            except Exception as exc:  # noqa: BLE001 - classified below
                if is_transient(exc):
                    if self._closing.is_set() and time.monotonic() > self._deadline:
                        log.error("metadata DB unreachable at shutdown; %d write(s) not recorded: %s", len(batch), exc)
                        self._fail(batch, exc)
                        return
                    log.warning("metadata DB write failed (%s); retrying in %.2f s", type(exc).__name__, delay)
                    time.sleep(delay)
                    delay = min(self.backoff_cap, delay * 2)
                    continue
                if len(batch) > 1:  # find the write the schema refuses; the others go through
                    for item in batch:
                        self._write_with_retries([item])
                    return
                log.error("metadata DB refused a write for run %s (%s); it is dropped", batch[0].run_id, exc)
                self._fail(batch, exc)
                return
            self._resolve(batch, results)
            return

    def _fail(self, batch: list[_Item], exc: BaseException) -> None:
        for item in batch:
            if item.future is not None and not item.future.done():
                item.future.set_exception(exc)

    def _resolve(self, batch: list[_Item], results: dict[int, Any]) -> None:
        for index, item in enumerate(batch):
            if item.future is not None and not item.future.done():
                item.future.set_result(results.get(index))

    def _write(self, batch: list[_Item]) -> dict[int, Any]:
        """One transaction for the whole batch; returns each future's result by batch index."""
        from dagsmith.orchestration.store import repo

        now = self.clock()
        with self._lock:
            claims = dict(self._claims)
        wanted = {item.run_id for item in batch if item.run_id is not None}
        beat = any(item.kind == "heartbeat" for item in batch)
        if beat:
            wanted |= set(claims)
        results: dict[int, Any] = {}
        with self.db.session() as session:
            if beat and self.register_worker:
                repo.worker_heartbeat(session, self.worker_id, now=now)
            states = repo.heartbeat_runs(session, self.worker_id, {rid: claims.get(rid, -1) for rid in wanted}, now=now) if wanted else {}
            ours = {rid for rid, state in states.items() if state != "lost"}
            # One statement for every missing block-run row of the batch, one per column set for
            # block changes (later values for a column win), then each run's end: a run's block
            # events are queued before its end, and rows that exist keep their state when
            # ensured, so writing them in this order gives what writing each event in turn would.
            missing: list[dict] = []
            blocks: dict[tuple[int, str], dict] = {}
            ends: list[tuple[int, _Item]] = []
            for index, item in enumerate(batch):
                if item.kind == "heartbeat":
                    results[index] = {rid: states.get(rid, "lost") for rid in claims}
                elif item.run_id not in ours:
                    results[index] = False
                elif item.kind == "block":
                    blocks.setdefault((item.run_id, item.block_uuid), {}).update(item.values)
                elif item.kind == "ensure":
                    missing.extend(repo.ensure_rows(item.run_id, item.values["blocks"], partition=item.values["partition"],
                                                    log_dir=item.values["log_dir"], now=now))
                else:
                    ends.append((index, item))
            # a row that this batch creates with every column the ensure would set needs no ensure
            missing = [r for r in missing if not _ENSURED.issubset(blocks.get((r["pipeline_run_id"], r["block_uuid"]), ()))]
            if missing:
                repo.insert_missing_block_runs(session, missing)
            if blocks:
                repo.upsert_block_runs(session, [(rid, uuid, values) for (rid, uuid), values in blocks.items()])
            for index, item in ends:
                if item.kind == "finish":
                    results[index] = repo.finish_run(session, item.run_id, self.worker_id, item.values["status"], error=item.values["error"], now=now)
                elif item.kind == "release":
                    results[index] = repo.release_run(session, item.run_id, self.worker_id, now=now)
        lost = [rid for rid, state in states.items() if state == "lost" and rid in claims]
        if lost and self.on_lost is not None:
            for rid in lost:
                try:
                    self.on_lost(rid)
                except Exception:  # noqa: BLE001
                    log.exception("on_lost failed for run %s", rid)
        return results
