"""DuckDB connector: the embedded default warehouse (a file in the project unless told otherwise).

Owns ``DuckDB`` (also ``mage_ai.io.duckdb.DuckDB``) with the SQL connector contract
(``load``, ``export(…, if_exists=…)``, ``execute``, ``table_exists``, ``sample``).
Frames go in without copies: the Arrow table is registered as a view and DuckDB
reads its buffers directly. ``replace`` is ``CREATE OR REPLACE TABLE … AS``, atomic
for readers; ``append`` and ``replace_partition`` check the columns first
(:mod:`dagsmith.io.schema`) and insert by name; ``replace_partition`` deletes the
partition and inserts in one transaction; upserts use ``INSERT … ON CONFLICT`` on a
unique index.

Default database: ``DUCKDB_DATABASE`` from the profile (relative paths are inside
the project), else ``<project>/.dagsmith/warehouse.duckdb``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from dagsmith.errors import ConfigError, TerminalConnectorError, TransientConnectorError
from dagsmith.io.base import (
    QUERY_ROW_LIMIT,
    Capabilities,
    Connector,
    ExportWritePolicy,
    arrow_to_pandas,
    quote_ident,
    release,
    rename_columns,
    to_arrow,
    write_policy,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

__all__ = ["DuckDB", "default_database", "duckdb_column"]

WAREHOUSE_FILENAME = "warehouse.duckdb"


_DUCK_ARROW = {
    "BOOLEAN": "bool_",
    "TINYINT": "int8",
    "SMALLINT": "int16",
    "INTEGER": "int32",
    "BIGINT": "int64",
    "UTINYINT": "uint8",
    "USMALLINT": "uint16",
    "UINTEGER": "uint32",
    "UBIGINT": "uint64",
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "VARCHAR": "string",
    "DATE": "date32",
    "BLOB": "binary",
}


def duckdb_column(name: str, data_type: str, has_default: bool = False) -> Any:
    """A DuckDB column for the schema-drift check: its type and the Arrow type of its values."""
    import re

    import pyarrow as pa

    from dagsmith.io.schema import ANY_NUMBER, Column

    text = str(data_type).upper().strip()
    arrow, kind = None, None
    if text in _DUCK_ARROW:
        arrow = getattr(pa, _DUCK_ARROW[text])()
    elif text in ("HUGEINT", "UHUGEINT", "VARINT", "BIGNUM"):
        kind = ANY_NUMBER
    elif text.startswith("DECIMAL"):
        m = re.match(r"DECIMAL\((\d+),\s*(\d+)\)", text)
        arrow = pa.decimal128(int(m.group(1)), int(m.group(2))) if m else pa.decimal128(18, 3)
    elif text in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMPTZ_NS"):
        arrow = pa.timestamp("ns" if text.endswith("_NS") else "us", "UTC")
    elif text in ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATETIME"):
        arrow = pa.timestamp({"TIMESTAMP_NS": "ns", "TIMESTAMP_MS": "ms", "TIMESTAMP_S": "s"}.get(text, "us"))
    elif text == "TIME":
        arrow = pa.time64("us")
    return Column(name, text, arrow, has_default, kind)


def default_database(project_root: str | os.PathLike[str] | None = None) -> Path:
    """The project's warehouse file: ``<project>/.dagsmith/warehouse.duckdb``."""
    from dagsmith.project.layout import data_dir, get_repo_path

    return data_dir(project_root or get_repo_path()) / WAREHOUSE_FILENAME


