"""Benchmark: the course ETL (csv.gz over HTTP → drop passenger_count == 0 → PostgreSQL, replace).

Data: a deterministic 1,369,765-row yellow-taxi csv.gz (``gen_yellow_taxi.py``), served
over HTTP on 127.0.0.1 by this script. Each case runs as its own process; wall time and
peak RSS are measured for the whole process (median of ``--repeat`` interleaved rounds
after a warm-up, so every case sees the same machine load):

- ``plain``     a plain script running the same course code (the same ``pd.read_csv(url,
                dtype=…, parse_dates=…)`` and filter, same pandas) followed by dagsmith's
                fastest PostgreSQL export — the baseline: what the work itself costs;
- ``dagsmith``  the course's blocks as written (loader, transformer with its ``@test``,
                ``mage_ai.io.postgres`` exporter), run by ``dagsmith run``;
- ``mage``      the same project run by Mage 0.9.80 (``mage run``, from the folder above
                the project), when a Mage venv is given (``--mage-venv``; never installed
                by this repo; pandas 2 only, as Mage pins it).

``plain`` and ``dagsmith`` run once on pandas 2 (this venv) and once on pandas 3 (the
``--pandas3-venv`` that ``scripts/test.sh`` builds), printed side by side. Goals: dagsmith
within 1.2x of ``plain`` (the orchestrator adds almost nothing) and at least 3x faster
than Mage. ``--extras`` adds the hand-written pyarrow + ADBC script and the template
pipeline; then export throughput (rows/s) of the connectors.

    .venv/bin/python benchmarks/course_etl.py [--repeat 3] [--mage-venv /path/to/mage-venv]
        [--pandas3-venv .venv-pandas3] [--pg postgresql://postgres@127.0.0.1:5432/dagsmith_bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = sys.executable
sys.path.insert(0, str(REPO))
from benchmarks.harness import Measure, dagsmith_cmd, report, run_process_usage  # noqa: E402

DAGSMITH = dagsmith_cmd()[0]


CACHE = Path(os.environ.get("DAGSMITH_BENCH_DIR", Path(tempfile.gettempdir()) / "dagsmith-bench"))
FILE_NAME = "yellow_tripdata_2021-01.csv.gz"

from tests.fixtures.course_blocks import COURSE_EXPORTER, COURSE_LOADER, COURSE_TRANSFORMER  # noqa: E402


DTYPES_LITERAL = """{
    'VendorID': pd.Int64Dtype(), 'passenger_count': pd.Int64Dtype(), 'trip_distance': float,
    'RatecodeID': pd.Int64Dtype(), 'store_and_fwd_flag': str, 'PULocationID': pd.Int64Dtype(),
    'DOLocationID': pd.Int64Dtype(), 'payment_type': pd.Int64Dtype(), 'fare_amount': float,
    'extra': float, 'mta_tax': float, 'tip_amount': float, 'tolls_amount': float,
    'improvement_surcharge': float, 'total_amount': float, 'congestion_surcharge': float,
}"""

HAND_SCRIPT = '''
import sys, urllib.request, io
import pyarrow as pa, pyarrow.csv as pacsv, pyarrow.compute as pc
import adbc_driver_postgresql.dbapi as pg

url, dsn = sys.argv[1], sys.argv[2]
body = urllib.request.urlopen(url).read()
types = {{c: pa.int64() for c in ["VendorID", "passenger_count", "RatecodeID", "PULocationID", "DOLocationID", "payment_type"]}}
types.update({{c: pa.timestamp("us") for c in ["tpep_pickup_datetime", "tpep_dropoff_datetime"]}})
types["store_and_fwd_flag"] = pa.string()
table = pacsv.read_csv(pa.CompressedInputStream(pa.BufferReader(body), "gzip"),
                       convert_options=pacsv.ConvertOptions(column_types=types))
table = table.filter(pc.fill_null(pc.greater(table["passenger_count"], 0), False))
with pg.connect(dsn) as conn, conn.cursor() as cur:
    cur.execute("CREATE SCHEMA IF NOT EXISTS ny_taxi_hand")
    cur.adbc_ingest("yellow_cab_data", table, mode="replace", db_schema_name="ny_taxi_hand")
    conn.commit()
print(table.num_rows)
'''


PLAIN_SCRIPT = '''
# the course code as a plain script: same read_csv and filter, then dagsmith's PostgreSQL export
import sys
import pandas as pd
from urllib.parse import urlparse
from dagsmith.io.postgres import Postgres

url, dsn = sys.argv[1], sys.argv[2]
taxi_dtypes = {
    'VendorID': pd.Int64Dtype(), 'passenger_count': pd.Int64Dtype(), 'trip_distance': float,
    'RatecodeID': pd.Int64Dtype(), 'store_and_fwd_flag': str, 'PULocationID': pd.Int64Dtype(),
    'DOLocationID': pd.Int64Dtype(), 'payment_type': pd.Int64Dtype(), 'fare_amount': float,
    'extra': float, 'mta_tax': float, 'tip_amount': float, 'tolls_amount': float,
    'improvement_surcharge': float, 'total_amount': float, 'congestion_surcharge': float,
}
parse_dates = ['tpep_pickup_datetime', 'tpep_dropoff_datetime']
df = pd.read_csv(url, sep=',', compression='gzip', dtype=taxi_dtypes, parse_dates=parse_dates)
df = df[df['passenger_count'] > 0]
u = urlparse(dsn)
with Postgres(dbname=u.path.lstrip('/'), user=u.username or 'postgres', password=u.password,
              host=u.hostname, port=u.port or 5432) as pg:
    pg.export(df, 'ny_taxi', 'yellow_cab_data', index=False, if_exists='replace')
print(len(df))
'''


BLOCKS_ONLY = '''
# the template pipeline's three block files called in order in one process, without the engine
import sys
from pathlib import Path
from dagsmith.blocks.mage_imports import aliasing

project = Path(sys.argv[1])
import os
os.environ["DAGSMITH_REPO_PATH"] = str(project)
value = None
with aliasing():
    for rel in ("data_loaders/load_api_data.py", "transformers/transform_taxi_data.py",
                "data_exporters/taxi_data_to_postgres.py"):
        scope = {}
        exec(compile((project / rel).read_text(), rel, "exec"), scope)
        entry = [f for f in scope.values() if getattr(f, "__dagsmith_kind__", None) in
                 ("data_loader", "transformer", "data_exporter")][0]
        value = entry() if value is None else entry(value)
print(value)
'''


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def make_project(root: Path, pg: dict, name: str) -> Path:
    from dagsmith.project.pipelines import create_pipeline
    from dagsmith.project.scaffold import init_project

    project = init_project(str(root / name))
    (Path(project) / "io_config.yaml").write_text(
        "version: 0.1.1\n"
        "dev:\n"
        f"  POSTGRES_DBNAME: {pg['dbname']}\n"
        "  POSTGRES_SCHEMA: public\n"
        f"  POSTGRES_USER: {pg['user']}\n"
        "  POSTGRES_PASSWORD: \"{{ env_var('POSTGRES_PASSWORD') }}\"\n"
        f"  POSTGRES_HOST: {pg['host']}\n"
        f"  POSTGRES_PORT: {pg['port']}\n"
    )
    (Path(project) / ".env").write_text("POSTGRES_PASSWORD=unused-with-trust-auth\n")  # as the course's .env sets it
    create_pipeline(project, "yellow_taxi_etl")
    return Path(project)


def build_course(root: Path, pg: dict, url: str) -> Path:
    from dagsmith.project.pipelines import add_block

    project = make_project(root, pg, "course")
    add_block(project, "yellow_taxi_etl", "load_api_data", "data_loader",
              content=textwrap.dedent(COURSE_LOADER.format(url=url, prefix='tpep')).lstrip())
    add_block(project, "yellow_taxi_etl", "transform_taxi_data", "transformer", upstream=["load_api_data"],
              content=textwrap.dedent(COURSE_TRANSFORMER).lstrip())
    add_block(project, "yellow_taxi_etl", "taxi_data_to_postgres", "data_exporter", upstream=["transform_taxi_data"],
              content=textwrap.dedent(COURSE_EXPORTER.format(schema='ny_taxi', table='yellow_cab_data')).lstrip())
    return project


def build_templates(root: Path, pg: dict, url: str) -> Path:
    from dagsmith.project.pipelines import add_block

    project = make_project(root, pg, "templates")
    cli = [DAGSMITH, "blocks", "new", str(project), "yellow_taxi_etl"]
    subprocess.run([*cli, "load_api_data", "--type", "data_loader", "--template", "api"], check=True, capture_output=True)
    loader = project / "data_loaders" / "load_api_data.py"
    text = loader.read_text()
    text = text.replace("URL = 'https://example.com/data.csv.gz'", f"URL = '{url}'")
    text = text.replace("DTYPES = {}", f"DTYPES = {DTYPES_LITERAL}")
    text = text.replace("PARSE_DATES = []", "PARSE_DATES = ['tpep_pickup_datetime', 'tpep_dropoff_datetime']")
    loader.write_text(text)
    add_block(project, "yellow_taxi_etl", "transform_taxi_data", "transformer", upstream=["load_api_data"],
              content=textwrap.dedent(COURSE_TRANSFORMER).lstrip())
    subprocess.run([*cli, "taxi_data_to_postgres", "--type", "data_exporter", "--template", "postgres",
                    "--upstream", "transform_taxi_data"], check=True, capture_output=True)
    exporter = project / "data_exporters" / "taxi_data_to_postgres.py"
    text = exporter.read_text()
    text = text.replace("'your_schema_name'", "'ny_taxi'").replace("'your_table_name'", "'yellow_cab_data'")
    text = text.replace("config_profile = 'default'", "config_profile = 'dev'")
    exporter.write_text(text)
    return project


def ensure_database(dsn: str) -> None:
    """Create the benchmark's database when it does not exist yet."""
    from urllib.parse import urlparse

    import psycopg

    u = urlparse(dsn)
    name = u.path.lstrip("/")
    admin = dsn.replace(u.path, "/postgres", 1) if u.path else dsn + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def pg_rows(dsn: str, table: str) -> int:
    # psycopg, not ADBC: ADBC loads pyarrow into this process, and a child's peak RSS on Linux
    # counts the parent memory it was forked from, so the measuring process must stay small
    import psycopg

    with psycopg.connect(dsn) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


