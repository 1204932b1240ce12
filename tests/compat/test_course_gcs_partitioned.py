"""Issue 18, the course's week-2 GCS exporter: a partitioned-Parquet write that once hung.

The DE Zoomcamp exporter sets ``GOOGLE_APPLICATION_CREDENTIALS`` to a key file at import,
builds a no-argument ``pyarrow.fs.GcsFileSystem()`` and calls ``pq.write_to_dataset(...,
partition_cols=[<date column>])``: one object per day. In the corpus run both Mage and
dagsmith hung there; the cause was the harness (fake-gcs-server's request log piped and never
read, so the emulator stopped answering after ~40 uploads), not either tool. This test runs
the block as the course writes it, with enough partitions to have hung, under ``dagsmith run``
and checks every row reaches the emulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.test_io_gcs import _service_account_key, _stub_token_server
from tests.projects import add_pipeline, make_project

DAYS = 60  # ~40 partitions were enough to hang with the emulator's log undrained

LOADER = """
import pandas as pd

if 'data_loader' not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def load_data(*args, **kwargs):
    days = pd.date_range('2021-01-01', periods=%d, freq='D')
    df = pd.DataFrame({'lpep_pickup_datetime': days.repeat(3), 'fare_amount': range(3 * len(days))})
    df['lpep_pickup_date'] = df['lpep_pickup_datetime'].dt.date
    return df
""" % DAYS

# the week-2 exporter, as the course writes it (key path set at import, bucket/table root path)
EXPORTER = """
import pyarrow as pa
import pyarrow.parquet as pq
import os

if 'data_exporter' not in globals():
    from mage_ai.data_preparation.decorators import data_exporter

os.environ['GOOGLE_APPLICATION_CREDENTIALS'] = '%s'
bucket_name = '%s'
table_name = "green_taxi_parquet"
root_path = f"{bucket_name}/{table_name}"


@data_exporter
def export_data(data, *args, **kwargs):
    table = pa.Table.from_pandas(data)
    gcs = pa.fs.GcsFileSystem()
    pq.write_to_dataset(
        table, root_path=root_path,
        partition_cols=['lpep_pickup_date'],
        filesystem=gcs
    )
    print("Completed...")
"""


@pytest.mark.integration
def test_course_partitioned_parquet_export_to_gcs_completes(gcs_emulator, gcs_bucket, tmp_path):
    import pyarrow.fs
    import pyarrow.parquet as pq

    # (Arrow's GCS client talks to an emulator without credentials; the key file is there
    # because the course's block names one, and google-auth would use it.)
    token_server, _ = _stub_token_server()
    host = f"127.0.0.1:{token_server.server_address[1]}"
    token_uri = f"http://{host}/token"
    try:
        key = tmp_path / "creds.json"
        key.write_text(json.dumps(_service_account_key(token_uri)))
        root = make_project(tmp_path, "magic-zoomcamp")
        add_pipeline(
            root,
            "green_taxi_etl",
            [
                {"uuid": "load_taxi", "type": "data_loader", "code": LOADER},
                {"uuid": "taxi_to_gcs_partitioned_parquet", "type": "data_exporter", "upstream": ["load_taxi"],
                 "code": EXPORTER % (key, gcs_bucket)},
            ],
        )
        env = {
            **os.environ,
            "DAGSMITH_NO_HISTORY": "1",
            # what a real GCS client would not need; the emulator needs both (EMULATORS.md)
            "CLOUD_STORAGE_EMULATOR_ENDPOINT": gcs_emulator.url,
            "GCE_METADATA_HOST": host,
            "GCE_METADATA_IP": host,
            "NO_GCE_CHECK": "true",
        }
        r = subprocess.run(
            [sys.executable, "-m", "dagsmith", "run", "magic-zoomcamp", "green_taxi_etl"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
        )
    finally:
        token_server.shutdown()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Completed..." in r.stdout + r.stderr
    blobs = [b.name for b in gcs_emulator.client().list_blobs(gcs_bucket)]
    days = {name.split("/")[1] for name in blobs if name.endswith(".parquet")}
    assert len(days) == DAYS and "lpep_pickup_date=2021-01-01" in days
    fs = pyarrow.fs.GcsFileSystem(endpoint_override=gcs_emulator.url.split("//")[1], scheme="http", anonymous=True)
    table = pq.read_table(f"{gcs_bucket}/green_taxi_parquet", filesystem=fs)
    assert table.num_rows == 3 * DAYS
    assert sorted(table.column("fare_amount").to_pylist()) == list(range(3 * DAYS))
