"""BigQuery connector: queries into pandas, frames into tables with load jobs (never streaming inserts).

Owns ``BigQuery`` (also ``mage_ai.io.bigquery.BigQuery``):

- ``load(query)`` runs a query job and builds the frame from Arrow (no Storage
  Read API needed);
- ``export(df, table_id, if_exists=…)`` serializes the frame to Parquet once and
  runs one load job (WRITE_TRUNCATE / WRITE_APPEND / WRITE_EMPTY), creating the
  dataset when missing; a replace is atomic in BigQuery;
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
    config_source,
    config_value,
    rename_columns,
    to_arrow,
    write_policy,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["BigQuery"]


class BigQuery(Connector):
    """A BigQuery project (Mage's ``BigQuery`` interface)."""

    name = "bigquery"
    capabilities = Capabilities(sql=True, transactional_replace=True)

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
        self._secrets = []
        if isinstance(credentials_mapping, Mapping) and credentials_mapping.get("private_key"):
            self._secrets = [str(credentials_mapping["private_key"])]
        self._client = None

    @classmethod
    def with_config(cls, config: Any, **kwargs: Any) -> "BigQuery":
        settings = dict(
            credentials_mapping=config_value(config, "GOOGLE_SERVICE_ACC_KEY"),
            path_to_credentials=config_value(config, "GOOGLE_SERVICE_ACC_KEY_FILEPATH"),
            location=config_value(config, "GOOGLE_LOCATION"),
            source=config_source(config),
        )
        settings.update(kwargs)
        return cls(**settings)

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
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

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
        **kwargs: Any,
    ) -> int:
        """Load ``df`` into ``table_id`` with one load job; returns the rows written."""
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        project, dataset, table = self._table_ref(table_id, database)
        full = f"{project}.{dataset}.{table}"
        policy = write_policy(if_exists)
        disposition = write_disposition or {
            ExportWritePolicy.REPLACE: bigquery.WriteDisposition.WRITE_TRUNCATE,
            ExportWritePolicy.APPEND: bigquery.WriteDisposition.WRITE_APPEND,
            ExportWritePolicy.FAIL: bigquery.WriteDisposition.WRITE_EMPTY,
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
            if query_string is not None:
                config = bigquery.QueryJobConfig(destination=full, write_disposition=disposition)
                self.client.query(query_string, job_config=config).result()
                return self._exported(int(self.client.get_table(full).num_rows or 0), full)
            arrow = rename_columns(to_arrow(df, index=index), auto_clean_name=auto_clean_name, case_sensitive=True)
            arrow = _bq_ready(arrow)
            import pyarrow.parquet as pq

            buffer = io.BytesIO()
            pq.write_table(arrow, buffer, compression="snappy", use_compliant_nested_type=True)
            buffer.seek(0)
            job_config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.PARQUET, write_disposition=disposition
            )
            if overwrite_types:
                job_config.schema = [
                    bigquery.SchemaField(name, overwrite_types.get(name, _bq_type(field.type)))
                    for name, field in zip(arrow.column_names, arrow.schema)
                ]
            job = self.client.load_table_from_file(buffer, full, job_config=job_config, rewind=True)
            job.result()
            return self._exported(arrow.num_rows, full)
        except (ConfigError, TerminalConnectorError, TransientConnectorError):
            raise
        except gexc.Conflict as exc:
            raise TerminalConnectorError(f"table {full} already has rows ({self.source}) and if_exists='fail': {exc.message}") from None
        except Exception as exc:
            raise self._error(exc, f"export to {full}") from None

    def _public_settings(self) -> dict[str, Any]:
        return {"project": self.project, "location": self.location, "source": self.source}


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
