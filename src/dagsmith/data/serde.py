"""Writing block output values to a folder and reading them back, losslessly.

Frames (pandas, polars, pyarrow) go to Arrow IPC (``data.arrow``): pandas
metadata travels with the schema, so nullable integers, tz-aware datetimes and
categoricals come back as they left. Plain JSON values go to ``data.json``
(only when JSON returns exactly the same value); anything else is pickled.
``type.json`` names the format. Heavy libraries are imported only when a value
of theirs is written or read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TYPE_FILE = "type.json"


def kind_of(value: Any) -> str:
    """A short name for the storage format a value needs."""
    mod = type(value).__module__.split(".", 1)[0]
    name = type(value).__name__
    if mod == "pandas":
        if name == "DataFrame":
            return "pandas"
        if name == "Series":
            return "pandas_series"
    if mod == "polars" and name == "DataFrame":
        return "polars"
    if mod == "pyarrow" and name in ("Table", "RecordBatch"):
        return "arrow"
    if _json_exact(value):
        return "json"
    return "pickle"


#: the libraries whose values are frames (or parts of one: series, arrays, scalars)
FRAME_LIBRARIES = frozenset({"pandas", "polars", "pyarrow"})


def from_frame_library(value: Any) -> bool:
    """True for any pandas, polars or pyarrow object; the store gives each its own output file."""
    return type(value).__module__.split(".", 1)[0] in FRAME_LIBRARIES


def is_frame(value: Any) -> bool:
    """True for a table: a pandas DataFrame, a polars or pyarrow object, or any Arrow C stream.

    What a SQL block can load into a table (a pandas Series is not one).
    """
    mod = type(value).__module__
    return (
        (mod.startswith("pandas") and type(value).__name__ == "DataFrame")
        or mod.startswith("polars")
        or mod.startswith("pyarrow")
        or hasattr(value, "__arrow_c_stream__")
    )


_JSON_SCALARS = (str, int, float, bool, type(None))


def _json_exact(value: Any, depth: int = 0) -> bool:
    """True when ``json.loads(json.dumps(value)) == value`` with the same types throughout."""
    if depth > 50:
        return False
    t = type(value)
    if t in _JSON_SCALARS:
        return not (t is float and value != value)  # NaN does not survive strict JSON
    if t is list:
        return all(_json_exact(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and _json_exact(v, depth + 1) for k, v in value.items())
    return False


def is_plain_json(value: Any) -> bool:
    """True when JSON gives back exactly ``value`` (same types throughout)."""
    return _json_exact(value)


def write_value(value: Any, folder: Path) -> dict[str, Any]:
    """Write ``value`` into ``folder`` (created); returns the type record also saved in type.json."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    kind = kind_of(value)
    record: dict[str, Any] = {"kind": kind}
    if kind in ("pandas", "pandas_series", "polars", "arrow"):
        import pyarrow as pa
        import pyarrow.ipc as ipc

        if kind == "pandas":
            table = pa.Table.from_pandas(value)
        elif kind == "pandas_series":
            record["name"] = value.name if isinstance(value.name, (str, int, type(None))) else str(value.name)
            table = pa.Table.from_pandas(value.to_frame(name="__series__"))
        elif kind == "polars":
            table = value.to_arrow()
        else:
            table = value if isinstance(value, pa.Table) else pa.Table.from_batches([value])
        with ipc.new_file(str(folder / "data.arrow"), table.schema) as writer:
            writer.write_table(table)
        record["rows"] = table.num_rows
        record["columns"] = table.num_columns
    elif kind == "json":
        (folder / "data.json").write_text(json.dumps(value), encoding="utf-8")
    else:
        with open(folder / "data.pkl", "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    (folder / TYPE_FILE).write_text(json.dumps(record), encoding="utf-8")
    return record


def read_value(folder: Path) -> Any:
    """Read back what ``write_value`` wrote."""
    import pickle

    record = json.loads((folder / TYPE_FILE).read_text(encoding="utf-8"))
    kind = record["kind"]
    if kind in ("pandas", "pandas_series", "polars", "arrow"):
        import pyarrow as pa
        import pyarrow.ipc as ipc

        with pa.memory_map(str(folder / "data.arrow")) as source:
            table = ipc.open_file(source).read_all()
        if kind == "pandas":
            return table.to_pandas()
        if kind == "pandas_series":
            series = table.to_pandas()["__series__"]
            series.name = record.get("name")
            return series
        if kind == "polars":
            import polars as pl

            return pl.from_arrow(table)
        return table
    if kind == "json":
        return json.loads((folder / "data.json").read_text(encoding="utf-8"))
    with open(folder / "data.pkl", "rb") as fh:
        return pickle.load(fh)


def row_count(value: Any) -> int | None:
    """Rows of a frame-like output, items of a list; None for other values."""
    kind = type(value).__module__.split(".", 1)[0]
    if kind in ("pandas", "polars"):
        return int(value.shape[0])
    if kind == "pyarrow" and hasattr(value, "num_rows"):
        return int(value.num_rows)
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


__all__ = ["write_value", "read_value", "kind_of", "row_count", "folder_size", "os"]
