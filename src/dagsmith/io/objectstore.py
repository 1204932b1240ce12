"""What the object-store connectors (GCS, S3) share: bucket/key load and export, partitioned Parquet.

Subclasses supply four primitives — ``_get_bytes``, ``_put_bytes``, ``_object_exists``,
``_bucket_exists`` — and a pyarrow filesystem (``filesystem()``); this class turns
them into Mage's interface (``load(bucket_name, object_key, format)``,
``export(df, bucket_name, object_key, format)``, ``exists``) plus
``export_partitioned(df, bucket, prefix, partition_cols)``, a hive-style Parquet
dataset staged and published atomically by :mod:`dagsmith.io.datasets` (a manifest
commits each write; ``load_partitioned`` and ``load`` of the folder read what it
lists), with ``if_exists='replace_partition'`` for idempotent backfills.

The manifest is the one object several writers race for, so it goes through the store's
own client with a precondition (``_get_versioned`` / ``_put_if``: S3 ``If-None-Match`` /
``If-Match``, GCS ``ifGenerationMatch``): of two writers that read the same version, one
replaces it. :meth:`ObjectStore.conditional_writes` says whether a store can be trusted
with that — the real services can; another endpoint (an emulator, an S3-compatible
server) is probed once per process and bucket.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagsmith.errors import ConfigError, TerminalConnectorError
from dagsmith.io.base import QUERY_ROW_LIMIT, Capabilities, Connector, to_arrow

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

class ObjectNotFound(TerminalConnectorError):
    """The bucket exists but the object does not."""


class PreconditionsUnsupported(TerminalConnectorError):
    """The store refused a conditional write as a request it does not implement (HTTP 501)."""


# (connector class, endpoint, bucket) -> whether the endpoint honours conditional writes (probed once)
_CONDITIONAL: dict[tuple[str, str, str], bool] = {}
_CONDITIONAL_LOCK = threading.Lock()


_CONTENT_TYPES = {
    "csv": "text/csv",
    "csv.gz": "application/gzip",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "excel": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "tsv": "text/tab-separated-values",
    "xml": "application/xml",
}


class ObjectStore(Connector):
    """Base for bucket/key stores."""

    capabilities = Capabilities(objects=True, partitioned=True)
    scheme = "obj"

    # -- primitives (subclasses) -------------------------------------------------
    def _get_bytes(self, bucket: str, key: str) -> bytes:
        raise NotImplementedError

    def _put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        raise NotImplementedError

    def _object_exists(self, bucket: str, key: str) -> bool:
        raise NotImplementedError

    def _bucket_exists(self, bucket: str) -> bool:
        raise NotImplementedError

    def _list(self, bucket: str, prefix: str) -> list[str]:
        raise NotImplementedError

    def filesystem(self) -> Any:
        """A ``pyarrow.fs.FileSystem`` for this store (paths are ``bucket/key``)."""
        raise NotImplementedError

    # -- conditional writes (subclasses that can) ----------------------------------
    #: a version no object has (S3: an ETag, GCS: a generation); the probe replaces "at" it
    _unused_version = "0"

    def _get_versioned(self, bucket: str, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and its version (S3: ETag, GCS: generation) from one request; None when
        it does not exist."""
        raise NotImplementedError

    def _put_if(self, bucket: str, key: str, data: bytes, version: str | None, content_type: str) -> str | None:
        """Write the object only if it is still at ``version`` (None: only if it does not exist), in one
        request the store checks atomically. Returns the new version, or None when the precondition
        failed (another writer replaced or created it first)."""
        raise NotImplementedError

    def _delete_object(self, bucket: str, key: str) -> None:
        raise NotImplementedError

    def _endpoint(self) -> str | None:
        """The endpoint this connector talks to when it is not the real service (None: the service)."""
        return None

    def conditional_writes(self, bucket: str, near: str) -> bool:
        """True when ``_put_if`` is exact on this store: the real service (S3 and GCS document atomic
        conditional writes), or another endpoint that passed a probe — an object ``<near>.probe-<id>``
        created, refused a second create and a replace at a wrong version, replaced at its version,
        deleted — once per process and bucket. False for stores without ``_put_if`` or that fail it."""
        if type(self)._put_if is ObjectStore._put_if:
            return False
        endpoint = self._endpoint()
        if endpoint is None:
            return True
        cache_key = (type(self).__name__, endpoint, bucket)
        with _CONDITIONAL_LOCK:
            if cache_key not in _CONDITIONAL:
                _CONDITIONAL[cache_key] = self._probe_conditional(bucket, near, endpoint)
            return _CONDITIONAL[cache_key]

    def _probe_conditional(self, bucket: str, near: str, endpoint: str) -> bool:
        key = f"{near}.probe-{uuid.uuid4().hex[:12]}"
        mime = "application/octet-stream"
        try:
            first = self._put_if(bucket, key, b"1", None, mime)
            honoured = (
                first is not None
                and self._put_if(bucket, key, b"2", None, mime) is None
                and self._put_if(bucket, key, b"3", self._unused_version, mime) is None
                and self._put_if(bucket, key, b"4", first, mime) is not None
            )
        except PreconditionsUnsupported:
            honoured = False
        finally:
            try:
                self._delete_object(bucket, key)
            except (ObjectNotFound, FileNotFoundError):
                pass
        if not honoured:
            print(
                f"warning: {endpoint} does not honour conditional writes (S3 If-None-Match/If-Match, GCS "
                f"ifGenerationMatch) in {self._url(bucket)}: concurrent writers of one partitioned dataset "
                "there take turns by writing their claim, waiting and reading it back, which a starved writer "
                "can lose (its export then fails, retryably)",
                file=sys.stderr,
            )
        return honoured

    # -- errors ------------------------------------------------------------------
    def _url(self, bucket: str, key: str = "") -> str:
        return f"{self.scheme}://{bucket}/{key}" if key else f"{self.scheme}://{bucket}"

    def _missing(self, bucket: str, key: str | None = None) -> TerminalConnectorError:
        if not self._bucket_exists(bucket):
            return TerminalConnectorError(
                f"bucket {bucket!r} not found ({self._url(bucket)}, {self.source})",
                hint="check the bucket name, or create the bucket first",
            )
        return ObjectNotFound(
            f"object {self._url(bucket, key or '')} not found ({self.source})",
            hint="check the object key (keys are case-sensitive; no leading '/')",
        )

    # -- Mage interface ----------------------------------------------------------
    def load(
        self,
        bucket_name: str,
        object_key: str,
        format: Any = None,
        limit: int = QUERY_ROW_LIMIT,
        **kwargs: Any,
    ) -> "pd.DataFrame":
        """Read one object as a DataFrame with pandas' reader (``kwargs`` go to it), as Mage does.

        A key that names a folder of Parquet files (a partitioned dataset) is read as one
        table. A missing object is ``_missing_object``'s business (GCS: an empty frame,
        as in Mage; S3: an error, as in Mage). ``limit`` is accepted and not applied (Mage).
        """
        from dagsmith.io.files import read_file_frame

        fmt = self._format(object_key, format, strict=False)
        if fmt is None:  # no extension: a folder holding a (partitioned) Parquet dataset?
            if self._list(bucket_name, object_key.rstrip("/") + "/"):
                return self.load_partitioned(bucket_name, object_key)
            fmt = self._format(object_key, format)
        if fmt == "parquet" and not self._object_exists(bucket_name, object_key):
            if self._list(bucket_name, object_key.rstrip("/") + "/"):
                return self.load_partitioned(bucket_name, object_key)
        try:
            data = self._get_bytes(bucket_name, object_key)
        except ObjectNotFound as missing:
            return self._missing_object(bucket_name, object_key, missing)
        return read_file_frame(data, fmt, name=self._url(bucket_name, object_key), **kwargs)

    def _missing_object(self, bucket: str, key: str, error: "ObjectNotFound") -> "pd.DataFrame":
        """What ``load`` does when the object does not exist (the bucket does): raise, by default."""
        raise error

    def export(
        self,
        df: Any,
        bucket_name: str,
        object_key: str,
        format: Any = None,
        **kwargs: Any,
    ) -> str:
        """Write a frame (or upload a local file given by path) to ``bucket_name/object_key``; returns its URL.

        Frames are written as Mage writes them (pandas: ``to_csv`` with the index …;
        ``kwargs`` go to the writer).
        """
        from dagsmith.io.files import frame_bytes

        rows: Any = None
        if isinstance(df, (str, os.PathLike)):
            if not Path(df).is_file():
                raise ConfigError(
                    f"cannot upload {str(df)!r} to {self._url(bucket_name, object_key)}: no such local file",
                    hint="pass a pandas DataFrame, or the path of a file that exists",
                )
            data = Path(df).read_bytes()
            fmt = self._format(object_key, format, strict=False) or "bin"
        else:
            fmt = self._format(object_key, format)
            data = frame_bytes(df, fmt, **kwargs)
            rows = _row_count(df)
        self._put_bytes(bucket_name, object_key, data, _CONTENT_TYPES.get(fmt, "application/octet-stream"))
        url = self._url(bucket_name, object_key)
        self._exported(rows, url)
        return url

    def exists(self, bucket_name: str, prefix: str = "") -> bool:
        """True when an object named ``prefix`` exists, or any object starts with it."""
        if not prefix:
            return self._bucket_exists(bucket_name)
        return self._object_exists(bucket_name, prefix) or bool(self._list(bucket_name, prefix))

    def list_objects(self, bucket_name: str, prefix: str = "") -> list[str]:
        """Keys under ``prefix``."""
        return self._list(bucket_name, prefix)

    def export_partitioned(
        self,
        df: Any,
        bucket_name: str,
        prefix: str,
        partition_cols: list[str],
        existing_data_behavior: str = "overwrite_or_ignore",
        basename_template: str | None = None,
        if_exists: Any = None,
        partition_column: str | None = None,
        partition_value: Any = None,
        **kwargs: Any,
    ) -> str:
        """Write a hive-partitioned Parquet dataset under ``bucket_name/prefix``; returns its URL.

        The write is staged and published atomically (:mod:`dagsmith.io.datasets`): readers using
        ``load_partitioned`` see the dataset before or after it, never a mix. By default the new
        files join the dataset (pyarrow's ``overwrite_or_ignore``);
        ``existing_data_behavior='delete_matching'`` replaces the partitions written;
        ``if_exists='replace_partition'`` replaces the partition ``partition_column`` =
        ``partition_value`` (default column: the only partition column; default value: the run's
        interval), so a backfill run twice gives the same rows; ``if_exists='replace'`` replaces the
        whole dataset.
        """
        from dagsmith.io.datasets import dataset_mode, partition_for_write, write_dataset

        if not self._bucket_exists(bucket_name):
            raise self._missing(bucket_name)
        root = f"{bucket_name}/{prefix.strip('/')}"
        mode = dataset_mode(if_exists, existing_data_behavior)
        table = to_arrow(df)  # once: the partition check and the write share it
        partition = partition_for_write(table, mode, partition_cols, partition_column, partition_value, self._url(root))
        try:
            write_dataset(
                table, root, list(partition_cols), filesystem=self.filesystem(), mode=mode, partition=partition,
                basename_template=basename_template, where=self._url(root), store=self, **kwargs,
            )
        except OSError as exc:
            raise TerminalConnectorError(f"writing the dataset {self._url(root)} failed: {exc}") from None
        url = self._url(bucket_name, prefix.strip("/"))
        self._exported(table.num_rows, f"{url} (partitioned by {', '.join(partition_cols)})")
        return url

    def load_partitioned(self, bucket_name: str, prefix: str, filters: Any = None) -> "pd.DataFrame":
        """Read a (hive-partitioned) Parquet dataset under ``bucket_name/prefix`` into one DataFrame
        (the files its manifest lists, when dagsmith wrote it)."""
        from dagsmith.io.base import arrow_to_pandas
        from dagsmith.io.datasets import read_dataset

        root = f"{bucket_name}/{prefix.strip('/')}"
        try:
            table = read_dataset(root, filesystem=self.filesystem(), filters=filters)
        except (OSError, FileNotFoundError) as exc:
            raise TerminalConnectorError(f"reading the dataset {self._url(root)} failed: {exc}") from None
        return arrow_to_pandas(table)

    def _format(self, key: str, fmt: Any, strict: bool = True) -> str | None:
        from dagsmith.io.files import file_format

        try:
            return file_format(key, fmt)
        except ConfigError:
            if strict:
                raise
            return None


def _row_count(data: Any) -> int | None:
    """Rows of a frame, Arrow table or list of records (None when it is something else)."""
    rows = getattr(data, "num_rows", None)
    if isinstance(rows, int):
        return rows
    try:
        return len(data) if not isinstance(data, (str, bytes, dict)) else None
    except TypeError:
        return None
