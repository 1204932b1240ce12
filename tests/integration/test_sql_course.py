"""The course's gcs_to_bigquery shape end to end: GCS parquet → rename to snake_case → SQL exporter
``SELECT * FROM {{ df_1 }}``, on BigQuery (emulator), PostgreSQL and DuckDB."""

from __future__ import annotations

import io

import pandas as pd
import psycopg
import pytest

from dagsmith.engine import run_pipeline
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration

LOAD_GCS = """
if 'data_loader' not in globals():
    from mage_ai.data_preparation.decorators import data_loader
from os import path
from mage_ai.settings.repo import get_repo_path
from mage_ai.io.config import ConfigFileLoader
from mage_ai.io.google_cloud_storage import GoogleCloudStorage


@data_loader
def load_from_google_cloud_storage(*args, **kwargs):
    config_path = path.join(get_repo_path(), 'io_config.yaml')
    return GoogleCloudStorage.with_config(ConfigFileLoader(config_path, 'default')).load(
        kwargs['bucket'], 'green_taxi/green_taxi.parquet')
"""

RENAME = """
if 'transformer' not in globals():
    from mage_ai.data_preparation.decorators import transformer
import re


@transformer
def transform(data, *args, **kwargs):
    data.columns = [re.sub(r'(?<=[a-z])(?=[A-Z])', '_', c.replace(' ', '_')).lower() for c in data.columns]
    return data


@test
def test_output(output, *args):
    assert 'vendor_id' in output.columns
"""

FRAME = pd.DataFrame({
    "VendorID": [1, 2, 2],
    "lpep_pickup_datetime": pd.to_datetime(["2020-10-01 10:00", "2020-10-01 11:00", "2020-10-02 09:00"]),
    "PULocationID": [74, 41, 7],
    "passenger_count": [1, 2, 1],
    "fare_amount": [5.5, 7.0, 12.25],
})


@pytest.fixture()
def bucket(gcs_emulator):
    name = gcs_emulator.create_bucket()
    buf = io.BytesIO()
    FRAME.to_parquet(buf, index=False)
    gcs_emulator.client().bucket(name).blob("green_taxi/green_taxi.parquet").upload_from_string(buf.getvalue())
    return name


def build(tmp_path, io_config: str, config: dict):
    root = make_project(tmp_path)
    (root / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n" + io_config)
    add_pipeline(root, "gcs_to_bigquery", [
        {"uuid": "load_taxi_gcs", "type": "data_loader", "code": LOAD_GCS},
        {"uuid": "transform_staged_data", "upstream": ["load_taxi_gcs"], "code": RENAME},
        {"uuid": "write_taxi_to_bigquery", "type": "data_exporter", "language": "sql", "upstream": ["transform_staged_data"],
         "configuration": {"data_provider_profile": "default", "export_write_policy": "replace", "use_raw_sql": False,
                           "limit": 0, **config},
         "code": "SELECT * FROM {{ df_1 }}\n"},
    ])
    return root


def check(result):
    assert result.status == "completed", {u: b.error for u, b in result.blocks.items()}
    assert result.blocks["write_taxi_to_bigquery"].rows == 3
    assert "SELECT * FROM" in result.blocks["write_taxi_to_bigquery"].extra["rendered_sql"]


def test_gcs_to_bigquery(tmp_path, bucket, bigquery_emulator):
    root = build(tmp_path, "  GOOGLE_LOCATION: US\n", {
        "data_provider": "bigquery", "data_provider_database": bigquery_emulator.project,
        "data_provider_schema": "ny_taxi", "data_provider_table": "green_cab_data"})
    result = run_pipeline(root, "gcs_to_bigquery", variables={"bucket": bucket})
    check(result)
    rows = list(bigquery_emulator.client().query(
        f"SELECT vendor_id, pulocation_id, fare_amount FROM `{bigquery_emulator.project}.ny_taxi.green_cab_data` ORDER BY fare_amount"
    ).result())
    assert [tuple(r.values()) for r in rows] == [(1, 74, 5.5), (2, 41, 7.0), (2, 7, 12.25)]
    # the upstream frame went in with a load job under Mage's name
    staged = bigquery_emulator.client().get_table(f"{bigquery_emulator.project}.ny_taxi.gcs_to_bigquery_transform_staged_data_v1")
    assert staged.num_rows == 3


def test_gcs_to_postgres(tmp_path, bucket, pg_server, pg_schema):
    io_cfg = "".join(f"  {k}: {v}\n" for k, v in pg_server.profile(pg_schema).items() if v != "")
    root = build(tmp_path, io_cfg, {"data_provider": "postgres", "data_provider_schema": pg_schema, "data_provider_table": "green_cab_data"})
    check(run_pipeline(root, "gcs_to_bigquery", variables={"bucket": bucket}))
    with psycopg.connect(pg_server.dsn) as c:
        assert c.execute(f'SELECT sum(pulocation_id), count(*) FROM "{pg_schema}".green_cab_data').fetchone() == (122, 3)


def test_gcs_to_duckdb(tmp_path, bucket):
    import duckdb

    root = build(tmp_path, "  DUCKDB_DATABASE: warehouse.duckdb\n", {"data_provider": "duckdb", "data_provider_schema": "ny_taxi", "data_provider_table": "green_cab_data"})
    check(run_pipeline(root, "gcs_to_bigquery", variables={"bucket": bucket}))
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    assert con.execute("SELECT sum(pulocation_id), count(*) FROM ny_taxi.green_cab_data").fetchone() == (122, 3)
