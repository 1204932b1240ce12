"""Schema drift before writing, on PostgreSQL, DuckDB and the BigQuery emulator.

Appending floats into a ``bigint`` column must not store 3.5 as 4: the export stops with the
columns side by side and nothing is written. Added, missing and changed columns stop an
``append`` or ``replace_partition`` unless the block opts into ``on_schema_change: add_columns``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pandas as pd
import pytest

from dagsmith.engine import run_pipeline
from dagsmith.errors import SchemaDriftError
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration


class Target:
    """One table on one database, through its connector."""

    def __init__(self, name, connector, table_ref, count_sql, rows_sql):
        self.name, self.connector = name, connector
        self.table_ref, self.count_sql, self.rows_sql = table_ref, count_sql, rows_sql

    def export(self, df, **kw):
        if self.name == "bigquery":
            return self.connector.export(df, self.table_ref, **kw)
        schema, table = self.table_ref.split(".")
        return self.connector.export(df, schema, table, **kw)

    def count(self) -> int:
        return int(self.connector.load(self.count_sql).iloc[0, 0])

    def rows(self) -> list[tuple]:
        return [tuple(None if pd.isna(v) else v for v in r) for r in self.connector.load(self.rows_sql).itertuples(index=False)]


@pytest.fixture(params=["postgres", "duckdb", "bigquery"])
def target(request, tmp_path):
    if request.param == "postgres":
        from dagsmith.io.postgres import Postgres

        server, schema = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_schema")
        conn = Postgres.with_config(server.profile(schema))
        ref = f"{schema}.trips"
        sql_ref = f'"{schema}".trips'
    elif request.param == "duckdb":
        from dagsmith.io.duckdb import DuckDB

        conn = DuckDB(database=str(tmp_path / "w.duckdb"))
        ref = sql_ref = "main.trips"
    else:
        from dagsmith.io.bigquery import BigQuery

        emulator = request.getfixturevalue("bigquery_emulator")
        conn = BigQuery(project=emulator.project)
        ref = f"{emulator.project}.ds_{uuid.uuid4().hex[:8]}.trips"
        sql_ref = f"`{ref}`"
    yield Target(request.param, conn, ref, f"SELECT count(*) AS n FROM {sql_ref}",
                 f"SELECT * FROM {sql_ref} ORDER BY trip_id")
    conn.close()


BASE = pd.DataFrame({"trip_id": [1, 2], "passengers": [1, 2], "zone": ["a", "b"]})


def test_floats_into_a_bigint_column_are_refused_column_by_column(target):
    target.export(BASE, if_exists="replace")
    with pytest.raises(SchemaDriftError) as err:
        target.export(pd.DataFrame({"trip_id": [3, 4, 5], "passengers": [1.0, 3.5, 2.25], "zone": ["c", "d", "e"]}),
                      if_exists="append")
    text = str(err.value)
    assert "nothing was written" in text
    assert "passengers" in text and "changed: 2 of 3 values change, e.g. 3.5 would be stored as 4" in text
    assert [c.column for c in err.value.changes] == ["passengers"]
    assert target.count() == 2  # the two good rows of the frame were not written either
    # whole numbers in a float column are no change: they are written, as integers
    target.export(pd.DataFrame({"trip_id": [3], "passengers": [4.0], "zone": ["c"]}), if_exists="append")
    assert target.rows() == [(1, 1, "a"), (2, 2, "b"), (3, 4, "c")]


def test_added_missing_and_changed_columns_are_shown_side_by_side(target):
    target.export(BASE, if_exists="replace")
    drifted = pd.DataFrame({"trip_id": [3], "passengers": ["three"], "tip": [1.5]})
    with pytest.raises(SchemaDriftError) as err:
        target.export(drifted, if_exists="append")
    text = str(err.value)
    assert "(1 added, 1 missing, 1 changed); nothing was written" in text
    lines = {line.split()[0]: line for line in text.splitlines()[1:] if line.startswith("  ")}
    assert "missing" in lines["zone"] and "added" in lines["tip"] and "changed" in lines["passengers"]
    name, table_type, frame_type = lines["trip_id"].split()
    assert table_type == frame_type  # an unchanged column is shown, with nothing to note
    assert "on_schema_change" in (err.value.hint or "")
    assert target.count() == 2


def test_add_columns_adds_new_columns_and_leaves_missing_ones_null(target):
    target.export(BASE, if_exists="replace")
    target.export(pd.DataFrame({"trip_id": [3], "passengers": [3], "tip": [1.5]}), if_exists="append",
                  on_schema_change="add_columns")
    assert target.rows() == [(1, 1, "a", None), (2, 2, "b", None), (3, 3, None, 1.5)]
    # add_columns never changes an existing column's type
    with pytest.raises(SchemaDriftError) as err:
        target.export(pd.DataFrame({"trip_id": [4], "passengers": [0.5]}), if_exists="append",
                      on_schema_change="add_columns")
    assert "never changes an existing column's type" in (err.value.hint or "")
    assert target.count() == 3


def test_replace_partition_checks_the_schema_too(target):
    day = dt.date(2021, 1, 5)
    frame = pd.DataFrame({"trip_id": [1, 2], "pickup_date": [day, day], "fare": [1, 2]})
    target.export(frame, if_exists="replace_partition", partition_column="pickup_date", partition_value=day)
    with pytest.raises(SchemaDriftError) as err:
        target.export(frame.assign(fare=[1.25, 2.0]), if_exists="replace_partition", partition_column="pickup_date",
                      partition_value=day)
    assert "cannot replace a partition of" in str(err.value) and "1.25" in str(err.value)
    assert target.count() == 2


def test_postgres_columns_the_database_fills_are_not_missing(pg_server, pg_schema):
    import psycopg

    from dagsmith.io.postgres import Postgres

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{pg_schema}"')
        c.execute(f'CREATE TABLE "{pg_schema}".t (id bigserial PRIMARY KEY, v bigint, loaded_at timestamptz DEFAULT now())')
    with Postgres.with_config(pg_server.profile(pg_schema)) as pg:
        pg.export(pd.DataFrame({"v": [7]}), pg_schema, "t", if_exists="append")
        assert pg.load(f'SELECT id, v, loaded_at IS NOT NULL AS stamped FROM "{pg_schema}".t').values.tolist() == [[1, 7, True]]


# --------------------------------------------------------------------------- blocks


LOADER = """
import pandas as pd

