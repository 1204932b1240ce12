"""PostgreSQL connector: queries into pandas, frames into tables through ADBC ingest (binary COPY).

Owns ``Postgres`` (also importable as ``mage_ai.io.postgres.Postgres``):

- ``load(query)`` runs the query through the ADBC PostgreSQL driver and builds the
  frame from Arrow (no per-row Python);
- ``export(df, schema_name, table_name, if_exists=…)`` creates the schema, and the
  table with types taken from the frame (nullable ints stay integers, datetimes
  stay timestamps, tz-aware ones become ``timestamptz``), and writes with ADBC
  ingest, which streams Arrow through ``COPY … FROM STDIN (FORMAT binary)``;
- ``replace`` is atomic: rows go into a fresh table in the same schema and, in
  the same transaction, the old table is dropped and the new one renamed — readers
  see the old rows or the new ones, never an empty table, and a failure leaves the
  old table untouched;
- ``append`` and ``replace_partition`` compare the frame's columns with the table's first
  (:mod:`dagsmith.io.schema`: added, missing or changed columns, values a cast would change
  such as 3.5 into ``bigint``) and write nothing when they differ, unless
  ``on_schema_change='add_columns'``;
- ``replace_partition`` deletes one partition's rows (:mod:`dagsmith.io.partitions`) and
  inserts the frame in one transaction, so a re-run gives the same rows;
- ``unique_constraints`` + ``unique_conflict_method`` (UPDATE | IGNORE) upsert
  through a staging table and ``INSERT … ON CONFLICT``.

Connection errors name host, port, database, user and profile; the password never
appears in messages or reprs. Importing this module is cheap: drivers, pyarrow and
pandas are imported when first needed.
"""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from dagsmith.errors import (
    ConfigError,
    TerminalConnectorError,
    TransientConnectorError,
)
from dagsmith.io.base import (
    QUERY_ROW_LIMIT,
    Capabilities,
    Connector,
    ExportWritePolicy,
    arrow_to_pandas,
    config_source,
    config_value,
    quote_ident,
    quote_literal,
    release,
    rename_columns,
    to_arrow,
    write_policy,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from dagsmith.io.schema import Column

__all__ = ["Postgres", "quote_ident", "postgres_type", "postgres_column"]

DEFAULT_CONNECT_TIMEOUT = 10


def postgres_type(arrow_type: "pa.DataType") -> str:
    """The PostgreSQL column type dagsmith creates for an Arrow type."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        return postgres_type(t.value_type)
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "numeric(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time without time zone"
    if pa.types.is_duration(t):
        return "interval"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    return "text"  # strings, nulls, and nested values (written as JSON text)


_PG_ARROW = {
    "smallint": "int16",
    "integer": "int32",
    "bigint": "int64",
    "real": "float32",
    "double precision": "float64",
    "boolean": "bool_",
    "text": "string",
    "character varying": "string",
    "character": "string",
    "bpchar": "string",
    "name": "string",
    "date": "date32",
    "bytea": "binary",
}


def postgres_column(name: str, data_type: str, has_default: bool = False) -> "Column":
    """A table column for the schema-drift check: its type as PostgreSQL spells it and the Arrow type
    of its values (None for types dagsmith does not map: json, uuid, arrays, enums…)."""
    import pyarrow as pa

    from dagsmith.io.schema import ANY_NUMBER, Column

    text = _normalize_pg_type(data_type)
    base = text.split("(")[0].strip()
    arrow, kind = None, None
    if base in _PG_ARROW:
        arrow = getattr(pa, _PG_ARROW[base])()
    elif base == "numeric":
        m = re.match(r"numeric\((\d+),(\d+)\)", text.replace(" ", ""))
        if m and int(m.group(1)) <= 38:
            arrow = pa.decimal128(int(m.group(1)), int(m.group(2)))
        else:
            kind = ANY_NUMBER
    elif text.startswith("timestamp") and "[]" not in text:
        arrow = pa.timestamp("us", "UTC" if "with time zone" in text else None)
    elif text.startswith("time") and "[]" not in text and "with time zone" not in text:
        arrow = pa.time64("us")
    elif text == "interval":
        arrow = pa.duration("us")
    return Column(name, text, arrow, has_default, kind)


def _ingestable(table: "pa.Table") -> "pa.Table":
    """Cast columns the ADBC driver cannot write directly into types it can."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    columns, changed = [], False
    for field, column in zip(table.schema, table.columns):
        t = field.type
        target = None
        if pa.types.is_dictionary(t):
            column = column.cast(t.value_type)
            t = t.value_type
            changed = True
        if pa.types.is_null(t):
            target = pa.string()
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
            target = pa.string()
        elif pa.types.is_uint8(t):
            target = pa.int16()
        elif pa.types.is_uint16(t):
            target = pa.int32()
        elif pa.types.is_uint32(t):
            target = pa.int64()
        elif pa.types.is_uint64(t):
            target = pa.decimal128(20, 0)
        elif pa.types.is_float16(t):
            target = pa.float32()
        elif pa.types.is_timestamp(t) and t.unit == "s":
            target = pa.timestamp("us", t.tz)
        elif pa.types.is_date64(t):
            target = pa.date32()
        elif pa.types.is_nested(t):
            values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
            column = pa.chunked_array([pa.array(values, pa.string())])
            changed = True
        elif pa.types.is_large_binary(t):
            target = pa.binary()
        if target is not None:
            column = pc.cast(column, target)
            changed = True
        columns.append(column)
    if not changed:
        return table
    return pa.Table.from_arrays(columns, names=table.column_names)


INGEST_BATCH_ROWS = 16_384


def _rechunk(table: "pa.Table") -> "pa.Table":
    """Slice into batches of ~16K rows (zero-copy): the driver then encodes one batch while the
    server is still parsing the previous one; one huge batch is ~1.5x slower to COPY."""
    import pyarrow as pa

    if table.num_rows <= INGEST_BATCH_ROWS:
        return table
    return pa.Table.from_batches(table.to_batches(max_chunksize=INGEST_BATCH_ROWS), schema=table.schema)


def _normalize_pg_type(data_type: str) -> str:
    return {
        "character varying": "text",
        "timestamp": "timestamp without time zone",
        "timestamptz": "timestamp with time zone",
    }.get(data_type, data_type)


class Postgres(Connector):
    """A PostgreSQL database (Mage's ``mage_ai.io.postgres.Postgres`` interface)."""

    name = "postgres"
    capabilities = Capabilities(sql=True, upsert=True, transactional_replace=True)

    def __init__(
        self,
        dbname: str | None = None,
        user: str | None = None,
        password: str | None = None,
        host: str | None = None,
        port: int | str | None = None,
        schema: str | None = None,
        connect_timeout: int | float | str | None = None,
        verbose: bool = True,
        source: str = "given config",
        **kwargs: Any,
    ) -> None:
        self.dbname = dbname or "postgres"
        self.user = user or "postgres"
        self._password = None if password in (None, "") else str(password)
        self.host = host or "localhost"
        try:
            self.port = int(port) if port not in (None, "") else 5432
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: POSTGRES_PORT={port!r} is not a number") from None
        self.schema = schema or "public"
        self._schema_error: Exception | None = None
        try:
            self.connect_timeout = (
                int(float(connect_timeout)) if connect_timeout not in (None, "") else DEFAULT_CONNECT_TIMEOUT
            )
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: POSTGRES_CONNECT_TIMEOUT={connect_timeout!r} is not a number") from None
        self.verbose = verbose
        self.source = source
        self._secrets = [self._password] if self._password else []
        self._conn = None

    @classmethod
    def with_config(cls, config: Any, **kwargs: Any) -> "Postgres":
        """Build from a profile's ``POSTGRES_*`` keys (``ConfigFileLoader`` or mapping)."""
        method = config_value(config, "POSTGRES_CONNECTION_METHOD", "direct")
        if str(method).lower() not in ("direct", "none"):
            raise ConfigError(
                f"{config_source(config)}: POSTGRES_CONNECTION_METHOD={method!r} is not supported yet",
                hint="connect directly (open an SSH tunnel yourself and point POSTGRES_HOST/PORT at it)",
            )
        from dagsmith.project.io_config import UnsetEnvVarError

        # The default schema only matters to calls that name no schema: an unset env_var()
        # there fails those calls, not the connection (Mage's course blocks pass schema_name).
        try:
            schema, schema_error = config_value(config, "POSTGRES_SCHEMA"), None
        except UnsetEnvVarError as exc:
            schema, schema_error = None, exc
        settings = dict(
            dbname=config_value(config, "POSTGRES_DBNAME"),
            user=config_value(config, "POSTGRES_USER"),
            password=config_value(config, "POSTGRES_PASSWORD"),
            host=config_value(config, "POSTGRES_HOST"),
            port=config_value(config, "POSTGRES_PORT"),
            schema=schema,
            connect_timeout=config_value(config, "POSTGRES_CONNECT_TIMEOUT"),
            source=config_source(config),
        )
        settings.update(kwargs)
        conn = cls(**settings)
        if "schema" not in kwargs:
            conn._schema_error = schema_error
        # keys left empty, typically by an env_var() whose variable is not set: named in connect errors
        conn._empty_keys = [
            f"POSTGRES_{k.upper()}" for k in ("host", "port", "dbname", "user") if settings.get(k) in (None, "")
        ]
        return conn

    # ------------------------------------------------------------------ connection

    def _where(self) -> str:
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.dbname} ({self.source})"

    def _uri(self) -> str:
        from urllib.parse import quote

        auth = quote(self.user, safe="")
        if self._password:
            auth += ":" + quote(self._password, safe="")
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return (
            f"postgresql://{auth}@{host}:{self.port}/{quote(self.dbname, safe='')}"
            f"?connect_timeout={max(1, self.connect_timeout)}&application_name=dagsmith"
        )

    def open(self) -> None:
        """Connect now (otherwise the first query connects)."""
        self._connection()

    def _connection(self):
        if self._conn is not None:
            return self._conn
        from dagsmith.errors import require

        dbapi = require("adbc_driver_postgresql.dbapi", feature="the PostgreSQL connector", extra="postgres")
        try:
            self._conn = dbapi.connect(self._uri())
        except Exception as exc:
            raise self._connect_error(exc) from None
        return self._conn

    def _connect_error(self, exc: Exception) -> Exception:
        text = self._scrub(str(exc)).replace("\n", " ").strip()
        text = re.sub(r"^\w+: \[libpq\] ", "", text)
        lowered = text.lower()
        terminal = any(
            word in lowered
            for word in ("password", "authentication", "does not exist", "permission denied", "no pg_hba", "role")
        )
        cls = TerminalConnectorError if terminal else TransientConnectorError
        hint = (
            "check POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DBNAME in io_config.yaml"
            if terminal
            else f"is the server running and reachable on {self.host}:{self.port}? "
            f"(connect timeout {self.connect_timeout}s, POSTGRES_CONNECT_TIMEOUT)"
        )
        empty = getattr(self, "_empty_keys", None)
        if empty:
            hint += (
                f"; {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty in {self.source}"
                " — if io_config.yaml reads it with env_var(), set that variable in the environment or the project's .env"
            )
        return cls(f"cannot connect to {self._where()}: {text}", hint=hint)

    def close(self) -> None:
        release(self, "_conn", "rollback", "close")

    def _query_error(self, exc: Exception, what: str) -> Exception:
        text = self._scrub(str(exc)).strip()
        text = re.sub(r"^\w+: ", "", text)
        return TerminalConnectorError(f"{what} failed on {self._where()}: {text}")

    def _rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except Exception:
                self.close()

    # ------------------------------------------------------------------ reading

    def load(
        self,
        query_string: str,
        limit: int = QUERY_ROW_LIMIT,
        display_query: str | None = None,
        verbose: bool = True,
        **kwargs: Any,
    ) -> "pd.DataFrame":
        """Run a query and return its rows as a DataFrame (at most ``limit`` rows for SELECTs)."""
        table = self.load_arrow(query_string, limit=limit, **kwargs)
        return arrow_to_pandas(table) if table is not None else _empty_frame()

    def load_arrow(self, query_string: str, limit: int = QUERY_ROW_LIMIT, **kwargs: Any) -> "pa.Table | None":
        """Run a query and return its rows as an Arrow table (None when it returns no rows)."""
        query = query_string.strip().rstrip(";")
        if limit and _is_select(query):
            query = f"SELECT * FROM ({query}) AS _dagsmith_q LIMIT {int(limit)}"
        conn = self._connection()
        cur = conn.cursor()
        try:
            cur.execute(query)
            if cur.description is None:
                conn.commit()
                return None
            table = cur.fetch_arrow_table()
            conn.commit()
        except Exception as exc:
            self._rollback()
            raise self._query_error(exc, "query") from None
        finally:
            cur.close()
        return _plain_arrow(table)

    def execute(self, query_string: str, **kwargs: Any) -> None:
        """Run one statement (or several separated by ``;``) and commit."""
        self.execute_queries([query_string])

    def execute_queries(self, query_strings: Sequence[str], **kwargs: Any) -> list[Any]:
        """Run statements in one transaction; returns each one's rows (or None)."""
        conn = self._connection()
        cur = conn.cursor()
        results: list[Any] = []
        try:
            for query in query_strings:
                cur.execute(query)
                results.append(cur.fetchall() if cur.description is not None else None)
            conn.commit()
        except Exception as exc:
            self._rollback()
            raise self._query_error(exc, "statement") from None
        finally:
            cur.close()
        return results

    def table_exists(self, schema_name: str, table_name: str) -> bool:
        """True when ``schema_name.table_name`` exists (tables, views and materialized views)."""
        rows = self._fetch(
            "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            f" WHERE n.nspname = {quote_literal(schema_name)} AND c.relname = {quote_literal(table_name)}"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        )
        return bool(rows)

    def sample(self, schema: str, table: str, size: int = 10_000, **kwargs: Any) -> "pd.DataFrame":
        """Up to ``size`` rows of a table."""
        return self.load(f"SELECT * FROM {quote_ident(schema)}.{quote_ident(table)} LIMIT {int(size)}", limit=0)

    def _fetch(self, query: str) -> list[tuple]:
        conn = self._connection()
        cur = conn.cursor()
        try:
            cur.execute(query)
            rows = cur.fetchall()
            conn.commit()
            return rows
        except Exception as exc:
            self._rollback()
            raise self._query_error(exc, "query") from None
        finally:
            cur.close()

    # ------------------------------------------------------------------ writing

    def export(
        self,
        df: Any,
        schema_name: str | None = None,
        table_name: str | None = None,
        if_exists: str | ExportWritePolicy = ExportWritePolicy.REPLACE,
        index: bool = False,
        verbose: bool = True,
        query_string: str | None = None,
        drop_table_on_replace: bool = False,
        cascade_on_drop: bool = False,
        allow_reserved_words: bool = False,
        auto_clean_name: bool = True,
        case_sensitive: bool = False,
        unique_conflict_method: str | None = None,
        unique_constraints: Iterable[str] | None = None,
        overwrite_types: dict[str, str] | None = None,
        partition_column: str | None = None,
        partition_value: Any = None,
        on_schema_change: str | None = None,
        **kwargs: Any,
    ) -> int:
        """Write ``df`` to ``schema_name.table_name``; returns the number of rows written.

        ``if_exists``: ``replace`` (atomic swap), ``append`` (columns checked first),
        ``replace_partition`` (delete the rows of ``partition_column`` = ``partition_value`` —
        default: the run's interval — and insert the frame, in one transaction) or ``fail``
        (error if the table exists). ``on_schema_change='add_columns'`` lets an append add
        the frame's new columns. ``query_string`` exports the result of a query instead of a
        frame. ``overwrite_types`` forces column types (``{"col": "varchar(10)"}``).
        """
        from dagsmith.io.partitions import check_within, partition_settings, require_column, resolve_partition
        from dagsmith.io.schema import on_schema_change_setting

        if table_name is None:
            raise ConfigError("export needs table_name", hint="export(df, schema_name, table_name, if_exists=…)")
        schema_name = schema_name or self.default_schema()
        policy = write_policy(if_exists)
        keys = [str(k) for k in (unique_constraints or [])]
        if keys:
            keys = [
                k if not auto_clean_name else _clean_key(k, case_sensitive) for k in keys
            ]
        method = (unique_conflict_method or "UPDATE").upper() if keys else None
        if method not in (None, "UPDATE", "IGNORE"):
            raise ConfigError(f"unique_conflict_method={unique_conflict_method!r}", hint="use 'UPDATE' or 'IGNORE'")

        schema_change = on_schema_change_setting(on_schema_change)
        part_column, part_value = (None, None)
        if policy is ExportWritePolicy.REPLACE_PARTITION:
            part_column, part_value = partition_settings(partition_column, partition_value)
            if part_column and auto_clean_name:
                part_column = _clean_key(part_column, case_sensitive)

        target = f"{schema_name}.{table_name}"
        if query_string is not None:
            return self._exported(self._export_query(
                query_string, schema_name, table_name, policy, cascade_on_drop, schema_change, part_column, part_value
            ), target)

        table = rename_columns(to_arrow(df, index=index), auto_clean_name=auto_clean_name, case_sensitive=case_sensitive)
        table = _rechunk(_ingestable(table))
        partition = None
        if policy is ExportWritePolicy.REPLACE_PARTITION:
            where = f"export to {schema_name}.{table_name}"
            if require_column(part_column, where) not in table.column_names:
                raise ConfigError(
                    f"{where}: partition_column {part_column!r} is not a column of the frame (columns: {table.column_names})"
                )
            partition = resolve_partition(part_column, part_value, table.schema.field(part_column).type, where=where)
            check_within(table, partition, target=f"{schema_name}.{table_name}")
        missing = [k for k in keys if k not in table.column_names]
        if missing:
            raise ConfigError(
                f"unique_constraints {missing} are not columns of the frame (columns: {table.column_names})"
            )
        if keys:
            table = _dedupe_last(table, keys)
        types = {name: postgres_type(field.type) for name, field in zip(table.column_names, table.schema)}
        for column, sql_type in (overwrite_types or {}).items():
            if column in types:
                types[column] = sql_type
        return self._exported(self._write(
            table, types, schema_name, table_name, policy, keys, method, cascade_on_drop, schema_change, partition
        ), target)

    def _write(
        self,
        table: "pa.Table",
        types: dict[str, str],
        schema: str,
        name: str,
        policy: ExportWritePolicy,
        keys: list[str],
        method: str | None,
        cascade: bool,
        schema_change: str = "fail",
        partition: Any = None,
    ) -> int:
        with self._export_transaction(schema, name) as (conn, cur):
            target = f"{quote_ident(schema)}.{quote_ident(name)}"
            existing = self._columns(cur, schema, name)
            if existing is None:  # concurrent runs (a backfill) may all find no table: one creates it
                claim_new_table(cur, schema, name)
                existing = self._columns(cur, schema, name)
            if existing and policy is ExportWritePolicy.FAIL:
                raise TerminalConnectorError(
                    f"table {schema}.{name} already exists on {self._where()} and if_exists='fail'",
                    hint="use if_exists='replace' or 'append', or drop the table first",
                )
            if existing is None or policy is ExportWritePolicy.REPLACE:
                fresh = f"{name[:40]}__dagsmith_{uuid.uuid4().hex[:8]}" if existing is not None else name
                cur.execute(_create_sql(schema, fresh, types))
                if table.num_rows:
                    cur.adbc_ingest(fresh, table, mode="append", db_schema_name=schema)
                if existing is not None:  # atomic swap, in this same transaction
                    cur.execute(f"DROP TABLE {target}{' CASCADE' if cascade else ''}")
                    cur.execute(f"ALTER TABLE {quote_ident(schema)}.{quote_ident(fresh)} RENAME TO {quote_ident(name)}")
                if keys:
                    cur.execute(_unique_index_sql(schema, name, keys))
            else:
                table, types = self._check_fits(cur, table, types, schema, name, policy, schema_change)
                existing = self._columns(cur, schema, name) or existing
                if partition is not None:
                    condition, params = partition.sql(quote_ident(partition.column), lambda n: f"${n}")
                    cur.execute(f"DELETE FROM {target} WHERE {condition}", params)
                if keys:
                    cur.execute(_unique_index_sql(schema, name, keys))
                    self._upsert(cur, table, types, schema, name, keys, method or "UPDATE")
                elif table.num_rows and _same_layout(table, types, existing):
                    cur.adbc_ingest(name, table, mode="append", db_schema_name=schema)
                elif table.num_rows:
                    staging = self._stage(cur, table, types)
                    cols = ", ".join(quote_ident(c) for c in table.column_names)
                    cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {quote_ident(staging)}")
            conn.commit()
        return table.num_rows

    def _columns(self, cur: Any, schema: str, name: str) -> dict[str, str] | None:
        """Column name → type of an existing table, or None when there is no such table."""
        cur.execute(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), c.relkind"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            f" WHERE n.nspname = {quote_literal(schema)} AND c.relname = {quote_literal(name)}"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY a.attnum"
        )
        rows = cur.fetchall()
        if not rows:
            return None
        return {r[0]: _normalize_pg_type(r[1]) for r in rows if r[0] is not None}

    def _check_fits(
        self,
        cur: Any,
        table: "pa.Table",
        types: dict[str, str],
        schema: str,
        name: str,
        policy: ExportWritePolicy,
        schema_change: str,
    ) -> tuple["pa.Table", dict[str, str]]:
        """Schema drift check before an append / partition replace; adds new columns when allowed.
        Returns the frame cast to the table's types (each cast checked lossless) and its column types."""
        from dagsmith.io.schema import compare, conform, enforce, frame_columns

        diff = compare(table_columns(cur, schema, name), frame_columns(table, postgres_type), values=table)
        action = "replace a partition of" if policy is ExportWritePolicy.REPLACE_PARTITION else "append to"
        enforce(diff, on_schema_change=schema_change, target=f"{schema}.{name}", action=action)
        if diff.casts:
            table = _ingestable(conform(table, diff))
            types = {c: postgres_type(f.type) for c, f in zip(table.column_names, table.schema)}
        for change in diff.added:
            cur.execute(
                f"ALTER TABLE {quote_ident(schema)}.{quote_ident(name)}"
                f" ADD COLUMN {quote_ident(change.column)} {types[change.column]}"
            )
        return table, types

    def _stage(self, cur: Any, table: "pa.Table", types: dict[str, str]) -> str:
        staging = f"_dagsmith_stage_{uuid.uuid4().hex[:12]}"
        cols = ", ".join(f"{quote_ident(c)} {types[c]}" for c in table.column_names)
        cur.execute(f"CREATE TEMPORARY TABLE {quote_ident(staging)} ({cols}) ON COMMIT DROP")
        cur.adbc_ingest(staging, table, mode="append", temporary=True)
        return staging

    def _upsert(
        self, cur: Any, table: "pa.Table", types: dict[str, str], schema: str, name: str, keys: list[str], method: str
    ) -> None:
        if not table.num_rows:
            return
        staging = self._stage(cur, table, types)
        cols = ", ".join(quote_ident(c) for c in table.column_names)
        conflict = ", ".join(quote_ident(k) for k in keys)
        updates = [c for c in table.column_names if c not in keys]
        if method == "IGNORE" or not updates:
            action = "DO NOTHING"
        else:
            action = "DO UPDATE SET " + ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in updates)
        cur.execute(
            f"INSERT INTO {quote_ident(schema)}.{quote_ident(name)} ({cols}) SELECT {cols} FROM {quote_ident(staging)}"
            f" ON CONFLICT ({conflict}) {action}"
        )

    @contextmanager
    def _export_transaction(self, schema: str, name: str) -> Iterator[tuple[Any, Any]]:
        """The connection and cursor of one export; the caller commits. On an error the
        transaction is rolled back and a driver's error becomes ours, naming the table."""
        conn = self._connection()
        cur = conn.cursor()
        try:
            yield conn, cur
        except (TerminalConnectorError, ConfigError):
            self._rollback()
            raise
        except Exception as exc:
            self._rollback()
            raise self._query_error(exc, f"export to {schema}.{name}") from None
        finally:
            cur.close()

    def _export_query(
        self,
        query: str,
        schema: str,
        name: str,
        policy: ExportWritePolicy,
        cascade: bool,
        schema_change: str = "fail",
        part_column: str | None = None,
        part_value: Any = None,
    ) -> int:
        with self._export_transaction(schema, name) as (conn, cur):
            existing = self._columns(cur, schema, name)
            if existing is None:
                claim_new_table(cur, schema, name)
                existing = self._columns(cur, schema, name)
            if existing is not None and policy is ExportWritePolicy.FAIL:
                raise TerminalConnectorError(f"table {schema}.{name} already exists on {self._where()} and if_exists='fail'")
            body = query.strip().rstrip(";")
            partitioned = materialize_result(
                cur, lambda prefix, suffix: cur.execute(f"{prefix} {body} {suffix}".rstrip()), schema, name,
                policy=policy, exists=existing is not None, schema_change=schema_change,
                column=part_column, value=part_value, placeholder=lambda n: f"${n}", cascade=cascade,
            )
            if partitioned is not None:
                conn.commit()
                return partitioned
            count = cur.rowcount
            conn.commit()
        return int(count or 0) if count and count > 0 else 0

    def default_schema(self) -> str:
        """The profile's schema, for calls that name none (raises if its env_var() was unset)."""
        if self._schema_error is not None:
            raise self._schema_error
        return self.schema

    def _public_settings(self) -> dict[str, Any]:
        from dagsmith.project.masking import MASK

        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "schema": self.schema,
            "password": MASK if self._password else None,
        }


