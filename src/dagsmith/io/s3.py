"""Amazon S3 (and S3-compatible stores: MinIO, moto, R2…) connector.

Owns ``S3`` (also ``mage_ai.io.s3.S3``): the object-store contract of
:mod:`dagsmith.io.objectstore` over boto3 for objects (and a dataset's manifest, rewritten
with ``If-None-Match`` / ``If-Match``) and ``pyarrow.fs.S3FileSystem`` for partitioned
Parquet datasets' files. Settings come from
the profile's ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION`` and ``AWS_ENDPOINT`` (honoured by both clients); missing keys fall
back to boto3's usual chain (environment, ``~/.aws``, instance role).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from dagsmith.errors import ConfigError, TerminalConnectorError, TransientConnectorError
from dagsmith.io.base import release
from dagsmith.io.objectstore import ObjectNotFound, ObjectStore, PreconditionsUnsupported

__all__ = ["S3"]


_key_missing_class: Any = None


def _key_missing() -> type:
    """``S3KeyNotFound``: our ``ObjectNotFound`` and botocore's ``ClientError`` (code ``NoSuchKey``).

    Built on first use so that botocore is imported only when S3 is; reachable as
    ``dagsmith.io.s3.S3KeyNotFound`` (module ``__getattr__``), so it pickles.
    """
    global _key_missing_class
    if _key_missing_class is None:
        from botocore.exceptions import ClientError

        class S3KeyNotFound(ObjectNotFound, ClientError):
            """NoSuchKey: the bucket exists, the key does not."""

            def __init__(self, message: str, *, hint: str | None = None) -> None:
                # ClientError.__init__ wants a response: set what both parents expect by hand
                Exception.__init__(self, message)
                self.message, self.hint = message, hint
                self.operation_name = "GetObject"
                self.response = {
                    "Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."},
                    "ResponseMetadata": {"HTTPStatusCode": 404},
                }

        S3KeyNotFound.__module__ = __name__
        S3KeyNotFound.__qualname__ = "S3KeyNotFound"
        _key_missing_class = S3KeyNotFound
    return _key_missing_class


def __getattr__(name: str) -> Any:
    if name == "S3KeyNotFound":
        return _key_missing()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def key_missing_error(message: str, bucket: str, key: str, hint: str | None = None) -> Exception:
    """A missing S3 key, raised as Mage raises it (botocore ``ClientError``, ``NoSuchKey``) with our message."""
    err = _key_missing()(message, hint=hint)
    err.bucket, err.key = bucket, key
    return err


class S3(ObjectStore):
    """S3 buckets: csv/parquet/json/xlsx objects and partitioned Parquet datasets."""

    name = "s3"
    scheme = "s3"
    profile_keys = {
        "aws_access_key_id": "AWS_ACCESS_KEY_ID",
        "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "aws_session_token": "AWS_SESSION_TOKEN",
        "region_name": "AWS_REGION",
        "endpoint_url": "AWS_ENDPOINT",
    }

    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        verbose: bool = True,
        source: str = "given config",
        **kwargs: Any,
    ) -> None:
        self.aws_access_key_id = aws_access_key_id
        self._secret_key = aws_secret_access_key
        self._session_token = aws_session_token
        self.region_name = region_name
        self.endpoint_url = endpoint_url
        self.verbose = verbose
        self.source = source
        self._secrets = [s for s in (aws_secret_access_key, aws_session_token) if s]
        self._client = None
        self._fs = None

    @property
    def client(self):
        if self._client is None:
            from dagsmith.errors import require

            boto3 = require("boto3", feature="the S3 connector", extra="aws")
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                aws_access_key_id=self.aws_access_key_id,
                aws_secret_access_key=self._secret_key,
                aws_session_token=self._session_token,
                region_name=self.region_name,
                endpoint_url=self.endpoint_url,
                config=Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"}),
            )
        return self._client

    def open(self) -> None:
        _ = self.client

    def close(self) -> None:
        release(self, "_client")

    def _error(self, exc: Exception, what: str) -> Exception:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return ConfigError(
                f"{self.source}: no AWS credentials for {what}",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in io_config.yaml or the environment",
            )
        if isinstance(exc, EndpointConnectionError):
            return TransientConnectorError(f"{what}: cannot reach {self.endpoint_url or 'S3'} ({self.source}): {exc}")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            cls = TransientConnectorError if status >= 500 or code in ("SlowDown", "Throttling") else TerminalConnectorError
            return cls(self._scrub(f"{what} failed ({self.source}): {code} {exc}"))
        return TransientConnectorError(self._scrub(f"{what} failed ({self.source}): {type(exc).__name__}: {exc}"))

    @staticmethod
    def _not_found(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound")

    def _get_bytes(self, bucket: str, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if self._not_found(exc):
                missing = self._missing(bucket, key)
                if isinstance(missing, ObjectNotFound):  # Mage raises botocore's NoSuchKey here
                    raise key_missing_error(
                        f"S3 object {self._url(bucket, key)} does not exist (NoSuchKey; {self.source})",
                        bucket, key, hint=missing.hint,
                    ) from None
                raise missing from None
            raise self._error(exc, f"reading {self._url(bucket, key)}") from None

    def _put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except Exception as exc:
            if self._not_found(exc):
                raise self._missing(bucket) from None
            raise self._error(exc, f"writing {self._url(bucket, key)}") from None

    _unused_version = '"00000000000000000000000000000000"'

    def _get_versioned(self, bucket: str, key: str) -> tuple[bytes, str] | None:
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
            return response["Body"].read(), response["ETag"]
        except Exception as exc:
            if self._not_found(exc):
                return None
            raise self._error(exc, f"reading {self._url(bucket, key)}") from None

    def _put_if(self, bucket: str, key: str, data: bytes, version: str | None, content_type: str) -> str | None:
        """PutObject with ``If-None-Match: *`` (create) or ``If-Match: <ETag>`` (replace)."""
        from botocore.exceptions import ClientError

        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            return self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type, **condition)["ETag"]
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            # 412: the object is not at that version; 409: a concurrent conditional write won
            # (S3 says: read again and retry); If-Match on an object deleted meanwhile: NoSuchKey
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            if version is not None and code == "NoSuchKey":
                return None
            if status == 501 or code == "NotImplemented":
                raise PreconditionsUnsupported(
                    f"{self.endpoint_url or 'S3'} does not implement conditional PutObject ({code}; {self.source})"
                ) from None
            if self._not_found(exc):
                raise self._missing(bucket) from None
            raise self._error(exc, f"writing {self._url(bucket, key)}") from None
        except Exception as exc:
            raise self._error(exc, f"writing {self._url(bucket, key)}") from None

    def _delete_object(self, bucket: str, key: str) -> None:
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if not self._not_found(exc):
                raise self._error(exc, f"deleting {self._url(bucket, key)}") from None

    def _endpoint(self) -> str | None:
        """``endpoint_url`` unless it is AWS's own (S3 conditional writes: If-None-Match since 2024-08,
        If-Match since 2024-11)."""
        if not self.endpoint_url:
            return None
        host = urlparse(self.endpoint_url if "://" in self.endpoint_url else f"https://{self.endpoint_url}").hostname
        return None if (host or "").endswith(".amazonaws.com") else self.endpoint_url

    def _object_exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:
            if self._not_found(exc):
                return False
            raise self._error(exc, f"checking {self._url(bucket, key)}") from None

    def _bucket_exists(self, bucket: str) -> bool:
        try:
            self.client.head_bucket(Bucket=bucket)
            return True
        except Exception as exc:
            if self._not_found(exc):
                return False
            raise self._error(exc, f"checking {self._url(bucket)}") from None

    def _list(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except Exception as exc:
            if self._not_found(exc):
                raise self._missing(bucket) from None
            raise self._error(exc, f"listing {self._url(bucket, prefix)}") from None
        return keys

    def filesystem(self):
        """``pyarrow.fs.S3FileSystem`` with the same keys, region and endpoint."""
        if self._fs is None:
            from pyarrow import fs as pafs

            options: dict[str, Any] = {}
            if self.aws_access_key_id and self._secret_key:
                options.update(access_key=self.aws_access_key_id, secret_key=self._secret_key)
                if self._session_token:
                    options["session_token"] = self._session_token
            if self.region_name:
                options["region"] = self.region_name
            if self.endpoint_url:
                parsed = urlparse(self.endpoint_url if "://" in self.endpoint_url else f"https://{self.endpoint_url}")
                options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
                options.setdefault("region", "us-east-1")
                options["allow_bucket_creation"] = False
            self._fs = pafs.S3FileSystem(**options)
        return self._fs

    def _public_settings(self) -> dict[str, Any]:
        return {
            "access_key_id": self.aws_access_key_id,
            "secret_access_key": "***" if self._secret_key else None,
            "region": self.region_name,
            "endpoint": self.endpoint_url,
        }
