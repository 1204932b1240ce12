"""Files: reading and writing csv, csv.gz, parquet, json and xlsx, locally and for the object stores.

Owns the format layer every file-like connector shares (FileIO here, GCS, S3 and
HTTP reuse the ``read_*``/``write_*`` helpers):

- CSV goes through pyarrow's multi-threaded reader, with pandas-style ``dtype=``
  and ``parse_dates=`` mapped onto Arrow column types; a ragged or non-UTF-8 file
  fails with an error naming the line;
- writes are atomic for local files (temporary file in the same folder, then rename);
- :class:`FileIO` is Mage's ``mage_ai.io.file.FileIO``: ``load(filepath, format)``,
  ``export(df, filepath, format)``, relative paths resolved against the working
  directory, files written and read with pandas exactly as Mage does (``write_frame``,
  ``read_file_frame``, ``file_format``), which GCS and S3 share.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from dagsmith.errors import ConfigError, TerminalConnectorError
from dagsmith.io.base import (
    QUERY_ROW_LIMIT,
    Capabilities,
    Connector,
    arrow_to_pandas,
    to_arrow,
)
from dagsmith.util.fs import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "FILE_FORMATS",
    "FileIO",
    "FileNotFound",
    "file_format",
    "frame_bytes",
    "read_file_frame",
    "write_frame",
    "arrow_schema_for_dtypes",
    "read_csv_arrow",
    "read_table",
    "read_frame",
    "write_table",
    "table_to_bytes",
]


# --------------------------------------------------------------------------- dtype mapping


def _arrow_type_for(dtype: Any) -> tuple[Any, Any]:
    """(arrow type, pandas dtype to restore or None) for one pandas-style dtype spec."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(dtype, pa.DataType):
        return dtype, None
    if dtype is str or dtype == "str" or dtype == "string" or dtype is object or dtype == "object":
        return pa.string(), None
    if dtype is float:
        return pa.float64(), None
    if dtype is int:
        return pa.int64(), None
    if dtype is bool:
        return pa.bool_(), None
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(dtype, pd.ArrowDtype):
        name = getattr(dtype, "name", str(dtype))
        if isinstance(dtype, pd.CategoricalDtype) or name == "category":
            return pa.dictionary(pa.int32(), pa.string()), None
        if isinstance(dtype, pd.StringDtype):
            return pa.string(), None
        if name == "boolean":
            return pa.bool_(), dtype
        try:
            np_type = np.dtype(name.lower())
            return pa.from_numpy_dtype(np_type), dtype
        except TypeError:
            return pa.string(), None
    if isinstance(dtype, pd.ArrowDtype):
        return dtype.pyarrow_dtype, dtype
    if isinstance(dtype, str):
        if dtype in ("category",):
            return pa.dictionary(pa.int32(), pa.string()), None
        try:
            ext = pd.api.types.pandas_dtype(dtype)
        except TypeError:
            raise ConfigError(f"unknown dtype {dtype!r}") from None
        return _arrow_type_for(ext)
    try:
        np_type = np.dtype(dtype)
    except TypeError:
        raise ConfigError(f"unknown dtype {dtype!r}") from None
    if np_type.kind == "M":
        return pa.timestamp("us"), None
    return pa.from_numpy_dtype(np_type), None


def frame_from_arrow(table: "pa.Table", dtype: Mapping[str, Any] | None) -> "pd.DataFrame":
    """Arrow → pandas (``arrow_to_pandas``), then the pandas ``dtype=`` columns Arrow cannot hold restored."""
    frame = arrow_to_pandas(table)
    _, restore = arrow_schema_for_dtypes(dtype, None)
    for column, pandas_dtype in restore.items():
        if column in frame.columns and frame[column].dtype != pandas_dtype:
            frame[column] = frame[column].astype(pandas_dtype)
    return frame