# --------------------------------------------------------------------------- drift and partitions
# Shared by this connector (ADBC cursor, ``$n`` parameters) and SQL blocks (psycopg cursor, ``%s``).

_LOCK_CLASS = 1684105075  # first key of dagsmith's two-key advisory locks on tables and schemas ("dags")


def claim_new_table(cur: Any, schema: str, name: str) -> None:
    """Before creating ``schema.name``: wait for any other transaction creating it (a transaction-scoped
    advisory lock on the name), and create the schema if missing — ``CREATE SCHEMA IF NOT EXISTS`` and
    ``CREATE TABLE`` race between concurrent transactions (duplicate key errors). Re-read the table after."""
    cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK_CLASS}, hashtext({quote_literal(schema + '.' + name)}))")
    cur.execute(f"SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {quote_literal(schema)}")
    if not cur.fetchall():
        cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK_CLASS}, hashtext({quote_literal('schema:' + schema)}))")
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")


RESULT_TABLE = "_dagsmith_result"
"""The temporary table a query's result (or, ``WITH NO DATA``, its columns) is put in before writing."""


def table_columns(cur: Any, schema: str, name: str) -> list["Column"]:
    """A table's columns for the drift check (type, Arrow type, whether the database fills it)."""
    cur.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),"
        " (a.atthasdef OR a.attidentity IN ('a', 'd') OR a.attgenerated = 's')"
        " FROM pg_catalog.pg_attribute a"
        " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE n.nspname = {quote_literal(schema)} AND c.relname = {quote_literal(name)}"
        " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
    )
    return [postgres_column(r[0], r[1], bool(r[2])) for r in cur.fetchall()]


