"""BigQuery connector: queries into pandas, frames into tables with load jobs (never streaming inserts).

Owns ``BigQuery`` (also ``mage_ai.io.bigquery.BigQuery``):

- ``load(query)`` runs a query job and builds the frame from Arrow (no Storage
  Read API needed);
- ``export(df, table_id, if_exists=…)`` serializes the frame to Parquet once and
  runs one load job (WRITE_TRUNCATE / WRITE_APPEND / WRITE_EMPTY), creating the
  dataset when missing; a replace is atomic in BigQuery;
- ``append`` and ``replace_partition`` compare the frame's columns with the table's
  first (:mod:`dagsmith.io.schema`); ``replace_partition`` loads the frame into a
  staging table and swaps the partition in with one ``MERGE`` (delete the
  partition's rows, insert the new ones: one atomic statement), then drops the
  staging table. MERGE rather than a ``table$YYYYMMDD`` decorator: it also works for
  tables that are not partitioned, for ranges and for hourly data, and the
  local-bigquery emulator runs it (a decorator load there lands in no partition);
- credentials as for GCS (:func:`dagsmith.io.gcs.google_credentials`), location from
  ``GOOGLE_LOCATION``; ``BIGQUERY_EMULATOR_HOST`` points the client at an emulator.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any, Mapping

from dagsmith.errors import ConfigError, TerminalConnectorError, TransientConnectorError
from dagsmith.io.base import (
    QUERY_ROW_LIMIT,
    Capabilities,
    Connector,
    ExportWritePolicy,
    arrow_to_pandas,
    release,
    rename_columns,
    to_arrow,
    write_policy,
)
from dagsmith.io.gcs import GOOGLE_PROFILE_KEYS, key_secrets

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["BigQuery", "bigquery_column", "query_parameter"]


class BigQuery(Connector):
    """A BigQuery project (Mage's ``BigQuery`` interface)."""

    name = "bigquery"
    capabilities = Capabilities(sql=True, transactional_replace=True)
    profile_keys = {**GOOGLE_PROFILE_KEYS, "location": "GOOGLE_LOCATION"}

    def __init__(
        self,
        credentials_mapping: Mapping[str, Any] | None = None,
        path_to_credentials: str | None = None,
        project: str | None = None,
        location: str | None = None,
        verbose: bool = True,
        source: str = "given config",
        **kwargs: Any,
    ) -> None:
        self.credentials_mapping = credentials_mapping
        self.path_to_credentials = path_to_credentials
        self.project = project
        self.location = location
        self.verbose = verbose
        self.source = source
        self._secrets = key_secrets(credentials_mapping)
        self._client = None

    @property
    def client(self):
        """The google-cloud-bigquery ``Client`` (created on first use)."""
        if self._client is None:
            from dagsmith.errors import require

            bigquery = require("google.cloud.bigquery", feature="the BigQuery connector", extra="gcp")
            from dagsmith.io.gcs import google_credentials

            creds, project = google_credentials(self.credentials_mapping, self.path_to_credentials, source=self.source)
            options = None
            emulator = os.environ.get("BIGQUERY_EMULATOR_HOST")
            if emulator:
                from google.api_core.client_options import ClientOptions

                endpoint = emulator if "://" in emulator else f"http://{emulator}"
                options = ClientOptions(api_endpoint=endpoint)
            self._client = bigquery.Client(
                project=self.project or project, credentials=creds, location=self.location, client_options=options
            )
        return self._client

    def open(self) -> None:
        _ = self.client

    def close(self) -> None:
        release(self, "_client")

    def _error(self, exc: Exception, what: str) -> Exception:
        from dagsmith.io.gcs import _google_error

        return _google_error(exc, what, self.source)

    def load(self, query_string: str, limit: int = QUERY_ROW_LIMIT, verbose: bool = True, **kwargs: Any) -> "pd.DataFrame":
        """Run a query job and return its rows (at most ``limit``)."""
        try:
            job = self.client.query(query_string)
            rows = job.result(max_results=limit or None)
            table = rows.to_arrow(create_bqstorage_client=False)
        except (ConfigError, TerminalConnectorError, TransientConnectorError):
            raise
        except Exception as exc:
            raise self._error(exc, "query") from None
        return arrow_to_pandas(table)

    def execute(self, query_string: str, **kwargs: Any) -> None:
        try:
            self.client.query(query_string).result()
        except (ConfigError, TerminalConnectorError, TransientConnectorError):
            raise
        except Exception as exc:
            raise self._error(exc, "statement") from None

    def _table_ref(self, table_id: str, database: str | None = None) -> tuple[str, str, str]:
        parts = table_id.replace(":", ".").split(".")
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        if len(parts) == 2:
            return database or self.client.project, parts[0], parts[1]
        raise ConfigError(
            f"table_id {table_id!r} must be 'project.dataset.table' or 'dataset.table'",
            hint="for example export(df, 'my-project.ny_taxi.yellow_trips')",
        )

    def table_exists(self, table_id: str) -> bool:
        from google.api_core import exceptions as gexc

        project, dataset, table = self._table_ref(table_id)
        try:
            self.client.get_table(f"{project}.{dataset}.{table}")
            return True
        except gexc.NotFound:
            return False

    def export(
        self,
        df: Any,
        table_id: str,
        database: str | None = None,
        if_exists: str | ExportWritePolicy = ExportWritePolicy.REPLACE,
        overwrite_types: dict[str, str] | None = None,
        query_string: str | None = None,
        write_disposition: str | None = None,
        create_dataset: bool = True,
        index: bool = False,
        auto_clean_name: bool = False,
        partition_column: str | None = None,
        partition_value: Any = None,
        on_schema_change: str | None = None,
        **kwargs: Any,
    ) -> int:
        """Load ``df`` into ``table_id`` with one load job; returns the rows written.

        ``replace_partition`` replaces the rows of ``partition_column`` = ``partition_value``
        (default: the run's interval) with one MERGE; ``on_schema_change='add_columns'`` lets an
        append add the frame's new columns.
        """
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        from dagsmith.io.partitions import check_within, partition_settings, require_column, resolve_partition
        from dagsmith.io.schema import on_schema_change_setting

        project, dataset, table = self._table_ref(table_id, database)
        full = f"{project}.{dataset}.{table}"
        policy = write_policy(if_exists)
        schema_change = on_schema_change_setting(on_schema_change)
        part_column, part_value = (None, None)
        if policy is ExportWritePolicy.REPLACE_PARTITION:
            part_column, part_value = partition_settings(partition_column, partition_value)
            require_column(part_column, f"export to {full}")
        disposition = write_disposition or {
            ExportWritePolicy.REPLACE: bigquery.WriteDisposition.WRITE_TRUNCATE,
            ExportWritePolicy.APPEND: bigquery.WriteDisposition.WRITE_APPEND,
            ExportWritePolicy.FAIL: bigquery.WriteDisposition.WRITE_EMPTY,
            ExportWritePolicy.REPLACE_PARTITION: bigquery.WriteDisposition.WRITE_TRUNCATE,  # first write creates it
        }[policy]
        try:
            if create_dataset:
                ds = bigquery.Dataset(f"{project}.{dataset}")
                if self.location:
                    ds.location = self.location
                self.client.create_dataset(ds, exists_ok=True)
            if policy is ExportWritePolicy.FAIL and self.table_exists(full):
                raise TerminalConnectorError(
                    f"table {full} already exists ({self.source}) and if_exists='fail'",
                    hint="use if_exists='replace' or 'append'",
                )
            checked = policy in (ExportWritePolicy.APPEND, ExportWritePolicy.REPLACE_PARTITION)
            current = self._get_table(full) if checked else None
            if query_string is not None:
                return self._exported(self._export_query(
                    query_string, full, disposition, policy, current, schema_change, part_column, part_value
                ), full)
            arrow = rename_columns(to_arrow(df, index=index), auto_clean_name=auto_clean_name, case_sensitive=True)
            arrow = _bq_ready(arrow)
            partition = None
            if part_column is not None:
                if part_column not in arrow.column_names:
                    raise ConfigError(
                        f"export to {full}: partition_column {part_column!r} is not a column of the frame"
                        f" (columns: {arrow.column_names})"
                    )
                partition = resolve_partition(
                    part_column, part_value, arrow.schema.field(part_column).type, where=f"export to {full}"
                )
                check_within(arrow, partition, target=full)
            fields = None
            if partition is not None and current is None:
                # the first run creates the table; concurrent runs (a backfill) must not truncate each other
                try:
                    self._load(arrow, full, bigquery.WriteDisposition.WRITE_EMPTY, None, overwrite_types)
                    return self._exported(arrow.num_rows, full)
                except gexc.Conflict:
                    current = self._get_table(full)  # created meanwhile: replace this run's partition in it
            if current is not None:
                arrow, fields = self._check_drift(full, current, arrow, None, policy, schema_change)
            if partition is not None and current is not None:
                stage = self._stage_name(project, dataset)
                try:
                    self._load(arrow, stage, bigquery.WriteDisposition.WRITE_TRUNCATE, fields, overwrite_types)
                    self._merge_partition(full, stage, arrow.column_names, partition)
                finally:
                    self.client.delete_table(stage, not_found_ok=True)
                return self._exported(arrow.num_rows, full)
            self._load(arrow, full, disposition, fields, overwrite_types)
            return self._exported(arrow.num_rows, full)
        except (ConfigError, TerminalConnectorError, TransientConnectorError):
            raise
        except gexc.Conflict as exc:
            raise TerminalConnectorError(f"table {full} already has rows ({self.source}) and if_exists='fail': {exc.message}") from None
        except Exception as exc:
            raise self._error(exc, f"export to {full}") from None

    # ------------------------------------------------------------------ export helpers

    def _get_table(self, full: str) -> Any:
        from google.api_core import exceptions as gexc

        try:
            return self.client.get_table(full)
        except gexc.NotFound:
            return None

    @staticmethod
    def _stage_name(project: str, dataset: str) -> str:
        import uuid

        return f"{project}.{dataset}._dagsmith_stage_{uuid.uuid4().hex[:12]}"

    def _load(self, arrow: Any, destination: str, disposition: str, fields: Any, overwrite_types: Any) -> None:
        import pyarrow.parquet as pq
        from google.cloud import bigquery

        buffer = io.BytesIO()
        pq.write_table(arrow, buffer, compression="snappy", use_compliant_nested_type=True)
        buffer.seek(0)
        job_config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET, write_disposition=disposition)
        if fields is not None:
            job_config.schema = fields
        elif overwrite_types:
            job_config.schema = [
                bigquery.SchemaField(name, overwrite_types.get(name, _bq_type(field.type)))
                for name, field in zip(arrow.column_names, arrow.schema)
            ]
        self.client.load_table_from_file(buffer, destination, job_config=job_config, rewind=True).result()

    def target_columns(self, table: Any) -> list[Any]:
        """A BigQuery table's columns for the schema-drift check (:func:`bigquery_column`)."""
        return [bigquery_column(f) for f in table.schema]

    def _check_drift(
        self, full: str, current: Any, arrow: Any, incoming: Any, policy: ExportWritePolicy, schema_change: str
    ) -> tuple[Any, Any]:
        """Drift check against the table (a frame: ``arrow``; a query result: ``incoming`` columns); adds new
        columns when allowed. Returns the frame cast to the table's types and the load schema to use."""
        from google.cloud import bigquery

        from dagsmith.io.schema import compare, conform, enforce, frame_columns

        target = self.target_columns(current)
        if arrow is not None:
            incoming = frame_columns(arrow, _bq_type)
        diff = compare(target, incoming, values=arrow, label="frame" if arrow is not None else "query")
        action = "replace a partition of" if policy is ExportWritePolicy.REPLACE_PARTITION else "append to"
        enforce(diff, on_schema_change=schema_change, target=full, action=action)
        for change in diff.added:
            self.client.query(
                f"ALTER TABLE `{full}` ADD COLUMN `{change.column}` {change.frame_type}"
            ).result()
        if arrow is None:
            return None, None
        arrow = conform(arrow, diff)
        by_name = {f.name: f for f in current.schema}
        fields = [
            by_name[name] if name in by_name else bigquery.SchemaField(name, _bq_type(field.type))
            for name, field in zip(arrow.column_names, arrow.schema)
        ]
        return arrow, fields

    def _merge_partition(self, full: str, stage: str, columns: list[str], partition: Any) -> None:
        """Replace the partition's rows with the staging table's in one MERGE (atomic in BigQuery)."""
        from google.cloud import bigquery

        condition, values = partition.sql(f"T.`{partition.column}`", lambda n: f"@p{n}")
        cols = ", ".join(f"`{c}`" for c in columns)
        sql = (
            f"MERGE `{full}` T USING `{stage}` S ON FALSE"
            f" WHEN NOT MATCHED BY SOURCE AND {condition} THEN DELETE"
            f" WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({cols})"
        )
        params = [query_parameter(f"p{i + 1}", v) for i, v in enumerate(values)]
        self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params)).result()

    def _export_query(
        self,
        query: str,
        full: str,
        disposition: str,
        policy: ExportWritePolicy,
        current: Any,
        schema_change: str,
        part_column: str | None,
        part_value: Any,
    ) -> int:
        from google.cloud import bigquery

        if policy is ExportWritePolicy.REPLACE_PARTITION:
            project, dataset, _ = full.split(".")
            stage = self._stage_name(project, dataset)
            try:
                self.client.query(
                    query, job_config=bigquery.QueryJobConfig(destination=stage, write_disposition="WRITE_TRUNCATE")
                ).result()
                result = self.client.get_table(stage)
                self.replace_partition_from(stage, result, full, current, schema_change, part_column, part_value)
                return int(result.num_rows or 0)
            finally:
                self.client.delete_table(stage, not_found_ok=True)
        if current is not None:
            incoming = self.query_columns(query)
            self._check_drift(full, current, None, incoming, policy, schema_change)
        config = bigquery.QueryJobConfig(destination=full, write_disposition=disposition)
        self.client.query(query, job_config=config).result()
        return int(self.client.get_table(full).num_rows or 0)

    def query_columns(self, query: str, job_config: Any = None) -> list[Any]:
        """The result columns of a query, from a dry run (nothing is executed)."""
        from google.cloud import bigquery

        config = job_config or bigquery.QueryJobConfig()
        config.dry_run = True
        config.use_query_cache = False
        job = self.client.query(query, job_config=config)
        return [bigquery_column(f) for f in job.schema or []]

    def replace_partition_from(
        self,
        stage: str,
        staged: Any,
        full: str,
        current: Any,
        schema_change: str,
        column: str | None,
        value: Any,
        variables: Any = None,
    ) -> None:
        """Replace one partition of ``full`` with the rows of the staging table ``stage`` (a query's result
        already written there): drift check, every row inside the partition, then one MERGE. A missing
        ``full`` is created from the staging table."""
        from google.cloud import bigquery

        from dagsmith.io.partitions import require_column, resolve_partition

        where = f"export to {full}"
        columns = {f.name: bigquery_column(f) for f in staged.schema}
        if require_column(column, where) not in columns:
            raise ConfigError(f"{where}: partition_column {column!r} is not a column of the query's result ({list(columns)})")
        if columns[column].arrow is None:
            raise ConfigError(f"{where}: cannot partition by {column!r} of type {columns[column].type}")
        partition = resolve_partition(column, value, columns[column].arrow, variables=variables, where=where)
        condition, values = partition.sql(f"`{column}`", lambda n: f"@p{n}")
        params = [query_parameter(f"p{i + 1}", v) for i, v in enumerate(values)]
        rows = self.client.query(
            f"SELECT COUNT(*) AS n, MIN(CAST(`{column}` AS STRING)) AS e FROM `{stage}` WHERE NOT COALESCE({condition}, FALSE)",
            job_config=bigquery.QueryJobConfig(query_parameters=params),
        ).result()
        outside, example = next(iter(rows))
        if outside:
            raise TerminalConnectorError(
                f"cannot replace partition {partition.describe()} of {full}: {outside} rows of the query are outside it"
                f" (e.g. {column} = {example}); nothing was written",
                hint="filter the query to the partition (WHERE …), or pass the partition_value that covers it",
            )
        if current is None:
            from google.api_core import exceptions as gexc

            try:  # WRITE_EMPTY: a concurrent run that created the table first is not overwritten
                self.client.copy_table(
                    stage, full, job_config=bigquery.CopyJobConfig(write_disposition="WRITE_EMPTY")
                ).result()
                return
            except gexc.Conflict:
                current = self.client.get_table(full)
        self._check_drift(full, current, None, list(columns.values()), ExportWritePolicy.REPLACE_PARTITION, schema_change)
        self._merge_partition(full, stage, list(columns), partition)

    def _public_settings(self) -> dict[str, Any]:
        return {"project": self.project, "location": self.location, "source": self.source}