def _microsecond_timestamps(table: "pa.Table") -> "pa.Table":
    """pandas 2 datetimes are nanosecond; DuckDB's TIMESTAMP is microsecond. Cast when nothing is
    lost, so tables get TIMESTAMP / TIMESTAMP WITH TIME ZONE columns rather than TIMESTAMP_NS."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            try:
                column = table.column(i).cast(pa.timestamp("us", tz=field.type.tz))  # safe: refuses truncation
            except pa.ArrowInvalid:
                continue
            table = table.set_column(i, field.name, column)
    return table


class DuckDB(Connector):
    """A DuckDB database file (or ``:memory:``)."""

    name = "duckdb"
    capabilities = Capabilities(sql=True, upsert=True, transactional_replace=True)
    profile_keys = {"database": "DUCKDB_DATABASE", "schema": "DUCKDB_SCHEMA"}

    def __init__(
        self,
        database: str | os.PathLike[str] | None = None,
        schema: str | None = None,
        read_only: bool = False,
        verbose: bool = True,
        source: str = "given config",
        project_root: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if database in (None, ""):
            self.database = str(default_database(project_root))
        elif str(database) == ":memory:" or str(database).startswith("md:"):
            self.database = str(database)
        else:
            path = Path(os.path.expanduser(str(database)))
            if not path.is_absolute():
                from dagsmith.project.layout import get_repo_path

                path = Path(project_root or get_repo_path()) / path
            self.database = str(path)
        self.schema = schema or "main"
        self.read_only = read_only
        self.verbose = verbose
        self.source = source
        self._secrets = []
        self._conn = None

    @classmethod
    def with_config(cls, config: Any, **kwargs: Any) -> "DuckDB":
        settings = cls.profile_settings(config)
        filepath = getattr(config, "filepath", None)
        if filepath:
            settings["project_root"] = str(Path(filepath).parent)
        settings.update(kwargs)
        return cls(**settings)

    def _where(self) -> str:
        return f"DuckDB {self.database} ({self.source})"

    def open(self) -> None:
        self._connection()

    def _connection(self):
        if self._conn is None:
            import duckdb

            if self.database != ":memory:" and not self.database.startswith("md:"):
                Path(self.database).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._conn = duckdb.connect(self.database, read_only=self.read_only)
            except duckdb.IOException as exc:
                raise TransientConnectorError(
                    f"cannot open {self._where()}: {exc}",
                    hint="another process may hold the file open for writing; DuckDB allows one writer",
                ) from None
        return self._conn

    def close(self) -> None:
        release(self, "_conn")

    def _error(self, exc: Exception, what: str) -> Exception:
        return TerminalConnectorError(f"{what} failed on {self._where()}: {exc}")

    # ------------------------------------------------------------------ reading

    def load_arrow(self, query_string: str, limit: int = QUERY_ROW_LIMIT, **kwargs: Any) -> "pa.Table | None":
        """Run a query; its rows as an Arrow table (None when it returns nothing)."""
        import duckdb

        conn = self._connection()
        query = query_string.strip().rstrip(";")
        try:
            relation = conn.sql(query)
            if relation is None:
                return None
            if limit:
                relation = relation.limit(int(limit))
            return relation.to_arrow_table()
        except duckdb.Error as exc:
            raise self._error(exc, "query") from None

    def load(self, query_string: str, limit: int = QUERY_ROW_LIMIT, **kwargs: Any) -> "pd.DataFrame":
        """Run a query and return a DataFrame (at most ``limit`` rows)."""
        import pandas as pd

        table = self.load_arrow(query_string, limit=limit)
        return arrow_to_pandas(table) if table is not None else pd.DataFrame()

    def execute(self, query_string: str, **kwargs: Any) -> None:
        import duckdb

        try:
            self._connection().execute(query_string)
        except duckdb.Error as exc:
            raise self._error(exc, "statement") from None

    def execute_queries(self, query_strings: Sequence[str], **kwargs: Any) -> list[Any]:
        import duckdb

        conn = self._connection()
        results = []
        try:
            conn.execute("BEGIN TRANSACTION")
            for query in query_strings:
                cursor = conn.execute(query)
                results.append(cursor.fetchall() if cursor.description else None)
            conn.execute("COMMIT")
        except duckdb.Error as exc:
            conn.execute("ROLLBACK")
            raise self._error(exc, "statement") from None
        return results

    def table_exists(self, schema_name: str, table_name: str) -> bool:
        rows = self._connection().execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema_name, table_name],
        ).fetchall()
        return bool(rows)

    def sample(self, schema: str, table: str, size: int = 10_000, **kwargs: Any) -> "pd.DataFrame":
        return self.load(f"SELECT * FROM {quote_ident(schema)}.{quote_ident(table)}", limit=size)

    # ------------------------------------------------------------------ writing

    def export(
        self,
        df: Any,
        schema_name: str | None = None,
        table_name: str | None = None,
        if_exists: str | ExportWritePolicy = ExportWritePolicy.REPLACE,
        index: bool = False,
        auto_clean_name: bool = True,
        case_sensitive: bool = False,
        unique_conflict_method: str | None = None,
        unique_constraints: Iterable[str] | None = None,
        query_string: str | None = None,
        partition_column: str | None = None,
        partition_value: Any = None,
        on_schema_change: str | None = None,
        **kwargs: Any,
    ) -> int:
        """Write ``df`` (or the result of ``query_string``) to ``schema_name.table_name``; returns rows written.

        ``append`` and ``replace_partition`` compare columns first (:mod:`dagsmith.io.schema`);
        ``replace_partition`` deletes the partition's rows and inserts the frame in one transaction.
        """
        import duckdb

        from dagsmith.io.partitions import check_within, partition_settings, require_column, resolve_partition
        from dagsmith.io.schema import on_schema_change_setting

        if table_name is None:
            raise ConfigError("export needs table_name", hint="export(df, schema_name, table_name, if_exists=…)")
        schema = schema_name or self.schema
        policy = write_policy(if_exists)
        schema_change = on_schema_change_setting(on_schema_change)
        conn = self._connection()
        target = f"{quote_ident(schema)}.{quote_ident(table_name)}"
        where = f"export to {schema}.{table_name}"
        view = f"_dagsmith_src_{uuid.uuid4().hex[:12]}"
        keys = list(unique_constraints or [])
        part_column, part_value = (None, None)
        if policy is ExportWritePolicy.REPLACE_PARTITION:
            part_column, part_value = partition_settings(partition_column, partition_value)
            require_column(part_column, where)
            if auto_clean_name:
                from dagsmith.io.base import clean_column_name

                part_column = clean_column_name(part_column, case_sensitive=case_sensitive)
        partition = None
        table = None
        if query_string is None:
            table = rename_columns(to_arrow(df, index=index), auto_clean_name=auto_clean_name, case_sensitive=case_sensitive)
            table = _microsecond_timestamps(table)
            if part_column is not None:
                if part_column not in table.column_names:
                    raise ConfigError(
                        f"{where}: partition_column {part_column!r} is not a column of the frame (columns: {table.column_names})"
                    )
                partition = resolve_partition(part_column, part_value, table.schema.field(part_column).type, where=where)
                check_within(table, partition, target=f"{schema}.{table_name}")
        if auto_clean_name and keys:
            from dagsmith.io.base import clean_column_name

            keys = [clean_column_name(k, case_sensitive=case_sensitive) for k in keys]
        registered = False
        try:
            if table is not None:
                conn.register(view, table)
                registered = True
                source_sql = quote_ident(view)
            elif part_column is not None:  # the result is checked, then written: run the query once
                conn.execute(
                    f"CREATE OR REPLACE TEMPORARY TABLE {quote_ident(view)} AS {query_string.strip().rstrip(';')}"
                )
                source_sql = f"temp.main.{quote_ident(view)}"
            else:
                source_sql = f"({query_string.strip().rstrip(';')})"
            exists = self.table_exists(schema, table_name)
            if exists and policy is ExportWritePolicy.FAIL:
                raise TerminalConnectorError(
                    f"table {schema}.{table_name} already exists in {self._where()} and if_exists='fail'",
                    hint="use if_exists='replace' or 'append'",
                )
            if table is None and part_column is not None:
                partition = self.query_partition(source_sql, part_column, part_value, where, f"{schema}.{table_name}")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            if not exists or policy is ExportWritePolicy.REPLACE:
                conn.execute("BEGIN TRANSACTION")
                conn.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {source_sql}")
                if keys:
                    conn.execute(
                        f"CREATE UNIQUE INDEX {quote_ident(table_name + '_' + '_'.join(keys) + '_uniq')}"
                        f" ON {target} ({', '.join(quote_ident(k) for k in keys)})"
                    )
                conn.execute("COMMIT")
            else:
                conn.execute("BEGIN TRANSACTION")
                described = self.describe(f"SELECT * FROM {source_sql}")
                incoming, cast_sql = self.check_drift(described, table, schema, table_name, policy, schema_change)
                if partition is not None:
                    condition, params = partition.sql(quote_ident(partition.column), lambda n: "?")
                    conn.execute(f"DELETE FROM {target} WHERE {condition}", params)
                conflict = ""
                if keys:
                    updates = [c for c in incoming if c not in keys]
                    method = (unique_conflict_method or "UPDATE").upper()
                    if method == "IGNORE" or not updates:
                        conflict = f" ON CONFLICT ({', '.join(quote_ident(k) for k in keys)}) DO NOTHING"
                    else:
                        sets = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in updates)
                        conflict = f" ON CONFLICT ({', '.join(quote_ident(k) for k in keys)}) DO UPDATE SET {sets}"
                cols = ", ".join(quote_ident(c) for c in incoming)
                conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cast_sql} FROM {source_sql}{conflict}")
                conn.execute("COMMIT")
            counted = source_sql if part_column is not None else target
            count = table.num_rows if table is not None else int(
                conn.execute(f"SELECT count(*) FROM {counted}").fetchone()[0]
            )
        except (duckdb.Error, TerminalConnectorError, ConfigError) as exc:
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass
            if isinstance(exc, duckdb.Error):
                raise self._error(exc, f"export to {schema}.{table_name}") from None
            raise
        finally:
            if registered:
                conn.unregister(view)
            elif table is None and part_column is not None:
                try:
                    conn.execute(f"DROP TABLE IF EXISTS temp.main.{quote_ident(view)}")
                except duckdb.Error:
                    pass
        return self._exported(count, f"{schema}.{table_name} ({self.database})")

    def target_columns(self, schema: str, table_name: str, catalog: str | None = None) -> list[Any]:
        """The table's columns for the schema-drift check (:func:`duckdb_column`)."""
        rows = self._connection().execute(
            "SELECT column_name, data_type, column_default IS NOT NULL FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ?" + (" AND table_catalog = ?" if catalog else "")
            + " ORDER BY ordinal_position",
            [schema, table_name] + ([catalog] if catalog else []),
        ).fetchall()
        return [duckdb_column(r[0], r[1], bool(r[2])) for r in rows]

    def describe(self, query: str, params: Any = None) -> dict[str, str]:
        """Column name → DuckDB type of a query's result (the query is planned, not run)."""
        conn = self._connection()
        rows = conn.execute(f"DESCRIBE {query}", params).fetchall() if params else conn.execute(f"DESCRIBE {query}").fetchall()
        return {r[0]: r[1] for r in rows}

    def check_drift(
        self,
        described: dict[str, str],
        table: Any,
        schema: str,
        name: str,
        policy: ExportWritePolicy,
        schema_change: str,
        catalog: str | None = None,
    ) -> tuple[list[str], str]:
        """Compare what is written (a frame ``table``, or a query result ``described``) with the table's
        columns; add new columns when allowed. Returns the incoming column names and the SELECT list
        that casts them to the table's types where that was checked lossless."""
        from dagsmith.io.schema import Column, compare, enforce

        if table is not None:
            incoming = [Column(f.name, described.get(f.name, str(f.type)), f.type) for f in table.schema]
        else:
            incoming = [duckdb_column(n, t) for n, t in described.items()]
        target_cols = self.target_columns(schema, name, catalog)
        diff = compare(target_cols, incoming, values=table, label="frame" if table is not None else "query")
        action = "replace a partition of" if policy is ExportWritePolicy.REPLACE_PARTITION else "append to"
        enforce(diff, on_schema_change=schema_change, target=f"{schema}.{name}", action=action)
        qualified = ".".join(quote_ident(p) for p in ([catalog] if catalog else []) + [schema, name])
        for change in diff.added:
            self._connection().execute(f"ALTER TABLE {qualified} ADD COLUMN {quote_ident(change.column)} {change.frame_type}")
        # the values were checked to survive the cast: cast explicitly, so DuckDB never rounds silently
        types = {c.name: c.type for c in target_cols}
        select = ", ".join(
            f"CAST({quote_ident(c.name)} AS {types[c.name]})" if c.name in diff.casts else quote_ident(c.name) for c in incoming
        )
        return [c.name for c in incoming], select

    def query_partition(
        self, source_sql: str, column: str | None, value: Any, where: str, target: str, variables: Any = None
    ) -> Any:
        """The partition of a query export (its result in ``source_sql``), after checking every row is inside it."""
        from dagsmith.io.partitions import require_column, resolve_partition

        conn = self._connection()
        described = self.describe(f"SELECT * FROM {source_sql}")
        require_column(column, where)
        if column not in described:
            raise ConfigError(f"{where}: partition_column {column!r} is not a column of the query's result ({list(described)})")
        arrow = duckdb_column(column, described[column]).arrow
        if arrow is None:
            raise ConfigError(f"{where}: cannot partition by {column!r} of type {described[column]}")
        partition = resolve_partition(column, value, arrow, variables=variables, where=where)
        condition, params = partition.sql(quote_ident(column), lambda n: "?")
        outside, example = conn.execute(
            f"SELECT count(*), min(CAST({quote_ident(column)} AS VARCHAR)) FROM {source_sql} WHERE NOT coalesce({condition}, false)",
            params,
        ).fetchone()
        if outside:
            raise TerminalConnectorError(
                f"cannot replace partition {partition.describe()} of {target}: {outside} rows of the query are outside"
                f" it (e.g. {column} = {example}); nothing was written",
                hint="filter the query to the partition (WHERE …), or pass the partition_value that covers it",
            )
        return partition

    def _public_settings(self) -> dict[str, Any]:
        return {"database": self.database, "schema": self.schema}