EXPECTED_SCRIPT = """
import sys, pyarrow.csv as pacsv, pyarrow.compute as pc
t = pacsv.read_csv(sys.argv[1])
print(int(pc.sum(pc.fill_null(pc.greater(t["passenger_count"], 0), False)).as_py()))
"""


def run_cases(cases: list[dict], repeat: int) -> dict[str, Measure]:
    """Run the cases interleaved (one warm-up round, then ``repeat`` rounds), so each sees the same
    machine load; median wall time and peak RSS per case, each run's result checked. A case with
    ``rounds`` runs only in the last that many rounds (slow baselines such as Mage)."""
    measures = {c["label"]: Measure(c["label"]) for c in cases}
    for round_no in range(repeat + 1):
        for case in cases:
            if round_no < repeat + 1 - case.get("rounds", repeat + 1):
                continue
            wall, rss, cpu, _ = run_process_usage(case["cmd"], cwd=case.get("cwd"), env=case.get("env"))
            case["check"]()
            if round_no > 0 or case.get("rounds", repeat + 1) <= 1:
                measures[case["label"]].walls.append(wall)
                measures[case["label"]].rss_mb.append(rss)
                measures[case["label"]].cpus.append(cpu)
    for label, m in measures.items():
        print(f"  {label:<22} {m.wall:7.2f} s  {m.cpu:7.2f} s CPU  {m.rss:7.0f} MB peak RSS   (runs: "
              + ", ".join(f"{t:.2f}" for t in m.walls) + ")", flush=True)
    return measures


