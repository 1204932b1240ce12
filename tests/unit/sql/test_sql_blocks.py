"""SQL blocks on DuckDB through the engine: df_N hand-off, materialize/raw modes, policies, binding, errors."""

from __future__ import annotations

import duckdb
import pytest

from dagsmith.engine import run_pipeline
from dagsmith.errors import ValidationError
from tests.projects import add_pipeline, make_project

LOADER = """
import pandas as pd

@data_loader
def load(**kwargs):
    return pd.DataFrame({'Vendor ID': [1, 2, 3, 4], 'zone': ['a', 'b', 'c', 'd']})
"""


@pytest.fixture()
def root(tmp_path):
    r = make_project(tmp_path)
    (r / "io_config.yaml").write_text("version: 0.1.1\ndefault:\n  DUCKDB_DATABASE: wh.duckdb\nother:\n  DUCKDB_DATABASE: other.duckdb\n")
    return r


def sql_block(uuid, code, upstream=(), type="transformer", **config):
    cfg = {"data_provider": "duckdb", "data_provider_profile": "default", "data_provider_schema": "s"}
    cfg.update(config)
    return {"uuid": uuid, "type": type, "language": "sql", "upstream": list(upstream), "configuration": cfg, "code": code}


def loader(uuid="load", code=LOADER):
    return {"uuid": uuid, "type": "data_loader", "code": code}


def warehouse(root, name="wh.duckdb"):
    return duckdb.connect(str(root / name))


def test_df_1_loads_python_upstream_and_downstream_python_gets_a_frame(root):
    add_pipeline(root, "p", [
        loader(),
        sql_block("q", "SELECT vendor_id * 10 AS v, zone FROM {{ df_1 }} ORDER BY v", ["load"], export_write_policy="replace"),
        {"uuid": "py", "upstream": ["q"], "code": "@transformer\ndef f(df, **kw):\n    return {'type': type(df).__name__, 'v': df['v'].tolist()}\n"},
    ])
    result = run_pipeline(root, "p")
    assert result.status == "completed", {u: b.error for u, b in result.blocks.items()}
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    assert VariableStore(data_dir(root)).read_block_value("p", result.partition, "py") == {"type": "DataFrame", "v": [10, 20, 30, 40]}
    extra = result.blocks["q"].extra
    # DuckDB: the upstream frame is a zero-copy view under Mage's name <pipeline>_<upstream>_v1
    assert 'FROM temp.main."p_load_v1"' in extra["rendered_sql"]
    assert extra["table"] == "s.p_q_v1"
    assert "40" in extra["preview"]
    con = warehouse(root)
    assert con.execute('SELECT sum(v) FROM s.p_q_v1').fetchone()[0] == 100  # result: <pipeline>_<block>_v1
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'p_load_v1'").fetchone()[0] == 0


def test_values_are_bound_parameters_not_text(root):
    evil = "a' OR '1'='1"
    add_pipeline(root, "p", [
        loader(),
        sql_block(
            "q",
            "SELECT zone FROM {{ df_1 }}\nWHERE zone = {{ variables('z') }} OR zone = '{{ evil }}'\nORDER BY zone",
            ["load"],
        ),
    ])
    result = run_pipeline(root, "p", variables={"z": "b", "evil": evil})
    assert result.status == "completed", result.blocks["q"].error
    extra = result.blocks["q"].extra
    assert "zone = $1 OR zone = $2" in extra["rendered_sql"]
    assert evil not in extra["rendered_sql"]
    assert extra["sql_params"] == ["$1 = 'b'", f"$2 = {evil!r}"]
    assert warehouse(root).execute("SELECT zone FROM s.p_q_v1").fetchall() == [("b",)]


def test_runtime_variables_and_partial_literals(root):
    add_pipeline(root, "p", [
        sql_block(
            "q",
            "SELECT {{ execution_date }} AS ed, '{{ ds }}' AS ds, 'day-{{ ds }}!' AS label,\n"
            "  {{ n + 1 }} AS n, 3 IN ({{ ids }}) AS hit -- for {{ ds }}\n",
            type="data_loader",
        ),
    ])
    result = run_pipeline(root, "p", variables={"n": 41, "ids": [1, 2, 3]}, execution_date="2024-03-05T06:00:00+00:00")
    assert result.status == "completed", result.blocks["q"].error
    row = warehouse(root).execute("SELECT ed, ds, label, n, hit FROM s.p_q_v1").fetchone()
    assert str(row[0]).startswith("2024-03-05 06:00:00")
    assert row[1:] == ("2024-03-05", "day-2024-03-05!", 42, True)
    assert "-- for {{ ds }}" in result.blocks["q"].extra["rendered_sql"]  # comments are not templated