_BQ_ARROW = {
    "INTEGER": "int64",
    "INT64": "int64",
    "FLOAT": "float64",
    "FLOAT64": "float64",
    "BOOLEAN": "bool_",
    "BOOL": "bool_",
    "STRING": "string",
    "BYTES": "binary",
    "DATE": "date32",
}
_BQ_STANDARD = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


def bigquery_column(field: Any) -> Any:
    """A BigQuery ``SchemaField`` as a column for the schema-drift check."""
    import pyarrow as pa

    from dagsmith.io.schema import ANY_NUMBER, Column

    kind_name = str(field.field_type).upper()
    text = _BQ_STANDARD.get(kind_name, kind_name)
    arrow, kind = None, None
    if field.mode == "REPEATED":
        text = f"ARRAY<{text}>"
    elif kind_name in _BQ_ARROW:
        arrow = getattr(pa, _BQ_ARROW[kind_name])()
    elif kind_name == "NUMERIC":
        arrow = pa.decimal128(38, 9)
    elif kind_name == "BIGNUMERIC":
        kind = ANY_NUMBER
    elif kind_name == "DATETIME":
        arrow = pa.timestamp("us")
    elif kind_name == "TIMESTAMP":
        arrow = pa.timestamp("us", "UTC")
    elif kind_name == "TIME":
        arrow = pa.time64("us")
    has_default = bool(getattr(field, "default_value_expression", None))
    return Column(field.name, text, arrow, has_default, kind)


