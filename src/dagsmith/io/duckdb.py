"""DuckDB connector: the embedded default warehouse (a file in the project unless told otherwise).

Owns ``DuckDB`` (also ``mage_ai.io.duckdb.DuckDB``) with the SQL connector contract
(``load``, ``export(…, if_exists=…)``, ``execute``, ``table_exists``, ``sample``).
Frames go in without copies: the Arrow table is registered as a view and DuckDB
reads its buffers directly. ``replace`` is ``CREATE OR REPLACE TABLE … AS``, atomic
for readers; ``append`` checks columns first and inserts by name; upserts use
``INSERT … ON CONFLICT`` on a unique index.

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
    config_source,
    config_value,
    rename_columns,
    to_arrow,
    write_policy,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

__all__ = ["DuckDB", "default_database"]

WAREHOUSE_FILENAME = "warehouse.duckdb"


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


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
        settings = dict(
            database=config_value(config, "DUCKDB_DATABASE"),
            schema=config_value(config, "DUCKDB_SCHEMA"),
            source=config_source(config),
        )
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
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

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
        return self.load(f"SELECT * FROM {_q(schema)}.{_q(table)}", limit=size)

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
        **kwargs: Any,
    ) -> int:
        """Write ``df`` (or the result of ``query_string``) to ``schema_name.table_name``; returns rows written."""
        import duckdb

        if table_name is None:
            raise ConfigError("export needs table_name", hint="export(df, schema_name, table_name, if_exists=…)")
        schema = schema_name or self.schema
        policy = write_policy(if_exists)
        conn = self._connection()
        target = f"{_q(schema)}.{_q(table_name)}"
        view = f"_dagsmith_src_{uuid.uuid4().hex[:12]}"
        keys = list(unique_constraints or [])
        if query_string is not None:
            source_sql = f"({query_string.strip().rstrip(';')})"
            table = None
        else:
            table = rename_columns(to_arrow(df, index=index), auto_clean_name=auto_clean_name, case_sensitive=case_sensitive)
            table = _microsecond_timestamps(table)
            conn.register(view, table)
            source_sql = _q(view)
        if auto_clean_name and keys:
            from dagsmith.io.base import clean_column_name

            keys = [clean_column_name(k, case_sensitive=case_sensitive) for k in keys]
        try:
            exists = self.table_exists(schema, table_name)
            if exists and policy is ExportWritePolicy.FAIL:
                raise TerminalConnectorError(
                    f"table {schema}.{table_name} already exists in {self._where()} and if_exists='fail'",
                    hint="use if_exists='replace' or 'append'",
                )
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")
            if not exists or policy is ExportWritePolicy.REPLACE:
                conn.execute("BEGIN TRANSACTION")
                conn.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {source_sql}")
                if keys:
                    conn.execute(
                        f"CREATE UNIQUE INDEX {_q(table_name + '_' + '_'.join(keys) + '_uniq')}"
                        f" ON {target} ({', '.join(_q(k) for k in keys)})"
                    )
                conn.execute("COMMIT")
            else:
                columns = [
                    r[0]
                    for r in conn.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?"
                        " ORDER BY ordinal_position",
                        [schema, table_name],
                    ).fetchall()
                ]
                incoming = table.column_names if table is not None else [
                    d[0] for d in conn.execute(f"SELECT * FROM {source_sql} LIMIT 0").description
                ]
                unknown = [c for c in incoming if c not in columns]
                if unknown:
                    raise TerminalConnectorError(
                        f"cannot append to {schema}.{table_name}: the frame has columns the table does not: {unknown}"
                        f" (table columns: {columns}); nothing was written",
                        hint="rename or drop those columns, or use if_exists='replace'",
                    )
                conflict = ""
                if keys:
                    updates = [c for c in incoming if c not in keys]
                    method = (unique_conflict_method or "UPDATE").upper()
                    if method == "IGNORE" or not updates:
                        conflict = f" ON CONFLICT ({', '.join(_q(k) for k in keys)}) DO NOTHING"
                    else:
                        sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in updates)
                        conflict = f" ON CONFLICT ({', '.join(_q(k) for k in keys)}) DO UPDATE SET {sets}"
                cols = ", ".join(_q(c) for c in incoming)
                conn.execute("BEGIN TRANSACTION")
                conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {source_sql}{conflict}")
                conn.execute("COMMIT")
        except duckdb.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise self._error(exc, f"export to {schema}.{table_name}") from None
        finally:
            if table is not None:
                conn.unregister(view)
        if table is not None:
            return self._exported(table.num_rows, f"{schema}.{table_name} ({self.database})")
        return self._exported(int(conn.execute(f"SELECT count(*) FROM {target}").fetchone()[0]), f"{schema}.{table_name} ({self.database})")

    def _public_settings(self) -> dict[str, Any]:
        return {"database": self.database, "schema": self.schema}