def arrow_schema_for_dtypes(
    dtype: Mapping[str, Any] | None, parse_dates: Iterable[str] | None = None
) -> tuple[dict[str, Any], dict[Any, Any]]:
    """Arrow column types for pandas ``dtype=``/``parse_dates=``, and the pandas dtypes to restore."""
    import pyarrow as pa

    column_types: dict[str, Any] = {}
    restore: dict[str, Any] = {}
    for name, spec in (dtype or {}).items():
        arrow_type, pandas_dtype = _arrow_type_for(spec)
        column_types[name] = arrow_type
        if pandas_dtype is not None:
            restore[name] = pandas_dtype
    for name in parse_dates or ():
        column_types[name] = pa.timestamp("us")
    return column_types, restore


# --------------------------------------------------------------------------- CSV


def _open_input(source: Any, compression: str | None):
    import pyarrow as pa

    if isinstance(source, (bytes, bytearray, memoryview)):
        stream = pa.BufferReader(source)
        if compression:
            stream = pa.CompressedInputStream(stream, compression)
        return stream
    return pa.input_stream(source, compression=compression or None)


def _compression_for(name: str, compression: str | None) -> str | None:
    if compression == "infer" or compression is None:
        lower = name.lower()
        if lower.endswith(".gz") or lower.endswith(".gzip"):
            return "gzip"
        if lower.endswith(".bz2"):
            return "bz2"
        if lower.endswith(".zst"):
            return "zstd"
        return None
    return None if compression in ("", "none") else compression


def read_csv_arrow(
    source: Any,
    *,
    name: str,
    dtype: Mapping[str, Any] | None = None,
    parse_dates: Iterable[str] | None = None,
    compression: str | None = "infer",
    sep: str = ",",
    usecols: Iterable[str] | None = None,
    encoding: str = "utf-8",
    nrows: int | None = None,
) -> "pa.Table":
    """Parse CSV (path, bytes or file) with pyarrow's multi-threaded reader.

    ``name`` is what errors call the file (a path or URL). A ragged row or bytes
    that are not UTF-8 raise :class:`TerminalConnectorError` naming the line.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    column_types, _ = arrow_schema_for_dtypes(dtype, parse_dates)
    comp = _compression_for(name if not isinstance(source, str) else source, compression)
    read_options = pacsv.ReadOptions(block_size=8 << 20, encoding=encoding)
    parse_options = pacsv.ParseOptions(delimiter=sep, newlines_in_values=False)
    convert_options = pacsv.ConvertOptions(
        column_types=column_types,
        include_columns=list(usecols) if usecols else None,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        timestamp_parsers=[pacsv.ISO8601, "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y"],
    )
    try:
        if nrows is not None:
            reader = pacsv.open_csv(
                _open_input(source, comp), read_options=read_options,
                parse_options=parse_options, convert_options=convert_options,
            )
            batches, count = [], 0
            for batch in reader:
                batches.append(batch)
                count += batch.num_rows
                if count >= nrows:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema).slice(0, nrows)
            return _settle_inferred(table, column_types, source, name, comp, sep, encoding)
        table = pacsv.read_csv(
            _open_input(source, comp),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        raise _csv_error(source, name, comp, sep, encoding, exc) from None
    return _settle_inferred(table, column_types, source, name, comp, sep, encoding)


def _settle_inferred(table, column_types, source, name, comp, sep, encoding):
    """Inferred binary columns mean bytes that are not text: fail naming the line. All-empty
    columns (null type) become float64, as pandas reads them."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if field.name in column_types:
            continue
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise _csv_error(source, name, comp, sep, encoding, ValueError(f"column {field.name!r} is not {encoding} text"))
        if pa.types.is_null(field.type):
            table = table.set_column(i, field.name, pa.nulls(table.num_rows, pa.float64()))
    return table


