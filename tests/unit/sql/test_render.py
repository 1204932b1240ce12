"""SQL template rendering: which values become parameters, statement splitting, placeholders."""

from __future__ import annotations

import datetime as dt

import jinja2
import pytest

from dagsmith.blocks.sql.render import Secret, SqlText, display_params, display_sql, render_template, split_and_bind

PG = lambda n: f"${n}"  # noqa: E731
BQ = lambda n: f"@p{n}"  # noqa: E731


def bind(source, ctx, dialect="postgres"):
    return split_and_bind(render_template(source, ctx, filename="b.sql"), dialect=dialect)


def test_values_become_placeholders_identifiers_stay():
    stmts = bind("SELECT * FROM {{ t }} WHERE d = {{ d }} AND n IN ({{ ns }})", {"t": SqlText('"s"."t"'), "d": dt.date(2024, 1, 2), "ns": (1, 2)})
    assert display_sql(stmts, PG) == 'SELECT * FROM "s"."t" WHERE d = $1 AND n IN ($2, $3)'
    assert stmts[0].values == [dt.date(2024, 1, 2), 1, 2]


def test_quoted_values_bind_as_text_and_partial_literals_concatenate():
    stmts = bind("SELECT '{{ x }}', 'a''{{ x }}%', \"c_{{ x }}\" /* {{ x }} */ -- {{ nope }}\n", {"x": 5})
    assert display_sql(stmts, PG) == "SELECT $1, ('a''' || $2 || '%'), \"c_5\" /* 5 */ -- {{ nope }}"
    assert stmts[0].values == ["5", "5"]


def test_statements_split_outside_strings_comments_and_dollar_quotes():
    src = "SELECT ';' AS a; -- x; y\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n/* ; */ SELECT {{ v }};\n"
    stmts = bind(src, {"v": 1})
    assert len(stmts) == 3
    assert [s.start_line for s in stmts] == [1, 1, 2]
    assert stmts[2].values == [1]
    assert display_sql(stmts[2:], PG).strip().endswith("SELECT $1")


def test_placeholders_are_numbered_per_statement_and_bigquery_spelling():
    stmts = bind("SELECT {{ a }}; SELECT {{ b }}, {{ a }}", {"a": 1, "b": "x"}, dialect="bigquery")
    assert [s.sql(BQ).strip() for s in stmts] == ["SELECT @p1", "SELECT @p1, @p2"]


def test_secrets_are_bound_but_never_shown():
    stmts = bind("SELECT {{ s }} -- {{ s }}", {"s": Secret("hunter2")})
    assert stmts[0].values == ["hunter2"]
    assert "hunter2" not in display_sql(stmts, PG)
    assert display_params(stmts, PG) == ["$1 = ******"]


def test_unknown_names_fail_strictly():
    with pytest.raises(jinja2.UndefinedError, match="nope"):
        render_template("SELECT {{ nope }}", {}, filename="b.sql")
