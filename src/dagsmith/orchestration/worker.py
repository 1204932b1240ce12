"""Workers: claim waiting runs, run them through the engine, heartbeat, stop cleanly.

A ``Worker`` polls the queue (``repo.claim_runs``: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), runs each claimed run in its own thread with a ``RunHistory`` (the one run-history
writer, ``orchestration.history``), and
heart-beats its runs. Claims honour the trigger's, the backfill's and the
pipeline's ``concurrency_config`` limits (``orchestration.concurrency``). A run
whose heartbeat goes stale (its worker was SIGKILLed, the machine died) is put
back in the queue by any scheduler or worker and resumed from its unfinished
blocks: completed blocks are passed to the engine as ``completed`` and read from
the variables store, never run twice.

Everything a worker's runs write (block runs, heartbeats, run ends) goes through one
``RunRecorder`` thread that batches it into few transactions, retries through database
outages while the runs stay claimed, and fences every write with the run's claim count:
a worker never claims a run it is still executing, takes back a run that was handed
back to the queue while it ran (when nobody claimed it since), and stops its copy of a
run another worker claimed.

On PostgreSQL a ``wakeup.QueueListener`` (``LISTEN``) wakes the poll loop the moment
another process queues a run; the poll interval is then only the safety net.

Cancellation: a cancel request (API/UI) reaches the run's ``cancel_event`` at the next
heartbeat, or at once in the same process; the engine stops the running block and
starts nothing downstream. A trigger's ``timeout`` fails the run the same way.

Stopping (SIGTERM): no new claims; runs still going after ``shutdown_grace`` seconds
are cancelled and handed back to the queue, to resume on the next start.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import socket
import threading
import uuid as uuidlib
from datetime import datetime
from typing import Any, Callable

from dagsmith.util.clock import utcnow

log = logging.getLogger("dagsmith.worker")


class _Active:
    def __init__(self, run_id: int, claims: int = 0) -> None:
        self.run_id = run_id
        self.claims = claims  # the claim count this worker saw: the run's fencing token
        self.cancel = threading.Event()
        self.reason: str | None = None  # cancelled | timeout | lost | shutdown


def _default_run_fn(*args: Any, **kwargs: Any):
    from dagsmith.engine import run_pipeline

    # remote (Dask) workers resolve secrets from this project's metadata DB too
    kwargs.setdefault("worker_setup", ("dagsmith.orchestration.secrets:install_project_resolver",))
    return run_pipeline(*args, **kwargs)


class Worker:
    """Executes queued runs of one project; several workers may share one database."""

    def __init__(
        self,
        settings,
        db,
        *,
        run_fn: Callable[..., Any] | None = None,
        clock: Callable[[], datetime] = utcnow,
        worker_id: str | None = None,
        role: str = "worker",
        concurrency: int | None = None,
        backfill_id: int | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.run_fn = run_fn or _default_run_fn
        self.clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuidlib.uuid4().hex[:8]}"
        self.role = role
        self.backfill_id = backfill_id
        self.concurrency = max(1, int(concurrency or settings.worker_concurrency))
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._pool = cf.ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="dagsmith-run")
        self._active: dict[int, _Active] = {}
        self._futures: dict[int, cf.Future] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._secret_values: list[str] | None = None
        self._secret_store = None  # set by register(): the masking source, fed from each claim's transaction
        self._registered = False
        self._recorder = None
        self._recorder_lock = threading.Lock()
        self._pending_beat: cf.Future | None = None
        self._spec_cache: dict[str, tuple[list, tuple[Any, Any]]] = {}
        self._spec_paths: dict[str, list[str]] = {}
        #: the last claim took all it had room for (or had none): more runs may be waiting
        self._more_waiting = True
        self.listener = None  # a wakeup.QueueListener once started on PostgreSQL
        from dagsmith.orchestration.concurrency import PipelineLimitsCache
        from dagsmith.orchestration.contact import DbContact

        #: each pipeline's concurrency_config limits, honoured when claiming
        self.pipeline_limits = PipelineLimitsCache(settings.project_root)
        #: whether this worker may judge others' heartbeats (not right after it was cut off from the DB)
        self.contact = DbContact(settings.heartbeat_timeout)

    # ------------------------------------------------------------------ public
    @property
    def recorder(self):
        """The writer thread of this worker's runs (started on first use)."""
        if self._recorder is None:
            with self._recorder_lock:
                if self._recorder is None:
                    from dagsmith.orchestration.recorder import RunRecorder

                    self._recorder = RunRecorder(self.db, self.worker_id, clock=self.clock, on_lost=self._lost,
                                                 register_worker=self._registered,
                                                 backoff_cap=max(0.05, float(self.settings.heartbeat_interval)))
        return self._recorder

    def register(self) -> None:
        from dagsmith.orchestration.store import repo

        with self.db.session() as session:
            repo.register_worker(session, self.worker_id, self.role, socket.gethostname(), os.getpid(), now=self.clock())
            # runs left "running" by a crashed process of this machine resume now, not after the heartbeat timeout
            repo.recover_dead_local_runs(session, socket.gethostname(), now=self.clock())
        self._registered = True
        self.recorder.register_worker = True
        self._install_secret_resolver()

    def notify(self) -> None:
        """Wake the poll loop now (a run was just queued in this process)."""
        self.wake.set()

    def cancel_local(self, run_id: int) -> bool:
        with self._lock:
            active = self._active.get(int(run_id))
        if active is None:
            return False
        active.reason = active.reason or "cancelled"
        active.cancel.set()
        return True

    @property
    def active_runs(self) -> list[int]:
        with self._lock:
            return list(self._active)

    def step(self) -> list[int]:
        """One poll: claim as many runs as there is room for and start them; returns their ids."""
        from dagsmith.orchestration.store import repo

        if self.stopping.is_set():
            return []
        held = self.active_runs
        room = self.concurrency - len(held)
        if room <= 0:
            self._more_waiting = True  # a wake-up found no room: look again when a run ends
            if len(self.active_runs) < self.concurrency:  # one ended meanwhile, before it could see the flag
                self.wake.set()
            return []
        names: dict[int, tuple[str, Any]] = {}
        report: dict[str, Any] = {}
        with self.db.session() as session:
            runs = repo.claim_runs(
                session,
                self.worker_id,
                limit=room,
                clock=self.clock,
                global_limit=self.settings.global_run_limit,
                backfill_id=self.backfill_id,
                pipeline_limits=self.pipeline_limits,
                exclude_ids=held,
                logs_root=str(self.settings.logs_dir),
                trigger_info=names,
                report=report,
            )
            missing = {r.trigger_id for r in runs if r.trigger_id is not None and r.trigger_id not in names}
            if missing:
                names.update(repo.trigger_names(session, missing))
            claimed = [(r.id, _snapshot(r, names)) for r in runs]
            # fewer than asked for, no limit counted: the queue is empty now, and runs queued later
            # wake this loop (under limits, a run's end may let a waiting run go: look again then)
            self._more_waiting = len(runs) >= room or bool(report.get("limited", True))
            # the stored secrets, read in the claim's transaction: a secret set a moment ago in
            # another process is masked from the run's first log line, without a transaction per run
            ciphertexts = repo.secret_ciphertexts(session) if claimed and self._secret_store is not None else None
        if ciphertexts is not None:
            try:
                self._secret_store.publish(ciphertexts)
            except Exception:  # noqa: BLE001 - each run's log writer then asks the source itself
                log.exception("could not read the stored secrets for masking")
            else:
                for _, snap in claimed:
                    snap["masking_fresh"] = True
        for run_id, snap in claimed:
            active = _Active(run_id, snap["claims"])
            self.recorder.track(run_id, snap["claims"])
            with self._lock:
                self._active[run_id] = active
            self._futures[run_id] = self._pool.submit(self._execute, snap, active)
        return [rid for rid, _ in claimed]

    def run_claimed(self, run_id: int) -> None:
        """Execute, in this thread, a run created already claimed by this worker (``status='running'``,
        ``worker_id=self.worker_id``): how ``trigger_pipeline`` runs a pipeline when no server does."""
        from dagsmith.orchestration.store import repo

        with self.db.read() as session:
            snap = _snapshot(repo.get_run(session, run_id))
        active = _Active(run_id, snap["claims"])
        self.recorder.track(run_id, snap["claims"])
        with self._lock:
            self._active[run_id] = active
        self._execute(snap, active)

    def heartbeat(self, timeout: float | None = None) -> None:
        """Refresh this worker's runs; stop runs that were cancelled or taken over.

        Goes through the recorder (one writer per worker: no lock waits between its own
        transactions); while the database is unreachable the beat stays queued and is
        retried, and no second one is queued behind it.
        """
        if self._pending_beat is None or self._pending_beat.done():
            self._pending_beat = self.recorder.heartbeat()
        wait = max(0.05, float(self.settings.heartbeat_interval)) if timeout is None else timeout
        try:
            states = self._pending_beat.result(timeout=wait)
        except cf.TimeoutError:
            return
        for run_id, state in (states or {}).items():
            if state in ("cancel", "lost"):
                self._stop_local(run_id, "cancelled" if state == "cancel" else "lost")

    def _lost(self, run_id: int) -> None:
        """The recorder found that another worker claimed this run: stop our copy, write nothing more for it."""
        self._stop_local(run_id, "lost")

    def _stop_local(self, run_id: int, reason: str) -> None:
        with self._lock:
            active = self._active.get(run_id)
        if active is not None and not active.cancel.is_set():
            if reason == "lost":
                log.warning("run %s was claimed by another worker; stopping this copy", run_id)
            active.reason = reason
            active.cancel.set()

    def recover(self) -> list[int]:
        """Put runs of workers that stopped heart-beating back in the queue (see ``contact``)."""
        from dagsmith.orchestration.store import repo

        if not self.contact.may_judge():
            return []
        with self.db.session() as session:
            return repo.recover_stale_runs(session, now=self.clock(), timeout=self.settings.heartbeat_timeout, exclude_worker=self.worker_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no run is executing (tests and the CLI backfill use it)."""
        futures = list(self._futures.values())
        done, not_done = cf.wait(futures, timeout=timeout)
        return not not_done

    def start(self, stop: threading.Event) -> None:
        """Run the poll loop and the heartbeat loop in daemon threads until ``stop`` is set."""
        if not self._registered:
            self.register()
        for target, name in ((self._poll_loop, "dagsmith-worker-poll"), (self._heartbeat_loop, "dagsmith-worker-heartbeat")):
            thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if getattr(self.db, "is_postgres", False):  # runs queued by other processes wake this one at once
            from dagsmith.orchestration.wakeup import QueueListener

            self.listener = QueueListener(self.db.url, self.notify)
            self._threads.append(self.listener.start(stop))

    def shutdown(self, grace: float | None = None) -> None:
        """Stop claiming, wait up to ``grace`` s, then hand unfinished runs back to the queue."""
        from dagsmith.orchestration.store import repo

        self.stopping.set()
        self.wake.set()
        grace = self.settings.shutdown_grace if grace is None else grace
        futures = list(self._futures.values())
        if futures:
            cf.wait(futures, timeout=grace)
        with self._lock:
            still = list(self._active.values())
        for active in still:
            active.reason = "shutdown"
            active.cancel.set()
        if futures:
            cf.wait(futures, timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._recorder is not None:
            self._recorder.close(timeout=5)
        if getattr(self, "_resolver", None) is not None:  # the resolver is process-wide: take ours back
            from dagsmith.project import io_config

            if getattr(io_config, "_secret_resolver", None) == self._resolver:
                io_config.set_secret_resolver(None)
            self._resolver = None
        try:
            with self.db.session() as session:
                for run_id in self.active_runs:  # still running: hand back
                    repo.release_run(session, run_id, self.worker_id)
                if self._registered:
                    repo.remove_worker(session, self.worker_id)
        except Exception:  # noqa: BLE001 - the DB may be gone at exit; heartbeats then time out
            log.exception("could not release runs at shutdown")

    # ------------------------------------------------------------------ loops
    def _poll_loop(self, stop: threading.Event) -> None:
        import time

        last_recover = 0.0
        while not stop.is_set() and not self.stopping.is_set():
            try:
                if time.monotonic() - last_recover > self.settings.heartbeat_interval:
                    last_recover = time.monotonic()
                    if self.recover():
                        self.wake.set()
                claimed = self.step()
                self.contact.ok()
            except Exception:  # noqa: BLE001 - keep polling through DB hiccups
                self.contact.failed()
                log.exception("worker poll failed")
                claimed = []
            if claimed and self._more_waiting and len(self.active_runs) < self.concurrency:
                continue  # there may be more waiting
            self.wake.wait(self.settings.poll_interval)
            self.wake.clear()

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        interval = max(0.05, float(self.settings.heartbeat_interval))
        while not stop.wait(interval):
            try:
                self.heartbeat()
            except Exception:  # noqa: BLE001
                log.exception("worker heartbeat failed")

    # ------------------------------------------------------------------ one run
    def _install_secret_resolver(self) -> None:
        try:
            from dagsmith.orchestration.secrets import SecretStore
            from dagsmith.project.io_config import set_secret_resolver

            store = SecretStore(self.db, self.settings.data_dir)
            set_secret_resolver(store.get)
            self._resolver = store.get
            self._secret_values = store.all_values()
            self._secret_store = store
        except Exception:  # noqa: BLE001 - secrets are optional for running
            self._secret_values = []

    def _specs(self, pipeline_uuid: str) -> tuple[Any, Any]:
        """The project and pipeline specs, parsed again only when either metadata.yaml changed,
        or a block folder did (a block file added, removed or renamed changes which file a block uses).

        Reading both YAML files for every run cost a twentieth of a busy worker's time; the
        pipeline spec is handed to the engine too (specs are frozen, so runs share them). The
        files to look at are worked out once per pipeline (the pipeline folder's name gate
        resolves links): a run only ``stat``s them.
        """
        from dagsmith.project.pipelines import load_pipeline, load_project

        paths = self._spec_paths.get(pipeline_uuid)
        if paths is None:
            from dagsmith.project.layout import BLOCK_TYPE_DIRS
            from dagsmith.project.pipelines import METADATA_FILE, metadata_path

            root = self.settings.project_root
            paths = [str(p) for p in (root / METADATA_FILE, metadata_path(root, pipeline_uuid),
                                      *(root / d for d in sorted(set(BLOCK_TYPE_DIRS.values()))))]
            self._spec_paths[pipeline_uuid] = paths
        stamps = []
        for path in paths:
            try:
                stat = os.stat(path)
                stamps.append((stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append(None)
        hit = self._spec_cache.get(pipeline_uuid)
        if hit is not None and hit[0] == stamps:
            return hit[1]
        project = load_project(self.settings.project_root)
        specs = (project, load_pipeline(project.root, pipeline_uuid))
        self._spec_cache[pipeline_uuid] = (stamps, specs)
        return specs

    def _notifier(self, specs: tuple[Any, Any] | None, pipeline_uuid: str, run_id: int, sla: Any, writer: Any) -> Any:
        """The run's alert sender when the project or pipeline configures notifications."""
        try:
            from dagsmith.orchestration.notifications import NotificationObserver

            project, spec = specs if specs is not None else self._specs(pipeline_uuid)
            notifier = NotificationObserver(project, spec, sla=sla, run_ref=lambda: run_id)
        except Exception as exc:  # noqa: BLE001 - a bad notification config must not stop the run
            writer.write(None, {"level": "WARNING", "message": f"notifications disabled for this run: {exc}"})
            return None
        return notifier if notifier.enabled else None

    def _execute(self, snap: dict, active: _Active) -> None:
        from pathlib import Path

        from dagsmith.orchestration.logs import RunLogWriter, run_log_dir
        from dagsmith.orchestration.history import RunHistory, run_error
        from dagsmith.orchestration.scheduler.triggers import get_zone
        from dagsmith.orchestration.store import repo

        run_id = snap["id"]
        timer: threading.Timer | None = None
        writer = None
        status, error = "failed", None
        try:
            log_dir = Path(snap["log_dir"]) if snap["log_dir"] else run_log_dir(self.settings.logs_dir, snap["pipeline_uuid"], run_id)
            writer = RunLogWriter(log_dir, run_id, secrets=self._secret_values or (), refresh=not snap.get("masking_fresh"))
            completed: dict[str, str] = {}
            if snap["claims"] > 1:  # resumed or retried: its finished blocks are not run again
                with self.db.read() as session:
                    completed = repo.completed_blocks(session, run_id, default_partition=snap["partition"])
                writer.info(f"resuming run on worker {self.worker_id}; {len(completed)} block(s) already completed")
            if snap["timeout"]:
                def _time_out() -> None:
                    active.reason = active.reason or "timeout"
                    active.cancel.set()

                timer = threading.Timer(float(snap["timeout"]), _time_out)
                timer.daemon = True
                timer.start()
            zone = get_zone(snap["timezone"])
            interval = None
            if snap["interval_start"] and snap["interval_end"]:
                interval = (snap["interval_start"].astimezone(zone), snap["interval_end"].astimezone(zone))
            observer = RunHistory(self.db, run_id, snap["pipeline_uuid"], log_writer=writer, partition=snap["partition"], recorder=self.recorder)
            try:
                specs = self._specs(snap["pipeline_uuid"])
            except Exception:  # noqa: BLE001 - the engine loads it again and reports the problem as it always did
                specs = None
            notifier = self._notifier(specs, snap["pipeline_uuid"], run_id, snap["sla"], writer)
            if notifier is not None:
                from dagsmith.engine.observer import Fanout

                observer = Fanout([observer, notifier])
            spec = specs[1] if specs is not None else None
            log.info("run %s of %s started (%s, execution date %s)", run_id, snap["pipeline_uuid"],
                     f"trigger {snap['trigger_name']}" if snap["trigger_name"] else "no trigger", snap["execution_date"].isoformat())
            result = self.run_fn(
                self.settings.project_root,
                snap["pipeline_uuid"],
                run_id=str(run_id),
                variables=snap["variables"],
                execution_date=snap["execution_date"].astimezone(zone),
                interval=interval,
                event=snap["event"] or None,
                env=self.settings.env,
                trigger_name=snap["trigger_name"],
                partition=snap["partition"],
                completed=completed or None,
                observer=observer,
                cancel_event=active.cancel,
                max_workers=self.settings.block_run_limit,
                allow_blocks_to_fail=snap["allow_blocks_to_fail"],
                spec=spec,
            )
            status = getattr(result, "status", "failed")
            error = run_error(status, getattr(result, "blocks", {}))
        except Exception as exc:  # noqa: BLE001 - a broken pipeline fails its run, not the worker
            status, error = "failed", str(exc)
            if writer is not None:
                writer.write(None, {"level": "ERROR", "message": f"run failed before it started: {exc}"})
        finally:
            if timer is not None:
                timer.cancel()
        reason = active.reason
        if reason == "timeout":
            status, error = "failed", f"timed out after {snap['timeout']:g} s (trigger setting 'timeout')"
        try:
            # The run stays in _active (heart-beaten) until its end is written: the recorder retries
            # through a database outage, so no other worker finds it stale and runs it again.
            if reason == "shutdown":
                self.recorder.release(run_id).result()
            elif reason != "lost":  # a lost run belongs to another worker now
                if status == "cancelled" and reason != "cancelled" and error is None:
                    error = "cancelled"
                self.recorder.finish(run_id, status, error).result()
            if reason != "lost":
                log.info("run %s of %s %s%s", run_id, snap["pipeline_uuid"],
                         "handed back to the queue" if reason == "shutdown" else status, f": {error}" if error else "")
        except Exception:  # noqa: BLE001 - the recorder is closed (shutdown) or refused the write
            log.exception("could not record the end of run %s", run_id)
        finally:
            self.recorder.untrack(run_id)
            if writer is not None:
                writer.close()
            with self._lock:
                self._active.pop(run_id, None)
            self._futures.pop(run_id, None)
            if self._more_waiting:  # runs waited while this worker was full: claim the next one now
                self.wake.set()


def _snapshot(run, triggers: dict[int, tuple[str, Any]] | None = None) -> dict:
    """The fields a run needs to execute, read while its session is open."""
    name, sla = (triggers or {}).get(run.trigger_id, (None, None))
    return {
        "id": run.id,
        "pipeline_uuid": run.pipeline_uuid,
        "trigger_id": run.trigger_id,
        "trigger_name": name,
        "sla": sla,
        "variables": dict(run.variables or {}),
        "event": dict(run.event or {}),
        "execution_date": run.execution_date,
        "interval_start": run.interval_start,
        "interval_end": run.interval_end,
        "timezone": run.timezone or "UTC",
        "partition": run.partition or str(run.id),
        "log_dir": run.log_dir,
        "claims": run.claims,
        "timeout": run.timeout,
        "allow_blocks_to_fail": bool(run.allow_blocks_to_fail),
    }