def _csv_error(source: Any, name: str, comp: str | None, sep: str, encoding: str, exc: Exception):
    """Find the first bad line (only on the error path) and build a message naming it."""
    import csv

    text = str(exc).replace("\n", " ")[:300]
    line_no: int | None = None
    reason = text
    try:
        stream = _open_input(source, comp)
        raw = stream.read()
        lines = raw.split(b"\n")
        for i, line in enumerate(lines, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as err:
                line_no, reason = i, f"bytes that are not {encoding} ({err.reason} at byte {err.start} of the line)"
                break
        if line_no is None:
            reader = csv.reader(io.StringIO(raw.decode(encoding, errors="replace")), delimiter=sep)
            width = None
            for row in reader:
                if width is None:
                    width = len(row)
                    continue
                if row and len(row) != width:
                    line_no = reader.line_num
                    reason = f"{len(row)} fields where the header has {width}"
                    break
    except Exception:  # the diagnosis is best effort; the original message still says what failed
        pass
    where = f"{name}, line {line_no}" if line_no else name
    if line_no is not None and "conversion" in text.lower() and "utf8" not in text.lower():
        reason = text
    return TerminalConnectorError(
        f"cannot read CSV {where}: {reason}",
        hint="fix the file, or pass the right sep=/encoding=/dtype= for it",
    )


# --------------------------------------------------------------------------- generic read/write


def read_table(
    source: Any,
    fmt: str,
    *,
    name: str,
    filesystem: Any = None,
    dtype: Mapping[str, Any] | None = None,
    parse_dates: Iterable[str] | None = None,
    limit: int | None = None,
    **kwargs: Any,
) -> "pa.Table":
    """Read ``source`` (a path, on ``filesystem`` if given, or bytes) in format ``fmt`` as Arrow."""
    import pyarrow as pa

    if fmt in ("csv", "csv.gz", "tsv"):
        if filesystem is not None and isinstance(source, str):
            with filesystem.open_input_stream(source) as fh:
                source = fh.read()
        sep = kwargs.pop("sep", kwargs.pop("delimiter", "\t" if fmt == "tsv" else ","))
        compression = "gzip" if fmt == "csv.gz" else kwargs.pop("compression", "infer")
        return read_csv_arrow(
            source, name=name, dtype=dtype, parse_dates=parse_dates, sep=sep,
            compression=compression, nrows=limit if limit and limit < QUERY_ROW_LIMIT else None,
            usecols=kwargs.pop("usecols", None),
        )
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            if isinstance(source, (bytes, bytearray, memoryview)):
                table = pq.read_table(pa.BufferReader(source), columns=kwargs.get("columns"))
            else:
                table = pq.read_table(source, filesystem=filesystem, columns=kwargs.get("columns"))
        except (pa.ArrowInvalid, OSError) as exc:
            raise TerminalConnectorError(f"cannot read Parquet {name}: {exc}") from None
        if limit and table.num_rows > limit:
            table = table.slice(0, limit)
        return table
    return to_arrow(read_frame(source, fmt, name=name, filesystem=filesystem, limit=limit, **kwargs))


def read_frame(
    source: Any,
    fmt: str,
    *,
    name: str,
    filesystem: Any = None,
    dtype: Mapping[str, Any] | None = None,
    parse_dates: Iterable[str] | None = None,
    limit: int | None = None,
    **kwargs: Any,
) -> "pd.DataFrame":
    """Read ``source`` in format ``fmt`` as a pandas DataFrame (dtypes as requested)."""
    import pandas as pd

    if fmt in ("csv", "csv.gz", "tsv", "parquet"):
        table = read_table(
            source, fmt, name=name, filesystem=filesystem, dtype=dtype,
            parse_dates=parse_dates, limit=limit, **kwargs,
        )
        return frame_from_arrow(table, dtype)
    if filesystem is not None and isinstance(source, str):
        with filesystem.open_input_stream(source) as fh:
            source = fh.read()
    buffer = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        if fmt in ("json", "jsonl"):
            frame = pd.read_json(buffer, lines=(fmt == "jsonl") or kwargs.pop("lines", False), dtype=dtype, **kwargs)
        elif fmt == "xlsx":
            from dagsmith.errors import require

            require("openpyxl", feature="reading xlsx files", extra="excel")
            frame = pd.read_excel(buffer, dtype=dtype, **kwargs)
        else:
            raise ConfigError(f"{name}: format {fmt!r} is not supported", hint="use csv, csv.gz, parquet, json or xlsx")
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise TerminalConnectorError(f"cannot read {fmt} {name}: {exc}") from None
    if parse_dates:
        for column in parse_dates:
            frame[column] = pd.to_datetime(frame[column])
    if limit and len(frame) > limit:
        frame = frame.head(limit)
    return frame


def table_to_bytes(data: Any, fmt: str, *, index: bool = False) -> bytes:
    """Serialize a frame/table into the bytes of one file in format ``fmt``."""
    sink = io.BytesIO()
    _write(data, fmt, sink, index=index)
    return sink.getvalue()


def _write(data: Any, fmt: str, sink: Any, *, index: bool = False) -> None:
    import pyarrow as pa

    if fmt in ("csv", "csv.gz", "tsv"):
        import pyarrow.csv as pacsv

        table = _csv_ready(to_arrow(data, index=index))
        options = pacsv.WriteOptions(delimiter="\t" if fmt == "tsv" else ",", quoting_style="needed")
        if fmt == "csv.gz":
            import gzip

            # GzipFile leaves ``sink`` open (the caller owns it)
            with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6) as gz:
                pacsv.write_csv(table, pa.PythonFile(gz, mode="w"), write_options=options)
        else:
            pacsv.write_csv(table, pa.PythonFile(sink, mode="w"), write_options=options)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(to_arrow(data, index=index), pa.PythonFile(sink, mode="w"), compression="snappy")
    elif fmt in ("json", "jsonl"):
        frame = _as_pandas(data)
        text = frame.to_json(orient="records", lines=(fmt == "jsonl"), date_format="iso", index=index or None)
        sink.write(text.encode("utf-8"))
    elif fmt == "xlsx":
        from dagsmith.errors import require

        require("openpyxl", feature="writing xlsx files", extra="excel")
        frame = _as_pandas(data)
        for column in frame.columns:  # Excel cannot store time zones
            if hasattr(frame[column].dtype, "tz") and frame[column].dt.tz is not None:
                frame[column] = frame[column].dt.tz_localize(None)
        frame.to_excel(sink, index=index)
    else:
        raise ConfigError(f"format {fmt!r} is not supported for export", hint="use csv, csv.gz, parquet, json or xlsx")


