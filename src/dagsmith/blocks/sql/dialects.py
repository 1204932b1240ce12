"""Per-database execution of SQL blocks: PostgreSQL, DuckDB, BigQuery.

Owns what differs between databases for a SQL block: quoting identifiers,
placeholder spelling, binding parameters, materializing a query into a table
per write policy (atomically for ``replace`` and ``replace_partition``; ``append``
and ``replace_partition`` check the result's columns against the table first, with
the connectors' schema-drift and partition helpers), running raw statements in one
transaction, reading the result back, and turning a database error into the line
of the rendered SQL it points at.

Built on the connectors of ``dagsmith.io``: frames from upstream blocks go in
through the connector's own ``export`` (ADBC/COPY on PostgreSQL, Arrow on DuckDB,
a load job on BigQuery). What the connectors do not offer is done here:

- PostgreSQL statements with bound parameters run on a psycopg 3 connection
  (psycopg sends ``str`` values with an unknown type, so ``'{{ ds }}'`` compares
  with dates as a literal would; the ADBC driver types them as ``text``);
- DuckDB uses the connector's connection (``DuckDB._connection()``) so frames
  exported by the connector and the block's queries share one database, also
  for ``:memory:``;
- BigQuery query jobs with a destination table and query parameters use the
  connector's public ``client``.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from dagsmith.blocks.sql.render import SqlText, Statement
from dagsmith.errors import ConfigError, TerminalConnectorError
from dagsmith.io.base import quote_ident, release

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa


class DatabaseFailure(Exception):
    """The database rejected a statement: its own message and, when known, the rendered-SQL line."""

    def __init__(self, message: str, *, statement: Statement | None = None, line_in_statement: int | None = None):
        super().__init__(message)
        self.message = message
        self.statement = statement
        self.line_in_statement = line_in_statement

    @property
    def rendered_line(self) -> int | None:
        if self.statement is None or self.line_in_statement is None:
            return None
        return self.statement.start_line + self.line_in_statement - 1


_WRAP = "\n"  # wrappers end with a newline, so the user's query keeps its own line numbers


@dataclass(frozen=True)
class WriteOptions:
    """How a materialized block writes besides its policy (block configuration keys of the same names)."""

    on_schema_change: str = "fail"
    partition_column: str | None = None
    partition_value: Any = None
    variables: Mapping[str, Any] | None = None
    """The run's variables: the default partition is their interval."""


class Dialect:
    """One database behind a SQL block (one connection for the block's run)."""

    name = "sql"
    default_schema = "public"

    def __init__(self, connector: Any, config: Any, database: str | None) -> None:
        self.connector = connector
        self.config = config
        self.database = database

    # identifiers -------------------------------------------------------
    def quote(self, name: str) -> str:
        return quote_ident(name)

    def qualify(self, schema: str, table: str) -> SqlText:
        parts = [self.database] if self.database else []
        parts += [schema, table]
        return SqlText(".".join(self.quote(p) for p in parts))

    def placeholder(self, n: int) -> str:
        return f"${n}"

    # work --------------------------------------------------------------
    def load_frame(self, frame: Any, schema: str, table: str, *, persist: bool = True) -> SqlText:
        """Write an upstream frame to ``schema.table`` with replace semantics (connector fast path);
        returns how the SQL refers to it."""
        self.connector.export(frame, schema, table, if_exists="replace")
        return self.qualify(schema, table)

    def materialize(
        self, stmt: Statement, schema: str, table: str, policy: str, options: WriteOptions = WriteOptions()
    ) -> None:
        raise NotImplementedError

    def read_table(self, schema: str, table: str, limit: int) -> "pd.DataFrame":
        raise NotImplementedError

    def run_raw(self, statements: list[Statement]) -> "pd.DataFrame | None":
        raise NotImplementedError

    def execute_verbatim(self, text: str) -> None:
        self.connector.execute(text)

    def close(self) -> None:
        try:
            self.connector.close()
        except Exception:
            pass