def test_unknown_name_fails_naming_it_block_file_and_line(root):
    add_pipeline(root, "p", [sql_block("q", "SELECT 1 AS a\nWHERE 1 = {{ no_such_var }}\n", type="data_loader")])
    result = run_pipeline(root, "p")
    b = result.blocks["q"]
    assert b.status == "failed"
    assert "no_such_var" in b.error and "'q'" in b.error and "transformers/q.sql" not in b.error
    assert "data_loaders/q.sql" in b.error and "line 2" in b.error


def test_database_error_names_block_file_rendered_line_and_db_message(root):
    add_pipeline(root, "p", [
        loader(),
        sql_block("q", "SELECT zone,\n  vendor_id\nFROM {{ df_1 }}\nWHERE no_such_column > 1\n", ["load"]),
    ])
    b = run_pipeline(root, "p").blocks["q"]
    assert b.status == "failed"
    assert "block 'q' (transformers/q.sql)" in b.error
    assert "line 4 of the rendered SQL" in b.error and "no_such_column" in b.error
    assert b.error_location.endswith("q.sql:4")


def test_write_policies_append_replace_fail(root):
    code = "SELECT zone FROM {{ df_1 }}"
    for policy, expected in (("append", [4, 8]), ("replace", [4, 4])):
        add_pipeline(root, "p", [loader(), sql_block("q", code, ["load"], export_write_policy=policy, data_provider_table=f"t_{policy}")])
        counts = []
        for _ in range(2):
            assert run_pipeline(root, "p").status == "completed"
            con = warehouse(root)
            counts.append(con.execute(f"SELECT count(*) FROM s.t_{policy}").fetchone()[0])
            con.close()
        assert counts == expected
    add_pipeline(root, "p", [loader(), sql_block("q", code, ["load"], export_write_policy="fail", data_provider_table="t_fail")])
    assert run_pipeline(root, "p").status == "completed"
    b = run_pipeline(root, "p").blocks["q"]
    assert b.status == "failed" and "already exists" in b.error


def test_limit_caps_the_output_not_the_table(root):
    add_pipeline(root, "p", [loader(), sql_block("q", "SELECT * FROM {{ df_1 }}", ["load"], limit=2)])
    result = run_pipeline(root, "p")
    assert result.blocks["q"].rows == 2
    assert warehouse(root).execute("SELECT count(*) FROM s.p_q_v1").fetchone()[0] == 4


def test_raw_mode_runs_statements_in_one_transaction_and_returns_last_select(root):
    code = """
    CREATE TABLE IF NOT EXISTS s2.audit (n INTEGER);
    INSERT INTO s2.audit VALUES ({{ n }});
    SELECT sum(n) AS total FROM s2.audit;
    """
    add_pipeline(root, "p", [sql_block("raw", code, type="data_loader", use_raw_sql=True)])
    con = warehouse(root)
    con.execute("CREATE SCHEMA s2")
    con.close()
    result = run_pipeline(root, "p", variables={"n": 7})
    assert result.status == "completed", result.blocks["raw"].error
    assert "total" in result.blocks["raw"].extra["preview"] and "7" in result.blocks["raw"].extra["preview"]
    # a failing statement rolls back the ones before it
    add_pipeline(root, "p", [sql_block("raw", "INSERT INTO s2.audit VALUES (100);\nSELECT * FROM nope;", type="data_loader", use_raw_sql=True)])
    b = run_pipeline(root, "p").blocks["raw"]
    assert b.status == "failed" and "nope" in b.error
    assert warehouse(root).execute("SELECT sum(n) FROM s2.audit").fetchone()[0] == 7


def test_raw_select_1_connection_check(root):
    add_pipeline(root, "p", [sql_block("check", "SELECT 1;", type="data_loader", use_raw_sql=True)])
    result = run_pipeline(root, "p")
    assert result.status == "completed"
    assert result.blocks["check"].rows == 1


def test_configured_upstream_table_name_and_templated_profile(root):
    add_pipeline(root, "p", [
        loader(),
        sql_block(
            "q", "SELECT count(*) AS c FROM {{ df_1 }}", ["load"],
            data_provider_profile="{{ variables('P') }}",
            upstream_block_configuration={"load": {"table_name": "raw.vendors"}},
        ),
    ])
    result = run_pipeline(root, "p", variables={"P": "other"})
    assert result.status == "completed", result.blocks["q"].error
    assert 'FROM "raw"."vendors"' in result.blocks["q"].extra["rendered_sql"]
    con = warehouse(root, "other.duckdb")
    assert con.execute("SELECT c FROM s.p_q_v1").fetchone()[0] == 4
    assert con.execute("SELECT count(*) FROM raw.vendors").fetchone()[0] == 4  # configured name: persisted


