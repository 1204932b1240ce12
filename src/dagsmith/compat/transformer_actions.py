"""Mage's transformer actions (``mage_ai.data_cleaner.transformer_actions``), with Mage's results.

26 of Mage 0.9.80's block templates are built on this small library::

    action = build_transformer_action(df, action_type=ActionType.IMPUTE, arguments=['age'],
                                      axis=Axis.COLUMN, options={'strategy': 'median'})
    return BaseAction(action).execute(df)

``build_transformer_action`` returns Mage's payload (action type, arguments, code,
options, one ``action_variables`` entry per column carrying its inferred column type,
axis, outputs); ``BaseAction(payload).execute(df)`` runs it. The behaviour follows Mage
0.9.80 as measured (MAGE_BEHAVIOUR.md §5), including its quirks, because pipelines depend
on them: an empty frame comes back unchanged, many actions edit the input frame in place,
``drop_duplicate`` keeps the *last* row by default, ``impute`` casts ``number`` columns to
int64 afterwards, ``clean_column_name`` splits camel case on every capital.
``remove_outliers`` needs scikit-learn (as in Mage); dagsmith does not install it.
"""

from __future__ import annotations

import json
import keyword
import logging
import re
from collections import deque
from enum import Enum
from typing import Any, Iterable, Mapping

from dagsmith.compat.column_types import NUMBER_TYPES, ColumnType, infer_column_types

log = logging.getLogger("dagsmith.transformer_actions")

__all__ = [
    "ActionType",
    "Axis",
    "BaseAction",
    "ImputationStrategy",
    "Operator",
    "VariableType",
    "build_action_variables",
    "build_transformer_action",
    "clean_column_name",
]


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return self.value


class ActionType(_StrEnum):
    ADD = "add"
    AVERAGE = "average"
    CLEAN_COLUMN_NAME = "clean_column_name"
    COUNT = "count"
    COUNT_DISTINCT = "count_distinct"
    CUSTOM = "custom"
    DIFF = "diff"
    DROP_DUPLICATE = "drop_duplicate"
    EXPAND_COLUMN = "expand_column"
    EXPLODE = "explode"
    FILTER = "filter"
    FIRST = "first"
    FIX_SYNTAX_ERRORS = "fix_syntax_errors"
    GROUP = "group"
    IMPUTE = "impute"
    JOIN = "join"
    LAST = "last"
    LIMIT = "limit"
    MAX = "max"
    MEDIAN = "median"
    MIN = "min"
    MODE = "mode"
    REFORMAT = "reformat"
    REMOVE = "remove"
    REMOVE_OUTLIERS = "remove_outliers"
    SCALE = "scale"
    SELECT = "select"
    SHIFT_DOWN = "shift_down"
    SHIFT_UP = "shift_up"
    SORT = "sort"
    SUM = "sum"
    UNION = "union"
    UPDATE_TYPE = "update_type"
    UPDATE_VALUE = "update_value"
    NORMALIZE = "normalize"
    STANDARDIZE = "standardize"


class Axis(_StrEnum):
    COLUMN = "column"
    ROW = "row"


class VariableType(_StrEnum):
    FEATURE = "feature"
    FEATURE_SET = "feature_set"
    FEATURE_SET_VERSION = "feature_set_version"


class Operator(_StrEnum):
    CONTAINS = "contains"
    NOT_CONTAINS = "not contains"
    EQUALS = "=="
    NOT_EQUALS = "!="
    GREATER_THAN = ">"
    GREATER_THAN_OR_EQUALS = ">="
    LESS_THAN = "<"
    LESS_THAN_OR_EQUALS = "<="


class ImputationStrategy(_StrEnum):
    AVERAGE = "average"
    COLUMN = "column"
    CONSTANT = "constant"
    MEDIAN = "median"
    MODE = "mode"
    NOOP = "no_action"
    RANDOM = "random"
    ROW_RM = "remove_rows"
    SEQ = "sequential"