@data_loader
def load(**kwargs):
    return pd.DataFrame({'trip_id': [3], 'passengers': [2.5], 'tip': [1.0]})
"""


def test_sql_block_append_stops_on_drift_and_opts_into_add_columns(tmp_path, pg_server, pg_schema):
    from dagsmith.io.postgres import Postgres

    root = make_project(tmp_path)
    profile = pg_server.profile(pg_schema)
    (root / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in profile.items()))
    with Postgres.with_config(profile) as pg:
        pg.export(BASE, pg_schema, "trips", if_exists="replace")

    def pipeline(query: str, **extra):
        cfg = {"data_provider": "postgres", "data_provider_profile": "default", "data_provider_schema": pg_schema,
               "data_provider_table": "trips", "export_write_policy": "append", **extra}
        add_pipeline(root, "p", [{"uuid": "load", "type": "data_loader", "code": LOADER},
                                 {"uuid": "write", "type": "data_exporter", "language": "sql", "upstream": ["load"],
                                  "configuration": cfg, "code": query}])

    pipeline("SELECT trip_id, passengers, tip FROM {{ df_1 }}")
    result = run_pipeline(root, "p")
    assert result.status == "failed"
    message = str(result.blocks["write"].error)
    assert f"block 'write'" in message and f"cannot append to {pg_schema}.trips" in message
    assert "passengers  bigint  double precision  ← changed" in message and "added" in message and "missing" in message
    pipeline("SELECT trip_id, CAST(ceil(passengers) AS bigint) AS passengers, tip FROM {{ df_1 }}",
             on_schema_change="add_columns")
    assert run_pipeline(root, "p").status == "completed"
    with Postgres.with_config(profile) as pg:
        rows = pg.load(f'SELECT trip_id, passengers, zone, tip FROM "{pg_schema}".trips ORDER BY trip_id')
    assert rows["passengers"].tolist() == [1, 2, 3] and rows["tip"].isna().tolist() == [True, True, False]


def test_python_block_opts_into_add_columns_in_its_configuration(tmp_path):
    """``on_schema_change: add_columns`` in the block's configuration reaches the export call it makes."""
    root = make_project(tmp_path)
    (root / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n  DUCKDB_DATABASE: w.duckdb\n")
    exporter = """
from os import path
from mage_ai.io.config import ConfigFileLoader
from mage_ai.io.duckdb import DuckDB
from mage_ai.settings.repo import get_repo_path


@data_exporter
def export(df, **kwargs):
    db = DuckDB.with_config(ConfigFileLoader(path.join(get_repo_path(), 'io_config.yaml'), 'default'))
    db.export(df.assign(passengers=3), 'main', 'trips', if_exists='append')
"""
    from dagsmith.io.duckdb import DuckDB

    with DuckDB(database=str(root / "w.duckdb")) as db:
        db.export(BASE, "main", "trips", if_exists="replace")
    blocks = [{"uuid": "load", "type": "data_loader", "code": LOADER},
              {"uuid": "write", "type": "data_exporter", "upstream": ["load"], "code": exporter}]
    add_pipeline(root, "p", blocks)
    failed = run_pipeline(root, "p")
    assert failed.status == "failed" and "tip" in str(failed.blocks["write"].error)
    blocks[1]["configuration"] = {"on_schema_change": "add_columns"}
    add_pipeline(root, "p", blocks)
    assert run_pipeline(root, "p").status == "completed"
    with DuckDB(database=str(root / "w.duckdb")) as db:
        assert db.load("SELECT trip_id, tip FROM trips ORDER BY trip_id").values.tolist()[-1] == [3, 1.0]


@pytest.mark.parametrize("provider", ["duckdb", "bigquery"])
def test_sql_block_append_of_floats_into_bigint_is_refused(provider, tmp_path, request):
    root = make_project(tmp_path)
    config = {"data_provider": provider, "data_provider_profile": "default", "data_provider_table": "trips",
              "export_write_policy": "append"}
    if provider == "duckdb":
        (root / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n  DUCKDB_DATABASE: w.duckdb\n")
        config["data_provider_schema"] = "main"
        table = "main.trips"
    else:
        emulator = request.getfixturevalue("bigquery_emulator")
        (root / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n  GOOGLE_LOCATION: US\n")
        dataset = f"ds_{uuid.uuid4().hex[:8]}"
        config.update(data_provider_database=emulator.project, data_provider_schema=dataset)
        table = f"`{emulator.project}.{dataset}.trips`"
    add_pipeline(root, "p", [{"uuid": "load", "type": "data_loader", "code": LOADER},
                             {"uuid": "write", "type": "data_exporter", "language": "sql", "upstream": ["load"],
                              "configuration": config, "code": "SELECT trip_id, {{ raw(value) }} AS passengers FROM {{ df_1 }}"}])
    assert run_pipeline(root, "p", variables={"value": "2"}).status == "completed"  # creates the table: integers
    result = run_pipeline(root, "p", variables={"value": "passengers"})
    assert result.status == "failed"
    message = str(result.blocks["write"].error)
    assert "block 'write'" in message and "passengers" in message and "changed" in message
    assert "cast them in the query" in message and "nothing was written" in message
    from dagsmith.blocks.sql.dialects import open_dialect

    dialect = open_dialect(provider, root, "default", config.get("data_provider_database"))
    try:
        counted = dialect.connector.load(f"SELECT count(*) AS n FROM {table}")
    finally:
        dialect.close()
    assert int(counted.iloc[0, 0]) == 1