_CREATE_RE = re.compile(
    r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(?:create\s+(?:or\s+replace\s+)?(?:temp(?:orary)?\s+)?table\s+"
    r"(?:if\s+not\s+exists\s+)?|insert\s+(?:or\s+\w+\s+)?into\s+)((?:[`\"]?[\w\-]+[`\"]?\.){0,2}[`\"]?[\w\-]+[`\"]?)",
    re.I | re.S,
)


def written_table(sql: str) -> str | None:
    """The table a ``CREATE TABLE … AS`` / ``INSERT INTO`` statement writes (as written), else None."""
    m = _CREATE_RE.match(sql)
    return m.group(1) if m else None


def _frame(table: "pa.Table") -> "pd.DataFrame":
    from dagsmith.io.base import arrow_to_pandas

    return arrow_to_pandas(table)


# --------------------------------------------------------------------------- PostgreSQL


class PostgresDialect(Dialect):
    name = "postgres"
    default_schema = "public"

    def __init__(self, connector: Any, config: Any, database: str | None) -> None:
        super().__init__(connector, config, None)  # a PostgreSQL connection is bound to one database
        if database:
            connector.dbname = database
        self._pg = None

    def _conn(self):
        if self._pg is None:
            from dagsmith.errors import require

            psycopg = require("psycopg", feature="SQL blocks on PostgreSQL", extra="postgres")
            from dagsmith.io.base import config_value

            c = self.connector
            try:
                self._pg = psycopg.connect(
                    host=c.host,
                    port=c.port,
                    dbname=c.dbname,
                    user=c.user,
                    password=config_value(self.config, "POSTGRES_PASSWORD"),
                    connect_timeout=max(1, int(c.connect_timeout)),
                    application_name="dagsmith",
                )
            except psycopg.Error as exc:
                raise c._connect_error(exc) if hasattr(c, "_connect_error") else TerminalConnectorError(str(exc)) from None
        return self._pg

    def _exec(self, cur: Any, prefix: str, stmt: Statement | None, suffix: str = "", raw_sql: str | None = None) -> None:
        """Execute ``prefix + statement + suffix`` with its parameters (psycopg spelling)."""
        import psycopg

        values = stmt.values if stmt is not None else []
        if stmt is not None:
            if values:
                text = "".join(
                    "%s" if isinstance(p, tuple) else p.replace("%", "%%") for p in stmt.pieces
                )
                sql = prefix.replace("%", "%%") + text + suffix.replace("%", "%%")
            else:
                sql = prefix + stmt.sql(self.placeholder) + suffix
        else:
            sql = raw_sql or ""
        try:
            cur.execute(sql, values or None)
        except psycopg.Error as exc:
            line = None
            diag = getattr(exc, "diag", None)
            pos = getattr(diag, "statement_position", None) if diag is not None else None
            if pos and stmt is not None:
                server_sql = prefix + stmt.sql(self.placeholder) + suffix
                line = server_sql.count("\n", 0, max(int(pos) - 1, 0)) + 1 - prefix.count("\n")
                if line < 1:
                    line = None
            primary = getattr(diag, "message_primary", None) if diag is not None else None
            message = primary or str(exc).split("\n")[0]
            for extra in ("message_detail", "message_hint"):
                more = getattr(diag, extra, None) if diag is not None else None
                if more:
                    message += f" ({more})"
            raise DatabaseFailure(self.connector._scrub(message) if hasattr(self.connector, "_scrub") else message,
                                  statement=stmt, line_in_statement=line) from None

    def _exists(self, cur: Any, schema: str, table: str) -> bool:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{self.quote(schema)}.{self.quote(table)}"])
        return bool(cur.fetchone()[0])

    def materialize(
        self, stmt: Statement, schema: str, table: str, policy: str, options: WriteOptions = WriteOptions()
    ) -> None:
        from dagsmith.io.postgres import claim_new_table, materialize_result

        conn = self._conn()
        try:
            with conn.cursor() as cur:
                exists = self._exists(cur, schema, table)
                if not exists:  # concurrent runs may all find no table: one creates it
                    claim_new_table(cur, schema, table)
                    exists = self._exists(cur, schema, table)
                if exists and policy == "fail":
                    raise DatabaseFailure(
                        f"table {schema}.{table} already exists and export_write_policy is 'fail'"
                    )
                materialize_result(  # one transaction, whatever the policy
                    cur,
                    lambda prefix, suffix: self._exec(cur, prefix + _WRAP, stmt, _WRAP + suffix if suffix else ""),
                    schema, table, policy=policy, exists=exists, schema_change=options.on_schema_change,
                    column=options.partition_column, value=options.partition_value,
                    placeholder=lambda n: "%s", variables=options.variables,
                )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def read_table(self, schema: str, table: str, limit: int) -> "pd.DataFrame":
        table_ = self.connector.load_arrow(
            f"SELECT * FROM {self.quote(schema)}.{self.quote(table)} LIMIT {int(limit)}", limit=0
        )
        if table_ is None:
            import pandas as pd

            return pd.DataFrame()
        return _frame(table_)

    def run_raw(self, statements: list[Statement]) -> "pd.DataFrame | None":
        import pandas as pd

        conn = self._conn()
        result = None
        try:
            with conn.cursor() as cur:
                for stmt in statements:
                    self._exec(cur, "", stmt)
                    if cur.description is not None:
                        cols = [d.name for d in cur.description]
                        result = pd.DataFrame(cur.fetchall(), columns=cols)
                    else:
                        result = None
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        if result is None and statements:
            name = written_table(statements[-1].sql(self.placeholder))
            if name:
                t = self.connector.load_arrow(f"SELECT * FROM {name} LIMIT 1000", limit=0)
                return _frame(t) if t is not None else None
        return result

    def execute_verbatim(self, text: str) -> None:
        conn = self._conn()
        try:
            with conn.cursor() as cur:
                self._exec(cur, "", None, raw_sql=text)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def close(self) -> None:
        release(self, "_pg")
        super().close()


# --------------------------------------------------------------------------- DuckDB

_DUCK_LINE = re.compile(r"LINE (\d+):")


_DUCK_LOCKS: dict[str, Any] = {}
_DUCK_LOCKS_GUARD = __import__("threading").Lock()


def _duck_lock(database: str):
    """One writer at a time per DuckDB database in this process: parallel SQL blocks writing to the
    same file would otherwise hit DuckDB's catalog write-write conflicts (DuckDB parallelizes each
    statement itself, so little is lost)."""
    with _DUCK_LOCKS_GUARD:
        lock = _DUCK_LOCKS.get(database)
        if lock is None:
            lock = _DUCK_LOCKS[database] = __import__("threading").RLock()
        return lock


class DuckDBDialect(Dialect):
    name = "duckdb"
    default_schema = "main"

    @property
    def _lock(self):
        return _duck_lock(str(self.connector.database))

    def _conn(self):
        return self.connector._connection()

    def load_frame(self, frame: Any, schema: str, table: str, *, persist: bool = True) -> SqlText:
        """Persisted (a configured ``table_name``): the connector's export. Otherwise zero-copy: the
        frame's Arrow buffers are registered as a temporary view named ``table`` on this block's
        connection, which DuckDB scans in place — nothing is copied or written to the file."""
        if persist:
            with self._lock:
                return super().load_frame(frame, schema, table)
        from dagsmith.io.base import rename_columns, to_arrow

        arrow = rename_columns(to_arrow(frame), auto_clean_name=True, case_sensitive=False)
        with self._lock:  # registering takes a catalog lookup that races with other connections' writes
            self._conn().register(table, arrow)
        return SqlText(f"temp.main.{self.quote(table)}")

    def _exec(self, prefix: str, stmt: Statement, suffix: str = "") -> Any:
        import duckdb

        sql = prefix + stmt.sql(self.placeholder) + suffix
        try:
            values = stmt.values
            return self._conn().execute(sql, values) if values else self._conn().execute(sql)
        except duckdb.Error as exc:
            text = str(exc)
            m = _DUCK_LINE.search(text)
            line = int(m.group(1)) - prefix.count("\n") if m else None
            message = text.split("\n\nLINE")[0].strip()
            raise DatabaseFailure(message, statement=stmt, line_in_statement=line if line and line > 0 else None) from None

    def _exists(self, schema: str, table: str) -> bool:
        rows = self._conn().execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
            + (" AND table_catalog = ?" if self.database else ""),
            [schema, table] + ([self.database] if self.database else []),
        ).fetchall()
        return bool(rows)

    def materialize(
        self, stmt: Statement, schema: str, table: str, policy: str, options: WriteOptions = WriteOptions()
    ) -> None:
        conn = self._conn()
        target = self.qualify(schema, table)
        schema_ref = ".".join(self.quote(p) for p in ([self.database] if self.database else []) + [schema])
        with self._lock:
            self._materialize(conn, stmt, schema, table, policy, target, schema_ref, options)

    def _materialize(
        self, conn: Any, stmt: Statement, schema: str, table: str, policy: str, target: str, schema_ref: str,
        options: WriteOptions,
    ) -> None:
        from dagsmith.io.base import ExportWritePolicy

        duck = self.connector
        with _duck_transaction(conn):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema_ref}")
            exists = self._exists(schema, table)
            if exists and policy == "fail":
                raise DatabaseFailure(f"table {schema}.{table} already exists and export_write_policy is 'fail'")
            if policy == "replace_partition":  # result aside; check; delete + insert, one transaction
                result = f"temp.main.{self.quote('_dagsmith_result')}"
                self._exec(f"CREATE OR REPLACE TEMPORARY TABLE {self.quote('_dagsmith_result')} AS{_WRAP}", stmt)
                partition = duck.query_partition(
                    result, options.partition_column, options.partition_value, f"block table {schema}.{table}",
                    f"{schema}.{table}", variables=options.variables,
                )
                if not exists:
                    conn.execute(f"CREATE TABLE {target} AS SELECT * FROM {result}")
                else:
                    cols, select = duck.check_drift(
                        duck.describe(f"SELECT * FROM {result}"), None, schema, table,
                        ExportWritePolicy.REPLACE_PARTITION, options.on_schema_change, catalog=self.database,
                    )
                    condition, params = partition.sql(self.quote(partition.column), lambda n: "?")
                    conn.execute(f"DELETE FROM {target} WHERE {condition}", params)
                    names = ", ".join(self.quote(c) for c in cols)
                    conn.execute(f"INSERT INTO {target} ({names}) SELECT {select} FROM {result}")
                conn.execute(f"DROP TABLE {result}")
            elif exists and policy == "append":  # the result's columns first, for the drift check
                cursor = self._exec(f"DESCRIBE{_WRAP}", stmt)
                described = {r[0]: r[1] for r in cursor.fetchall()}
                cols, select = duck.check_drift(
                    described, None, schema, table, ExportWritePolicy.APPEND, options.on_schema_change,
                    catalog=self.database,
                )
                names = ", ".join(self.quote(c) for c in cols)
                self._exec(f"INSERT INTO {target} ({names}) SELECT {select} FROM ({_WRAP}", stmt, f"{_WRAP}) AS _dagsmith_src")
            else:  # CREATE OR REPLACE in a transaction: readers see the old table until COMMIT
                self._exec(f"CREATE OR REPLACE TABLE {target} AS{_WRAP}", stmt)

    def read_table(self, schema: str, table: str, limit: int) -> "pd.DataFrame":
        return _frame(self._conn().sql(f"SELECT * FROM {self.qualify(schema, table)} LIMIT {int(limit)}").to_arrow_table())

    def run_raw(self, statements: list[Statement]) -> "pd.DataFrame | None":

        conn = self._conn()
        result = None
        with self._lock:
            result = self._raw(conn, statements)
        if result is not None:
            return _frame(result)
        if statements:
            name = written_table(statements[-1].sql(self.placeholder))
            if name:
                return _frame(conn.sql(f"SELECT * FROM {name} LIMIT 1000").to_arrow_table())
        return None

    def _raw(self, conn: Any, statements: list[Statement]) -> "pa.Table | None":

        result = None
        with _duck_transaction(conn):
            for stmt in statements:
                cur = self._exec("", stmt)
                result = _duck_arrow(cur) if cur is not None and cur.description else None
        return result

    def execute_verbatim(self, text: str) -> None:
        import duckdb

        try:
            with self._lock:
                self._conn().execute(text)
        except duckdb.Error as exc:
            raise DatabaseFailure(str(exc).split("\n\nLINE")[0].strip()) from None


