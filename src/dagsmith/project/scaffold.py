"""``dagsmith init``: a new project in Mage's layout, with an example pipeline that runs offline.

The example reads a small CSV of taxi trips written into the project (no
network needed), drops trips without passengers (with a ``@test``), loads the
result into the embedded DuckDB warehouse ``warehouse.duckdb``, and — like
Mage's own example pipeline, whose exporter writes ``titanic_clean.csv`` —
exports a CSV with ``FileIO().export(df, 'trips_clean.csv')``: a path relative
to the working directory, which during runs is the folder above the project.
"""

from __future__ import annotations

import os
import random
import uuid as uuidlib
from pathlib import Path

from dagsmith.errors import ProjectError
from dagsmith.project.layout import PROJECT_FOLDERS

EXAMPLE_PIPELINE = "example_pipeline"

IO_CONFIG = """\
version: 0.1.1
# Connection profiles. Values may use {{ env_var('NAME') }}; put secrets in .env (git-ignored).
default:
  # PostgreSQL
  POSTGRES_CONNECT_TIMEOUT: 10
  POSTGRES_DBNAME: "{{ env_var('POSTGRES_DBNAME') }}"
  POSTGRES_SCHEMA: public
  POSTGRES_USER: "{{ env_var('POSTGRES_USER') }}"
  POSTGRES_PASSWORD: "{{ env_var('POSTGRES_PASSWORD') }}"
  POSTGRES_HOST: "{{ env_var('POSTGRES_HOST') }}"
  POSTGRES_PORT: "{{ env_var('POSTGRES_PORT') }}"
  # DuckDB: the embedded warehouse (a file in the project)
  DUCKDB_DATABASE: warehouse.duckdb
  DUCKDB_SCHEMA: main
  # Google Cloud (GCS, BigQuery): path to a service-account key file
  GOOGLE_SERVICE_ACC_KEY_FILEPATH: "{{ env_var('GOOGLE_SERVICE_ACC_KEY_FILEPATH') }}"
  GOOGLE_LOCATION: US
  # AWS / S3-compatible stores
  AWS_ACCESS_KEY_ID: "{{ env_var('AWS_ACCESS_KEY_ID') }}"
  AWS_SECRET_ACCESS_KEY: "{{ env_var('AWS_SECRET_ACCESS_KEY') }}"
  AWS_REGION: "{{ env_var('AWS_REGION') }}"
dev:
  POSTGRES_CONNECT_TIMEOUT: 10
  POSTGRES_DBNAME: "{{ env_var('POSTGRES_DBNAME') }}"
  POSTGRES_SCHEMA: "{{ env_var('POSTGRES_SCHEMA') }}"
  POSTGRES_USER: "{{ env_var('POSTGRES_USER') }}"
  POSTGRES_PASSWORD: "{{ env_var('POSTGRES_PASSWORD') }}"
  POSTGRES_HOST: "{{ env_var('POSTGRES_HOST') }}"
  POSTGRES_PORT: "{{ env_var('POSTGRES_PORT') }}"
  DUCKDB_DATABASE: warehouse.duckdb
  DUCKDB_SCHEMA: main
"""

GITIGNORE = """\
# secrets and local settings
.env
secrets/
# dagsmith's own data: run history, block outputs, logs
.dagsmith/
# Mage's data folders, if this project is also opened with Mage
.variables/
.logs/
mage_data/
mage-ai.db
# the embedded warehouse
*.duckdb
*.duckdb.wal
__pycache__/
*.pyc
"""

ENV_EXAMPLE = """\
# Copy to .env and fill in. .env is git-ignored and loaded before every run.
POSTGRES_DBNAME=postgres
POSTGRES_SCHEMA=public
POSTGRES_USER=postgres
POSTGRES_PASSWORD=postgres
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=5432
"""

LOADER = '''\
import os

import pandas as pd
from mage_ai.settings.repo import get_repo_path

if 'data_loader' not in globals():
    from mage_ai.data_preparation.decorators import data_loader
if 'test' not in globals():
    from mage_ai.data_preparation.decorators import test


@data_loader
def load_trips(*args, **kwargs):
    """Read the sample taxi trips shipped with the project."""
    path = os.path.join(get_repo_path(), 'data', 'taxi_trips_sample.csv')
    taxi_dtypes = {
        'VendorID': pd.Int64Dtype(),
        'passenger_count': pd.Int64Dtype(),
        'trip_distance': float,
        'PULocationID': pd.Int64Dtype(),
        'DOLocationID': pd.Int64Dtype(),
        'fare_amount': float,
        'total_amount': float,
    }
    return pd.read_csv(path, dtype=taxi_dtypes, parse_dates=['tpep_pickup_datetime', 'tpep_dropoff_datetime'])


@test
def test_output(output, *args) -> None:
    assert output is not None, 'The output is undefined'
    assert len(output) > 0, 'No rows were loaded'
'''