def _csv_ready(table: "pa.Table") -> "pa.Table":
    """Dictionary columns are written as their values (the CSV writer refuses dictionaries)."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def _as_pandas(data: Any) -> "pd.DataFrame":
    from dagsmith.io.base import _is_pandas

    if _is_pandas(data):
        return data
    return arrow_to_pandas(to_arrow(data))


def write_table(data: Any, path: str | os.PathLike[str], fmt: str, *, index: bool = False) -> Path:
    """Write ``data`` to a local ``path`` atomically (temporary file beside it, then rename)."""
    target = Path(path)
    with atomic_write(target, "wb") as fh:
        _write(data, fmt, fh, index=index)
    return target


# --------------------------------------------------------------------------- Mage's file formats
#
# FileIO, GCS and S3 read and write files the way Mage 0.9.80 does, so a pipeline that
# exports with them writes the same bytes: a pandas frame goes through pandas' own writer
# with only the caller's keyword arguments (``to_csv`` keeps the index and writes ``22.0``,
# ``to_json`` is column-oriented, ``to_parquet`` coerces timestamps to ms) and files are
# read back with pandas' readers. Beyond Mage: ``.csv.gz``, ``.tsv``, ``.jsonl`` and any
# letter case are understood, and non-pandas data (Arrow tables, records) can be written.

_EXTENSIONS = {
    "csv": "csv",
    "json": "json",
    "parquet": "parquet",
    "pq": "parquet",
    "hdf5": "hdf5",
    "h5": "hdf5",
    "xml": "xml",
    "xls": "excel",
    "xlsx": "excel",
    "tsv": "tsv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
}
_FORMAT_NAMES = {**_EXTENSIONS, "excel": "excel", "csv.gz": "csv.gz", "gz": "csv.gz"}
FILE_FORMATS = ("csv", "csv.gz", "tsv", "json", "jsonl", "parquet", "excel", "hdf5", "xml")


def file_format(name: str | os.PathLike[str], format: Any = None) -> str:
    """The file format Mage picks: ``format`` (a string or Mage's ``FileFormat``), else the extension.

    Raises ``ConfigError`` (a ``ValueError``, as Mage raises) when neither names a format.
    """
    base = os.path.basename(str(name))
    if format is not None and format != "":
        value = str(getattr(format, "value", format)).lower().lstrip(".")
        if value == "csv" and base.lower().endswith(".gz"):
            return "csv.gz"
        if value in _FORMAT_NAMES:
            return _FORMAT_NAMES[value]
        raise ConfigError(
            f"unknown file format {format!r} for {str(name)!r}",
            hint="use one of: " + ", ".join(FILE_FORMATS),
        )
    lower = base.lower()
    if lower.endswith(".csv.gz"):
        return "csv.gz"
    ext = lower.rpartition(".")[2] if "." in lower else ""
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise ConfigError(
        f"None file format found for this file extension: {ext} ({str(name)!r})",
        hint="name the file with a known extension (.csv, .parquet, .json, .xlsx, …) or pass format='csv'",
    )


def _is_polars(data: Any) -> bool:
    return type(data).__module__.startswith("polars") and type(data).__name__ == "DataFrame"


def write_frame(data: Any, target: Any, fmt: str, **kwargs: Any) -> None:
    """Write ``data`` to ``target`` (a local path or a binary buffer) as Mage's writer would.

    pandas frames use pandas' writer with the caller's ``kwargs`` only (index kept by
    default); polars frames their ``write_*`` method; anything else (Arrow tables,
    records) is written with dagsmith's Arrow writer, without an index.
    """
    from dagsmith.io.base import _is_pandas

    if _is_pandas(data):
        _write_pandas(data, target, fmt, kwargs)
    elif _is_polars(data):
        _write_polars(data, target, fmt, kwargs)
    else:
        legacy = {"excel": "xlsx"}.get(fmt, fmt)
        if isinstance(target, (str, os.PathLike)):
            with open(target, "wb") as fh:
                _write(data, legacy, fh, index=bool(kwargs.get("index", False)))
        else:
            _write(data, legacy, target, index=bool(kwargs.get("index", False)))


def _write_pandas(frame: "pd.DataFrame", target: Any, fmt: str, kwargs: dict[str, Any]) -> None:
    from dagsmith.errors import require

    if fmt == "csv":
        frame.to_csv(target, **kwargs)
    elif fmt == "csv.gz":
        kwargs.setdefault("compression", "gzip")
        frame.to_csv(target, **kwargs)
    elif fmt == "tsv":
        kwargs.setdefault("sep", "\t")
        frame.to_csv(target, **kwargs)
    elif fmt == "json":
        frame.to_json(target, **kwargs)
    elif fmt == "jsonl":
        kwargs.setdefault("orient", "records")
        kwargs.setdefault("lines", True)
        frame.to_json(target, **kwargs)
    elif fmt == "parquet":
        if "coerce_timestamps" not in kwargs:
            kwargs["coerce_timestamps"] = "ms"
            kwargs["allow_truncated_timestamps"] = True
        frame.to_parquet(target, **kwargs)
    elif fmt == "excel":
        require("openpyxl", feature="writing Excel files", extra="excel")
        frame.to_excel(target, **kwargs)
    elif fmt == "xml":
        require("lxml", feature="writing XML files", extra="xml")
        frame.to_xml(target, **kwargs)
    elif fmt == "hdf5":
        require("tables", feature="writing HDF5 files", extra="hdf5")
        if not isinstance(target, (str, os.PathLike)):
            raise ConfigError("HDF5 files can only be written to a local path, not to a buffer")
        kwargs.setdefault("key", Path(target).stem)
        frame.to_hdf(target, **kwargs)
    else:
        raise ConfigError(f"format {fmt!r} is not supported for export", hint="use one of: " + ", ".join(FILE_FORMATS))


def _write_polars(frame: Any, target: Any, fmt: str, kwargs: dict[str, Any]) -> None:
    if fmt in ("csv", "tsv"):
        if fmt == "tsv":
            kwargs.setdefault("separator", "\t")
        frame.write_csv(target, **kwargs)
    elif fmt == "json":
        frame.write_json(target, **kwargs)
    elif fmt == "jsonl":
        frame.write_ndjson(target, **kwargs)
    elif fmt == "excel":
        frame.write_excel(target, **kwargs)
    elif fmt == "parquet":
        frame.write_parquet(target, **kwargs)
    else:
        write_frame(frame.to_pandas(), target, fmt, **kwargs)


def frame_bytes(data: Any, fmt: str, **kwargs: Any) -> bytes:
    """The bytes of one file holding ``data`` in format ``fmt`` (see :func:`write_frame`)."""
    sink = io.BytesIO()
    write_frame(data, sink, fmt, **kwargs)
    return sink.getvalue()


def read_file_frame(source: Any, fmt: str, *, name: str, **kwargs: Any) -> "pd.DataFrame":
    """Read ``source`` (a local path or bytes) with pandas' reader for ``fmt``, as Mage does.

    ``kwargs`` go to the pandas reader. A CSV that cannot be parsed fails with a
    ``TerminalConnectorError`` naming the file and the bad line.
    """
    import pandas as pd

    from dagsmith.errors import require

    raw = source
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        if fmt in ("csv", "csv.gz", "tsv"):
            if fmt == "csv.gz":
                kwargs.setdefault("compression", "gzip")
            if fmt == "tsv":
                kwargs.setdefault("sep", "\t")
            return pd.read_csv(source, **kwargs)
        if fmt == "json":
            return pd.read_json(source, **kwargs)
        if fmt == "jsonl":
            kwargs.setdefault("lines", True)
            return pd.read_json(source, **kwargs)
        if fmt == "parquet":
            return pd.read_parquet(source, **kwargs)
        if fmt == "excel":
            if not name.lower().endswith(".xls"):
                require("openpyxl", feature="reading Excel files", extra="excel")
            return pd.read_excel(source, **kwargs)
        if fmt == "xml":
            require("lxml", feature="reading XML files", extra="xml")
            return pd.read_xml(source, **kwargs)
        if fmt == "hdf5":
            require("tables", feature="reading HDF5 files", extra="hdf5")
            return pd.read_hdf(source, **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        if fmt in ("csv", "csv.gz", "tsv"):
            comp = "gzip" if fmt == "csv.gz" else _compression_for(name, "infer")
            raise _csv_error(raw, name, comp, kwargs.get("sep", ","), kwargs.get("encoding") or "utf-8", exc) from None
        raise TerminalConnectorError(f"cannot read {fmt} {name}: {exc}") from None
    raise ConfigError(f"{name}: format {fmt!r} is not supported", hint="use one of: " + ", ".join(FILE_FORMATS))


class FileNotFound(TerminalConnectorError, FileNotFoundError):
    """A file to load does not exist (also a ``FileNotFoundError``, which Mage raises)."""


# --------------------------------------------------------------------------- FileIO


class FileIO(Connector):
    """Local files (Mage's ``FileIO``); relative paths are relative to the working directory.

    Runs use the folder above the project as working directory (Mage's container
    layout), so the template's ``FileIO().export(df, 'titanic_clean.csv')`` lands
    beside the project, where Mage writes it. ``root`` (dagsmith only) resolves
    relative paths against another folder.
    """

    name = "file"
    capabilities = Capabilities(objects=True)

    def __init__(self, root: str | os.PathLike[str] | None = None, verbose: bool = True, **kwargs: Any) -> None:
        self._root = Path(root) if root else None
        self.verbose = verbose

    @classmethod
    def with_config(cls, config: Any = None, **kwargs: Any) -> "FileIO":
        return cls(**kwargs)

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else Path.cwd()

    def resolve(self, filepath: str | os.PathLike[str]) -> Path:
        """An absolute path for ``filepath``: relative paths are resolved against ``root``."""
        path = Path(os.path.expanduser(str(filepath)))
        return path if path.is_absolute() else self.root / path

    def load(
        self,
        filepath: str | os.PathLike[str] | None = None,
        format: Any = None,
        limit: int = QUERY_ROW_LIMIT,
        file_directories: list[str] | None = None,
        **kwargs: Any,
    ) -> "pd.DataFrame":
        """Read one file as a DataFrame with pandas' reader (``kwargs`` go to it).

        With ``file_directories``, every file under those folders (recursively) is read and
        the frames concatenated, as in Mage; ``filepath`` is then ignored. ``limit`` is
        accepted and, as in Mage, not applied.
        """
        if file_directories:
            return self._load_directories(file_directories, format, kwargs)
        if filepath is None:
            raise ConfigError("FileIO.load needs a filepath (or file_directories)")
        path = self.resolve(filepath)
        fmt = file_format(path, format)
        if not path.exists():
            raise FileNotFound(
                f"file not found: {path}",
                hint=f"relative paths are resolved against the working directory ({self.root}); "
                "dagsmith runs blocks in the folder above the project, as Mage does",
            )
        return read_file_frame(str(path), fmt, name=str(path), **kwargs)

    def _load_directories(self, folders: list[str], format: Any, kwargs: dict[str, Any]) -> "pd.DataFrame":
        import pandas as pd

        files: list[Path] = []
        for folder in folders:
            for dirpath, _, names in os.walk(self.resolve(folder)):
                files.extend(Path(dirpath) / n for n in sorted(names))
        if not files:
            raise FileNotFound(f"no files under {', '.join(str(self.resolve(f)) for f in folders)}")
        fmt = file_format(files[0], format)  # Mage takes the first file's format for all
        frames = [read_file_frame(str(f), fmt, name=str(f), **dict(kwargs)) for f in files]
        return pd.concat(frames, ignore_index=True)

    def export(self, df: Any, filepath: str | os.PathLike[str], format: Any = None, **kwargs: Any) -> Path:
        """Write ``df`` as Mage's writer does (pandas: ``df.to_csv(path, **kwargs)`` …).

        The file is written beside its target and renamed into place, so a reader never
        sees half a file; missing parent folders are created. Returns the absolute path.
        """
        from dagsmith.io.objectstore import _row_count

        path = self.resolve(filepath)
        fmt = file_format(path, format)
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "hdf5":  # HDF5 keys default to the file's stem: write in place
            write_frame(df, str(path), fmt, **kwargs)
            self._exported(_row_count(df), str(path))
            return path
        with atomic_write(path, "wb") as fh:
            write_frame(df, fh, fmt, **kwargs)
        self._exported(_row_count(df), str(path))
        return path

    def exists(self, filepath: str | os.PathLike[str]) -> bool:
        return self.resolve(filepath).exists()

    def export_partitioned(
        self,
        df: Any,
        path: str | os.PathLike[str],
        partition_cols: list[str],
        existing_data_behavior: str = "overwrite_or_ignore",
        if_exists: Any = None,
        partition_column: str | None = None,
        partition_value: Any = None,
        **kwargs: Any,
    ) -> Path:
        """Write a hive-partitioned Parquet dataset (``col=value/`` folders) under ``path``, staged beside it
        and swapped in atomically (:mod:`dagsmith.io.datasets`; modes as ``ObjectStore.export_partitioned``)."""
        from dagsmith.io.datasets import dataset_mode, partition_for_write, write_dataset

        root = self.resolve(path)
        mode = dataset_mode(if_exists, existing_data_behavior)
        table = to_arrow(df)  # once: the partition check and the write share it
        partition = partition_for_write(table, mode, partition_cols, partition_column, partition_value, str(root))
        write_dataset(table, root, list(partition_cols), mode=mode, partition=partition, where=str(root), **kwargs)
        self._exported(table.num_rows, f"{root} (partitioned by {', '.join(partition_cols)})")
        return root

    def load_partitioned(self, path: str | os.PathLike[str], filters: Any = None) -> "pd.DataFrame":
        """Read a (hive-partitioned) Parquet dataset folder into one DataFrame."""
        from dagsmith.io.datasets import read_dataset

        root = self.resolve(path)
        try:
            return arrow_to_pandas(read_dataset(root, filters=filters))
        except FileNotFoundError:
            raise TerminalConnectorError(
                f"dataset folder not found: {root}", hint="paths are relative to the project folder"
            ) from None

    def _public_settings(self) -> dict[str, Any]:
        return {"root": str(self.root)}