def _constant_defaults() -> dict[ColumnType, Any]:
    import pandas as pd

    text = "missing"
    return {
        ColumnType.CATEGORY: text,
        ColumnType.CATEGORY_HIGH_CARDINALITY: text,
        ColumnType.DATETIME: pd.Timestamp.min,
        ColumnType.EMAIL: text,
        ColumnType.LIST: "[]",
        ColumnType.NUMBER: 0,
        ColumnType.NUMBER_WITH_DECIMALS: 0,
        ColumnType.TEXT: text,
        ColumnType.TRUE_OR_FALSE: text,
        ColumnType.PHONE_NUMBER: text,
        ColumnType.ZIP_CODE: text,
    }


def _invalid_placeholders() -> dict[ColumnType, Any]:
    import numpy as np
    import pandas as pd

    return {
        ColumnType.CATEGORY: "invalid",
        ColumnType.CATEGORY_HIGH_CARDINALITY: "invalid",
        ColumnType.DATETIME: pd.NaT,
        ColumnType.EMAIL: "invalid",
        ColumnType.LIST: "invalid",
        ColumnType.NUMBER: np.nan,
        ColumnType.NUMBER_WITH_DECIMALS: np.nan,
        ColumnType.TEXT: "invalid",
        ColumnType.TRUE_OR_FALSE: "invalid",
        ColumnType.PHONE_NUMBER: "invalid",
        ColumnType.ZIP_CODE: "invalid",
    }


_BLANK = r"^\s*$"
_CURRENCY = re.compile(r"(?:[\$€¥₹元£]|(?:Rs)|(?:CAD))")


# --------------------------------------------------------------------------- payloads


def build_action_variables(df: Any, ctypes: Mapping[str, Any] | None = None, columns: Iterable[Any] | None = None) -> dict:
    """One ``feature`` variable per column: ``{col: {'feature': {'column_type', 'uuid'}, 'type': 'feature'}}``."""
    types = infer_column_types(df, column_types=dict(ctypes or {}))
    return {
        name: {"feature": {"column_type": types[name], "uuid": name}, "type": "feature"}
        for name in (df.columns if columns is None else columns)
    }


def build_transformer_action(
    df: Any,
    action_type: ActionType | str,
    arguments: Iterable[Any] = (),
    action_code: str = "",
    options: Mapping[str, Any] | None = None,
    axis: Axis | str = Axis.COLUMN,
    outputs: list[dict] | None = None,
) -> dict:
    """Mage's transformer-action payload for ``df`` (what ``BaseAction`` takes)."""
    return {
        "action_type": action_type,
        "action_arguments": list(arguments),
        "action_code": action_code,
        "action_options": {} if options is None else options,
        "action_variables": build_action_variables(df),
        "axis": axis,
        "outputs": [] if outputs is None else outputs,
    }


_CONNECTORS = re.compile(r"[\s\-.]")
_NON_WORD = re.compile(r"[^a-zA-Z_0-9]")
_UPPER = re.compile(r"^[A-Z0-9]+$")
_PASCAL = re.compile(r"^(?:[A-Z][a-z]*)+$")
_CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z]*)*$")
_LOWER_HEAD = re.compile(r"^[a-z]+")
_CAPITALISED = re.compile(r"[A-Z][a-z]*")


def clean_column_name(name: Any) -> str:
    """Mage's snake_case for a column name (``Store ID`` → ``store_id``, ``VendorID`` → ``vendor_i_d``)."""
    from dagsmith.compat.column_types import NUMBER_RE

    text = str(name)
    if keyword.iskeyword(text):
        text += "_"
    text = text.strip(" '\"_-")
    text = _CONNECTORS.sub("_", text)
    text = _NON_WORD.sub("", text)
    text = NUMBER_RE.sub(lambda m: f"number_{m.group(0)}", text)
    if keyword.iskeyword(text):
        text += "_"
    if _UPPER.match(text):
        return text.lower()
    if _PASCAL.match(text):
        return "_".join(_CAPITALISED.findall(text)).lower()
    if _CAMEL.match(text):
        return "_".join(_LOWER_HEAD.findall(text) + _CAPITALISED.findall(text)).lower()
    return text.lower()


# --------------------------------------------------------------------------- executing


