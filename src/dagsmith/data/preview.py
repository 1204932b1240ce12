"""Short previews of block outputs for the CLI and the UI: first rows, column types, row count."""

from __future__ import annotations

from typing import Any

from dagsmith.data.serde import kind_of, row_count


def preview(value: Any, rows: int = 10) -> dict[str, Any]:
    """A JSON-safe summary of ``value``: kind, row count, columns with types, first rows."""
    kind = kind_of(value)
    out: dict[str, Any] = {"kind": kind, "rows": row_count(value)}
    frame = None
    if kind == "pandas":
        frame = value
    elif kind == "pandas_series":
        frame = value.to_frame()
    elif kind == "polars":
        frame = value.head(rows).to_pandas()
    elif kind == "arrow":
        frame = value.slice(0, rows).to_pandas()
    if frame is not None:
        head = frame.head(rows)
        out["columns"] = [{"name": str(c), "type": str(t)} for c, t in frame.dtypes.items()]
        out["data"] = [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)]
        return out
    text = repr(value)
    out["text"] = text if len(text) <= 4000 else text[:4000] + " …"
    return out


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if value != value else value
    return str(value)