def query_parameter(name: str, value: Any) -> Any:
    """A BigQuery query parameter for a Python value (lists become ARRAY parameters)."""
    from google.cloud import bigquery

    if isinstance(value, (list, tuple)):
        kind = parameter_type(value[0]) if value else "STRING"
        return bigquery.ArrayQueryParameter(name, kind, list(value))
    return bigquery.ScalarQueryParameter(name, parameter_type(value), value)


def parameter_type(value: Any) -> str:
    """The BigQuery type of a Python value bound as a parameter."""
    import datetime as dt
    import decimal

    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        return "NUMERIC"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, bytes):
        return "BYTES"
    return "STRING"


def _bq_ready(table):
    """Types BigQuery's Parquet loader accepts: unsigned ints widened, dictionaries decoded."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        t = field.type
        target = None
        if pa.types.is_dictionary(t):
            target = t.value_type
        elif pa.types.is_unsigned_integer(t):
            target = pa.int64()
        elif pa.types.is_null(t):
            target = pa.string()
        elif pa.types.is_timestamp(t) and t.unit == "ns":
            target = pa.timestamp("us", t.tz)
        if target is not None:
            table = table.set_column(i, field.name, table.column(i).cast(target, safe=False))
    return table


def _bq_type(t) -> str:
    import pyarrow as pa

    if pa.types.is_integer(t):
        return "INT64"
    if pa.types.is_floating(t):
        return "FLOAT64"
    if pa.types.is_boolean(t):
        return "BOOL"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP" if t.tz else "DATETIME"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_decimal(t):
        return "NUMERIC"
    if pa.types.is_binary(t):
        return "BYTES"
    return "STRING"