def _interpolate(text: Any, key: str, variable: Mapping[str, Any]) -> str:
    """``%{key}`` in ``text`` → the variable's uuid (feature) or feature-set uuid."""
    replacement = key
    if variable.get("type") == VariableType.FEATURE:
        replacement = variable["feature"]["uuid"]
    elif variable.get("type") == VariableType.FEATURE_SET_VERSION:
        replacement = variable["feature_set_version"]["feature_set"]["uuid"]
    return str(text).replace("%{" + str(key) + "}", str(replacement))


def _python_booleans(code: str) -> str:
    return code.replace(" true", " True").replace(" false", " False")


class BaseAction:
    """Runs one transformer-action payload on a pandas frame (``execute``)."""

    def __init__(self, action: dict) -> None:
        self.action = action
        self.columns_by_type: dict[Any, list[Any]] = {}
        for variable in (action.get("action_variables") or {}).values():
            feature = (variable or {}).get("feature")
            if feature:
                self.columns_by_type.setdefault(feature.get("column_type"), []).append(feature["uuid"])

    @property
    def action_type(self) -> Any:
        return self.action["action_type"]

    @property
    def axis(self) -> Any:
        return self.action["axis"]

    def hydrate_action(self) -> None:
        """Replace ``%{key}`` placeholders in code, arguments and options by the variables' uuids."""
        action = self.action
        for key, variable in (action.get("action_variables") or {}).items():
            if not variable:
                continue
            if action.get("action_code"):
                action["action_code"] = _interpolate(action["action_code"], key, variable)
            if action.get("action_arguments"):
                action["action_arguments"] = [_interpolate(a, key, variable) for a in action["action_arguments"]]
            if action.get("action_options"):
                text = _interpolate(json.dumps(action["action_options"]), key, variable)
                action["action_options"] = json.loads(text)

    def execute(self, df: Any, **kwargs: Any) -> Any:
        """Apply the action to ``df`` and return the result (often ``df`` itself, edited in place, as in Mage)."""
        self.hydrate_action()
        if self.action.get("action_code"):
            self.action["action_code"] = _python_booleans(self.action["action_code"])
        if df.empty:
            return df
        kind = self.action_type
        if kind == ActionType.GROUP:
            return df.groupby(self.action["action_arguments"]).apply(
                lambda part: _run_children(part, self.action.get("child_actions") or [])
            )
        if kind == ActionType.JOIN:
            return _join(df, kwargs.get("df_to_join"), self.action)
        table = _COLUMN_ACTIONS if str(self.axis) == Axis.COLUMN else _ROW_ACTIONS
        fn = table.get(str(kind))
        if fn is None:
            from dagsmith.errors import NotAvailableInDagsmith

            raise NotAvailableInDagsmith(
                f"transformer action {str(kind)!r} on axis {str(self.axis)!r} is not available in dagsmith (yet)",
                hint="see docs/compatibility.md for the supported actions",
            )
        source = df.copy() if kind in (ActionType.FILTER, ActionType.ADD) else df
        column_types = {c: t for t, cols in self.columns_by_type.items() for c in cols}
        out = fn(source, self.action, column_types=column_types, original_df=df)
        if kind == ActionType.FILTER:
            return df.loc[out.index][out.columns]
        if kind == ActionType.ADD:
            names = [o["uuid"] for o in self.action["outputs"]]
            df[names] = out[names]
            return df
        return out


def _run_children(part: Any, actions: list[dict]) -> Any:
    for action in actions:
        part = BaseAction(action).execute(part)
    return part


def _join(df: Any, other: Any, action: dict) -> Any:
    options = action["action_options"]
    left_on, right_on = list(options["left_on"]), list(options["right_on"])
    for a, b in zip(left_on, right_on):
        if df[a].dtype != other[b].dtype:
            df[a] = _drop_blank(df[a]).astype(str)
            other[b] = _drop_blank(other[b]).astype(str)
    if action.get("outputs") is not None:
        renames = {o["source_feature"]["uuid"]: o["uuid"] for o in action["outputs"] if o.get("source_feature")}
        other = other.rename(columns=renames)
        right_on = [renames.get(k, k) for k in right_on]
    merged = df.merge(other, left_on=left_on, right_on=right_on, how=options.get("how", "left"))
    return merged.drop(columns=options.get("drop_columns", [])).rename(columns=options.get("rename_columns", {}))