def _duck_arrow(cur: Any) -> "pa.Table":
    import warnings

    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")  # raw results are small
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        fn = getattr(cur, name, None)
        if fn is not None:
            out = fn()
            if hasattr(out, "read_all"):
                out = out.read_all()
            return out
    raise TypeError("this duckdb version cannot return Arrow")


# --------------------------------------------------------------------------- BigQuery

_BQ_POS = re.compile(r"\[(\d+):(\d+)\]")


class BigQueryDialect(Dialect):
    name = "bigquery"
    default_schema = ""

    def __init__(self, connector: Any, config: Any, database: str | None) -> None:
        super().__init__(connector, config, database)
        if database:
            connector.project = database

    @property
    def project(self) -> str:
        return self.database or self.connector.client.project

    def quote(self, name: str) -> str:
        return "`" + str(name).replace("`", "\\`") + "`"

    def qualify(self, schema: str, table: str) -> SqlText:
        return SqlText(self.quote(f"{self.project}.{schema}.{table}"))

    def placeholder(self, n: int) -> str:
        return f"@p{n}"

    def load_frame(self, frame: Any, schema: str, table: str, *, persist: bool = True) -> SqlText:
        self.connector.export(frame, f"{self.project}.{schema}.{table}", if_exists="replace")
        return self.qualify(schema, table)

    def _job_config(self, stmt: Statement, **kw: Any):
        from google.cloud import bigquery

        from dagsmith.io.bigquery import query_parameter

        return bigquery.QueryJobConfig(
            query_parameters=[query_parameter(f"p{i + 1}", v) for i, v in enumerate(stmt.values)], **kw
        )

    def _run(self, stmt: Statement, **kw: Any):
        return self._guard(stmt, lambda: self.connector.client.query(
            stmt.sql(self.placeholder), job_config=self._job_config(stmt, **kw)
        ).result())

    def _guard(self, stmt: Statement, fn: Any) -> Any:
        """Run a job; the service's error becomes a DatabaseFailure pointing at the statement's line."""
        try:
            return fn()
        except (ConfigError, TerminalConnectorError):
            raise
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            m = _BQ_POS.search(message)
            raise DatabaseFailure(message, statement=stmt, line_in_statement=int(m.group(1)) if m else None) from None

    def materialize(
        self, stmt: Statement, schema: str, table: str, policy: str, options: WriteOptions = WriteOptions()
    ) -> None:
        from google.cloud import bigquery

        from dagsmith.io.base import ExportWritePolicy

        bq = self.connector
        full = f"{self.project}.{schema}.{table}"
        bq.client.create_dataset(bigquery.Dataset(f"{self.project}.{schema}"), exists_ok=True)
        if policy == "fail" and bq.table_exists(full):
            raise DatabaseFailure(f"table {full} already exists and export_write_policy is 'fail'")
        if policy == "replace_partition":  # result into a staging table; check; one MERGE; drop the stage
            stage = bq._stage_name(self.project, schema)
            try:
                self._run(stmt, destination=stage, write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)
                bq.replace_partition_from(
                    stage, bq.client.get_table(stage), full, bq._get_table(full), options.on_schema_change,
                    options.partition_column, options.partition_value, variables=options.variables,
                )
            finally:
                bq.client.delete_table(stage, not_found_ok=True)
            return
        if policy == "append":
            current = bq._get_table(full)
            if current is not None:  # the result's columns from a dry run, for the drift check
                incoming = self._guard(stmt, lambda: bq.query_columns(stmt.sql(self.placeholder), self._job_config(stmt)))
                bq._check_drift(full, current, None, incoming, ExportWritePolicy.APPEND, options.on_schema_change)
        disposition = {
            "replace": bigquery.WriteDisposition.WRITE_TRUNCATE,
            "append": bigquery.WriteDisposition.WRITE_APPEND,
            "fail": bigquery.WriteDisposition.WRITE_EMPTY,
        }[policy]
        self._run(stmt, destination=full, write_disposition=disposition)

    def read_table(self, schema: str, table: str, limit: int) -> "pd.DataFrame":
        from dagsmith.blocks.sql.render import Statement as S

        rows = self._run(S([f"SELECT * FROM {self.qualify(schema, table)} LIMIT {int(limit)}"], 1))
        return _frame(rows.to_arrow(create_bqstorage_client=False))

    def run_raw(self, statements: list[Statement]) -> "pd.DataFrame | None":
        result = None
        for stmt in statements:  # BigQuery has no multi-statement transaction for plain jobs
            rows = self._run(stmt)
            result = rows if rows is not None and getattr(rows, "schema", None) else None
        if result is not None:
            return _frame(result.to_arrow(create_bqstorage_client=False))
        if statements:
            name = written_table(statements[-1].sql(self.placeholder))
            if name:
                from dagsmith.blocks.sql.render import Statement as S

                rows = self._run(S([f"SELECT * FROM {name} LIMIT 1000"], 1))
                return _frame(rows.to_arrow(create_bqstorage_client=False))
        return None

    def execute_verbatim(self, text: str) -> None:
        from dagsmith.blocks.sql.render import Statement as S

        self._run(S([text], 1))


