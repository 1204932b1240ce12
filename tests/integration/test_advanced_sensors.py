"""Sensors: polled until true (or their timeout), built from the sensor templates, on real peers."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import yaml

from dagsmith.blocks.templates import render_block_template
from dagsmith.engine.runner import run_pipeline
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration

DOWNSTREAM = """
    @transformer
    def after_sensor(*args, **kwargs):
        return 'ran after the sensor'
"""


def _sensor_project(tmp_path, template: str, replacements: dict[str, str], *, io_config: dict | None = None,
                    poke: float = 0.1, limit: float = 20):
    root = make_project(tmp_path)
    code = render_block_template("sensor", "python", template, "wait")
    for old, new in replacements.items():
        assert old in code, (old, code)
        code = code.replace(old, new)
    add_pipeline(root, "sensing", [
        {"uuid": "wait", "type": "sensor", "configuration": {"poke_interval": poke, "sensor_timeout": limit}},
        {"uuid": "after", "upstream": ["wait"], "code": DOWNSTREAM},
    ])
    (root / "sensors").mkdir(exist_ok=True)
    (root / "sensors" / "wait.py").write_text(code)
    if io_config is not None:
        (root / "io_config.yaml").write_text(yaml.safe_dump({"version": "0.1.1", "default": io_config}))
    return root


def _later(delay: float, fn) -> threading.Thread:
    def go():
        time.sleep(delay)
        fn()

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def _run_and_time(root):
    started = time.perf_counter()
    result = run_pipeline(root, "sensing", execution_date="2024-03-04T00:00:00Z", persist=False)
    return result, time.perf_counter() - started


def test_local_file_sensor_waits_for_a_file_written_later(tmp_path):
    target = tmp_path / "landing"
    target.mkdir()
    root = _sensor_project(tmp_path, "local_file", {"'data/incoming/green_{ds}.parquet'": repr(str(target / "green_{ds}.parquet"))})
    writer = _later(0.8, lambda: (target / "green_2024-03-04.parquet").write_bytes(b"PAR1"))
    result, elapsed = _run_and_time(root)
    writer.join()
    assert result.ok, result.blocks["wait"].error
    assert elapsed >= 0.8
    assert result.blocks["wait"].status == "completed"
    assert result.blocks["after"].status == "completed"


def test_a_sensor_that_never_becomes_true_fails_at_its_timeout(tmp_path):
    root = _sensor_project(tmp_path, "local_file", {"'data/incoming/green_{ds}.parquet'": repr(str(tmp_path / "never.csv"))},
                           limit=0.6)
    result, _ = _run_and_time(root)  # how soon it gives up, against its timeout: benchmarks/timing_claims.py
    assert result.status == "failed"
    assert "did not become true within 0.6 s" in result.blocks["wait"].error
    assert result.blocks["after"].status == "upstream_failed"


def test_duckdb_query_sensor_waits_for_rows(tmp_path):
    import duckdb

    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA staging; CREATE TABLE staging.loads (load_date VARCHAR)")
    con.close()
    root = _sensor_project(tmp_path, "duckdb", {}, io_config={"DUCKDB_DATABASE": str(db)})

    def insert():
        c = duckdb.connect(str(db))
        c.execute("INSERT INTO staging.loads VALUES ('2024-03-04')")
        c.close()

    writer = _later(0.8, insert)
    result, elapsed = _run_and_time(root)
    writer.join()
    assert result.ok, result.blocks["wait"].error
    assert elapsed >= 0.8


def test_postgres_query_sensor_waits_for_rows(tmp_path, pg_server, pg_schema):
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {pg_schema}")
        c.execute(f"CREATE TABLE {pg_schema}.loads (load_date text)")
    root = _sensor_project(tmp_path, "postgres", {"FROM staging.loads": f"FROM {pg_schema}.loads"},
                           io_config=pg_server.profile())

    def insert():
        with psycopg.connect(pg_server.dsn, autocommit=True) as c:
            c.execute(f"INSERT INTO {pg_schema}.loads VALUES ('2024-03-04')")

    writer = _later(0.8, insert)
    result, elapsed = _run_and_time(root)
    writer.join()
    assert result.ok, result.blocks["wait"].error
    assert elapsed >= 0.8


def test_s3_object_sensor_waits_for_an_upload(tmp_path, s3_emulator, s3_bucket):
    root = _sensor_project(tmp_path, "s3", {"'your_bucket_name'": repr(s3_bucket)}, io_config=s3_emulator.profile())
    key = "incoming/green_2024-03-04.parquet"
    writer = _later(0.8, lambda: s3_emulator.client().put_object(Bucket=s3_bucket, Key=key, Body=b"PAR1"))
    result, elapsed = _run_and_time(root)
    writer.join()
    assert result.ok, result.blocks["wait"].error
    assert elapsed >= 0.8


def test_gcs_object_sensor_waits_for_an_upload(tmp_path, gcs_emulator, gcs_bucket):
    root = _sensor_project(tmp_path, "gcs", {"'your_bucket_name'": repr(gcs_bucket)}, io_config={})
    key = "incoming/green_2024-03-04.parquet"
    writer = _later(0.8, lambda: gcs_emulator.client().bucket(gcs_bucket).blob(key).upload_from_string(b"PAR1"))
    result, elapsed = _run_and_time(root)
    writer.join()
    assert result.ok, result.blocks["wait"].error
    assert elapsed >= 0.8


def test_bigquery_query_sensor_waits_for_rows(tmp_path, bigquery_emulator, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", bigquery_emulator.project)
    client = bigquery_emulator.client()
    dataset = f"ds_{uuid.uuid4().hex[:8]}"
    client.create_dataset(dataset)
    client.query(f"CREATE TABLE {dataset}.loads (load_date STRING)").result()
    root = _sensor_project(tmp_path, "bigquery", {"FROM staging.loads": f"FROM {dataset}.loads"}, io_config={}, poke=0.3)
    writer = _later(1.0, lambda: client.query(f"INSERT INTO {dataset}.loads VALUES ('2024-03-04')").result())
    result, elapsed = _run_and_time(root)
    writer.join()
    assert result.ok, result.blocks["wait"].error
    assert elapsed >= 1.0