def _drop_blank(series: Any) -> Any:
    return _blank_to_nan(series).dropna()


def _blank_to_nan(frame: Any) -> Any:
    import numpy as np

    replaced = frame.replace(_BLANK, np.nan, regex=True)
    return replaced.infer_objects()


def _column_type_of(name: Any, action: dict) -> Any:
    for variable in (action.get("action_variables") or {}).values():
        if variable.get("type") == "feature" and variable["feature"]["uuid"] == name:
            return variable["feature"]["column_type"]
    return None


def _cast_to_type(series: Any, kind: Any) -> Any:
    """After imputing, columns take their Mage type's dtype (``number`` → int64: 22.5 becomes 22)."""
    import numpy as np

    if kind == ColumnType.NUMBER:
        return series.replace(_BLANK, 0, regex=True).fillna(0).infer_objects().astype(np.int64)
    if kind == ColumnType.NUMBER_WITH_DECIMALS:
        return series.dropna().astype(float)
    if kind == ColumnType.TEXT:
        return series.dropna().astype(str)
    if kind == ColumnType.LIST:
        return series.apply(_parse_list)
    return series


def _parse_list(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if len(text) >= 2 and text[0] in "[(" and text[-1] in "])":
        inner = text[1:-1].strip()
        if not inner:
            return []
        return [item.strip(" '\"") for item in re.split(r"\s*,\s*", inner)]
    return value


def _string_columns(df: Any, columns: Iterable[Any]) -> Iterable[Any]:
    """The columns whose first non-null value is a string (others are skipped with a warning, as in Mage)."""
    for column in columns:
        values = df[column].dropna()
        if len(values) == 0:
            continue
        if isinstance(values.iloc[0], str):
            yield column
        else:
            log.warning("Attempted to perform string-only action on non-string column '%s'", column)


# --- column actions


def _clean_names(df: Any, action: dict, **_: Any) -> Any:
    return df.rename(columns={c: clean_column_name(c) for c in action["action_arguments"]})


def _select(df: Any, action: dict, **_: Any) -> Any:
    return df[action["action_arguments"]]


def _remove_columns(df: Any, action: dict, **_: Any) -> Any:
    return df.drop(columns=[c for c in action["action_arguments"] if c in df.columns])


def _impute(df: Any, action: dict, **_: Any) -> Any:
    import numpy as np
    import pandas as pd

    columns = action["action_arguments"]
    options = action["action_options"]
    strategy, value = options.get("strategy"), options.get("value")
    df[columns] = _blank_to_nan(df[columns])
    kinds = [action["action_variables"][c]["feature"]["column_type"] for c in columns]
    if strategy == ImputationStrategy.AVERAGE:
        df[columns] = df[columns].fillna(df[columns].astype(float).mean(axis=0))
    elif strategy == ImputationStrategy.CONSTANT:
        if value is None:
            defaults = _constant_defaults()
            value = pd.Series([defaults[k] for k in kinds], index=pd.Index(columns))
        df[columns] = df[columns].fillna(value)
    elif strategy == ImputationStrategy.MEDIAN:
        df[columns] = df[columns].fillna(df[columns].astype(float).median(axis=0))
    elif strategy == ImputationStrategy.MODE:
        if ColumnType.LIST in kinds:
            for column, kind in zip(columns, kinds):
                mode = df[column].mode().iloc[0]
                if kind == ColumnType.LIST:
                    df[column] = df[column].apply(lambda v, m=mode: m if v is None or v is np.nan else v)
                else:
                    df[columns] = df[columns].fillna(mode)
        else:
            df[columns] = df[columns].fillna(df[columns].mode(axis=0).iloc[0])
    elif strategy == ImputationStrategy.COLUMN:
        df[columns] = df[columns].fillna(pd.DataFrame({c: df[value] for c in columns}))
    elif strategy == ImputationStrategy.SEQ:
        df = df.sort_values(by=options.get("timeseries_index"), axis=0)
        df[columns] = df[columns].ffill().infer_objects()
    elif strategy == ImputationStrategy.RANDOM:
        for column, kind in zip(columns, kinds):
            missing = df[df[column].isna()].index
            present = df[df[column].notna()].index
            if len(missing) == len(df[column]):
                raise ValueError(f"Random impute has no values to sample from in column '{column}'")
            sample = df.loc[present, column].sample(len(missing), replace=True)
            sample.index = missing
            if kind == ColumnType.LIST:
                for idx, item in zip(missing, sample):
                    df.at[idx, column] = item
            else:
                df.loc[missing, column] = sample
    elif value is not None:
        df[columns] = df[columns].fillna(value)
    else:
        raise ValueError("Require a valid strategy or value")
    for column in columns:
        df[column] = _cast_to_type(df[column], _column_type_of(column, action))
    return df


def _aggregate(method: str):
    def run(df: Any, action: dict, **_: Any) -> Any:
        if not action["action_arguments"]:
            return df
        if action["action_options"].get("groupby_columns"):
            return _grouped(df, action, method)
        df[action["outputs"][0]["uuid"]] = df[action["action_arguments"][0]].agg(method)
        return df

    return run


def _grouped_only(method: str):
    def run(df: Any, action: dict, **_: Any) -> Any:
        return _grouped(df, action, method)

    return run


def _grouped(df: Any, action: dict, method: str) -> Any:
    """Group-wise aggregate merged back onto every row as ``outputs[i].uuid``."""
    import pandas as pd

    arguments = action["action_arguments"]
    if not arguments:
        return df
    options = action["action_options"]
    rows = df
    if all(k in options for k in ("timestamp_feature_a", "timestamp_feature_b", "window")):
        window = options["window"]
        gap = (
            pd.to_datetime(df[options["timestamp_feature_a"]], format="mixed", utc=True)
            - pd.to_datetime(df[options["timestamp_feature_b"]], format="mixed", utc=True)
        ).dt.total_seconds()
        keep = (gap <= window) & (gap >= 0) if window > 0 else (gap >= window) & (gap <= 0)
        rows = df.loc[gap[keep].index]
    if action.get("action_code"):
        rows = _query(rows, action["action_code"], {"original_df": rows})
    keys = options["groupby_columns"]
    result = rows.groupby(keys)[arguments].agg(method)
    names = dict(zip(arguments, [o["uuid"] for o in action["outputs"]]))
    return df.merge(result.rename(columns=names), on=keys, how="left")


def _diff(df: Any, action: dict, **_: Any) -> Any:
    if not action["action_arguments"]:
        return df
    df[action["outputs"][0]["uuid"]] = df[action["action_arguments"][0]].diff()
    return df


def _shift_down(df: Any, action: dict, **_: Any) -> Any:
    if not action["action_arguments"]:
        return df
    options = action.get("action_options") or {}
    column, periods = action["action_arguments"][0], options.get("periods", 1)
    keys = options.get("groupby_columns")
    target = action["outputs"][0]["uuid"]
    df[target] = df.groupby(keys)[column].shift(periods) if keys is not None else df[column].shift(periods)
    return df


def _shift_up(df: Any, action: dict, **_: Any) -> Any:
    if not action["action_arguments"]:
        return df
    df[action["outputs"][0]["uuid"]] = df[action["action_arguments"][0]].shift(-1)
    return df


def _normalize(df: Any, action: dict, **_: Any) -> Any:
    import numpy as np

    for column in action["action_arguments"]:
        low, high = np.nanmin(df[column], axis=0), np.nanmax(df[column], axis=0)
        df[column] = (df[column] - low) / (high - low)
    return df


def _standardize(df: Any, action: dict, **_: Any) -> Any:
    import numpy as np

    for column in action["action_arguments"]:
        mean, std = np.mean(df[column], axis=0), np.std(df[column], axis=0)  # population std, as Mage
        df[column] = (df[column] - mean) / std
    return df


def _reformat(df: Any, action: dict, **_: Any) -> Any:
    import pandas as pd

    columns = action["action_arguments"]
    options = action["action_options"]
    how = options["reformat"]
    if how == "caps_standardization":
        upper = options["capitalization"] == "uppercase"
        for column in _string_columns(df, columns):
            df[column] = df[column].str.upper() if upper else df[column].str.lower()
        df[columns] = _blank_to_nan(df[columns])
    elif how == "currency_to_num":
        for column in _string_columns(df, columns):
            values = df[column].replace(_CURRENCY, "", regex=True).replace(r"\s", "", regex=True)
            values = _blank_to_nan(values)
            df[column] = pd.to_numeric(values, errors="coerce").astype(float)
    elif how == "date_format_conversion":
        for column in columns:
            values = df[column]
            present = values.dropna(axis=0)
            if len(present) and type(present.iloc[0]) is str:
                values = values.str.replace(r"[\,\s\t]+", " ", regex=False)
                values = values.str.replace(r"\s*([\/\\\-\.]+)\s*", lambda m: m.group(1)[0], regex=True)
                values = values.str.lower()
            df[column] = pd.to_datetime(values, format="mixed", errors="coerce")
    elif how == "trim":
        for column in columns:
            df[column] = df[column].str.strip()
    else:
        df[columns] = _blank_to_nan(df[columns])
    return df


def _fix_syntax_errors(df: Any, action: dict, **_: Any) -> Any:
    placeholders = _invalid_placeholders()
    for column in _string_columns(df, action["action_arguments"]):
        kind = action["action_variables"][column]["feature"]["column_type"]
        mask = _syntax_errors(df[column], kind)
        df.loc[mask, column] = placeholders[kind]
    return df


def _syntax_errors(series: Any, kind: Any) -> Any:
    """True where a value does not look like its column type (e-mail, phone, zip, number, date)."""
    import pandas as pd

    from dagsmith.compat import column_types as ct

    if len(series) == 0:
        return pd.Series([], dtype=bool)
    dtype = series.dtype
    strings = series
    pattern = None
    skip_invalid = skip_default = False
    if kind == ColumnType.EMAIL:
        pattern, skip_invalid, skip_default = ct.EMAIL_RE, True, True
    elif kind == ColumnType.PHONE_NUMBER:
        strings, pattern, skip_invalid, skip_default = series.astype(str), ct.PHONE_RE, True, True
    elif kind == ColumnType.ZIP_CODE:
        strings, pattern, skip_invalid, skip_default = series.astype(str), ct.ZIP_RE, True, True
    elif kind in NUMBER_TYPES and not pd.api.types.is_numeric_dtype(dtype):
        strings, pattern = series.astype(str), ct.NUMBER_RE
    elif kind == ColumnType.DATETIME and not pd.api.types.is_datetime64_any_dtype(dtype):
        strings, pattern = series.astype(str), ct.DATETIME_RE
    mask = pd.Series(False, index=series.index)
    if pattern is not None:
        mask |= ~strings.str.match(pattern, na=True)
        if skip_invalid:
            mask &= ~strings.str.match(str(_invalid_placeholders()[kind]), na=True)
        if skip_default:
            mask &= ~strings.str.match(str(_constant_defaults()[kind]), na=True)
    return mask & series.notna()


def _remove_outliers(df: Any, action: dict, **_: Any) -> Any:
    import pandas as pd

    from dagsmith.errors import require

    require("sklearn", feature="the remove_outliers transformer action", extra="ml")
    numeric = df[list(set(action["action_arguments"]))].copy()
    for column in list(numeric.columns):
        kind = action["action_variables"][column]["feature"]["column_type"]
        if kind in NUMBER_TYPES:
            numeric[column] = numeric[column].astype(float)
        else:
            numeric = numeric.drop(columns=[column])
    complete = numeric.notna().all(axis=1)
    numeric = numeric.dropna(axis=0)
    if numeric.size == 0:
        return df
    flags = _outlier_flags(numeric.to_numpy(), action["action_options"]["method"])
    outliers = pd.Series(False, index=df.index)
    outliers[complete[complete].index] = flags
    return df[~outliers]


def _outlier_flags(values: Any, method: str) -> Any:
    """Mage's OutlierRemover: contamination from the IQR rule (clamped to 2.5–15 %), then LOF or isolation forest."""
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    if method not in ("lof", "auto", "itree"):
        raise ValueError(f"The method specified '{method}' is not supported.")
    count, dims = values.shape
    q1, q3 = np.quantile(values, 0.25, axis=0), np.quantile(values, 0.75, axis=0)
    spread = 1.5 * (q3 - q1)
    beyond = ((values < q1 - spread) | (values > q3 + spread)).sum(axis=1) / dims >= 0.5
    rate = min(max(beyond.sum() / beyond.size, 0.025), 0.15)
    if dims > 20:
        values = PCA(n_components=20, random_state=42).fit_transform(values)
    if method == "auto":
        method = "lof" if dims <= 5 else "itree"
    if method == "lof":
        if count < 10:
            neighbours = 2
        elif count < 500:
            neighbours = count // 10 + 1
        else:
            neighbours = 20 if rate <= 0.1 else 35
        labels = LocalOutlierFactor(n_neighbors=neighbours, n_jobs=-1, contamination=rate).fit_predict(values)
    else:
        forest = IsolationForest(contamination=rate, n_estimators=100, n_jobs=-1, random_state=42)
        labels = forest.fit(values).predict(values)
    return labels == -1


def _custom(df: Any, action: dict, **_: Any) -> Any:
    """``action_code`` run as Python with ``df`` in scope, then any ``@transformer_action`` functions it defined."""
    queued: deque = deque()

    def transformer_action(fn):
        queued.append(fn)
        return fn

    exec(action["action_code"].replace("\t", "    "), {"df": df, "transformer_action": transformer_action})  # the user's own code
    while queued:
        df = queued.popleft()(df)
    return df


# --- row actions


def _drop_duplicates(df: Any, action: dict, **_: Any) -> Any:
    keep = (action.get("action_options") or {}).get("keep", "last")  # Mage keeps the last by default
    subset = action.get("action_arguments")
    return df.drop_duplicates(subset=subset or None, keep=keep)


def _filter(df: Any, action: dict, **kwargs: Any) -> Any:
    return _query(df, action["action_code"], kwargs)


def _sort(df: Any, action: dict, **_: Any) -> Any:
    import pandas as pd

    options = action.get("action_options") or {}
    ascending = options.get("ascending", True)
    ascendings = options.get("ascendings") or []
    if ascendings:
        ascending = ascendings[0]
    features = {
        v["feature"]["uuid"]: v["feature"] for v in (action.get("action_variables") or {}).values() if v.get("feature")
    }
    arguments = action["action_arguments"]
    casts: dict[Any, Any] = {}
    empty = None
    for i, name in enumerate(arguments):
        feature = features.get(name)
        if feature and feature["column_type"] in NUMBER_TYPES:
            casts[name] = float
            if i == 0:
                empty = df.index.isin(df[(df[name].isnull()) | (df[name].astype(str).str.len() == 0)].index)
    rest = df[~empty] if empty is not None else df
    # stable: ties keep their order, which is what Mage shows (numpy 1.26 sorts small arrays stably)
    order = rest.astype(casts).sort_values(by=arguments, ascending=ascendings or ascending, kind="stable").index
    ordered = df.loc[order]
    if empty is None:
        return ordered
    # number columns: empty values first when ascending, last when descending (Mage)
    return pd.concat([df.iloc[empty], ordered] if ascending else [ordered, df.iloc[empty]])


def _remove_rows(df: Any, action: dict, **_: Any) -> Any:
    return df.drop([i for i in action["action_options"]["rows"] if i in df.index], axis=0)


# --- filter expressions


_NAME = r"(?:([^\s()\"']+|['\"][^\"']+['\"]))"
_CONDITION = re.compile(rf"{_NAME} ([!=<>]+|(?:contains)|(?:not contains)) {_NAME}")
_ORIGINAL, _CURRENT = "orig_", "tf_"
_QUOTES = "\"'"


def _prefixed(name: str, prefix: str) -> str:
    if name[0] in _QUOTES:
        return f"`{prefix}{name.strip(_QUOTES)}`"
    return f"{prefix}{name}"


def _value_type(df: Any, cache: dict, column: str) -> type:
    if column not in cache:
        values = df[column].dropna()
        values = values[~values.isin([""])]
        cache[column] = type(values.iloc[0]) if len(values.index) else object
    return cache[column]


def _query(df: Any, code: str, kwargs: Mapping[str, Any]) -> Any:
    """Mage's filter language: pandas ``query`` plus ``== null``, ``!= null``, ``contains``, ``not contains``."""
    if code == "":
        return df
    current_types: dict = {}
    original_types: dict = {}
    original = kwargs.get("original_df")
    joined = False
    frame = df.copy().add_prefix(_CURRENT)
    names = set(df.columns)
    parts: list[str] = []
    end = 0
    for m in _CONDITION.finditer(code):
        column, op, value = m.groups()
        bare = column.strip(_QUOTES)
        parts.append(code[end : m.start()])
        end = m.end()
        if op in (Operator.CONTAINS, Operator.NOT_CONTAINS):
            kind = _value_type(df, current_types, bare)
            if kind is not str:
                raise TypeError(f"'{op}' can only be used on string columns, {kind}")
            col, needle = _prefixed(column, _CURRENT), value.strip(_QUOTES)
            test = f"({col}.notna() & {col}.str.contains('{needle}'))"
            parts.append(test if op == Operator.CONTAINS else f"~{test}")
        elif op in (Operator.EQUALS, Operator.NOT_EQUALS) and value == "null":
            if original is None:
                raise ValueError("Null value queries require original dataframe as keyword argument")
            if not joined:
                frame = frame.join(original.add_prefix(_ORIGINAL))
                joined = True
            kind = _value_type(original, original_types, bare)
            col = _prefixed(column, _ORIGINAL)
            if op == Operator.EQUALS:
                extra = f" | {col} == ''" if kind is bool else (f" | {col}.str.len() == 0" if kind is str else "")
                parts.append(f"({col}.isna(){extra})")
            else:
                extra = f" & {col} != ''" if kind is bool else (f" & {col}.str.len() >= 1" if kind is str else "")
                parts.append(f"({col}.notna(){extra})")
        else:
            if value.strip(_QUOTES) in names:
                value = _prefixed(value, _CURRENT)
            parts.append(f"{_prefixed(column, _CURRENT)} {op} {value}")
    parts.append(code[end:])
    result = frame.query("".join(parts), engine="python")
    result = result.rename(lambda c: c[len(_CURRENT):] if str(c).startswith(_CURRENT) else c, axis="columns")
    return result[df.columns]


def _add_column(df: Any, action: dict, **_: Any) -> Any:
    from dagsmith.errors import NotAvailableInDagsmith

    raise NotAvailableInDagsmith(
        "transformer action 'add' (user-defined functions) is not available in dagsmith (yet)",
        hint="compute the column with pandas in the block instead",
    )


_COLUMN_ACTIONS = {
    "add": _add_column,
    "average": _aggregate("mean"),
    "clean_column_name": _clean_names,
    "count": _grouped_only("count"),
    "count_distinct": _grouped_only("nunique"),
    "custom": _custom,
    "diff": _diff,
    "first": _aggregate("first"),
    "fix_syntax_errors": _fix_syntax_errors,
    "impute": _impute,
    "normalize": _normalize,
    "standardize": _standardize,
    "last": _aggregate("last"),
    "max": _aggregate("max"),
    "median": _aggregate("median"),
    "min": _aggregate("min"),
    "reformat": _reformat,
    "remove": _remove_columns,
    "remove_outliers": _remove_outliers,
    "select": _select,
    "shift_down": _shift_down,
    "shift_up": _shift_up,
    "sum": _aggregate("sum"),
}
_ROW_ACTIONS = {
    "custom": _custom,
    "drop_duplicate": _drop_duplicates,
    "filter": _filter,
    "sort": _sort,
    "remove": _remove_rows,
}
