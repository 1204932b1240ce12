"""Block templates: `dagsmith blocks new` writes them, and the pipeline they make runs end to end."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from dagsmith.blocks.templates import list_templates, render_block_template

pytestmark = pytest.mark.integration

DAGSMITH = str(Path(sys.executable).with_name("dagsmith"))


def test_every_template_renders_to_valid_code_with_a_test():
    templates = list_templates()
    loaders = {t["template"] for t in templates if t["block_type"] == "data_loader" and t["language"] == "python"}
    exporters = {t["template"] for t in templates if t["block_type"] == "data_exporter" and t["language"] == "python"}
    assert {"api", "postgres", "gcs", "bigquery", "duckdb", "s3", "file", "generic"} <= loaders
    assert {"postgres", "gcs", "bigquery", "duckdb", "s3", "file", "generic"} <= exporters
    for t in templates:
        text = render_block_template(t["block_type"], t["language"], t["template"], "My Block")
        if t["language"] == "python":
            tree = ast.parse(text)
            decorators = {d.id for f in tree.body if isinstance(f, ast.FunctionDef) for d in f.decorator_list
                          if isinstance(d, ast.Name)}
            assert t["block_type"] in decorators, t
            if t["block_type"] != "sensor":
                assert "test" in decorators, t


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSMITH, *args], capture_output=True, text=True, timeout=300)


def test_blocks_new_wires_a_pipeline_that_runs(tmp_path, http_data_server, pg_server, pg_schema):
    from dagsmith.project.pipelines import create_pipeline, load_pipeline

    assert _cli("init", str(tmp_path / "proj")).returncode == 0
    project = tmp_path / "proj"
    (project / "io_config.yaml").write_text(
        "version: 0.1.1\ndefault:\n"
        f"  POSTGRES_HOST: {pg_server.host}\n  POSTGRES_PORT: {pg_server.port}\n"
        f"  POSTGRES_DBNAME: {pg_server.dbname}\n  POSTGRES_USER: {pg_server.user}\n"
        "  DUCKDB_DATABASE: warehouse.duckdb\n"
    )
    create_pipeline(project, "green_etl")

    r = _cli("blocks", "new", str(project), "green_etl", "load green", "--type", "data_loader", "--template", "api")
    assert r.returncode == 0, r.stderr
    loader = project / "data_loaders" / "load_green.py"
    url = http_data_server("nyc-tlc-data/green/green_tripdata_2021-01.csv.gz")
    loader.write_text(
        loader.read_text()
        .replace("URL = 'https://example.com/data.csv.gz'", f"URL = '{url}'")
        .replace("DTYPES = {}", "DTYPES = {'VendorID': pd.Int64Dtype(), 'passenger_count': pd.Int64Dtype()}")
        .replace("PARSE_DATES = []", "PARSE_DATES = ['lpep_pickup_datetime']")
    )
    r = _cli("blocks", "new", str(project), "green_etl", "keep passengers", "--type", "transformer",
             "--upstream", "load_green")
    assert r.returncode == 0, r.stderr
    transformer = project / "transformers" / "keep_passengers.py"
    transformer.write_text(transformer.read_text().replace("    return data\n", "    return data[data['passenger_count'] > 0]\n"))
    for template in ("postgres", "duckdb"):
        r = _cli("blocks", "new", str(project), "green_etl", f"to {template}", "--type", "data_exporter",
                 "--template", template, "--upstream", "keep_passengers")
        assert r.returncode == 0, r.stderr
        path = project / "data_exporters" / f"to_{template}.py"
        path.write_text(
            path.read_text().replace("'your_schema_name'", f"'{pg_schema}'").replace("'your_table_name'", "'green'")
        )
    spec = load_pipeline(project, "green_etl")
    assert [b.uuid for b in spec.blocks] == ["load_green", "keep_passengers", "to_postgres", "to_duckdb"]

    r = _cli("run", str(project), "green_etl")
    assert r.returncode == 0, r.stdout + r.stderr

    with psycopg.connect(pg_server.dsn) as c:
        count, zero = c.execute(
            f'SELECT count(*), count(*) FILTER (WHERE passenger_count = 0) FROM "{pg_schema}".green'
        ).fetchone()
        pickup_type = c.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = 'green'"
            " AND column_name = 'lpep_pickup_datetime'", (pg_schema,)
        ).fetchone()[0]
    assert count > 30_000 and zero == 0
    assert pickup_type == "timestamp without time zone"
    import duckdb

    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM main.green").fetchone()[0] == count


from tests.fixtures.course_blocks import COURSE_EXPORTER, COURSE_LOADER, COURSE_TRANSFORMER  # noqa: E402



def test_course_blocks_run_unchanged(tmp_path, http_data_server, pg_server, pg_schema):
    """The course's loader (pd.read_csv on a URL), filter and mage_ai.io.postgres exporter, as written."""
    import textwrap

    from dagsmith.project.pipelines import add_block, create_pipeline

    assert _cli("init", str(tmp_path / "magic")).returncode == 0
    project = tmp_path / "magic"
    (project / "io_config.yaml").write_text(
        "version: 0.1.1\ndev:\n"
        f"  POSTGRES_DBNAME: {pg_server.dbname}\n  POSTGRES_SCHEMA: public\n  POSTGRES_USER: {pg_server.user}\n"
        "  POSTGRES_PASSWORD: {{ env_var('POSTGRES_PASSWORD') }}\n"
        f"  POSTGRES_HOST: {pg_server.host}\n  POSTGRES_PORT: {pg_server.port}\n"
    )
    (project / ".env").write_text("POSTGRES_PASSWORD=unused-with-trust-auth\n")  # as the course's .env sets it
    create_pipeline(project, "green_taxi_etl")
    url = http_data_server("nyc-tlc-data/green/green_tripdata_2021-01.csv.gz")
    add_block(project, "green_taxi_etl", "load_api_data", "data_loader",
              content=textwrap.dedent(COURSE_LOADER.format(url=url, prefix='lpep')).lstrip())
    add_block(project, "green_taxi_etl", "transform_taxi_data", "transformer", upstream=["load_api_data"],
              content=textwrap.dedent(COURSE_TRANSFORMER).lstrip())
    add_block(project, "green_taxi_etl", "taxi_data_to_postgres", "data_exporter", upstream=["transform_taxi_data"],
              content=textwrap.dedent(COURSE_EXPORTER.format(schema=pg_schema, table='green_taxi')).lstrip())
    r = _cli("run", str(project), "green_taxi_etl")
    assert r.returncode == 0, r.stdout + r.stderr

    import pandas as pd

    expected = pd.read_csv(url, compression="gzip", usecols=["passenger_count"], dtype={"passenger_count": "Int64"})
    expected = int((expected["passenger_count"] > 0).sum())
    with psycopg.connect(pg_server.dsn) as c:
        count = c.execute(f'SELECT count(*) FROM "{pg_schema}".green_taxi').fetchone()[0]
        types = dict(c.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s",
            (pg_schema,),
        ).fetchall())
    assert count == expected
    assert types["passenger_count"] == "bigint" and types["lpep_pickup_datetime"] == "timestamp without time zone"
