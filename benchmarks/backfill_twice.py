"""Benchmark: a 30-day backfill run twice into PostgreSQL; rows after each run (goal: equal).

The course's green-taxi pipeline, backfilled one day at a time with ``dagsmith backfill``
(separate processes, SQLite metadata): the loader reads the month's real TLC file
(``../shared/data/nyc-tlc-data/green/green_tripdata_2021-01.csv.gz``, or
``$DAGSMITH_TEST_DATA/nyc-tlc-data/…``) and keeps the trips picked up on the run's day; the
exporter writes them with ``if_exists='replace_partition'`` on ``lpep_pickup_date`` and no
partition value — each run replaces the day its interval covers. The same backfill with
``if_exists='append'`` runs beside it as the baseline users get from Mage today.

    .venv/bin/python benchmarks/backfill_twice.py [--days 30] [--dsn postgresql://postgres@127.0.0.1:5432/test]

Prints rows (and a per-day checksum) after each backfill, and the wall time of each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import run_process  # noqa: E402


def data_file() -> Path:
    base = Path(os.environ.get("DAGSMITH_TEST_DATA") or REPO.parent / "shared" / "data")
    for candidate in (base, Path("/work/shared/data")):
        path = candidate / "nyc-tlc-data" / "green" / "green_tripdata_2021-01.csv.gz"
        if path.is_file():
            return path
    raise SystemExit("green_tripdata_2021-01.csv.gz not found: set DAGSMITH_TEST_DATA to the shared data folder")


LOADER = """
import pandas as pd
import pyarrow.csv as pacsv

@data_loader
def load(**kwargs):
    start = kwargs['interval_start_datetime'].replace(tzinfo=None)
    end = kwargs['interval_end_datetime'].replace(tzinfo=None)
    table = pacsv.read_csv({path!r}, convert_options=pacsv.ConvertOptions(
        timestamp_parsers=['%Y-%m-%d %H:%M:%S'], column_types={{'store_and_fwd_flag': 'string'}}))
    df = table.to_pandas()
    df = df[(df['lpep_pickup_datetime'] >= start) & (df['lpep_pickup_datetime'] < end)]
    return df
"""

TRANSFORM = """
@transformer
def transform(df, **kwargs):
    df = df[(df['passenger_count'] > 0) & (df['trip_distance'] > 0)].copy()
    df.columns = [c.lower() for c in df.columns]
    df['lpep_pickup_date'] = df['lpep_pickup_datetime'].dt.date
    return df
"""

EXPORTER = """
from os import path
from mage_ai.io.config import ConfigFileLoader
from mage_ai.io.postgres import Postgres
from mage_ai.settings.repo import get_repo_path


@data_exporter
def export(df, **kwargs):
    config = ConfigFileLoader(path.join(get_repo_path(), 'io_config.yaml'), 'dev')
    with Postgres.with_config(config) as pg:
        pg.export(df, {schema!r}, 'green_taxi', if_exists={policy!r}, partition_column='lpep_pickup_date')
"""


def make_project(base: Path, dsn_parts: dict, schema: str, policy: str) -> Path:
    from tests.projects import add_pipeline
    from tests.projects import make_project as scaffold

    root = scaffold(base)
    (root / "io_config.yaml").write_text(textwrap.dedent(f"""\
        version: 0.1.1
        dev:
          POSTGRES_HOST: {dsn_parts['host']}
          POSTGRES_PORT: {dsn_parts['port']}
          POSTGRES_DBNAME: {dsn_parts['dbname']}
          POSTGRES_USER: {dsn_parts['user']}
          POSTGRES_PASSWORD: "{dsn_parts['password']}"
        """))
    add_pipeline(root, "green_taxi_etl", [
        {"uuid": "load_green", "type": "data_loader", "code": LOADER.format(path=str(data_file()))},
        {"uuid": "clean_green", "type": "transformer", "upstream": ["load_green"], "code": TRANSFORM},
        {"uuid": "to_postgres", "type": "data_exporter", "upstream": ["clean_green"],
         "code": EXPORTER.format(schema=schema, policy=policy)},
    ])
    return root


def count(dsn: str, schema: str) -> tuple[int, str]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        total = conn.execute(f'SELECT count(*) FROM "{schema}".green_taxi').fetchone()[0]
        per_day = conn.execute(
            "SELECT md5(string_agg(d || ':' || n, ',')) FROM (SELECT lpep_pickup_date::text AS d, count(*)::text AS n"
            f' FROM "{schema}".green_taxi GROUP BY 1 ORDER BY 1) x'
        ).fetchone()[0]
    return int(total), per_day[:12]


def backfill(root: Path, days: int) -> tuple[float, dict]:
    end = f"2021-01-{days:02d}"
    cmd = [sys.executable, "-m", "dagsmith.cli.app", "backfill", str(root), "green_taxi_etl",
           "--start", "2021-01-01", "--end", end, "--interval", "day", "--concurrency", "2", "--json"]
    wall, _, out = run_process(cmd)  # SQLite metadata under the project (DAGSMITH_DATABASE_URL unset)
    summary = json.loads(out.strip().splitlines()[-1])
    return wall, summary


def main() -> None:
    from urllib.parse import urlparse

    import psycopg

    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    url = urlparse(args.dsn)
    parts = {"host": url.hostname or "127.0.0.1", "port": url.port or 5432, "dbname": url.path.lstrip("/") or "postgres",
             "user": url.username or "postgres", "password": url.password or ""}
    os.environ.pop("DAGSMITH_DATABASE_URL", None)
    print(f"{args.days}-day backfill of green taxi 2021-01 into PostgreSQL, twice ({data_file().name})")
    for policy in ("replace_partition", "append"):
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        root = make_project(Path(tempfile.mkdtemp(prefix="dagsmith-bf-")), parts, schema, policy)
        try:
            results = []
            for n in (1, 2):
                wall, summary = backfill(root, args.days)
                rows, checksum = count(args.dsn, schema)
                results.append(rows)
                print(f"  if_exists={policy!r:19s} backfill {n}: {wall:5.1f} s, {summary['progress']['completed']}/"
                      f"{summary['progress']['total']} runs completed, rows after: {rows:,} (per-day checksum {checksum})")
            verdict = "equal" if results[0] == results[1] else f"x{results[1] / max(results[0], 1):.2f}"
            print(f"  if_exists={policy!r:19s} rows after run 1 vs run 2: {results[0]:,} vs {results[1]:,} → {verdict}")
        finally:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
