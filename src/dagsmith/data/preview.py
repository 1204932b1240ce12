"""Short previews and column profiles of block outputs for the CLI and the UI.

``preview(value)``: kind, row count, column types and the first rows of a value.
``stored_table(folder)``: a stored frame output (``data.arrow``) as a memory-mapped Arrow
table, so the UI previews and profiles a million rows without converting them to pandas.
``profile(value)``: per column of the WHOLE output — type, nulls, distinct values,
min/max/mean and a small histogram (numbers, dates) or the top values (text, booleans) —
computed with pyarrow compute kernels (one hash pass per text column gives both its
distinct count and its top values). ``chart_data(value, spec)``: the points of a bar, line,
histogram or scatter chart of chosen columns, aggregated over the whole output.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dagsmith.data.serde import TYPE_FILE, kind_of, row_count

#: histogram bins of a numeric or date column in a profile
PROFILE_BINS = 12
#: top values kept for a text or boolean column
PROFILE_TOP = 5
#: points a chart sends to the browser at most (scatter samples, line downsamples beyond this)
CHART_MAX_POINTS = 2000
CHART_TYPES = ("bar", "line", "histogram", "scatter")
CHART_AGGREGATIONS = ("count", "sum", "mean", "min", "max")


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
        return _preview_arrow(value, rows, out)
    if frame is not None:
        head = frame.head(rows)
        out["columns"] = [{"name": str(c), "type": str(t)} for c, t in frame.dtypes.items()]
        out["data"] = [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)]
        return out
    text = repr(value)
    out["text"] = text if len(text) <= 4000 else text[:4000] + " …"
    return out


def _preview_arrow(table: Any, rows: int, out: dict[str, Any]) -> dict[str, Any]:
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    head = table.slice(0, rows)
    out["rows"] = table.num_rows
    out["columns"] = [{"name": f.name, "type": _type_name(f.type)} for f in table.schema if f.name != "__index_level_0__"]
    names = [c["name"] for c in out["columns"]]
    cols = [head.column(n).to_pylist() for n in names]
    out["data"] = [[_cell(col[i]) for col in cols] for i in range(head.num_rows)]
    return out


def stored_table(folder: str | Path) -> Any | None:
    """The stored frame in ``folder`` (an ``output_<i>`` folder) as an Arrow table, memory-mapped; None if not a frame."""
    import json

    folder = Path(folder)
    try:
        record = json.loads((folder / TYPE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("kind") not in ("pandas", "pandas_series", "polars", "arrow"):
        return None
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(folder / "data.arrow")) as source:
        table = ipc.open_file(source).read_all()
    drop = [n for n in table.column_names if n.startswith("__index_level_")]
    if drop:
        table = table.drop_columns(drop)
    if record.get("kind") == "pandas_series" and "__series__" in table.column_names:
        table = table.rename_columns([str(record.get("name") or "value") if n == "__series__" else n for n in table.column_names])
    return table


def as_table(value: Any) -> Any | None:
    """A frame-like value as an Arrow table (None for other values)."""
    kind = kind_of(value)
    if kind not in ("pandas", "pandas_series", "polars", "arrow"):
        return None
    import pyarrow as pa

    if kind == "arrow":
        return value if isinstance(value, pa.Table) else pa.Table.from_batches([value])
    if kind == "polars":
        return value.to_arrow()
    frame = value.to_frame() if kind == "pandas_series" else value
    return pa.Table.from_pandas(frame, preserve_index=False)


# ---------------------------------------------------------------- profile


def profile(value: Any) -> list[dict[str, Any]]:
    """A profile of every column of a frame-like value (see the module docstring); [] for other values.

    Counts are exact except the distinct values of mostly-unique float columns (and of date or
    integer columns whose range fits no bincount even in whole seconds or thousands), which
    DuckDB estimates with HyperLogLog in one scan of all of them (``distinct_approx``): an
    exact hash of a million unique floats costs seconds. Columns are profiled on two
    threads (the numpy and Arrow kernels release the GIL).
    """
    table = as_table(value)
    if table is None:
        return []
    names = table.column_names
    rows = table.num_rows
    if rows >= 100_000 and len(names) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dagsmith-profile") as pool:
            cols = list(pool.map(lambda n: _profile_column(n, table.column(n), rows), names))
    else:
        cols = [_profile_column(n, table.column(n), rows) for n in names]
    approx = [c for c in cols if c.pop("_approx", False)]
    if approx:
        _approx_distinct(table, approx)
    return cols


def _approx_distinct(table: Any, cols: list[dict[str, Any]]) -> None:
    import duckdb

    con = duckdb.connect()
    try:
        con.register("profiled", table.select([c["name"] for c in cols]))
        names = ", ".join("approx_count_distinct(" + '"' + c["name"].replace('"', '""') + '")' for c in cols)
        row = con.execute(f"SELECT {names} FROM profiled").fetchone()
    finally:
        con.close()
    for c, n in zip(cols, row):
        present = c["rows"] - c["nulls"]
        c["distinct"] = min(int(n), present)
        c["distinct_approx"] = True


def _profile_column(name: str, col: Any, rows: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = t.value_type
    nulls = col.null_count
    out: dict[str, Any] = {"name": name, "type": _type_name(t), "rows": rows, "nulls": nulls, "null_pct": (nulls / rows * 100) if rows else 0.0}
    present = rows - nulls
    if present == 0:
        out.update(kind="empty", distinct=0)
        return out
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_timestamp(t) or pa.types.is_date(t):
        _profile_numeric(out, col, t)
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t) or pa.types.is_binary(t):
        out["kind"] = "bool" if pa.types.is_boolean(t) else "text"
        counts = pc.value_counts(col.drop_null() if nulls else col)
        values, freq = counts.field("values"), counts.field("counts")
        out["distinct"] = len(counts)
        if len(counts) > PROFILE_TOP:  # O(distinct) partial selection, not a sort
            import numpy as np

            order = np.argpartition(freq.to_numpy(), -PROFILE_TOP)[-PROFILE_TOP:]
            values, freq = pc.take(values, order), pc.take(freq, order)
        top = sorted(zip(values.to_pylist(), freq.to_pylist()), key=lambda p: -p[1])
        out["top"] = [{"value": _short(v), "count": c, "pct": c / present * 100} for v, c in top]
    else:
        out["kind"] = "other"
    return out


def _profile_numeric(out: dict[str, Any], col: Any, t: Any) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    temporal = pa.types.is_timestamp(t) or pa.types.is_date(t)
    out["kind"] = "date" if temporal else "number"
    if pa.types.is_decimal(t):
        col = col.cast(pa.float64())
    elif temporal:
        col = (col.cast(pa.timestamp("us", tz=getattr(t, "tz", None))) if pa.types.is_date(t) else col).cast(pa.int64())
    arr = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    if arr.null_count:
        arr = pc.drop_null(arr)
    data = arr.to_numpy(zero_copy_only=False)
    total = np.add.reduce(data, dtype=np.float64)
    if data.dtype.kind == "f" and not math.isfinite(total):  # NaN or inf inside (or a sum past 1e308)
        data = data[np.isfinite(data)]
        total = np.add.reduce(data, dtype=np.float64)
    if data.size == 0:
        out.update(kind="empty", distinct=0)
        return
    lo, hi = data.min().item(), data.max().item()  # numpy's reductions: ~10x faster than Arrow's min_max on floats
    label = (lambda v: _when_from(v, t)) if temporal else (lambda v: _num(float(v)))
    if temporal:
        out["min"], out["max"] = label(lo), label(hi)
    else:
        out["min"], out["max"], out["mean"] = _num(lo), _num(hi), _num(float(total) / data.size)
    if data.dtype.kind in "iu":
        steps = _in_steps(data, int(lo), int(hi))
        if steps is not None:
            # a small range (counted in steps: whole seconds of a nanosecond timestamp, thousands…):
            # one bincount gives the exact distinct count; the histogram from whichever is shorter
            offsets, step = steps
            per_value = np.bincount(offsets)
            out["distinct"] = int(np.count_nonzero(per_value))
            if per_value.size <= data.size:
                values = np.arange(per_value.size, dtype=np.float64) * step + float(lo)
                out["histogram"] = _histogram_of_counts(values, per_value, float(lo), float(hi), label)
            else:
                out["histogram"] = _histogram(data, float(lo), float(hi), label)
            return
    if data.dtype.kind == "f":
        cents = _as_small_ints(data, lo, hi)
        if cents is not None:  # whole numbers or cents (fares, counts stored as floats): exact, by bincount
            ints, scale, base = cents
            per_value = np.bincount(ints)
            out["distinct"] = int(np.count_nonzero(per_value))
            out["histogram"] = _histogram_of_counts((np.arange(per_value.size, dtype=np.float64) + base) / scale, per_value, float(lo), float(hi), label)
            return
    sample = pa.array(data[:: max(1, data.size // 20_000)])
    if pc.count_distinct(sample).as_py() < len(sample) // 2:
        # values repeat a lot: one hash pass gives exact distinct values with their counts,
        # and the histogram is summed from those (no pass over all rows per bin)
        counts = pc.value_counts(pa.array(data))
        values = counts.field("values").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        out["distinct"] = len(counts)
        out["histogram"] = _histogram_of_counts(values, counts.field("counts").to_numpy(), float(lo), float(hi), label)
        return
    out["_approx"] = True
    out["histogram"] = _histogram(data, float(lo), float(hi), label)


#: distinct values counted by bincount at most (a 32 MB count array)
BINCOUNT_RANGE = 4_000_000


def _in_steps(data: Any, lo: int, hi: int) -> tuple[Any, int] | None:
    """``((data - lo) // step, step)`` for a step every value is a multiple of away from ``lo`` such
    that the range has fewer than ``BINCOUNT_RANGE`` steps (step 1 for a small range); else None.

    Timestamps are integers of nanoseconds (or µs) that usually fall on whole seconds or
    milliseconds: counted in those, a month of them fits one bincount, which is exact and
    several times cheaper than hashing (or estimating) a million distinct values.
    """
    import numpy as np

    span = hi - lo
    offsets = np.subtract(data, lo, dtype=np.intp)
    if span < BINCOUNT_RANGE:
        return offsets, 1
    probe = offsets[:: max(1, offsets.size // 4096)]
    for step in (1_000_000_000, 1_000_000, 1_000):
        if span // step >= BINCOUNT_RANGE:
            return None  # smaller steps only make more of them
        if np.any(probe % step):
            continue
        quotient = offsets // step
        if np.array_equal(quotient * step, offsets):
            return quotient, step
    return None


def _as_small_ints(data: Any, lo: float, hi: float) -> tuple[Any, int, int] | None:
    """``(data * scale - base)`` as small non-negative ints when every value is a whole number (scale 1)
    or has at most two decimals (scale 100) and the range is small; else None."""
    import numpy as np

    for scale in (1, 100):
        if (hi - lo) * scale >= 2_000_000:
            return None
        # a sample first: most float columns fail here at once
        probe = data[:: max(1, data.size // 4096)] * scale
        if np.abs(probe - np.rint(probe)).max() > 1e-6:
            continue
        scaled = data * scale
        rounded = np.rint(scaled)
        scaled -= rounded
        if np.abs(scaled).max() > 1e-6:
            continue
        base = int(round(lo * scale))
        rounded -= base
        return rounded.astype(np.intp), scale, base
    return None


def _histogram_of_counts(values: Any, counts: Any, lo: float, hi: float, label) -> list[dict[str, Any]]:
    """The ``PROFILE_BINS`` histogram of distinct ``values`` seen ``counts`` times each."""
    import numpy as np

    if lo == hi:
        return [{"lo": label(lo), "hi": label(hi), "count": int(counts.sum())}]
    width = (hi - lo) / PROFILE_BINS
    idx = np.minimum(((values - lo) / width).astype(np.intp), PROFILE_BINS - 1)
    binned = np.bincount(idx, weights=counts, minlength=PROFILE_BINS)
    return [{"lo": label(lo + i * width), "hi": label(lo + (i + 1) * width), "count": int(c)} for i, c in enumerate(binned)]


def _histogram(data: Any, lo: float, hi: float, label) -> list[dict[str, Any]]:
    """``PROFILE_BINS`` equal-width bins between lo and hi of a numpy array without nulls/NaN."""
    import numpy as np

    if lo == hi:
        return [{"lo": label(lo), "hi": label(hi), "count": int(data.size)}]
    width = (hi - lo) / PROFILE_BINS
    # bincount of computed bin numbers: one pass, no sorting (np.histogram is ~3x slower)
    scaled = np.subtract(data, lo, dtype=np.float64)
    scaled *= 1.0 / width
    idx = scaled.astype(np.intp)
    np.minimum(idx, PROFILE_BINS - 1, out=idx)
    counts = np.bincount(idx, minlength=PROFILE_BINS)
    return [{"lo": label(lo + i * width), "hi": label(lo + (i + 1) * width), "count": int(c)} for i, c in enumerate(counts)]


def _when_from(v: float, t: Any) -> str:
    import pyarrow as pa

    from datetime import datetime, timedelta, timezone

    unit = getattr(t, "unit", "us") if pa.types.is_timestamp(t) else "us"
    per = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=float(v) / per)).strftime("%Y-%m-%d %H:%M")


def _when(v: Any) -> str | None:
    if v is None:
        return None
    return v.isoformat(sep=" ") if hasattr(v, "isoformat") else str(v)


def _num(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return None
        return round(v, 6) if abs(v) < 1e15 else v
    if isinstance(v, int):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _short(v: Any, n: int = 60) -> Any:
    if isinstance(v, bytes):
        v = v.decode("utf-8", errors="replace")
    if isinstance(v, str) and len(v) > n:
        return v[: n - 1] + "…"
    return v


def _type_name(t: Any) -> str:
    names = {"string": "text", "large_string": "text", "bool": "bool", "double": "float64", "float": "float32"}
    s = str(t)
    return names.get(s, s)


# ---------------------------------------------------------------- charts


def chart_data(value: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The points of one chart of a frame-like value (whole output), ready for the browser.

    ``spec``: ``type`` (bar|line|histogram|scatter), ``x``, ``y`` (column names; histogram
    uses ``x`` only), ``agg`` for bar/line (count|sum|mean|min|max), ``bins`` for histograms.
    Returns ``{"type", "x": [...], "y": [...], "x_label", "y_label", "note"}``.
    """
    from dagsmith.errors import ConfigError

    table = as_table(value)
    if table is None:
        raise ConfigError("only frame outputs (pandas, polars, Arrow) can be charted")
    kind = str(spec.get("type") or "bar")
    if kind not in CHART_TYPES:
        raise ConfigError(f"chart type {kind!r} is unknown", hint="use one of: " + ", ".join(CHART_TYPES))
    x = str(spec.get("x") or "")
    y = str(spec.get("y") or "")
    agg = str(spec.get("agg") or "count")
    if x not in table.column_names:
        raise ConfigError(f"column {x!r} is not in the output", hint="choose one of: " + ", ".join(table.column_names[:30]))
    if kind in ("bar", "line", "scatter") and agg != "count" or kind == "scatter":
        if y not in table.column_names:
            raise ConfigError(f"column {y!r} is not in the output", hint="choose one of: " + ", ".join(table.column_names[:30]))
    if agg not in CHART_AGGREGATIONS:
        raise ConfigError(f"aggregation {agg!r} is unknown", hint="use one of: " + ", ".join(CHART_AGGREGATIONS))
    if kind == "histogram":
        return _chart_histogram(table, x, int(spec.get("bins") or 20))
    if kind == "scatter":
        return _chart_scatter(table, x, y)
    return _chart_grouped(table, kind, x, y, agg)


def _chart_histogram(table: Any, x: str, bins: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from dagsmith.errors import ConfigError

    col = table.column(x)
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        col = (col.cast(pa.timestamp("us")) if pa.types.is_date(t) else col).cast(pa.int64())
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        raise ConfigError(f"a histogram needs a numeric or date column; {x!r} is {_type_name(t)}", hint="use a bar chart to count text values")
    # safe=False: epoch nanoseconds (~1.6e18) are past float64's exact integers; a bin edge needs no such precision
    data = pc.drop_null(col).cast(pa.float64(), safe=False).to_numpy()
    data = data[np.isfinite(data)]
    bins = max(2, min(bins, 200))
    if data.size == 0:
        return {"type": "histogram", "x": [], "y": [], "x_label": x, "y_label": "rows", "note": "no values"}
    counts, edges = np.histogram(data, bins=bins)
    label = (lambda v: _when_from(v, t)) if (pa.types.is_timestamp(t) or pa.types.is_date(t)) else (lambda v: _num(float(v)))
    return {"type": "histogram", "x": [label(e) for e in edges[:-1]], "x_end": [label(e) for e in edges[1:]],
            "y": [int(c) for c in counts], "x_label": x, "y_label": "rows", "note": f"{int(data.size):,} values in {bins} bins"}


def _chart_grouped(table: Any, kind: str, x: str, y: str, agg: str) -> dict[str, Any]:
    import pyarrow as pa

    if agg == "count":
        grouped = table.group_by(x).aggregate([([], "count_all")])
        ycol = "count_all"
    else:
        grouped = table.group_by(x).aggregate([(y, agg)])
        ycol = f"{y}_{agg}"
    note = ""
    xs_type = grouped.schema.field(x).type
    if kind == "bar":
        if grouped.num_rows > 50:  # the 50 largest bars
            grouped = grouped.sort_by([(ycol, "descending")]).slice(0, 50)
            note = "the 50 largest groups"
        if pa.types.is_integer(xs_type) or pa.types.is_floating(xs_type) or pa.types.is_temporal(xs_type):
            grouped = grouped.sort_by([(x, "ascending")])
        else:
            grouped = grouped.sort_by([(ycol, "descending")])
    else:
        grouped = grouped.filter(grouped.column(x).is_valid()).sort_by([(x, "ascending")])
        if grouped.num_rows > CHART_MAX_POINTS:
            step = math.ceil(grouped.num_rows / CHART_MAX_POINTS)
            import pyarrow.compute as pc

            grouped = grouped.take(pc.cast(pa.array(range(0, grouped.num_rows, step)), pa.int64()))
            note = f"every {step}th point"
    xs = [_axis(v) for v in grouped.column(x).to_pylist()]
    ys = [_num(v) for v in grouped.column(ycol).to_pylist()]
    return {"type": kind, "x": xs, "y": ys, "x_label": x, "y_label": "rows" if agg == "count" else f"{agg}({y})", "note": note}


def _chart_scatter(table: Any, x: str, y: str) -> dict[str, Any]:
    import pyarrow.compute as pc

    sub = table.select([x, y])
    sub = sub.filter(pc.and_(sub.column(x).is_valid(), sub.column(y).is_valid()))
    note = ""
    if sub.num_rows > CHART_MAX_POINTS:
        import numpy as np

        idx = np.sort(np.random.default_rng(0).choice(sub.num_rows, CHART_MAX_POINTS, replace=False))
        sub = sub.take(idx)
        note = f"a random sample of {CHART_MAX_POINTS:,} of {table.num_rows:,} rows"
    return {"type": "scatter", "x": [_axis(v) for v in sub.column(x).to_pylist()], "y": [_axis(v) for v in sub.column(y).to_pylist()],
            "x_label": x, "y_label": y, "note": note}


def _axis(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, (int, float)) or v is None:
        return _num(v)
    return _short(str(v), 40)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if value != value else value
    return str(value)
