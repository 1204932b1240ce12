"""Issue 13 figures: the ``dask`` executor against ``local`` on the same machine, in one run.

    .venv/bin/python benchmarks/dask_executor.py [--repeat 3] [--skip-course] [--pg postgresql://…/dagsmith_bench]

1. 8 independent CPU-bound pure-Python blocks: ``local`` (threads: the GIL serialises them)
   against ``dask`` (a LocalCluster of one single-threaded worker process per core, started
   before timing). Goal: dask ≥ 1.8× faster on 2 cores.
2. The dask executor's overhead per trivial block: a chain of 50 trivial blocks minus a
   1-block pipeline, per block (each block is a task, its output a store write and read).
   Goal ≤ 15 ms.
3. 1,000 dynamic children on dask (fan-out, then a reduce), beside the same on local.
4. The course ETL (1,369,765 rows, csv.gz over HTTP → filter → PostgreSQL) by ``dagsmith run``
   with ``--executor dask --dask-scheduler`` (a ``dask scheduler`` / ``dask worker`` cluster
   started first, as in production) against the default local run, interleaved rounds.
   Goal: within 1.3× of local.

The machine is shared and noisy: compare the ratios printed, which are measured in this run.
Cases 1–3 time ``run_pipeline`` in this process (the cluster's start-up is printed apart);
case 4 times whole ``dagsmith run`` processes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

CPU_BLOCK = """
@data_loader
def burn(*args, **kwargs):
    total = 0
    for i in range({n}):
        total += i * i % 7
    return total
"""
TRIVIAL_LOADER = "@data_loader\ndef load(*args, **kwargs):\n    return 1\n"
TRIVIAL_STEP = "@transformer\ndef step(x, *args, **kwargs):\n    return x + 1\n"


def _project(base: Path, name: str) -> Path:
    from tests.projects import make_project

    return make_project(base, name)


def build(base: Path, cpu_loops: int) -> Path:
    from tests.projects import add_pipeline

    root = _project(base, "bench_dask")
    add_pipeline(root, "cpu8", [{"uuid": f"burn_{i}", "type": "data_loader", "code": CPU_BLOCK.format(n=cpu_loops)}
                                for i in range(8)])
    add_pipeline(root, "one", [{"uuid": "only", "type": "data_loader", "code": TRIVIAL_LOADER}])
    chain = [{"uuid": "c0", "type": "data_loader", "code": TRIVIAL_LOADER}]
    chain += [{"uuid": f"c{i}", "upstream": [f"c{i - 1}"], "code": TRIVIAL_STEP} for i in range(1, 50)]
    add_pipeline(root, "chain50", chain)
    add_pipeline(root, "fan1000", [
        {"uuid": "items", "type": "data_loader", "configuration": {"dynamic": True},
         "code": "@data_loader\ndef load(*args, **kwargs):\n    return list(range(1000))\n"},
        {"uuid": "child", "upstream": ["items"], "configuration": {"reduce_output": True},
         "code": "@transformer\ndef step(item, *args, **kwargs):\n    return item * 2\n"},
        {"uuid": "total", "upstream": ["child"], "code": "@transformer\ndef total(values, *args, **kwargs):\n    return sum(values)\n"},
    ])
    return root


def timed(fn, repeat: int) -> float:
    walls = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - started)
        assert result.ok, {u: b.error for u, b in result.blocks.items() if b.error}
    return statistics.median(walls)


def _noop(x):
    return x


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def _machine_parallelism(loops: int, workers: int) -> float:
    """Speed-up of a plain multiprocessing.Pool on the same 8 pieces of work: what this machine gives now."""
    import multiprocessing as mp

    started = time.perf_counter()
    for _ in range(8):
        _burn(loops)
    serial = time.perf_counter() - started
    with mp.Pool(workers) as pool:
        started = time.perf_counter()
        pool.map(_burn, [loops] * 8)
        parallel = time.perf_counter() - started
    return serial / parallel


def _raw_round_trip(client, n: int = 30) -> float:
    """Median seconds of submitting a no-op task and getting its result: Dask's own floor on this machine."""
    walls = []
    for i in range(n):
        started = time.perf_counter()
        client.submit(_noop, i, pure=False).result()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def in_process_cases(repeat: int, cpu_loops: int) -> None:
    from distributed import Client, LocalCluster

    from dagsmith.engine import run_pipeline
    from dagsmith.engine.executors.dask import DaskExecutor

    work = Path(tempfile.mkdtemp(prefix="dagsmith-bench-dask-"))
    os.environ["DAGSMITH_DATA_DIR"] = str(work / "data")
    root = build(work, cpu_loops)
    workers = os.cpu_count() or 2
    started = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=40)
    client = Client(cluster, set_as_default=False)
    startup = time.perf_counter() - started
    try:
        def local(p):
            return lambda: run_pipeline(root, p)

        def dask(p):
            return lambda: run_pipeline(root, p, executor=DaskExecutor(client=client))

        for p in ("one", "chain50", "cpu8", "fan1000"):  # warm-up: imports and block caches on every worker
            local(p)()
            dask(p)()
        rows = []
        for label, p in (("8 CPU-bound blocks", "cpu8"), ("1-block pipeline", "one"), ("chain of 50 trivial blocks", "chain50"),
                         ("1,000 dynamic children + reduce", "fan1000")):
            loc, dsk = [], []
            for _ in range(repeat):  # interleaved, so both see the same machine load
                loc.append(timed(local(p), 1))
                dsk.append(timed(dask(p), 1))
            rows.append((label, statistics.median(loc), statistics.median(dsk)))
        print(f"\n## dask executor vs local (in process; LocalCluster of {workers} single-threaded workers, "
              f"started in {startup:.2f} s, not timed below)")
        print(f"{'case':36} {'local s':>9} {'dask s':>9} {'local/dask':>11}")
        for label, loc_s, dsk_s in rows:
            print(f"{label:36} {loc_s:9.3f} {dsk_s:9.3f} {loc_s / dsk_s:11.2f}")
        by = {label: (loc_s, dsk_s) for label, loc_s, dsk_s in rows}
        cpu_l, cpu_d = by["8 CPU-bound blocks"]
        one_l, one_d = by["1-block pipeline"]
        ch_l, ch_d = by["chain of 50 trivial blocks"]
        fan_l, fan_d = by["1,000 dynamic children + reduce"]
        pool = _machine_parallelism(cpu_loops, workers)
        print(f"  8 CPU-bound blocks: dask {cpu_l / cpu_d:.2f}x faster than local (goal >= 1.8x on 2 cores);"
              f" a plain multiprocessing.Pool({workers}) on the same work: {pool:.2f}x (the parallelism this machine"
              " gives right now)")
        print(f"  dask overhead per trivial block (chain 50 minus 1 block, /49): {(ch_d - one_d) / 49 * 1000:.1f} ms"
              f" (goal <= 15 ms; local: {(ch_l - one_l) / 49 * 1000:.2f} ms)")
        print(f"  1,000 dynamic children on dask: {fan_d:.2f} s ({fan_d:.2f} ms per child; local {fan_l:.2f} s)")
        noop_ms = _raw_round_trip(client) * 1000
        print(f"  for scale: one bare Dask task round trip (submit -> result) here takes {noop_ms:.1f} ms now")
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


