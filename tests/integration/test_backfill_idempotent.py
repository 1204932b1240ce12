"""Idempotent backfills: ``if_exists='replace_partition'`` on every target, run twice, gives the same rows.

Each test builds a real project whose loader makes a different number of trips per day and
whose exporter (Mage's ``mage_ai.io`` calls, or a SQL block) writes them with
``replace_partition`` and no partition value: the partition comes from the run's interval.
Three daily runs, then the same three again: the target must hold exactly one copy.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import uuid

import pandas as pd
import pytest

from dagsmith.engine import run_pipeline
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration

DAYS = [dt.datetime(2021, 1, d, tzinfo=dt.timezone.utc) for d in (4, 5, 6)]

LOADER = """
import datetime as dt
import pandas as pd

@data_loader
def load(**kwargs):
    day = kwargs['execution_date'].date()
    n = 3 + day.day % 4
    return pd.DataFrame({
        'trip_id': [day.day * 100 + i for i in range(n)],
        'pickup_date': [day] * n,
        'pickup_datetime': [dt.datetime(day.year, day.month, day.day, 3 * i) for i in range(n)],
        'fare': [1.5 * i for i in range(n)],
    })
"""


def expected_trips() -> list[int]:
    return sorted(d.day * 100 + i for d in DAYS for i in range(3 + d.day % 4))


def exporter(body: str) -> str:
    """A Mage-style exporter block: ``import`` lines of ``body`` go to the top of the file (Mage's
    names resolve while the block file loads), the rest into the function."""
    lines = textwrap.dedent(body).strip().splitlines()
    imports = [ln for ln in lines if ln.startswith(("from ", "import "))]
    rest = [ln for ln in lines if ln not in imports]
    return textwrap.dedent(
        """
        from os import path
        from mage_ai.io.config import ConfigFileLoader
        from mage_ai.settings.repo import get_repo_path
        """
    ) + "\n".join(imports) + textwrap.dedent(
        """


        @data_exporter
        def export(df, **kwargs):
            config = ConfigFileLoader(path.join(get_repo_path(), 'io_config.yaml'), 'default')
        """
    ) + textwrap.indent("\n".join(rest), "    ") + "\n"


def project_with(tmp_path, io_config: str, export_block: dict) -> object:
    root = make_project(tmp_path)
    (root / "io_config.yaml").write_text(io_config)
    add_pipeline(root, "trips", [{"uuid": "load_trips", "type": "data_loader", "code": LOADER}, export_block])
    return root


def backfill_twice(root, read_trip_ids) -> None:
    """Three daily runs, twice; after each round the target holds each trip exactly once."""
    for round_ in (1, 2):
        for day in DAYS:
            result = run_pipeline(root, "trips", execution_date=day, interval=(day, day + dt.timedelta(days=1)))
            assert result.status == "completed", {u: str(b.error) for u, b in result.blocks.items() if b.error}
        assert sorted(read_trip_ids()) == expected_trips(), f"after round {round_}"


def python_exporter(body: str) -> dict:
    return {"uuid": "export_trips", "type": "data_exporter", "upstream": ["load_trips"], "code": exporter(body)}


def sql_exporter(provider: str, schema: str, **config) -> dict:
    cfg = {"data_provider": provider, "data_provider_profile": "default", "data_provider_schema": schema,
           "data_provider_table": "trips", "export_write_policy": "replace_partition", "partition_column": "pickup_date"}
    cfg.update(config)
    return {"uuid": "export_trips", "type": "data_exporter", "language": "sql", "upstream": ["load_trips"],
            "configuration": cfg, "code": "SELECT * FROM {{ df_1 }}"}


def pg_yaml(pg_server, schema: str) -> str:
    profile = pg_server.profile(schema)
    return "version: 0.1.1\ndefault:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in profile.items())


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_export_replace_partition_twice(tmp_path, pg_server, pg_schema):
    import psycopg

    root = project_with(tmp_path, pg_yaml(pg_server, pg_schema), python_exporter(f"""
        from mage_ai.io.postgres import Postgres
        Postgres.with_config(config).export(df, '{pg_schema}', 'trips', if_exists='replace_partition',
                                            partition_column='pickup_date')
    """))

    def read():
        with psycopg.connect(pg_server.dsn) as c:
            return [r[0] for r in c.execute(f'SELECT trip_id FROM "{pg_schema}".trips')]

    backfill_twice(root, read)


def test_postgres_sql_block_replace_partition_twice_by_timestamp(tmp_path, pg_server, pg_schema):
    import psycopg

    root = project_with(tmp_path, pg_yaml(pg_server, pg_schema),
                        sql_exporter("postgres", pg_schema, partition_column="pickup_datetime"))

    def read():
        with psycopg.connect(pg_server.dsn) as c:
            return [r[0] for r in c.execute(f'SELECT trip_id FROM "{pg_schema}".trips')]

    backfill_twice(root, read)


def test_postgres_cli_backfill_twice_gives_the_same_rows(tmp_path, pg_server, pg_schema, monkeypatch):
    """The whole path: ``dagsmith backfill`` (metadata DB, worker, interval variables) twice over 5 days."""
    import psycopg
    from typer.testing import CliRunner

    from dagsmith.cli.app import app

    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    root = project_with(tmp_path, pg_yaml(pg_server, pg_schema), python_exporter(f"""
        from mage_ai.io.postgres import Postgres
        Postgres.with_config(config).export(df, '{pg_schema}', 'trips', if_exists='replace_partition',
                                            partition_column='pickup_date')
    """))
    counts = []
    for _ in range(2):
        out = CliRunner().invoke(app, ["backfill", str(root), "trips", "--start", "2021-02-01", "--end", "2021-02-05",
                                       "--interval", "day", "--json"])
        assert out.exit_code == 0, out.output
        with psycopg.connect(pg_server.dsn) as c:
            counts.append(c.execute(f'SELECT pickup_date, count(*) FROM "{pg_schema}".trips GROUP BY 1 ORDER BY 1').fetchall())
    assert counts[0] == counts[1]
    assert [n for _, n in counts[0]] == [3 + d % 4 for d in range(1, 6)]


# --------------------------------------------------------------------------- DuckDB


def test_duckdb_export_and_sql_block_replace_partition_twice(tmp_path):
    import duckdb

    io_config = "version: 0.1.1\ndefault:\n  DUCKDB_DATABASE: warehouse.duckdb\n"
    root = project_with(tmp_path / "py", io_config, python_exporter("""
        from mage_ai.io.duckdb import DuckDB
        DuckDB.with_config(config).export(df, 'lake', 'trips', if_exists='replace_partition',
                                          partition_column='pickup_datetime')
    """))

    def reader(path):
        def read():
            with duckdb.connect(str(path), read_only=True) as c:
                return [r[0] for r in c.execute("SELECT trip_id FROM lake.trips").fetchall()]
        return read

    backfill_twice(root, reader(root / "warehouse.duckdb"))
    root2 = project_with(tmp_path / "sql", io_config, sql_exporter("duckdb", "lake"))
    backfill_twice(root2, reader(root2 / "warehouse.duckdb"))


# --------------------------------------------------------------------------- BigQuery


def test_bigquery_export_and_sql_block_replace_partition_twice(tmp_path, bigquery_emulator):
    project = bigquery_emulator.project
    dataset = f"ds_{uuid.uuid4().hex[:8]}"
    io_config = "version: 0.1.1\ndefault:\n  GOOGLE_LOCATION: US\n"
    root = project_with(tmp_path / "py", io_config, python_exporter(f"""
        from mage_ai.io.bigquery import BigQuery
        BigQuery.with_config(config, project='{project}').export(df, '{dataset}.trips', if_exists='replace_partition',
                                                                  partition_column='pickup_date')
    """))
    client = bigquery_emulator.client()

    def reader(table):
        return lambda: [r[0] for r in client.query(f"SELECT trip_id FROM `{project}.{table}`").result()]

    backfill_twice(root, reader(f"{dataset}.trips"))
    root2 = project_with(tmp_path / "sql", io_config, sql_exporter(
        "bigquery", dataset, data_provider_database=project, data_provider_table="trips_sql"))
    backfill_twice(root2, reader(f"{dataset}.trips_sql"))
    # the staging tables of each MERGE are gone
    tables = sorted(t.table_id for t in client.list_tables(f"{project}.{dataset}"))
    assert tables == ["trips", "trips_load_trips_v1", "trips_sql"]  # the SQL block's upstream table, no stages


# --------------------------------------------------------------------------- Parquet datasets


def test_parquet_local_replace_partition_twice(tmp_path):
    import pyarrow.parquet as pq

    root = project_with(tmp_path, "version: 0.1.1\ndefault: {}\n", python_exporter("""
        from mage_ai.io.file import FileIO
        FileIO().export_partitioned(df, 'lake/trips', ['pickup_date'], if_exists='replace_partition')
    """))
    # FileIO's relative paths resolve against the working directory, which is the folder above
    # the project while blocks run (Mage's container layout, docs/compatibility.md)
    lake = root.parent / "lake" / "trips"
    backfill_twice(root, lambda: pq.read_table(lake).column("trip_id").to_pylist())
    folders = sorted(p.name for p in lake.iterdir())
    assert folders == [f"pickup_date={d.date().isoformat()}" for d in DAYS]
    assert all(len(list((lake / f).iterdir())) == 1 for f in folders)


def test_parquet_gcs_replace_partition_twice(tmp_path, gcs_emulator, gcs_bucket):
    from dagsmith.io.gcs import GoogleCloudStorage

    root = project_with(tmp_path, "version: 0.1.1\ndefault: {}\n", python_exporter(f"""
        from mage_ai.io.google_cloud_storage import GoogleCloudStorage
        GoogleCloudStorage.with_config(config).export_partitioned(
            df, '{gcs_bucket}', 'nyc/trips', ['pickup_date'], if_exists='replace_partition')
    """))
    gcs = GoogleCloudStorage()
    backfill_twice(root, lambda: gcs.load_partitioned(gcs_bucket, "nyc/trips")["trip_id"].tolist())
    data_files = [k for k in gcs.list_objects(gcs_bucket, "nyc/") if k.endswith(".parquet")]
    assert len(data_files) == len(DAYS)  # one file per day: the re-run replaced, not added


def test_parquet_s3_replace_partition_twice(tmp_path, s3_emulator, s3_bucket):
    from dagsmith.io.s3 import S3

    profile = s3_emulator.profile()
    io_config = "version: 0.1.1\ndefault:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in profile.items())
    root = project_with(tmp_path, io_config, python_exporter(f"""
        from mage_ai.io.s3 import S3
        S3.with_config(config).export_partitioned(df, '{s3_bucket}', 'nyc/trips', ['pickup_date'],
                                                  if_exists='replace_partition')
    """))
    s3 = S3.with_config(profile)
    backfill_twice(root, lambda: s3.load_partitioned(s3_bucket, "nyc/trips")["trip_id"].tolist())
    data_files = [k for k in s3.list_objects(s3_bucket, "nyc/") if k.endswith(".parquet")]
    assert len(data_files) == len(DAYS)


# --------------------------------------------------------------------------- refusals


def test_rows_outside_the_partition_are_refused_and_nothing_is_written(tmp_path, pg_server, pg_schema):
    import psycopg

    root = project_with(tmp_path, pg_yaml(pg_server, pg_schema), python_exporter(f"""
        import datetime as dt
        from mage_ai.io.postgres import Postgres
        df.loc[0, 'pickup_date'] = dt.date(2020, 12, 31)   # a stray trip from another day
        Postgres.with_config(config).export(df, '{pg_schema}', 'trips', if_exists='replace_partition',
                                            partition_column='pickup_date')
    """))
    day = DAYS[0]
    result = run_pipeline(root, "trips", execution_date=day, interval=(day, day + dt.timedelta(days=1)))
    assert result.status == "failed"
    message = str(result.blocks["export_trips"].error)
    assert "cannot replace partition pickup_date in [2021-01-04, 2021-01-05)" in message
    assert "1 of 3 rows are outside it (e.g. pickup_date = 2020-12-31); nothing was written" in message
    with psycopg.connect(pg_server.dsn) as c:
        assert c.execute("SELECT to_regclass(%s)", [f'"{pg_schema}".trips']).fetchone()[0] is None


def test_replace_partition_without_a_column_names_the_setting(tmp_path, pg_server, pg_schema):
    root = project_with(tmp_path, pg_yaml(pg_server, pg_schema), sql_exporter("postgres", pg_schema, partition_column=None))
    result = run_pipeline(root, "trips", execution_date=DAYS[0])
    assert result.status == "failed"
    assert "replace_partition needs partition_column" in str(result.blocks["export_trips"].error)


def test_monthly_interval_replaces_the_month(tmp_path):
    """A monthly trigger's run owns [month start, next month start): its re-run replaces the whole month."""
    from dagsmith.io.duckdb import DuckDB

    db = DuckDB(database=str(tmp_path / "w.duckdb"))
    jan = pd.DataFrame({"d": pd.to_datetime(["2021-01-03", "2021-01-30"]).date, "v": [1, 2]})
    from dagsmith.io.runtime import block_variables

    month = {"interval_start_datetime": dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc),
             "interval_end_datetime": dt.datetime(2021, 2, 1, tzinfo=dt.timezone.utc)}
    with block_variables(month):
        db.export(jan, "main", "t", if_exists="replace_partition", partition_column="d")
        db.export(jan.iloc[:1], "main", "t", if_exists="replace_partition", partition_column="d")
    db.export(pd.DataFrame({"d": [dt.date(2021, 2, 1)], "v": [3]}), "main", "t", if_exists="replace_partition",
              partition_column="d", partition_value="2021-02-01")
    assert db.load("SELECT v FROM t ORDER BY v")["v"].tolist() == [1, 3]
