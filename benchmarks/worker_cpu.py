"""Benchmark: CPU a worker process spends per run, and on what, with nothing else in the process.

Queues ``--runs`` API-trigger runs of the 2-block ``pair`` pipeline in a fresh PostgreSQL
database, then starts one ``Worker`` in this process and lets it drain the queue, arriving
either all at once (``--mode backlog``) or at a steady rate (``--rate`` runs/s, as an open-loop
client would queue them). Prints the process's CPU ms per run, the SQL statements, commits
and pool checkouts per run (counted through SQLAlchemy events), and — with ``--yappi N`` —
the N functions with the most CPU (inclusive, every thread). Beside it, the engine alone
running the same pipeline in the same process (``run_pipeline``, no database): the floor.

    .venv/bin/python benchmarks/worker_cpu.py [--runs 400] [--rate 50] [--yappi 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project, wait_until  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--rate", type=float, default=50.0, help="runs queued per second (0: all before the worker starts)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--yappi", type=int, default=0, help="print the N functions with the most CPU")
    args = parser.parse_args()

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    counts: Counter[str] = Counter()

    @event.listens_for(Engine, "before_cursor_execute")
    def _stmt(conn, cursor, statement, *rest):  # noqa: ANN001
        if threading.current_thread().name != "client":
            counts["statements"] += 1
            counts[" ".join(statement.split()[:3])[:60]] += 1

    @event.listens_for(Engine, "commit")
    def _commit(conn):  # noqa: ANN001
        if threading.current_thread().name != "client":
            counts["commits"] += 1

    @event.listens_for(Pool, "checkout")
    def _checkout(*_a):  # noqa: ANN001
        if threading.current_thread().name != "client":
            counts["checkouts"] += 1

    from dagsmith.engine import run_pipeline
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.service import api_trigger_run, create_trigger
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.worker import Worker

    tmp = Path(tempfile.mkdtemp(prefix="dagsmith-workercpu-"))
    project = make_project(tmp / "proj")
    base = make_project(tmp / "base")
    for i in range(30):
        run_pipeline(base, "pair", run_id=f"w{i}", partition=f"w{i}")
    cpu = time.process_time()
    for i in range(200):
        run_pipeline(base, "pair", run_id=f"b{i}", partition=f"b{i}")
    engine_ms = (time.process_time() - cpu) / 200 * 1000

    url, drop = create_pg_database(args.pg)
    try:
        settings = OrchestrationSettings.from_env(project, database_url=url.replace("postgresql://", "postgresql+psycopg://"))
        db = get_database(settings)
        trigger_id = create_trigger(db, project, "pair", {"name": "load", "schedule_type": "api", "status": "active"}, actor="bench")
        from dagsmith.orchestration.store import repo

        with db.read() as session:
            token = repo.get_trigger(session, trigger_id).token
        stop = threading.Event()
        worker = Worker(settings, db)
        worker.start(stop)

        def queue(n: int, tag: str) -> list[int]:
            ids = []
            start = time.perf_counter()
            for i in range(n):
                if args.rate:
                    delay = start + i / args.rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                ids.append(api_trigger_run(db, trigger_id, token, {"pipeline_run": {"variables": {"i": i, "tag": tag}}}).id)
                worker.notify()
            return ids

        def finished(ids: list[int]) -> bool:
            with db.read() as session:
                return repo.count_runs(session, trigger_id=trigger_id).get("completed", 0) >= ids_total[0]

        ids_total = [0]
        warm = queue(40, "warm")
        ids_total[0] = len(warm)
        wait_until(lambda: finished(warm), 120, 0.1, "warm-up drained")
        counts.clear()
        if args.yappi:
            import yappi

            yappi.set_clock_type("cpu")
            yappi.start()
        cpu = time.process_time()
        # the client's own CPU (creating runs) is measured apart and taken out
        client_cpu = [0.0]

        def client() -> None:
            t0 = time.thread_time()
            queue(args.runs, "load")
            client_cpu[0] = time.thread_time() - t0

        thread = threading.Thread(target=client, name="client")
        thread.start()
        thread.join()
        ids_total[0] = len(warm) + args.runs
        wait_until(lambda: finished([]), 300, 0.05, "drained")
        total_cpu = time.process_time() - cpu
        if args.yappi:
            yappi.stop()
        stop.set()
        worker.shutdown(5)
        per = lambda v: v / args.runs  # noqa: E731
        print(f"engine alone: {engine_ms:.1f} CPU ms/run; load avg {os.getloadavg()[0]:.1f}")
        print(f"worker: {per((total_cpu - client_cpu[0]) * 1000):.1f} CPU ms/run (process {per(total_cpu * 1000):.1f}, "
              f"client's API calls {per(client_cpu[0] * 1000):.1f}); {args.runs} runs at {args.rate:g}/s")
        worker_counts = dict(counts)
        print("per run, excluding the client's calls: " + ", ".join(f"{k} {per(worker_counts.get(k, 0)):.2f}" for k in ("statements", "commits", "checkouts")))
        for k, v in sorted(worker_counts.items(), key=lambda kv: -kv[1]):
            if k not in ("statements", "commits", "checkouts") and v > 0:
                print(f"  {per(v):6.2f}  {k}")
        if args.yappi:
            import yappi

            stats = yappi.get_func_stats()
            stats.sort("ttot")
            print(f"yappi (CPU clock, all threads), top {args.yappi} by inclusive time, ms per run:")
            for row in list(stats)[: args.yappi]:
                print(f"  {row.ttot / args.runs * 1000:7.2f} {row.tsub / args.runs * 1000:7.2f}  {row.ncall / args.runs:7.1f}  {row.name[:50]:50s} {row.module.split('site-packages/')[-1].split('src/')[-1][-50:]}:{row.lineno}")
    finally:
        drop()


if __name__ == "__main__":
    main()