def course_case(repeat: int, pg_dsn: str) -> None:
    import course_etl as ce
    from gen_yellow_taxi import ROWS, generate

    from benchmarks.harness import Measure, dagsmith_cmd, run_process
    from tests.fixtures.services import _wait_port, free_port

    from urllib.parse import urlparse

    u = urlparse(pg_dsn)
    pg = {"host": u.hostname, "port": u.port or 5432, "user": u.username or "postgres", "dbname": u.path.lstrip("/")}
    ce.ensure_database(pg_dsn)
    data = generate(ce.CACHE / ce.FILE_NAME)
    server, base = ce.serve(data.parent)
    work = Path(tempfile.mkdtemp(prefix="dagsmith-bench-course-dask-"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_bin = str(Path(sys.executable).with_name("dask"))
    env = dict(os.environ, DAGSMITH_NO_HISTORY="1", DAGSMITH_DATA_DIR=str(work / "data"))
    scheduler = subprocess.Popen([dask_bin, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        _wait_port(port, 60, scheduler, "dask scheduler")
        worker = subprocess.Popen([dask_bin, "worker", address, "--nworkers", str(os.cpu_count() or 2), "--nthreads", "1",
                                   "--host", "127.0.0.1", "--no-dashboard"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        project = ce.build_course(work, pg, f"{base}/{ce.FILE_NAME}")
        ds = dagsmith_cmd()
        cases = [
            ("local", [*ds, "run", str(project), "yellow_taxi_etl"]),
            ("dask", [*ds, "run", str(project), "yellow_taxi_etl", "--executor", "dask", "--dask-scheduler", address]),
        ]
        measures = {label: Measure(label) for label, _ in cases}
        for round_no in range(repeat + 1):  # one warm-up round, then interleaved rounds
            for label, cmd in cases:
                wall, rss, _out = run_process(cmd, env=env)
                rows = ce.pg_rows(pg_dsn, "ny_taxi.yellow_cab_data")
                if round_no:
                    measures[label].walls.append(wall)
                    measures[label].rss_mb.append(rss)
        loc, dsk = measures["local"], measures["dask"]
        print(f"\n## course ETL ({ROWS:,} rows; {rows:,} exported), dagsmith run, median of {repeat} rounds")
        print(f"  local: {loc.wall:.2f} s (peak RSS {loc.rss:.0f} MB); dask: {dsk.wall:.2f} s (client process peak RSS {dsk.rss:.0f} MB)")
        print(f"  dask / local = {dsk.wall / loc.wall:.2f} (goal <= 1.3)")
    finally:
        server.shutdown()
        for proc in (worker, scheduler):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu-loops", type=int, default=6_000_000, help="work per CPU-bound block (~0.5 s on an idle core)")
    ap.add_argument("--skip-course", action="store_true")
    ap.add_argument("--pg", default=os.environ.get("DAGSMITH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/dagsmith_bench"))
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    in_process_cases(args.repeat, args.cpu_loops)
    if not args.skip_course:
        course_case(args.repeat, args.pg)


if __name__ == "__main__":
    main()