TRANSFORMER = '''\
if 'transformer' not in globals():
    from mage_ai.data_preparation.decorators import transformer
if 'test' not in globals():
    from mage_ai.data_preparation.decorators import test


@transformer
def drop_empty_trips(data, *args, **kwargs):
    """Keep trips that carried passengers; add the pickup date for partitioning."""
    print(f"rows with zero passengers: {(data['passenger_count'] == 0).sum()}")
    data = data[data['passenger_count'] > 0].copy()
    data['pickup_date'] = data['tpep_pickup_datetime'].dt.date
    return data


@test
def test_no_empty_trips(output, *args) -> None:
    assert (output['passenger_count'] > 0).all(), 'There are trips with zero passengers'
'''

EXPORTER = '''\
from os import path

from mage_ai.io.config import ConfigFileLoader
from mage_ai.io.duckdb import DuckDB
from mage_ai.settings.repo import get_repo_path

if 'data_exporter' not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def export_to_duckdb(df, **kwargs) -> None:
    """Replace the table ``trips`` in the embedded DuckDB warehouse (DUCKDB_DATABASE in io_config.yaml)."""
    config_path = path.join(get_repo_path(), 'io_config.yaml')
    with DuckDB.with_config(ConfigFileLoader(config_path, 'default')) as warehouse:
        warehouse.export(df, 'main', 'trips', if_exists='replace')
'''


CSV_EXPORTER = '''\
from mage_ai.io.file import FileIO
from pandas import DataFrame

if 'data_exporter' not in globals():
    from mage_ai.data_preparation.decorators import data_exporter


@data_exporter
def export_trips_csv(df: DataFrame, **kwargs) -> None:
    """Write the trips to a CSV, as Mage's example pipeline does (pandas' to_csv, index included).

    The path is relative to the working directory: runs use the folder above the project,
    so the file lands beside the project folder.
    """
    FileIO().export(df, 'trips_clean.csv')
'''


def _sample_csv(rows: int = 500, seed: int = 7) -> str:
    rng = random.Random(seed)
    lines = [
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,"
        "PULocationID,DOLocationID,fare_amount,total_amount"
    ]
    for i in range(rows):
        day = 1 + i % 28
        hour = rng.randrange(24)
        minute = rng.randrange(60)
        duration = rng.randrange(3, 50)
        end_minute = minute + duration
        passengers = rng.choice([0, 1, 1, 1, 2, 2, 3, 4, 5, 6])
        distance = round(rng.uniform(0.3, 18.0), 2)
        fare = round(3.0 + distance * 2.5, 2)
        lines.append(
            f"{rng.choice([1, 2])},2021-01-{day:02d} {hour:02d}:{minute:02d}:00,"
            f"2021-01-{day:02d} {(hour + end_minute // 60) % 24:02d}:{end_minute % 60:02d}:00,"
            f"{passengers},{distance},{rng.randrange(1, 266)},{rng.randrange(1, 266)},{fare},{round(fare * 1.2, 2)}"
        )
    return "\n".join(lines) + "\n"


def init_project(path: str | os.PathLike[str], *, example: bool = True) -> Path:
    """Create a project folder; refuses to touch a folder that already exists."""
    root = Path(path).expanduser().resolve()
    if root.exists():
        raise ProjectError(
            f"{root} already exists; dagsmith init never overwrites a folder",
            hint="choose a new path, or remove the folder first",
        )
    # A name like the course's `magic-zoomcamp` is fine for Mage and for dagsmith; only
    # `import <project>.utils…` needs a Python name (the CLI says so).
    root.mkdir(parents=True)
    try:
        (root / "__init__.py").touch()
        for folder in PROJECT_FOLDERS:
            (root / folder).mkdir()
            (root / folder / "__init__.py").touch()
        (root / "dbt" / "profiles.yml").write_text("# dbt profiles for dbt blocks\n")
        (root / "metadata.yaml").write_text(
            "project_type: standalone\n"
            f"project_uuid: {uuidlib.uuid4().hex}\n"
            "variables_retention_period: 90d\n"
            "help_improve_mage: false\n"
            "notification_config: {}\n"
            "retry_config:\n  retries: 0\n  delay: 5\n  max_delay: 60\n  exponential_backoff: true\n"
        )
        (root / "io_config.yaml").write_text(IO_CONFIG)
        (root / "requirements.txt").write_text("")
        (root / ".gitignore").write_text(GITIGNORE)
        (root / ".env.example").write_text(ENV_EXAMPLE)
        if example:
            _example(root)
    except BaseException:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def _example(root: Path) -> None:
    from dagsmith.project.pipelines import add_block, create_pipeline

    (root / "data").mkdir()
    (root / "data" / "taxi_trips_sample.csv").write_text(_sample_csv())
    create_pipeline(root, EXAMPLE_PIPELINE)
    add_block(root, EXAMPLE_PIPELINE, "load_trips", "data_loader", content=LOADER)
    add_block(root, EXAMPLE_PIPELINE, "drop_empty_trips", "transformer", upstream=["load_trips"], content=TRANSFORMER)
    add_block(
        root, EXAMPLE_PIPELINE, "export_to_duckdb", "data_exporter", upstream=["drop_empty_trips"], content=EXPORTER
    )
    add_block(
        root, EXAMPLE_PIPELINE, "export_trips_csv", "data_exporter", upstream=["drop_empty_trips"], content=CSV_EXPORTER
    )
