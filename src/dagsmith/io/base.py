"""The one small interface every dagsmith connector implements, and the helpers they share.

Contracts (each connector module in ``dagsmith.io`` follows them):

- ``Cls.with_config(config, **overrides)`` builds a connector from a profile
  (a :class:`~dagsmith.project.io_config.ConfigFileLoader` or a plain mapping of
  ``io_config.yaml`` keys). Construction is cheap: no network, no heavy import.
  Clients (drivers, SDKs) are created lazily on first use.
- ``load(...)`` returns a pandas DataFrame (what Mage code expects);
  ``export(data, ..., if_exists=...)`` accepts pandas, polars, Arrow tables,
  dicts and lists of dicts, and converts them to Arrow exactly once.
- Connectors are context managers; ``close()`` is idempotent.
- ``capabilities`` declares what a connector can do, so callers (SQL blocks, the
  UI) ask instead of trying.
- Errors are :class:`~dagsmith.errors.ConnectorError` subclasses (Transient when a
  retry may help, Terminal when it cannot); messages name the system, the
  profile and the object, and never contain a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from dagsmith.errors import ConfigError, TerminalConnectorError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

QUERY_ROW_LIMIT = 10_000_000


class ExportWritePolicy(str, Enum):
    """What an export does when the target already exists (Mage's names and values)."""

    APPEND = "append"
    FAIL = "fail"
    REPLACE = "replace"
    REPLACE_PARTITION = "replace_partition"  # dagsmith: replace one partition's rows atomically

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do; callers check these instead of catching errors."""

    sql: bool = False  # load(query) / execute
    objects: bool = False  # load/export of objects or files (bucket/key or path)
    partitioned: bool = False  # export_partitioned (hive-style Parquet datasets)
    upsert: bool = False  # unique_constraints + unique_conflict_method
    transactional_replace: bool = False  # replace is atomic for readers


def write_policy(if_exists: Any) -> ExportWritePolicy:
    """Normalize ``if_exists`` (string or enum, any case) or raise a ConfigError listing the choices."""
    if isinstance(if_exists, ExportWritePolicy):
        return if_exists
    value = getattr(if_exists, "value", if_exists)
    try:
        return ExportWritePolicy(str(value).lower())
    except ValueError:
        raise ConfigError(
            f"if_exists={if_exists!r} is not a write policy",
            hint="use 'replace', 'append', 'fail' or 'replace_partition' (or ExportWritePolicy.REPLACE/APPEND/FAIL/"
            "REPLACE_PARTITION)",
        ) from None


def config_value(config: Any, key: str, default: Any = None) -> Any:
    """``config.get(key)`` for a ConfigFileLoader or a mapping; empty strings count as missing."""
    if config is None:
        return default
    value = config.get(key, None) if hasattr(config, "get") else None
    return default if value is None or value == "" else value


def config_source(config: Any) -> str:
    """How errors refer to a profile: ``io_config.yaml (profile 'dev')``, or ``given config``."""
    source = getattr(config, "source", None)
    if source:
        return str(source)
    return "given config"


class Connector:
    """Base of all connectors: config handling, context manager, redacted repr."""

    name: ClassVar[str] = "connector"
    capabilities: ClassVar[Capabilities] = Capabilities()

    #: constructor argument → the io_config.yaml key it is read from (Mage's key names)
    profile_keys: ClassVar[Mapping[str, str]] = {}

    #: where the connector's settings came from (for error messages)
    source: str = "given config"
    _secrets: list[str]

    @classmethod
    def profile_settings(cls, config: Any) -> dict[str, Any]:
        """Constructor arguments read from a profile through ``profile_keys``, plus ``source``."""
        settings = {arg: config_value(config, key) for arg, key in cls.profile_keys.items()}
        settings["source"] = config_source(config)
        return settings

    @classmethod
    def with_config(cls, config: Any, **kwargs: Any):
        """Build the connector from an io_config profile (ConfigFileLoader or mapping); ``kwargs`` win."""
        if not cls.profile_keys:
            raise NotImplementedError(f"{cls.__name__} has no io_config profile keys")
        return cls(**{**cls.profile_settings(config), **kwargs})

    def open(self) -> None:
        """Create the client now instead of on first use (optional)."""

    def close(self) -> None:
        """Release the client; safe to call twice."""

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: connections left open by block code
        try:
            self.close()
        except Exception:
            pass

    def _exported(self, rows: Any, target: str) -> Any:
        """Say what an export wrote, as the block's own output ("exported 139,370 rows to mage.green_taxi")."""
        if getattr(self, "verbose", True):
            count = f"{rows:,} rows" if isinstance(rows, int) else "data"
            print(f"exported {count} to {target}")
        return rows

    def _scrub(self, text: str) -> str:
        from dagsmith.project.masking import mask_with

        return mask_with(text, getattr(self, "_secrets", []))

    def _public_settings(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._public_settings().items())
        return f"{type(self).__name__}({inner})"


def release(owner: Any, attr: str, *steps: str) -> None:
    """Close what ``owner.<attr>`` holds (a client or connection) and forget it; safe to call twice.

    ``steps`` are the handle's methods to call in order (default ``close``); each is best
    effort, since closing happens on the way out, often while another error is raised.
    """
    handle = getattr(owner, attr, None)
    setattr(owner, attr, None)
    if handle is None:
        return
    for step in steps or ("close",):
        try:
            getattr(handle, step)()
        except Exception:  # noqa: BLE001 - a failed close must not hide the caller's error
            pass


# --------------------------------------------------------------------------- SQL text


def quote_ident(name: Any) -> str:
    """A SQL identifier, always double-quoted (embedded quotes doubled): PostgreSQL and DuckDB."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: Any) -> str:
    """A SQL string literal (embedded quotes doubled), for catalog queries that take no parameters."""
    return "'" + str(value).replace("'", "''") + "'"


# --------------------------------------------------------------------------- frames


def to_arrow(data: Any, *, index: bool = False) -> "pa.Table":
    """Turn a pandas/polars frame, Arrow table/batch, dict of columns or list of records into one Arrow table.

    pandas object columns holding mixed Python values (ints and strings, …) become
    strings instead of failing; ``index=True`` keeps a pandas index as columns.
    """
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_stream__") and not _is_pandas(data):
        # polars, duckdb relations, anything speaking the Arrow PyCapsule stream protocol
        return pa.table(data)
    if isinstance(data, Mapping):
        import pandas as pd

        data = pd.DataFrame(dict(data))
    elif isinstance(data, (list, tuple)):
        import pandas as pd

        data = pd.DataFrame(list(data))
    if not _is_pandas(data):
        raise TerminalConnectorError(
            f"cannot export a {type(data).__name__}: give a pandas or polars DataFrame, an Arrow table,"
            " a dict of columns or a list of records"
        )
    frame = data
    if index:
        frame = frame.reset_index()
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.Table.from_pandas(_stringify_mixed(frame), preserve_index=False)


def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and type(obj).__name__ == "DataFrame"


def _stringify_mixed(frame: "pd.DataFrame") -> "pd.DataFrame":
    import pyarrow as pa

    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            try:
                pa.array(frame[col], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                series = frame[col]
                frame[col] = series.map(lambda v: None if v is None or v != v else _to_text(v))
    return frame


def _to_text(value: Any) -> str:
    import json

    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def arrow_to_pandas(table: "pa.Table") -> "pd.DataFrame":
    """Arrow → pandas the way users expect: integer columns with nulls stay integers (``Int64``)."""
    import pyarrow as pa

    mapping = {}
    for field in table.schema:
        if pa.types.is_integer(field.type) and table.column(field.name).null_count:
            mapping[field.type] = _pandas_int_dtype(field.type)
    if mapping:
        return table.to_pandas(types_mapper=mapping.get)
    return table.to_pandas()


def _pandas_int_dtype(arrow_type: Any) -> Any:
    import pandas as pd

    return {
        "int8": pd.Int8Dtype(),
        "int16": pd.Int16Dtype(),
        "int32": pd.Int32Dtype(),
        "int64": pd.Int64Dtype(),
        "uint8": pd.UInt8Dtype(),
        "uint16": pd.UInt16Dtype(),
        "uint32": pd.UInt32Dtype(),
        "uint64": pd.UInt64Dtype(),
    }[str(arrow_type)]


_NON_WORD = re.compile(r"\W")


def clean_column_name(name: Any, *, case_sensitive: bool = False) -> str:
    """Column name fit for SQL: non-word characters → ``_``, a leading digit gets ``_``, lower-cased
    unless ``case_sensitive``."""
    text = _NON_WORD.sub("_", str(name).strip())
    if text and text[0].isdigit():
        text = "_" + text
    if not case_sensitive:
        text = text.lower()
    return text or "_"


def rename_columns(table: "pa.Table", *, auto_clean_name: bool, case_sensitive: bool) -> "pa.Table":
    """Apply :func:`clean_column_name` to every column, refusing names that collide."""
    if not auto_clean_name:
        names = [str(n) for n in table.column_names]
    else:
        names = [clean_column_name(n, case_sensitive=case_sensitive) for n in table.column_names]
    seen: dict[str, str] = {}
    for original, new in zip(table.column_names, names):
        if new in seen:
            raise TerminalConnectorError(
                f"columns {seen[new]!r} and {original!r} both become {new!r}",
                hint="rename one of them before exporting (or pass case_sensitive=True)",
            )
        seen[new] = original
    if names != list(table.column_names):
        table = table.rename_columns(names)
    return table


def detect_format(key: str, fmt: str | None = None) -> str:
    """File format from an explicit ``format`` or the key's extension: csv, csv.gz, parquet, json, xlsx."""
    if fmt:
        value = getattr(fmt, "value", fmt)
        value = str(value).lower().lstrip(".")
        if value == "csv" and key.lower().endswith(".gz"):
            return "csv.gz"
        return value
    lower = key.lower()
    for ext, name in (
        (".csv.gz", "csv.gz"),
        (".csv", "csv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "json"),
        (".xlsx", "xlsx"),
        (".tsv", "tsv"),
    ):
        if lower.endswith(ext):
            return name
    raise ConfigError(
        f"cannot tell the file format of {key!r} from its name",
        hint="pass format='csv' | 'parquet' | 'json' | 'xlsx'",
    )
