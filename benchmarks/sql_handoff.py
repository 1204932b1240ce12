"""SQL-block hand-off: what it costs to give a 1M-row upstream frame to a SQL block.

    python benchmarks/sql_handoff.py [--rows 1000000] [--repeat 5] [--postgres]

In-process timings (median of ``--repeat``) of the step a SQL block adds before its
query runs: loading the upstream frame into the target database under Mage's
name with replace semantics (``{{ df_1 }}``), and of a whole SQL block
(``SELECT count(*) FROM {{ df_1 }}``, materialize mode) through ``run_sql_block``.

Baselines measured in the same run:
- DuckDB: registering the Arrow table as a view (zero-copy, nothing persisted) —
  the floor for any hand-off;
- PostgreSQL (``--postgres``, server at 127.0.0.1:5432 db ``test``): the connector's
  own ``Postgres.export(df, …, if_exists='replace')`` (ADBC binary COPY) — the SQL
  block must cost the same, since it uses that path.
Target (issue): DuckDB hand-off of 1M rows under 0.2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def frame(rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "vendor_id": rng.integers(1, 3, rows),
        "pickup": pd.date_range("2021-01-01", periods=rows, freq="s", tz="UTC"),
        "passenger_count": rng.integers(0, 6, rows).astype("float64"),
        "trip_distance": rng.random(rows) * 10,
        "fare_amount": rng.random(rows) * 50,
        "pu_location_id": rng.integers(1, 265, rows),
    })


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    walls = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def block_call(root: Path, df, provider: str, schema: str):
    from dagsmith.blocks.context import BlockCall
    from dagsmith.project.pipelines import load_pipeline
    from tests.projects import add_pipeline

    add_pipeline(root, "bench", [
        {"uuid": "up", "type": "data_loader", "code": "@data_loader\ndef f(**kw):\n    return None\n"},
        {"uuid": "q", "type": "transformer", "language": "sql", "upstream": ["up"],
         "configuration": {"data_provider": provider, "data_provider_profile": "default", "data_provider_schema": schema,
                           "export_write_policy": "replace", "limit": 10},
         "code": "SELECT count(*) AS n FROM {{ df_1 }}\n"},
    ])
    spec = load_pipeline(root, "bench")
    block = spec.block("q")
    return lambda: BlockCall(project_root=root, pipeline=spec, block=block, inputs=[df], kwargs={"ds": "2024-01-01"},
                             run_id="bench", partition="bench")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()

    import duckdb
    import pyarrow as pa

    from dagsmith.blocks.sql import run_sql_block
    from dagsmith.blocks.sql.dialects import open_dialect
    from tests.projects import make_project

    df = frame(args.rows)
    work = Path(tempfile.mkdtemp(prefix="dagsmith-sqlbench-"))
    import atexit
    import shutil

    atexit.register(shutil.rmtree, work, True)
    root = make_project(work)
    (root / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n  DUCKDB_DATABASE: wh.duckdb\n")
    print(f"{args.rows:,} rows x {df.shape[1]} columns, median of {args.repeat}")

    # DuckDB baseline: Arrow conversion + zero-copy view
    con = duckdb.connect()

    def view_only():
        con.register("v", pa.Table.from_pandas(df, preserve_index=False))  # pandas -> Arrow is paid here too
        con.execute("SELECT count(*) FROM v").fetchall()
        con.unregister("v")

    base = timed(view_only, args.repeat)
    def duck_handoff():  # what a block does: open its connection, hand the frame over, query it
        dialect = open_dialect("duckdb", root, "default", None)
        try:
            ref = dialect.load_frame(df, "main", "bench_up_v1", persist=False)
            dialect._conn().execute(f"SELECT count(*) FROM {ref}").fetchall()
        finally:
            dialect.close()

    handoff = timed(duck_handoff, args.repeat)
    make = block_call(root, df, "duckdb", "main")
    whole = timed(lambda: run_sql_block(make()), args.repeat)
    print(f"duckdb  baseline (Arrow view, no table)     {base:8.3f} s")
    print(f"duckdb  hand-off df_1 (zero-copy view)     {handoff:8.3f} s   target < 0.200 s   x{handoff / base:.2f} of baseline")
    print(f"duckdb  whole SQL block (count, materialize) {whole:7.3f} s")

    if args.postgres:
        import uuid

        import psycopg

        from dagsmith.io.postgres import Postgres

        schema = f"bench_{uuid.uuid4().hex[:6]}"
        (root / "io_config.yaml").write_text(
            "version: 0.1.1\ndefault:\n  POSTGRES_HOST: 127.0.0.1\n  POSTGRES_PORT: 5432\n  POSTGRES_DBNAME: test\n"
            "  POSTGRES_USER: postgres\n"
        )
        pg = Postgres(dbname="test", host="127.0.0.1", user="postgres")
        try:
            base = timed(lambda: pg.export(df, schema, "direct", if_exists="replace"), max(1, args.repeat // 2))
            dialect = open_dialect("postgres", root, "default", None)
            handoff = timed(lambda: dialect.load_frame(df, schema, "bench_up_v1"), max(1, args.repeat // 2))
            dialect.close()
            make = block_call(root, df, "postgres", schema)
            whole = timed(lambda: run_sql_block(make()), max(1, args.repeat // 2))
            print(f"postgres connector export (ADBC COPY)        {base:8.3f} s")
            print(f"postgres hand-off df_1 (same path)           {handoff:8.3f} s   x{handoff / base:.2f} of connector export")
            print(f"postgres whole SQL block (count, materialize) {whole:7.3f} s")
        finally:
            pg.close()
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
                c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
