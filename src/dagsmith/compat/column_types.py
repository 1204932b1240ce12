"""Mage's column-type inference (``mage_ai.data_cleaner.column_types``), which transformer actions use.

``build_transformer_action`` tags every column with a type and actions depend on it
(``impute`` casts ``number`` columns to int64, ``sort`` puts nulls first for number
columns, …), so the types must be the ones Mage 0.9.80 infers. The rules, measured
and read from Mage (MAGE_BEHAVIOUR.md §5), in short: datetimes by dtype; numbers by
dtype, with whole-valued floats counting as ``number`` and two distinct values (NaN
included) making any number column ``true_or_false``; object columns by the share of
values matching number/date/e-mail/phone/zip/list patterns, then by cardinality.

Where Mage 0.9.80 crashes (nullable or string extension dtypes, numbers with thousands
separators), dagsmith infers the sensible type instead.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Mapping

__all__ = ["ColumnType", "NUMBER_TYPES", "STRING_TYPES", "CATEGORICAL_TYPES", "infer_column_types", "infer_column_type"]


class ColumnType(str, Enum):
    CATEGORY = "category"
    CATEGORY_HIGH_CARDINALITY = "category_high_cardinality"
    DATETIME = "datetime"
    EMAIL = "email"
    LIST = "list"
    NUMBER = "number"
    NUMBER_WITH_DECIMALS = "number_with_decimals"
    PHONE_NUMBER = "phone_number"
    TEXT = "text"
    TRUE_OR_FALSE = "true_or_false"
    ZIP_CODE = "zip_code"

    def __str__(self) -> str:
        return self.value


NUMBER_TYPES = frozenset({ColumnType.NUMBER, ColumnType.NUMBER_WITH_DECIMALS})
STRING_TYPES = frozenset({ColumnType.EMAIL, ColumnType.PHONE_NUMBER, ColumnType.TEXT, ColumnType.ZIP_CODE})
CATEGORICAL_TYPES = frozenset({ColumnType.CATEGORY, ColumnType.CATEGORY_HIGH_CARDINALITY, ColumnType.TRUE_OR_FALSE})

# Thresholds Mage uses.
SAMPLE_ROWS = 100_000
NUMBER_SHARE = 0.8
STRING_SHARE = 0.3
DATETIME_SHARE = 0.5
TEXT_UNIQUE_SHARE = 0.8
MAX_CATEGORY_WORDS = 40
CATEGORY_LIMIT = 255

# --- value patterns (each matched from the start of the value, as pandas' str.match does)
_CURRENCY_BEFORE = r"(?:[$€¥₹£]|Rs|CAD)"
_CURRENCY_AFTER = r"(?:[元€$]|CAD)"
_DIGITS = r"(?:[0-9]+(?:,[0-9]+)*|[0-9]+)"


def _number_pattern(fraction: str, percent: bool) -> re.Pattern[str]:
    prefixed = rf"{_CURRENCY_BEFORE}?\s*{_DIGITS}?{fraction}"
    suffixed = rf"{_DIGITS}?{fraction}\s*{_CURRENCY_AFTER}?"
    tail = r"\s*%?" if percent else ""
    return re.compile(rf"^-?\s*(?:{prefixed}|{suffixed}){tail}$")


NUMBER_RE = _number_pattern(r"(?:\.[0-9]*)?", percent=True)
"""A number as text: sign, currency before or after, thousands commas, decimals, percent (also matches '')."""
INTEGER_RE = _number_pattern(r"(?:\.0*)?", percent=False)
_MONTHS = "|".join(
    f"{m[:3]}(?:{m[3:]})?" if len(m) > 3 else m
    for m in ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
)
_TIME = r"[Tt ]\d{1,2}:\d{1,2}:?\d{1,2}\.?\d*"
DATETIME_RE = re.compile(
    "|".join(
        [
            r"^\d{2,4}-\d{1,2}-\d{1,2}$",
            rf"^\d{{2,4}}-\d{{1,2}}-\d{{1,2}}{_TIME}",
            r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
            r"^\d{1,4}[-/]\d{1,2}[-/]\d{1,2}$",
            r"^\d{1,2}[-/]\d{1,2}[-/]\d{1,4}$",
            rf"^\d{{1,2}}[-/]\d{{1,2}}[-/]\d{{2,4}}{_TIME}",
            rf"({_MONTHS})\s+(\d{{1,2}})[\s,]+(\d{{2,4}})",
        ]
    )
)
EMAIL_RE = re.compile(r"^[a-zA-Z0-9_.+#-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9.-]+$")
PHONE_RE = re.compile(r"^\s*(?:\+?(\d{1,3}))?[-. (]*(\d{3})[-. )]*(\d{3})[-. ]*(\d{4})(?: *x(\d+))?\s*$")
ZIP_RE = re.compile(r"^\d{3,5}(?:[-\s]\d{4})?$")
LIST_RE = re.compile(r"^[\[(](?:[^\n\r],?)*[\])]$")
_PHONE_WORDS = ("phone", "landline")
_ZIP_WORDS = ("zip", "postal", "zipcode", "postcode")


def _mentions(name: str, words: tuple[str, ...]) -> bool:
    lower = str(name).lower()
    return any(w in lower for w in words)


def _share(strings: Any, pattern: re.Pattern[str]) -> float:
    return float(strings.str.match(pattern).sum()) / len(strings)


def infer_column_type(series: Any, name: str, **options: Any) -> ColumnType | None:
    """The Mage column type of one column."""
    import pandas as pd

    dtype = series.dtype
    kind: ColumnType | None = None
    if "datetime64" in str(dtype):
        kind = ColumnType.DATETIME
    elif dtype == object or isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype)) or str(dtype) == "str":
        kind = _object_type(series, name, options)
    elif dtype == bool or str(dtype) == "boolean":
        kind = ColumnType.TRUE_OR_FALSE
    elif pd.api.types.is_numeric_dtype(dtype):
        kind = _number_type(series, name, dtype)
    if kind in NUMBER_TYPES and series.nunique(dropna=False) == 2:
        kind = ColumnType.TRUE_OR_FALSE
    return kind


def _number_type(series: Any, name: str, dtype: Any) -> ColumnType:
    import numpy as np
    import pandas as pd

    values = series.dropna()
    if len(values) == 0:
        return ColumnType.NUMBER_WITH_DECIMALS
    values = values.astype("float64")
    whole = np.floor(values) == values
    phone_like = ((values >= 1e9) & (values < 1e12) & whole).sum()
    if phone_like / len(values) >= NUMBER_SHARE and "phone" in str(name).lower():
        return ColumnType.PHONE_NUMBER
    if pd.api.types.is_integer_dtype(dtype):
        if values.min() >= 100 and values.max() <= 99999 and _mentions(name, _ZIP_WORDS):
            return ColumnType.ZIP_CODE
        return ColumnType.NUMBER
    return ColumnType.NUMBER if bool(whole.all()) else ColumnType.NUMBER_WITH_DECIMALS


def _object_type(series: Any, name: str, options: Mapping[str, Any]) -> ColumnType:
    import numpy as np

    limit = options.get("category_cardinality_threshold", CATEGORY_LIMIT)
    values = series.astype(object).map(lambda v: v.strip(" '\"") if type(v) is str else v)
    values = values.map(lambda v: np.nan if isinstance(v, str) and v == "" else v).dropna()
    first = type(values.iloc[0]) if len(values) else None
    if first in (list, tuple, set):
        return ColumnType.LIST
    all_unique = series.astype(object).nunique(dropna=False)
    unique = values.nunique()
    if first is not None and (first is bool or issubclass(first, np.bool_)):
        return ColumnType.TRUE_OR_FALSE if unique <= 2 else ColumnType.CATEGORY
    if unique <= 2:
        return ColumnType.TRUE_OR_FALSE
    strings = values.astype(str)
    if bool(strings.str.match(NUMBER_RE).all()):
        if not bool(strings.str.match(INTEGER_RE).all()):
            return ColumnType.NUMBER_WITH_DECIMALS
        if _share(strings, PHONE_RE) >= NUMBER_SHARE and _mentions(name, _PHONE_WORDS):
            return ColumnType.PHONE_NUMBER
        if _share(strings, ZIP_RE) >= NUMBER_SHARE and _mentions(name, _ZIP_WORDS):
            return ColumnType.ZIP_CODE
        digits = strings.str.replace(r"\.0*", "", regex=True)
        try:
            digits.astype(np.int64)
        except OverflowError:
            return ColumnType.CATEGORY if unique <= limit else ColumnType.CATEGORY_HIGH_CARDINALITY
        except ValueError:  # '1,000', '$5': Mage 0.9.80 crashes here; they are whole numbers
            pass
        return ColumnType.NUMBER
    if _share(strings, DATETIME_RE) >= DATETIME_SHARE:
        return ColumnType.DATETIME
    if _share(strings, EMAIL_RE) >= STRING_SHARE:
        return ColumnType.EMAIL
    if _share(strings, PHONE_RE) >= STRING_SHARE and _mentions(name, _PHONE_WORDS):
        return ColumnType.PHONE_NUMBER
    if _share(strings, ZIP_RE) >= STRING_SHARE and _mentions(name, _ZIP_WORDS):
        return ColumnType.ZIP_CODE
    if _share(strings, LIST_RE) >= STRING_SHARE:
        return ColumnType.LIST
    if all_unique == 2:
        return ColumnType.TRUE_OR_FALSE
    if unique / len(strings) >= TEXT_UNIQUE_SHARE:
        return ColumnType.TEXT
    if strings.map(lambda v: len(v.split(" "))).max() > MAX_CATEGORY_WORDS:
        return ColumnType.TEXT
    return ColumnType.CATEGORY if unique <= limit else ColumnType.CATEGORY_HIGH_CARDINALITY


def infer_column_types(df: Any, column_types: Mapping[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """``{column: ColumnType}`` for every column of ``df``; ``column_types`` given by the caller are kept.

    Frames over 100,000 rows are inferred on a sample of that size (seeded, so runs agree).
    """
    given = dict(column_types or {})
    columns = list(df.columns)
    types = {c: t for c, t in given.items() if c in columns}
    sample = df.sample(SAMPLE_ROWS, random_state=0) if len(df) > SAMPLE_ROWS else df
    for column in columns:
        if column not in given:
            types[column] = infer_column_type(sample[column], column, **options)
    return types
