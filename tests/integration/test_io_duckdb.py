"""DuckDB connector: the default warehouse file in the project, load/export contract."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from dagsmith.errors import TerminalConnectorError
from dagsmith.io.duckdb import DuckDB
from dagsmith.project.io_config import ConfigFileLoader

pytestmark = pytest.mark.integration


def test_default_database_is_a_file_in_the_project(make_project, monkeypatch):
    root = make_project("default:\n  DUCKDB_SCHEMA: analytics\n")
    monkeypatch.setenv("DAGSMITH_REPO_PATH", str(root))
    monkeypatch.delenv("DAGSMITH_DATA_DIR", raising=False)
    with DuckDB.with_config(ConfigFileLoader()) as db:
        db.export(pd.DataFrame({"a": [1, 2]}), None, "t")
        assert db.load("SELECT sum(a) AS s FROM analytics.t")["s"][0] == 3
    assert (root / ".dagsmith" / "warehouse.duckdb").is_file()


def test_relative_database_path_is_inside_the_project(make_project):
    root = make_project("default:\n  DUCKDB_DATABASE: data/wh.duckdb\n")
    with DuckDB.with_config(ConfigFileLoader(root / "io_config.yaml")) as db:
        db.export(pa.table({"x": [1]}), "main", "t")
    assert (root / "data" / "wh.duckdb").is_file()


def test_types_policies_and_upsert(tmp_path):
    df = pd.DataFrame(
        {
            "id": pd.array([1, 2, None], dtype="Int64"),
            "ts": pd.to_datetime(["2021-01-01", None, "2021-01-03"]).tz_localize("UTC"),
            "name": ["a", None, "c"],
        }
    )
    with DuckDB(database=tmp_path / "w.duckdb") as db:
        assert db.export(df, "s", "t") == 3
        types = dict(db.load("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 't'").values)
        assert types["id"] == "BIGINT" and types["ts"].startswith("TIMESTAMP WITH TIME ZONE") and types["name"] == "VARCHAR"
        back = db.load("SELECT * FROM s.t ORDER BY id NULLS LAST")
        assert str(back["id"].dtype) == "Int64" and back["id"].isna().sum() == 1
        with pytest.raises(TerminalConnectorError):
            db.export(df, "s", "t", if_exists="fail")
        with pytest.raises(TerminalConnectorError) as err:
            db.export(df.assign(extra=1), "s", "t", if_exists="append")
        assert "extra" in str(err.value)
        assert len(db.load("SELECT * FROM s.t")) == 3
        db.export(df.head(1), "s", "t", if_exists="append")
        assert len(db.load("SELECT * FROM s.t")) == 4
        db.export(df.head(1), "s", "t", if_exists="replace")
        assert len(db.load("SELECT * FROM s.t")) == 1

        db.export(pd.DataFrame({"k": [1, 2], "v": ["a", "b"]}), "s", "u", unique_constraints=["k"])
        db.export(pd.DataFrame({"k": [2, 3], "v": ["B", "c"]}), "s", "u", if_exists="append",
                  unique_constraints=["k"], unique_conflict_method="UPDATE")
        db.export(pd.DataFrame({"k": [3], "v": ["ignored"]}), "s", "u", if_exists="append",
                  unique_constraints=["k"], unique_conflict_method="IGNORE")
        assert db.load("SELECT * FROM s.u ORDER BY k").values.tolist() == [[1, "a"], [2, "B"], [3, "c"]]
        assert db.table_exists("s", "u") and len(db.sample("s", "u", 2)) == 2


def test_polars_and_arrow_inputs(tmp_path):
    import polars as pl

    with DuckDB(database=tmp_path / "w.duckdb") as db:
        db.export(pl.DataFrame({"a": [1, 2, 3]}), "main", "p")
        db.export(pa.table({"a": [4]}), "main", "p", if_exists="append")
        assert db.load("SELECT sum(a) AS s FROM p")["s"][0] == 10