def venv_python(folder: str | None, *names: str) -> Path | None:
    """The Python (or another console script) of a venv folder, when it exists."""
    if not folder:
        return None
    path = Path(folder).expanduser().resolve() / "bin"
    for name in names or ("python",):
        if not (path / name).exists():
            return None
    return path / (names[0] if names else "python")


def throughput(dsn: str, rows: int = 1_000_000) -> list[tuple[str, float]]:
    """Rows/s of each connector's export for the same frame (median of 3)."""
    import numpy as np
    import pandas as pd

    from dagsmith.io.duckdb import DuckDB
    from dagsmith.io.files import FileIO
    from dagsmith.io.postgres import Postgres

    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "zone": pd.array(rng.integers(1, 266, rows), dtype="Int64"),
            "ts": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 31 * 86400, rows), unit="s"),
            "amount": rng.random(rows) * 50,
            "flag": np.where(rng.random(rows) < 0.5, "N", "Y"),
            "day": rng.integers(1, 32, rows),
        }
    )
    out: list[tuple[str, float]] = []
    from urllib.parse import urlparse

    u = urlparse(dsn)
    pg = Postgres(dbname=u.path.lstrip("/"), user=u.username or "postgres", password=u.password,
                  host=u.hostname, port=u.port or 5432)

    def best(fn) -> float:
        samples = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return rows / statistics.median(samples)

    with pg:
        out.append(("PostgreSQL export (replace)", best(lambda: pg.export(df, "dagsmith_bench", "throughput", if_exists="replace"))))
        pg.execute("DROP SCHEMA dagsmith_bench CASCADE")
    tmp = Path(tempfile.mkdtemp(prefix="dagsmith-tp-"))
    try:
        with DuckDB(database=tmp / "w.duckdb") as db:
            out.append(("DuckDB export (replace)", best(lambda: db.export(df, "main", "throughput", if_exists="replace"))))
        fio = FileIO(root=tmp)
        out.append(("partitioned Parquet (31 parts)", best(
            lambda: fio.export_partitioned(df, "parts", ["day"], existing_data_behavior="delete_matching"))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="course ETL benchmark")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=None, help="rows of the generated file (default: the course's 1,369,765)")
    parser.add_argument("--pg", default=os.environ.get("DAGSMITH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/dagsmith_bench"),
                        help="database to write to (created when missing; its own, so tests are not disturbed)")
    parser.add_argument("--pandas3-venv", default=os.environ.get("DAGSMITH_BENCH_PANDAS3_VENV", str(REPO / ".venv-pandas3")),
                        help="a venv with dagsmith installed on pandas 3 (scripts/test.sh builds .venv-pandas3)")
    parser.add_argument("--mage-venv", default=os.environ.get("DAGSMITH_BENCH_MAGE_VENV", str(HERE / ".mage-venv")),
                        help="a venv with mage-ai 0.9.80 (and psycopg2) installed, outside the repo's dependencies")
    parser.add_argument("--mage-rounds", type=int, default=1, help="timed runs of Mage (slow; no warm-up round)")
    parser.add_argument("--extras", action="store_true", help="also the hand-written script and the template pipeline")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    from gen_yellow_taxi import ROWS

    from urllib.parse import urlparse

    rows = args.rows or ROWS
    u = urlparse(args.pg)
    pg = {"host": u.hostname, "port": u.port or 5432, "user": u.username or "postgres", "dbname": u.path.lstrip("/")}
    if u.password:
        os.environ["POSTGRES_PASSWORD"] = u.password
    ensure_database(args.pg)

    print(f"data: {rows:,} rows, generating if missing under {CACHE} …", flush=True)
    data = CACHE / (FILE_NAME if rows == ROWS else f"yellow_{rows}.csv.gz")
    # in another process, so this one stays small (see pg_rows)
    subprocess.run([PY, str(HERE / "gen_yellow_taxi.py"), str(data), "--rows", str(rows)], check=True)
    server, base = serve(data.parent)
    url = f"{base}/{data.name}"
    work = Path(tempfile.mkdtemp(prefix="dagsmith-bench-"))
    py3 = venv_python(args.pandas3_venv, "python", "dagsmith")
    mage = venv_python(args.mage_venv, "mage")
    try:
        # the row count expected after the filter, computed once in another process (see pg_rows)
        expected = int(subprocess.run([PY, "-c", EXPECTED_SCRIPT, str(data)], check=True, capture_output=True,
                                      text=True).stdout.strip())
        plain = work / "plain.py"
        plain.write_text(PLAIN_SCRIPT)
        course = build_course(work, pg, url)
        (work / "mage_data").mkdir()

        def check_table(table: str):
            def check() -> None:
                got = pg_rows(args.pg, table)
                if got != expected:
                    raise SystemExit(f"{table} has {got} rows, expected {expected}")
            return check

        course_table = check_table("ny_taxi.yellow_cab_data")
        run_course = ["run", str(course), "yellow_taxi_etl"]
        cases = [
            {"label": "plain · pandas 2", "cmd": [PY, str(plain), url, args.pg], "check": course_table},
            {"label": "dagsmith · pandas 2", "cmd": [DAGSMITH, *run_course], "check": course_table, "cwd": work},
        ]
        if py3 is not None:
            cases += [
                {"label": "plain · pandas 3", "cmd": [str(py3), str(plain), url, args.pg], "check": course_table},
                {"label": "dagsmith · pandas 3", "cmd": [str(py3.with_name("dagsmith")), *run_course], "check": course_table, "cwd": work},
            ]
        if mage is not None:
            cases.append({
                "label": "mage 0.9.80 · pandas 2", "cmd": [str(mage), *run_course], "check": course_table, "cwd": work,
                "env": {"MAGE_DATA_DIR": str(work / "mage_data")}, "rounds": args.mage_rounds,
            })
        if args.extras:
            hand = work / "hand.py"
            hand.write_text(HAND_SCRIPT.format())
            blocks_only = work / "blocks_only.py"
            blocks_only.write_text(BLOCKS_ONLY)
            templ = build_templates(work, pg, url)
            cases += [
                {"label": "hand (pyarrow+ADBC)", "cmd": [PY, str(hand), url, args.pg], "check": check_table("ny_taxi_hand.yellow_cab_data")},
                {"label": "templates", "cmd": [DAGSMITH, "run", str(templ), "yellow_taxi_etl"], "check": course_table},
                {"label": "blocks (no engine)", "cmd": [PY, str(blocks_only), str(templ)], "check": course_table},
            ]

        print(f"course pipeline, median of {args.repeat} interleaved rounds after a warm-up (rows kept: {expected:,}):", flush=True)
        m = run_cases(cases, args.repeat)
        print("\nratios from this run (each figure measured above, same machine, same load):")
        print(f"  {'':14} {'plain s':>9} {'dagsmith s':>11} {'dagsmith/plain':>15} {'peak MB':>9} {'CPU ratio':>10}   goal <= 1.20"
              f"   (load average {os.getloadavg()[0]:.1f}; on a busy machine the CPU ratio is the steadier figure)")
        for pandas in ("pandas 2", "pandas 3"):
            p, d = m.get(f"plain · {pandas}"), m.get(f"dagsmith · {pandas}")
            if p is None or d is None:
                print(f"  {pandas:14} (no {args.pandas3_venv}: run scripts/test.sh once to build it)")
                continue
            print(f"  {pandas:14} {p.wall:9.2f} {d.wall:11.2f} {d.wall / p.wall:15.2f} {d.rss:9.0f} {d.cpu / p.cpu if p.cpu else float('nan'):10.2f}")
        d2, d3 = m.get("dagsmith · pandas 2"), m.get("dagsmith · pandas 3")
        if d2 and d3:
            print(f"  opting into pandas 3 makes this pipeline {d2.wall / d3.wall:.2f}x faster under dagsmith"
                  f" (peak RSS {d3.rss:.0f} MB vs {d2.rss:.0f} MB)")
        mg = m.get("mage 0.9.80 · pandas 2")
        if mg:
            print(f"  Mage 0.9.80 {mg.wall:.2f} s ({mg.cpu:.2f} s CPU), {mg.rss:.0f} MB peak RSS: dagsmith on pandas 2 is"
                  f" {mg.wall / d2.wall:.2f}x faster (goal >= 3; {mg.cpu / d2.cpu if d2.cpu else float('nan'):.2f}x less CPU)"
                  f" with {d2.rss / mg.rss:.2f} of Mage's peak memory"
                  + (f"; on pandas 3 {mg.wall / d3.wall:.2f}x" if d3 else ""))
        else:
            print(f"  Mage: no venv at {args.mage_venv} (give --mage-venv with mage-ai 0.9.80 installed)")
        if not args.skip_throughput:
            print("export throughput (1,000,000 rows x 6 columns, median of 3):")
            for label, rate in throughput(args.pg):
                print(f"  {label:<32} {rate:>12,.0f} rows/s")
        rest = [x for label, x in m.items() if label != "plain · pandas 2"]
        report("course ETL: csv.gz over HTTP -> filter -> PostgreSQL (replace); baseline: plain script, pandas 2",
               rest, m["plain · pandas 2"])
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        try:
            import psycopg

            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS ny_taxi_hand CASCADE")
        except Exception:
            pass


if __name__ == "__main__":
    main()