def _result_columns(cur: Any) -> list["Column"]:
    cur.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a"
        f" WHERE a.attrelid = 'pg_temp.{RESULT_TABLE}'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum"
    )
    return [postgres_column(r[0], r[1]) for r in cur.fetchall()]


def check_result_drift(cur: Any, schema: str, name: str, policy: ExportWritePolicy, schema_change: str) -> str:
    """Drift check of the query result in ``RESULT_TABLE`` against ``schema.name`` (types only: the values
    are not in Python); adds new columns when allowed. Returns the result's quoted column list."""
    from dagsmith.io.schema import compare, enforce

    incoming = _result_columns(cur)
    diff = compare(table_columns(cur, schema, name), incoming, label="query")
    action = "replace a partition of" if policy is ExportWritePolicy.REPLACE_PARTITION else "append to"
    enforce(diff, on_schema_change=schema_change, target=f"{schema}.{name}", action=action)
    for change in diff.added:
        cur.execute(
            f"ALTER TABLE {quote_ident(schema)}.{quote_ident(name)} ADD COLUMN {quote_ident(change.column)} {change.frame_type}"
        )
    return ", ".join(quote_ident(c.name) for c in incoming)


def materialize_result(
    cur: Any,
    run: Any,
    schema: str,
    name: str,
    *,
    policy: str,
    exists: bool,
    schema_change: str,
    column: str | None = None,
    value: Any = None,
    placeholder: Any,
    variables: Any = None,
    cascade: bool = False,
) -> int | None:
    """Write a query's result into ``schema.name`` by ``policy``, inside the caller's transaction.

    The one policy walk of the connector's ``export`` of a query and of SQL blocks: a new
    table is created from the query; ``replace`` builds a fresh table and swaps it in;
    ``append`` checks the result's columns first (``check_result_drift``), then inserts;
    ``replace_partition`` goes through ``replace_partition_from_result`` (its row count is
    returned; None otherwise). ``run(prefix, suffix)`` executes ``prefix`` + the query +
    ``suffix``, so each caller keeps its own way of binding the query's parameters. The
    caller has refused ``fail`` on an existing table and claimed a new one.
    """
    target = f"{quote_ident(schema)}.{quote_ident(name)}"
    aside = f"CREATE TEMPORARY TABLE {RESULT_TABLE} ON COMMIT DROP AS"
    if policy == ExportWritePolicy.REPLACE_PARTITION:  # result aside; check; delete + insert
        run(aside, "")
        return replace_partition_from_result(
            cur, schema, name, exists=exists, schema_change=schema_change,
            column=column, value=value, placeholder=placeholder, variables=variables,
        )
    if not exists:
        run(f"CREATE TABLE {target} AS", "")
    elif policy == ExportWritePolicy.APPEND:  # the result's columns (not its rows) first, for the drift check
        run(aside, "WITH NO DATA")
        cols = check_result_drift(cur, schema, name, ExportWritePolicy.APPEND, schema_change)
        run(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM (", ") AS _dagsmith_src")
    else:  # replace: build aside, swap in the same transaction
        fresh = f"{name[:40]}__dagsmith_{uuid.uuid4().hex[:8]}"
        run(f"CREATE TABLE {quote_ident(schema)}.{quote_ident(fresh)} AS", "")
        cur.execute(f"DROP TABLE {target}{' CASCADE' if cascade else ''}")
        cur.execute(f"ALTER TABLE {quote_ident(schema)}.{quote_ident(fresh)} RENAME TO {quote_ident(name)}")
    return None


def replace_partition_from_result(
    cur: Any,
    schema: str,
    name: str,
    *,
    exists: bool,
    schema_change: str,
    column: str | None,
    value: Any,
    placeholder: Any,
    variables: Any = None,
) -> int:
    """Replace one partition of ``schema.name`` with the query result in ``RESULT_TABLE``, inside the
    caller's transaction: every row must be inside the partition, the columns must match (or be added),
    then DELETE the partition and INSERT the result. Returns the rows inserted."""
    from dagsmith.io.partitions import require_column, resolve_partition

    target = f"{quote_ident(schema)}.{quote_ident(name)}"
    where = f"export to {schema}.{name}"
    result = {c.name: c for c in _result_columns(cur)}
    if require_column(column, where) not in result:
        raise ConfigError(f"{where}: partition_column {column!r} is not a column of the query's result ({list(result)})")
    if result[column].arrow is None:
        raise ConfigError(f"{where}: cannot partition by {column!r} of type {result[column].type}")
    partition = resolve_partition(column, value, result[column].arrow, variables=variables, where=where)
    condition, params = partition.sql(quote_ident(column), placeholder)
    cur.execute(
        f"SELECT count(*), min({quote_ident(column)}::text) FROM {RESULT_TABLE} WHERE NOT coalesce({condition}, false)",
        params,
    )
    outside, example = cur.fetchall()[0]
    if outside:
        raise TerminalConnectorError(
            f"cannot replace partition {partition.describe()} of {schema}.{name}: {outside} rows of the query are"
            f" outside it (e.g. {column} = {example}); nothing was written",
            hint="filter the query to the partition (WHERE …), or pass the partition_value that covers it",
        )
    if not exists:
        cur.execute(f"CREATE TABLE {target} AS SELECT * FROM {RESULT_TABLE}")
    else:
        cols = check_result_drift(cur, schema, name, ExportWritePolicy.REPLACE_PARTITION, schema_change)
        cur.execute(f"DELETE FROM {target} WHERE {condition}", params)
        cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {RESULT_TABLE}")
    cur.execute(f"SELECT count(*) FROM {RESULT_TABLE}")
    return int(cur.fetchall()[0][0])


# --------------------------------------------------------------------------- helpers

_SELECT_RE = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(select|with|values|table)\b", re.I | re.S)


def _is_select(query: str) -> bool:
    return bool(_SELECT_RE.match(query)) and ";" not in query


def _empty_frame():
    import pandas as pd

    return pd.DataFrame()


def _plain_arrow(table: "pa.Table") -> "pa.Table":
    """Strip driver extension types (numeric, json) so pandas gets plain columns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns, fields, changed = [], [], False
    for field, column in zip(table.schema, table.columns):
        t = field.type
        if isinstance(t, pa.BaseExtensionType):
            storage = column.cast(t.storage_type) if False else pa.chunked_array(
                [chunk.storage for chunk in column.chunks], type=t.storage_type
            )
            meta = field.metadata or {}
            if meta.get(b"POSTGRESQL:type") == b"numeric":
                typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
                if typmod >= 4:
                    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
                    target = pa.decimal128(precision, scale) if precision <= 38 else pa.float64()
                else:
                    target = pa.float64()
                try:
                    storage = pc.cast(storage, target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
            column = storage
            t = storage.type
            changed = True
        columns.append(column)
        fields.append(pa.field(field.name, t))
    if not changed:
        return table
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _create_sql(schema: str, name: str, types: dict[str, str]) -> str:
    cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in types.items())
    return f"CREATE TABLE {quote_ident(schema)}.{quote_ident(name)} ({cols})"


def _unique_index_sql(schema: str, name: str, keys: list[str]) -> str:
    index = f"{name[:40]}_{'_'.join(keys)[:15]}_uniq"
    cols = ", ".join(quote_ident(k) for k in keys)
    return f"CREATE UNIQUE INDEX IF NOT EXISTS {quote_ident(index)} ON {quote_ident(schema)}.{quote_ident(name)} ({cols})"


def _clean_key(key: str, case_sensitive: bool) -> str:
    from dagsmith.io.base import clean_column_name

    return clean_column_name(key, case_sensitive=case_sensitive)


def _same_layout(table: "pa.Table", types: dict[str, str], existing: dict[str, str]) -> bool:
    return list(existing) == list(table.column_names) and all(types[c] == existing[c] for c in table.column_names)


def _dedupe_last(table: "pa.Table", keys: list[str]) -> "pa.Table":
    """Keep the last row for each key (an upsert cannot touch one row twice)."""
    import pyarrow as pa

    if table.num_rows < 2:
        return table
    indexed = table.select(keys).append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    last = indexed.group_by(keys, use_threads=False).aggregate([("__row", "max")]).column("__row_max")
    if len(last) == table.num_rows:
        return table
    import pyarrow.compute as pc

    return table.take(pc.sort_indices(last))