def test_sql_upstream_is_referenced_in_place_and_block_output(root):
    add_pipeline(root, "p", [
        loader(),
        sql_block("first", "SELECT * FROM {{ df_1 }} WHERE vendor_id > 1", ["load"]),
        sql_block(
            "second",
            "SELECT count(*) AS c FROM {{ df_1 }}\nWHERE vendor_id IN ({{ block_output('load', parse=lambda df, v: df['Vendor ID'].tolist()[:2]) }})",
            ["first", "load"],
        ),
        sql_block("third", "SELECT count(*) AS c FROM {{ block_output('first') }}", ["first"]),
    ])
    result = run_pipeline(root, "p")
    assert result.status == "completed", {u: b.error for u, b in result.blocks.items()}
    assert 'FROM "s"."p_first_v1"' in result.blocks["second"].extra["rendered_sql"]
    assert "IN ($1, $2)" in result.blocks["second"].extra["rendered_sql"]
    con = warehouse(root)
    assert con.execute("SELECT c FROM s.p_second_v1").fetchone()[0] == 1
    assert con.execute("SELECT c FROM s.p_third_v1").fetchone()[0] == 3


def test_sql_block_after_failed_upstream_does_not_run(root):
    add_pipeline(root, "p", [
        loader(code="@data_loader\ndef f(**kw):\n    raise ValueError('source down')\n"),
        sql_block("q", "SELECT * FROM {{ df_1 }}", ["load"]),
    ])
    result = run_pipeline(root, "p")
    assert result.blocks["load"].status == "failed"
    assert result.blocks["q"].status == "upstream_failed"
    assert "rendered_sql" not in result.blocks["q"].extra
    con = warehouse(root)
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'p_q_v1'").fetchone()[0] == 0


def test_disable_query_preprocessing_sends_the_file_verbatim(root):
    add_pipeline(root, "p", [
        sql_block("v", "CREATE TABLE s3_t AS SELECT '{{ not jinja }}' AS t;", type="custom", use_raw_sql=True, disable_query_preprocessing=True),
    ])
    result = run_pipeline(root, "p")
    assert result.status == "completed", result.blocks["v"].error
    assert warehouse(root).execute("SELECT t FROM s3_t").fetchone()[0] == "{{ not jinja }}"


def test_missing_data_provider_is_a_clear_error(root):
    block = sql_block("q", "SELECT 1", type="data_loader")
    block["configuration"] = {}
    add_pipeline(root, "p", [block])
    with pytest.raises(ValidationError) as info:  # refused before anything runs, like `dagsmith validate`
        run_pipeline(root, "p")
    assert "SQL block 'q' (data_loaders/q.sql) has no data_provider" in str(info.value)


def test_cli_run_block_prints_rendered_sql_and_rows(root):
    from typer.testing import CliRunner

    from dagsmith.cli.app import app

    add_pipeline(root, "p", [loader(), sql_block("q", "SELECT zone FROM {{ df_1 }}\nWHERE vendor_id >= {{ min_id }}", ["load"])])
    assert run_pipeline(root, "p", variables={"min_id": 1}).status == "completed"
    out = CliRunner().invoke(app, ["run", str(root), "p", "--block", "q", "--var", "min_id=3"])
    assert out.exit_code == 0, out.output
    assert 'WHERE vendor_id >= $1' in out.output
    assert "$1 = 3\n" in out.output  # --var min_id=3 is bound as the number 3
    assert "d" in out.output.split("WHERE")[-1]


def test_parallel_sql_blocks_on_one_duckdb_file(root):
    blocks = [loader()]
    blocks += [sql_block(f"q{i}", f"SELECT vendor_id * {i} AS v FROM {{{{ df_1 }}}}", ["load"], export_write_policy="replace") for i in range(6)]
    add_pipeline(root, "p", blocks)
    for _ in range(2):
        result = run_pipeline(root, "p")
        assert result.status == "completed", {u: b.error for u, b in result.blocks.items() if b.error}
    con = warehouse(root)
    assert [con.execute(f"SELECT sum(v) FROM s.p_q{i}_v1").fetchone()[0] for i in range(6)] == [10 * i for i in range(6)]


def test_unsupported_provider_names_the_block(root):
    add_pipeline(root, "p", [sql_block("q", "SELECT 1", type="data_loader", data_provider="oracle")])
    with pytest.raises(ValidationError) as info:
        run_pipeline(root, "p")
    text = str(info.value)
    assert "block 'q'" in text and "'oracle'" in text and "duckdb" in text


def test_a_single_non_query_statement_runs_as_written(root):
    add_pipeline(root, "p", [sql_block("ddl", "CREATE TABLE IF NOT EXISTS made (n INTEGER)", type="custom")])
    result = run_pipeline(root, "p")
    assert result.status == "completed", result.blocks["ddl"].error
    assert warehouse(root).execute("SELECT count(*) FROM made").fetchone()[0] == 0


def test_new_sql_loader_from_the_template_runs(root):
    from dagsmith.blocks.templates import render_block_template

    code = render_block_template("data_loader", "sql", name="check_db")
    add_pipeline(root, "p", [sql_block("check_db", code, type="data_loader", use_raw_sql=True)])
    result = run_pipeline(root, "p")
    assert result.status == "completed", result.blocks["check_db"].error
    assert result.blocks["check_db"].rows == 1
