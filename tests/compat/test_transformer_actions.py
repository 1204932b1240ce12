"""Issue 18 item 6: ``mage_ai.data_cleaner.transformer_actions`` gives Mage 0.9.80's results.

Expected values were measured by running the same payloads through mage-ai 0.9.80
(pandas 2.3); MAGE_BEHAVIOUR.md §5 lists the rules they follow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dagsmith.compat.transformer_actions import (
    ActionType,
    Axis,
    BaseAction,
    ImputationStrategy,
    build_transformer_action,
    clean_column_name,
)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Store ID": [1, 2, 2, 3, 4, 4],
            "price": [10.5, None, 3.0, 3.0, 22.25, 8.0],
            "Category": ["a", "b", "b", None, "a", "c"],
            "firstName": ["Ann", "Bob", "Bob", "", "Dee", "Eve"],
            "qty": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            "email": ["a@x.com", "b@y.org", "bad", "c@z.net", None, "e@q.io"],
            "when": ["2021-01-01", "2021-02-03", "nope", "2021-03-04", "2021-04-05", None],
            "amount": ["$1.5", "$2", "$ 3.25", None, "$4", "5$"],
            "flag": [True, False, True, True, False, True],
        }
    )


def run(df, action_type, arguments=(), axis=Axis.COLUMN, **kw):
    return BaseAction(build_transformer_action(df, action_type=action_type, arguments=arguments, axis=axis, **kw)).execute(df)


def test_payload_and_inferred_column_types():
    df = frame()
    action = build_transformer_action(df, action_type=ActionType.IMPUTE, arguments=["qty"], options={"strategy": "median"})
    assert set(action) == {"action_type", "action_arguments", "action_code", "action_options", "action_variables", "axis", "outputs"}
    assert action["action_variables"]["qty"] == {"feature": {"column_type": "number", "uuid": "qty"}, "type": "feature"}
    types = {c: str(v["feature"]["column_type"]) for c, v in action["action_variables"].items()}
    assert types == {
        "Store ID": "number", "price": "number_with_decimals", "Category": "category", "firstName": "text",
        "qty": "number", "email": "email", "when": "datetime", "amount": "number_with_decimals", "flag": "true_or_false",
    }
    two_values = pd.DataFrame({"s": ["a", "b", "b", None, "a"], "x": [1.0, 2.0, 1.0, 2.0, 1.0]})
    assert {c: str(v["feature"]["column_type"]) for c, v in build_transformer_action(two_values, "select")["action_variables"].items()} == {
        "s": "true_or_false", "x": "true_or_false",
    }


def test_clean_column_names_like_mage():
    names = ["Store ID", "firstName", "class", "Price ($)", "VendorID", "PULocationID", "123", "1.5", "ALLCAPS",
             "camelCase", "PascalCase", " padded ", "a.b.c", "", "for", "HTTPRequest", "DOLocationID", "RatecodeID"]
    assert [clean_column_name(n) for n in names] == [
        "store_id", "first_name", "class_", "price_", "vendor_i_d", "p_u_location_i_d", "number_123", "1_5", "allcaps",
        "camel_case", "pascal_case", "padded", "a_b_c", "number_", "for_", "h_t_t_p_request", "d_o_location_i_d", "ratecode_i_d",
    ]
    df = frame()
    out = run(df, ActionType.CLEAN_COLUMN_NAME, df.columns)
    assert list(out.columns)[:4] == ["store_id", "price", "category", "first_name"]


def test_drop_duplicates_keeps_the_last_by_default():
    assert run(frame(), ActionType.DROP_DUPLICATE, ["Store ID"], Axis.ROW)["price"].tolist()[:2] == [10.5, 3.0]
    assert run(frame(), ActionType.DROP_DUPLICATE, ["Store ID"], Axis.ROW).index.tolist() == [0, 2, 3, 5]
    first = run(frame(), ActionType.DROP_DUPLICATE, ["Store ID"], Axis.ROW, options={"keep": "first"})
    assert first.index.tolist() == [0, 1, 3, 4]


def test_select_remove_and_remove_rows():
    assert list(run(frame(), ActionType.SELECT, ["price", "Category"]).columns) == ["price", "Category"]
    assert "price" not in run(frame(), ActionType.REMOVE, ["price", "nope"]).columns
    assert run(frame(), ActionType.REMOVE, [], Axis.ROW, options={"rows": [0, 2, 99]}).index.tolist() == [1, 3, 4, 5]


def test_filter_language():
    assert run(frame(), ActionType.FILTER, axis=Axis.ROW, action_code="price > 5").index.tolist() == [0, 4, 5]
    assert run(frame(), ActionType.FILTER, axis=Axis.ROW, action_code="price == null").index.tolist() == [1]
    assert run(frame(), ActionType.FILTER, axis=Axis.ROW, action_code="firstName != null").index.tolist() == [0, 1, 2, 4, 5]
    assert run(frame(), ActionType.FILTER, axis=Axis.ROW, action_code="Category contains 'a'").index.tolist() == [0, 4]
    assert run(frame(), ActionType.FILTER, axis=Axis.ROW, action_code="email not contains 'x'").index.tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(TypeError):
        run(frame(), ActionType.FILTER, axis=Axis.ROW, action_code="price contains '1'")


def test_sort_puts_empty_numbers_first_ascending_and_last_descending():
    assert run(frame(), ActionType.SORT, ["price"], Axis.ROW).index.tolist() == [1, 2, 3, 5, 0, 4]
    assert run(frame(), ActionType.SORT, ["price"], Axis.ROW, options={"ascending": False}).index.tolist() == [4, 0, 5, 2, 3, 1]


def test_impute_strategies_and_the_int_cast_of_number_columns():
    df = frame()
    out = run(df, ActionType.IMPUTE, ["price", "qty"], options={"strategy": ImputationStrategy.AVERAGE})
    assert out is df  # in place, as in Mage
    assert out["price"].tolist() == [10.5, 9.35, 3.0, 3.0, 22.25, 8.0]
    assert out["qty"].tolist() == [1, 2, 3, 4, 5, 6] and out["qty"].dtype == np.int64  # mean 3.6 written as 3
    const = run(frame(), ActionType.IMPUTE, ["Category", "qty", "firstName"], options={"strategy": "constant"})
    assert const["Category"].tolist()[3] == "missing" and const["firstName"].tolist()[3] == "missing"
    assert const["qty"].tolist() == [1, 2, 0, 4, 5, 6]
    assert run(frame(), ActionType.IMPUTE, ["Category"], options={"strategy": "mode"})["Category"].tolist()[3] == "a"
    with pytest.raises(Exception, match="Require a valid strategy or value"):
        run(frame(), ActionType.IMPUTE, ["qty"], options={"strategy": "no_action"})


def test_aggregates_and_groupby():
    out = run(frame(), ActionType.SUM, ["price"], options={"groupby_columns": ["Category"]}, outputs=[{"uuid": "total"}])
    assert out["total"].tolist()[:3] == [32.75, 3.0, 3.0] and math.isnan(out["total"].tolist()[3])
    whole = run(frame(), ActionType.AVERAGE, ["price"], outputs=[{"uuid": "avg"}])
    assert whole["avg"].tolist() == [9.35] * 6
    counted = run(frame(), ActionType.COUNT, ["price"], options={"groupby_columns": ["Category"]}, outputs=[{"uuid": "c"}])
    assert counted["c"].fillna(-1).tolist() == [2.0, 1.0, 1.0, -1, 2.0, 1.0]
    with pytest.raises(ValueError, match="No group keys passed"):
        run(frame(), ActionType.COUNT, ["price"], options={"groupby_columns": []}, outputs=[{"uuid": "c"}])


def test_shift_diff_normalize_standardize():
    shifted = run(frame(), ActionType.SHIFT_DOWN, ["price"], options={"groupby_columns": ["Category"]}, outputs=[{"uuid": "s"}])
    assert shifted["s"].fillna(-1).tolist() == [-1, -1, -1, -1, 10.5, -1]
    assert run(frame(), ActionType.SHIFT_UP, ["price"], outputs=[{"uuid": "s"}])["s"].fillna(-1).tolist() == [-1, 3.0, 3.0, 22.25, 8.0, -1]
    normal = run(frame(), ActionType.NORMALIZE, ["qty"])
    assert normal["qty"].fillna(-1).tolist() == [0.0, 0.2, -1, 0.6, 0.8, 1.0]
    std = run(frame(), ActionType.STANDARDIZE, ["price"])
    assert std["price"].tolist()[0] == pytest.approx(0.16256954485532782)


def test_reformat_and_fix_syntax_errors():
    money = run(frame(), ActionType.REFORMAT, ["amount"], options={"reformat": "currency_to_num"})
    assert money["amount"].fillna(-1).tolist() == [1.5, 2.0, 3.25, -1, 4.0, 5.0]
    dates = run(frame(), ActionType.REFORMAT, ["when"], options={"reformat": "date_format_conversion"})
    assert dates["when"].iloc[0] == pd.Timestamp("2021-01-01") and pd.isna(dates["when"].iloc[2])
    upper = run(frame(), ActionType.REFORMAT, ["firstName"], options={"reformat": "caps_standardization", "capitalization": "uppercase"})
    assert upper["firstName"].tolist()[:3] == ["ANN", "BOB", "BOB"] and pd.isna(upper["firstName"].iloc[3])
    fixed = run(frame(), ActionType.FIX_SYNTAX_ERRORS, ["email", "when", "price"])
    assert fixed["email"].tolist()[2] == "invalid" and pd.isna(fixed["when"].iloc[2])


def test_template_defaults_are_no_ops_and_empty_frames_pass_through():
    df = frame()
    assert run(df, ActionType.IMPUTE, [], options={"strategy": "constant"}).equals(frame())
    empty = pd.DataFrame({"a": []})
    assert run(empty, ActionType.IMPUTE, ["nope"], options={}) is empty


def test_a_template_style_block_runs_in_a_pipeline(tmp_path):
    from dagsmith.engine import run_pipeline
    from tests.projects import add_pipeline, make_project

    root = make_project(tmp_path, "demo")
    add_pipeline(
        root,
        "p",
        [
            {
                "uuid": "src",
                "type": "data_loader",
                "code": """
                    import pandas as pd
                    @data_loader
                    def f(*a, **k):
                        return pd.DataFrame({'VendorID': [1, 1, 2], 'fare': [1.0, 1.0, None]})
                """,
            },
            {
                "uuid": "dedupe",
                "upstream": ["src"],
                "code": """
                    from mage_ai.data_cleaner.transformer_actions.base import BaseAction
                    from mage_ai.data_cleaner.transformer_actions.constants import ActionType, Axis
                    from mage_ai.data_cleaner.transformer_actions.utils import build_transformer_action
                    from pandas import DataFrame

                    if 'transformer' not in globals():
                        from mage_ai.data_preparation.decorators import transformer


                    @transformer
                    def execute_transformer_action(df: DataFrame, *args, **kwargs) -> DataFrame:
                        action = build_transformer_action(
                            df,
                            action_type=ActionType.CLEAN_COLUMN_NAME,
                            arguments=df.columns,
                            axis=Axis.COLUMN,
                        )
                        df = BaseAction(action).execute(df)
                        action = build_transformer_action(df, action_type=ActionType.DROP_DUPLICATE, arguments=[], axis=Axis.ROW)
                        return BaseAction(action).execute(df)
                """,
            },
        ],
    )
    result = run_pipeline(root, "p")
    assert result.ok, result.blocks["dedupe"].error
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    out = VariableStore(data_dir(root)).read_block_value("p", result.partition, "dedupe")
    assert list(out.columns) == ["vendor_i_d", "fare"] and out.index.tolist() == [1, 2]
