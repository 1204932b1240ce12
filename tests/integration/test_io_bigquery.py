"""BigQuery connector on local-bigquery: load jobs, dataset creation, policies, queries."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from dagsmith.errors import TerminalConnectorError
from dagsmith.io.bigquery import BigQuery
from dagsmith.project.io_config import ConfigFileLoader

pytestmark = pytest.mark.integration


@pytest.fixture
def bq(bigquery_emulator):
    return BigQuery.with_config(ConfigFileLoader(config={}), project=bigquery_emulator.project)


def test_export_creates_dataset_and_load_reads_back(bq, bigquery_emulator):
    dataset = f"ds_{uuid.uuid4().hex[:8]}"
    df = pd.DataFrame(
        {
            "vendor_id": pd.array([1, 2, None], dtype="Int64"),
            "pickup": pd.to_datetime(["2021-01-01 00:00", "2021-01-02 12:30", "2021-01-03 00:00"]),
            "fare": [1.5, 2.5, 3.5],
            "zone": ["a", "b", None],
        }
    )
    table_id = f"{bigquery_emulator.project}.{dataset}.trips"
    assert bq.export(df, table_id, if_exists="replace") == 3
    out = bq.load(f"SELECT vendor_id, fare, zone FROM `{table_id}` ORDER BY fare")
    assert out["fare"].tolist() == [1.5, 2.5, 3.5]
    assert out["vendor_id"].isna().sum() == 1
    # a load job, not streaming inserts: the table is visible through the official client
    table = bigquery_emulator.client().get_table(table_id)
    assert {f.name for f in table.schema} == {"vendor_id", "pickup", "fare", "zone"}


def test_replace_append_fail(bq, bigquery_emulator):
    table_id = f"{bigquery_emulator.project}.ds_{uuid.uuid4().hex[:8]}.t"
    bq.export(pd.DataFrame({"a": [1, 2]}), table_id)
    bq.export(pd.DataFrame({"a": [3]}), table_id, if_exists="append")
    assert sorted(bq.load(f"SELECT a FROM `{table_id}`")["a"].tolist()) == [1, 2, 3]
    bq.export(pd.DataFrame({"a": [9]}), table_id, if_exists="replace")
    assert bq.load(f"SELECT a FROM `{table_id}`")["a"].tolist() == [9]
    with pytest.raises(TerminalConnectorError) as err:
        bq.export(pd.DataFrame({"a": [10]}), table_id, if_exists="fail")
    assert "already exists" in str(err.value)
    assert bq.load(f"SELECT a FROM `{table_id}`")["a"].tolist() == [9]


def test_mage_import_names(bigquery_emulator):
    from dagsmith.blocks.mage_imports import aliasing

    with aliasing():
        from mage_ai.io.bigquery import BigQuery as MageBQ
        from mage_ai.io.config import ConfigFileLoader as CFL

        client = MageBQ.with_config(CFL(config={}), project=bigquery_emulator.project)
        out = client.load("SELECT 1 AS one")
    assert out["one"].tolist() == [1]
