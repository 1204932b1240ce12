"""SQL blocks on the real PostgreSQL server: df_N through COPY, atomic replace, policies, raw mode, errors."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from dagsmith.engine import run_pipeline
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration

LOADER = """
import pandas as pd

@data_loader
def load(**kwargs):
    n = kwargs.get('rows', 5)
    return pd.DataFrame({'VendorID': list(range(n)), 'pickup': pd.date_range('2024-01-01', periods=n, freq='h', tz='UTC'),
                         'fare': [1.5] * n, 'zone': ['z%'] * n})
"""


@pytest.fixture()
def root(tmp_path, pg_server, pg_schema):
    r = make_project(tmp_path)
    (r / "io_config.yaml").write_text(
        "version: 0.1.1\ndev:\n"
        f"  POSTGRES_HOST: {pg_server.host}\n  POSTGRES_PORT: {pg_server.port}\n  POSTGRES_DBNAME: {pg_server.dbname}\n"
        f"  POSTGRES_USER: {pg_server.user}\n  POSTGRES_SCHEMA: {pg_schema}\n"
    )
    return r


def sql_block(uuid, code, upstream=(), type="transformer", **config):
    cfg = {"data_provider": "postgres", "data_provider_profile": "dev"}
    cfg.update(config)
    return {"uuid": uuid, "type": type, "language": "sql", "upstream": list(upstream), "configuration": cfg, "code": code}


def q(pg_server, sql, params=None):
    with psycopg.connect(pg_server.dsn) as c:
        return c.execute(sql, params).fetchall()


def test_exporter_select_star_from_df_1_materializes_and_binds(root, pg_server, pg_schema):
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": LOADER},
        sql_block(
            "export", "SELECT * FROM {{ df_1 }}\nWHERE pickup >= '{{ ds }}' AND zone LIKE '{{ z }}%'",
            ["load"], type="data_exporter", data_provider_schema=pg_schema, data_provider_table="trips",
            export_write_policy="replace",
        ),
        {"uuid": "after", "upstream": ["export"], "code": "@transformer\ndef f(df, **kw):\n    return len(df)\n"},
    ])
    result = run_pipeline(root, "p", execution_date="2024-01-01T02:00:00+00:00", variables={"z": "z"})
    assert result.status == "completed", {u: b.error for u, b in result.blocks.items()}
    # upstream copy under Mage's name, written through the connector (COPY)
    assert q(pg_server, f'SELECT count(*) FROM "{pg_schema}".p_load_v1')[0][0] == 5
    assert q(pg_server, f'SELECT count(*), min(vendorid) FROM "{pg_schema}".trips')[0] == (5, 0)
    extra = result.blocks["export"].extra
    assert "pickup >= %s" not in extra["rendered_sql"] and "pickup >= $1 AND zone LIKE ($2 || '%')" in extra["rendered_sql"]
    assert result.blocks["after"].status == "completed"


def test_replace_is_atomic_for_readers(root, pg_server, pg_schema):
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader", "code": LOADER},
        sql_block("t", "SELECT *, pg_sleep(0.3) IS NULL AS slept FROM {{ df_1 }}", ["load"],
                  data_provider_schema=pg_schema, data_provider_table="live", export_write_policy="replace"),
    ])
    assert run_pipeline(root, "p").status == "completed"
    seen, stop = [], threading.Event()

    def reader():
        with psycopg.connect(pg_server.dsn, autocommit=True) as c:
            while not stop.is_set():
                seen.append(c.execute(f'SELECT count(*) FROM "{pg_schema}".live').fetchone()[0])
                time.sleep(0.01)

    th = threading.Thread(target=reader)
    th.start()
    try:
        assert run_pipeline(root, "p", variables={"rows": 7}).status == "completed"
    finally:
        stop.set()
        th.join()
    assert set(seen) <= {5, 7} and 0 not in seen
    assert q(pg_server, f'SELECT count(*) FROM "{pg_schema}".live')[0][0] == 7


def test_append_default_and_fail_policy(root, pg_server, pg_schema):
    add_pipeline(root, "p", [sql_block("t", "SELECT {{ n }}::int AS n", type="data_loader", data_provider_schema=pg_schema)])
    for _ in range(2):
        assert run_pipeline(root, "p", variables={"n": 3}).status == "completed"
    assert q(pg_server, f'SELECT count(*) FROM "{pg_schema}".p_t_v1')[0][0] == 2  # Mage's default policy: append
    add_pipeline(root, "p", [sql_block("t", "SELECT 1 AS n", type="data_loader", data_provider_schema=pg_schema, export_write_policy="fail")])
    b = run_pipeline(root, "p").blocks["t"]
    assert b.status == "failed" and "already exists" in b.error


def test_raw_select_1_and_transaction(root, pg_server, pg_schema):
    add_pipeline(root, "p", [sql_block("check", "SELECT 1;", type="data_loader", use_raw_sql=True)])
    result = run_pipeline(root, "p")
    assert result.status == "completed" and result.blocks["check"].rows == 1
    code = f'CREATE TABLE "{pg_schema}".a (n int);\nINSERT INTO "{pg_schema}".a VALUES ({{{{ n }}}});\nSELECT * FROM "{pg_schema}".nope;'
    add_pipeline(root, "p", [sql_block("raw", code, type="custom", use_raw_sql=True)])
    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA IF NOT EXISTS "{pg_schema}"')
    b = run_pipeline(root, "p", variables={"n": 1}).blocks["raw"]
    assert b.status == "failed"
    assert "line 3 of the rendered SQL" in b.error and "does not exist" in b.error and "block 'raw'" in b.error
    assert q(pg_server, "SELECT to_regclass(%s) IS NULL", [f'"{pg_schema}".a'])[0][0]  # rolled back


def test_error_points_at_the_rendered_line(root, pg_schema):
    add_pipeline(root, "p", [sql_block("bad", "SELECT 1 AS a,\n  2 AS b\nFROM generate_series(1, 2) g\nWHERE nope = {{ n }}", type="data_loader", data_provider_schema=pg_schema)])
    b = run_pipeline(root, "p", variables={"n": 1}).blocks["bad"]
    assert b.status == "failed"
    assert "line 4 of the rendered SQL" in b.error and 'column "nope" does not exist' in b.error
    assert "data_loaders/bad.sql" in b.error
