"""SQL blocks on BigQuery (local-bigquery emulator): query parameters, destination tables, raw mode, errors."""

from __future__ import annotations

import uuid

import pytest

from dagsmith.engine import run_pipeline
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration

LOADER = """
import pandas as pd

@data_loader
def load(**kwargs):
    return pd.DataFrame({'vendor_id': [1, 2, 3], 'zone': ['a', 'b', 'c']})
"""


@pytest.fixture()
def root(tmp_path, bigquery_emulator):
    r = make_project(tmp_path)
    (r / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n  GOOGLE_LOCATION: US\n")
    return r


@pytest.fixture()
def dataset():
    return f"ds_{uuid.uuid4().hex[:8]}"


def sql_block(uuid_, code, project, dataset, upstream=(), type="transformer", **config):
    cfg = {"data_provider": "bigquery", "data_provider_profile": "default", "data_provider_database": project,
           "data_provider_schema": dataset}
    cfg.update(config)
    return {"uuid": uuid_, "type": type, "language": "sql", "upstream": list(upstream), "configuration": cfg, "code": code}


def test_values_are_query_parameters_and_policies(root, bigquery_emulator, dataset):
    project = bigquery_emulator.project
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": LOADER},
        sql_block("q", "SELECT vendor_id, zone, '{{ ds }}' AS ds FROM {{ df_1 }}\nWHERE vendor_id >= {{ min_id }}", project, dataset, ["load"],
                  data_provider_table="out"),
    ])
    result = run_pipeline(root, "p", variables={"min_id": 2}, execution_date="2024-02-03T00:00:00+00:00")
    assert result.status == "completed", {u: b.error for u, b in result.blocks.items()}
    extra = result.blocks["q"].extra
    assert "vendor_id >= @p2" in extra["rendered_sql"] and f"`{project}.{dataset}.p_load_v1`" in extra["rendered_sql"]
    assert result.blocks["q"].rows == 2
    # append (Mage's default) adds the rows again; replace truncates
    assert run_pipeline(root, "p", variables={"min_id": 2}).status == "completed"
    table = f"{project}.{dataset}.out"
    assert bigquery_emulator.client().get_table(table).num_rows == 4
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": LOADER},
        sql_block("q", "SELECT * FROM {{ df_1 }}", project, dataset, ["load"], data_provider_table="out", export_write_policy="replace"),
    ])
    assert run_pipeline(root, "p").status == "completed"
    assert bigquery_emulator.client().get_table(table).num_rows == 3


def test_raw_mode_returns_last_select(root, bigquery_emulator, dataset):
    add_pipeline(root, "p", [sql_block("raw", "SELECT 1 AS one;\nSELECT {{ n }} * 2 AS two;", bigquery_emulator.project, dataset,
                                       type="data_loader", use_raw_sql=True)])
    result = run_pipeline(root, "p", variables={"n": 21})
    assert result.status == "completed", result.blocks["raw"].error
    assert "42" in result.blocks["raw"].extra["preview"]


def test_error_names_block_and_database_message(root, bigquery_emulator, dataset):
    add_pipeline(root, "p", [sql_block("bad", "SELECT 1 AS a\nFROM `no_such_dataset_x.no_table`", bigquery_emulator.project, dataset, type="data_loader")])
    b = run_pipeline(root, "p").blocks["bad"]
    assert b.status == "failed"
    assert "block 'bad' (data_loaders/bad.sql): bigquery rejected the SQL" in b.error
    assert "no_table" in b.error or "no_such_dataset_x" in b.error


def test_select_without_a_dataset_returns_its_rows(root, bigquery_emulator):
    """The course's connection test: a BigQuery SQL loader with no dataset configured, ``SELECT 1;``."""
    add_pipeline(root, "p", [{
        "uuid": "test_bq", "type": "data_loader", "language": "sql",
        "configuration": {"data_provider": "bigquery", "data_provider_profile": "default"},
        "code": "SELECT 1;",
    }])
    result = run_pipeline(root, "p")
    block = result.blocks["test_bq"]
    assert result.status == "completed", block.error
    assert block.rows == 1 and "1" in block.extra["preview"]