# --------------------------------------------------------------------------- factory

PROVIDERS = {"postgres": PostgresDialect, "postgresql": PostgresDialect, "duckdb": DuckDBDialect, "bigquery": BigQueryDialect}


def open_dialect(provider: str, project_root: Any, profile: str, database: str | None) -> Dialect:
    """The dialect for ``provider`` on ``profile`` of the project's io_config.yaml."""
    from pathlib import Path

    from dagsmith.io.registry import get_connector_class
    from dagsmith.project.io_config import ConfigFileLoader

    key = str(provider).lower()
    cls = PROVIDERS.get(key)
    if cls is None:
        raise ConfigError(
            f"data_provider {provider!r} is not supported for SQL blocks"
            f" (supported: {', '.join(sorted(set(PROVIDERS) - {'postgresql'}))})",
            hint="set configuration.data_provider in the pipeline's metadata.yaml",
        )
    path = Path(project_root) / "io_config.yaml"
    if key == "duckdb" and not path.exists():  # DuckDB needs no settings: the project's warehouse file
        config = ConfigFileLoader(path, profile, config={})
    else:
        config = ConfigFileLoader(path, profile)
    kwargs = {"project_root": str(project_root)} if key == "duckdb" else {}
    connector = get_connector_class(key).with_config(config, **kwargs)
    return cls(connector, config, database)


@contextmanager
def _duck_transaction(conn: Any) -> Iterator[None]:
    """BEGIN … COMMIT on a DuckDB connection; any error rolls back and propagates."""
    import duckdb

    conn.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
    conn.execute("COMMIT")
