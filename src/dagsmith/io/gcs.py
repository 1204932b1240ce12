"""Google Cloud Storage connector and the Google credentials every Google connector shares.

Owns ``GoogleCloudStorage`` (also ``mage_ai.io.google_cloud_storage``) and
:func:`google_credentials`, which picks credentials with Mage's precedence:

1. ``GOOGLE_SERVICE_ACC_KEY`` (a dict) whenever the profile has it — the template's
   placeholder dict is refused with a message saying to delete it;
2. ``GOOGLE_SERVICE_ACC_KEY_FILEPATH`` (a JSON key file);
3. the environment's default credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
   gcloud, metadata server); with an emulator (``STORAGE_EMULATOR_HOST``) and no
   key, anonymous credentials.

Objects are read and written with google-cloud-storage (a dataset's manifest too, with
``ifGenerationMatch``); partitioned Parquet datasets' files go through
``pyarrow.fs.GcsFileSystem`` (built with the same credentials).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from dagsmith.errors import ConfigError, TerminalConnectorError, TransientConnectorError
from dagsmith.io.base import release
from dagsmith.io.objectstore import ObjectStore

__all__ = ["GoogleCloudStorage", "google_credentials", "is_placeholder_key", "is_placeholder_path"]

#: the io_config.yaml keys every Google connector reads its credentials from
GOOGLE_PROFILE_KEYS = {
    "credentials_mapping": "GOOGLE_SERVICE_ACC_KEY",
    "path_to_credentials": "GOOGLE_SERVICE_ACC_KEY_FILEPATH",
}

_PLACEHOLDER_MARKS = ("your_private_key", "your_service_account_email", "key-id")
_PLACEHOLDER_PATHS = ("/path/to/your/service/account/key.json",)


def is_placeholder_key(key: Any) -> bool:
    """True for the ``GOOGLE_SERVICE_ACC_KEY`` dict of the io_config.yaml template (not a real key)."""
    if not isinstance(key, Mapping):
        return False
    text = json.dumps({k: str(v) for k, v in key.items()})
    return any(mark in text for mark in _PLACEHOLDER_MARKS) or key.get("project_id") == "project-id"


def key_secrets(credentials_mapping: Any) -> list[str]:
    """What to mask in logs and errors of a connector given this service-account key."""
    if isinstance(credentials_mapping, Mapping) and credentials_mapping.get("private_key"):
        return [str(credentials_mapping["private_key"])]
    return []


def is_placeholder_path(path: str) -> bool:
    """True for a key-file path that looks like a template placeholder (``/path/to/…``)."""
    return path in _PLACEHOLDER_PATHS or path.startswith(("/path/to/", "path/to/"))


def _emulated() -> bool:
    return bool(os.environ.get("STORAGE_EMULATOR_HOST") or os.environ.get("BIGQUERY_EMULATOR_HOST"))


def google_credentials(
    credentials_mapping: Mapping[str, Any] | str | None = None,
    path_to_credentials: str | None = None,
    *,
    source: str = "given config",
    scopes: list[str] | None = None,
) -> tuple[Any, str | None]:
    """(credentials, project id) with Mage's precedence; ConfigError naming the key when unusable."""
    from dagsmith.errors import require

    require("google.auth", feature="Google Cloud connectors", extra="gcp")
    from google.oauth2 import service_account

    scopes = scopes or ["https://www.googleapis.com/auth/cloud-platform"]
    if credentials_mapping not in (None, "", {}):
        mapping = credentials_mapping
        if isinstance(mapping, str):
            try:
                mapping = json.loads(mapping)
            except ValueError:
                raise ConfigError(
                    f"{source}: GOOGLE_SERVICE_ACC_KEY is not a JSON object (a service-account key)",
                    hint="paste the key's JSON as a mapping, or use GOOGLE_SERVICE_ACC_KEY_FILEPATH",
                ) from None
        if is_placeholder_key(mapping):
            raise ConfigError(
                f"{source}: GOOGLE_SERVICE_ACC_KEY is still the template placeholder, and it is used before "
                "GOOGLE_SERVICE_ACC_KEY_FILEPATH whenever present",
                hint="delete the GOOGLE_SERVICE_ACC_KEY block from the profile to use "
                "GOOGLE_SERVICE_ACC_KEY_FILEPATH (or default credentials), or paste your real key",
            )
        try:
            creds = service_account.Credentials.from_service_account_info(dict(mapping), scopes=scopes)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{source}: GOOGLE_SERVICE_ACC_KEY is not a usable service-account key: {exc}") from None
        return creds, mapping.get("project_id")
    if path_to_credentials not in (None, ""):
        path = str(path_to_credentials)
        file = Path(os.path.expanduser(path))
        # A path that looks like the template's placeholder is still used when a key file is
        # there (people do put their key at /path/to/…); only when nothing is there is it
        # reported as the placeholder it probably is.
        if is_placeholder_path(path) and not file.is_file():
            raise ConfigError(
                f"{source}: GOOGLE_SERVICE_ACC_KEY_FILEPATH is still the template placeholder {path!r} "
                "and no file exists there",
                hint="set it to your key file, or delete it to use the environment's default credentials",
            )
        if not file.is_file():
            raise ConfigError(
                f"{source}: GOOGLE_SERVICE_ACC_KEY_FILEPATH {path!r} does not exist",
                hint="give the key file's path on this machine (paths like /home/src/… are Docker paths)",
            )
        try:
            info = json.loads(file.read_text(encoding="utf-8"))
            creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{source}: {path!r} is not a service-account key file: {exc}") from None
        return creds, info.get("project_id")
    if _emulated():
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), os.environ.get("GOOGLE_CLOUD_PROJECT") or "test"
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        creds, project = google.auth.default(scopes=scopes)
    except DefaultCredentialsError as exc:
        raise ConfigError(
            f"{source}: no Google credentials: the profile has neither GOOGLE_SERVICE_ACC_KEY nor "
            f"GOOGLE_SERVICE_ACC_KEY_FILEPATH, and default credentials are not set up ({exc})",
            hint="set GOOGLE_SERVICE_ACC_KEY_FILEPATH in io_config.yaml or GOOGLE_APPLICATION_CREDENTIALS",
        ) from None
    return creds, project


def _google_error(exc: Exception, what: str, source: str) -> Exception:
    from google.api_core import exceptions as gexc

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, (gexc.ServerError, gexc.TooManyRequests, gexc.ServiceUnavailable)):
        return TransientConnectorError(f"{what} failed ({source}): {message}")
    if isinstance(exc, (gexc.Unauthorized, gexc.Forbidden)):
        return TerminalConnectorError(
            f"{what} was refused ({source}): {message}",
            hint="check that the service account has access to this resource",
        )
    if isinstance(exc, gexc.GoogleAPICallError):
        return TerminalConnectorError(f"{what} failed ({source}): {message}")
    from google.auth.exceptions import GoogleAuthError

    if isinstance(exc, GoogleAuthError):
        return TerminalConnectorError(
            f"{what}: Google credentials were refused ({source}): {exc}",
            hint="check the service-account key (GOOGLE_SERVICE_ACC_KEY / _FILEPATH)",
        )
    return TransientConnectorError(f"{what} failed ({source}): {type(exc).__name__}: {exc}")


class GoogleCloudStorage(ObjectStore):
    """GCS buckets (Mage's ``GoogleCloudStorage``): csv/parquet/json/xlsx objects, partitioned Parquet."""

    name = "gcs"
    scheme = "gs"
    profile_keys = GOOGLE_PROFILE_KEYS

    def __init__(
        self,
        credentials_mapping: Mapping[str, Any] | None = None,
        path_to_credentials: str | None = None,
        project: str | None = None,
        verbose: bool = True,
        source: str = "given config",
        **kwargs: Any,
    ) -> None:
        self.credentials_mapping = credentials_mapping
        self.path_to_credentials = path_to_credentials
        self.project = project
        self.verbose = verbose
        self.source = source
        self._secrets = key_secrets(credentials_mapping)
        self._client = None
        self._credentials = None
        self._fs = None

    def _creds(self) -> tuple[Any, str | None]:
        if self._credentials is None:
            self._credentials = google_credentials(
                self.credentials_mapping, self.path_to_credentials, source=self.source
            )
        return self._credentials

    @property
    def client(self):
        """The google-cloud-storage ``Client`` (created on first use)."""
        if self._client is None:
            from dagsmith.errors import require

            storage = require("google.cloud.storage", feature="the GCS connector", extra="gcp")
            creds, project = self._creds()
            self._client = storage.Client(project=self.project or project or "dagsmith", credentials=creds)
        return self._client

    def open(self) -> None:
        _ = self.client

    def close(self) -> None:
        release(self, "_client")

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, TerminalConnectorError, TransientConnectorError):
            raise
        except Exception as exc:
            from google.api_core import exceptions as gexc

            if isinstance(exc, (gexc.NotFound, gexc.PreconditionFailed)):
                raise
            raise _google_error(exc, what, self.source) from None

    def _get_bytes(self, bucket: str, key: str) -> bytes:
        from google.api_core import exceptions as gexc

        try:
            return self._call(f"reading {self._url(bucket, key)}", self.client.bucket(bucket).blob(key).download_as_bytes)
        except gexc.NotFound:
            raise self._missing(bucket, key) from None

    def _missing_object(self, bucket: str, key: str, error: Exception) -> Any:
        """Mage's GCS loader returns an empty frame for a missing object; we also say so."""
        import sys

        import pandas as pd

        print(
            f"warning: GoogleCloudStorage.load: object {key!r} does not exist in bucket {bucket!r}; "
            "returning an empty DataFrame (as Mage does)",
            file=sys.stderr,
        )
        return pd.DataFrame()

    def _put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        from google.api_core import exceptions as gexc

        blob = self.client.bucket(bucket).blob(key)
        try:
            self._call(f"writing {self._url(bucket, key)}", blob.upload_from_string, data, content_type=content_type)
        except gexc.NotFound:
            raise self._missing(bucket) from None

    _unused_version = "1"  # generations are microsecond timestamps

    def _get_versioned(self, bucket: str, key: str) -> tuple[bytes, str] | None:
        from google.api_core import exceptions as gexc

        blob = self.client.bucket(bucket).blob(key)
        try:
            data = self._call(f"reading {self._url(bucket, key)}", blob.download_as_bytes)
        except gexc.NotFound:
            return None
        return data, str(blob.generation)  # the generation of the bytes downloaded (x-goog-generation)

    def _put_if(self, bucket: str, key: str, data: bytes, version: str | None, content_type: str) -> str | None:
        """An upload with ``ifGenerationMatch``: 0 (create) or the generation read (replace)."""
        from google.api_core import exceptions as gexc

        blob = self.client.bucket(bucket).blob(key)
        try:
            self._call(f"writing {self._url(bucket, key)}", blob.upload_from_string, data, content_type=content_type,
                       if_generation_match=0 if version is None else int(version))
        except gexc.PreconditionFailed:
            return None
        except gexc.NotFound:
            raise self._missing(bucket) from None
        return str(blob.generation)

    def _delete_object(self, bucket: str, key: str) -> None:
        from google.api_core import exceptions as gexc

        try:
            self._call(f"deleting {self._url(bucket, key)}", self.client.bucket(bucket).blob(key).delete)
        except gexc.NotFound:
            pass

    def _endpoint(self) -> str | None:
        """The emulator's address when one is set (``STORAGE_EMULATOR_HOST``); None for GCS itself."""
        return os.environ.get("STORAGE_EMULATOR_HOST") or None

    def _object_exists(self, bucket: str, key: str) -> bool:
        from google.api_core import exceptions as gexc

        try:
            return bool(self._call("checking an object", self.client.bucket(bucket).blob(key).exists))
        except gexc.NotFound:
            return False

    def _bucket_exists(self, bucket: str) -> bool:
        from google.api_core import exceptions as gexc

        try:
            return bool(self._call("checking a bucket", self.client.bucket(bucket).exists))
        except gexc.NotFound:
            return False

    def _list(self, bucket: str, prefix: str) -> list[str]:
        from google.api_core import exceptions as gexc

        try:
            return [b.name for b in self._call("listing objects", lambda: list(self.client.list_blobs(bucket, prefix=prefix)))]
        except gexc.NotFound:
            raise self._missing(bucket) from None

    def filesystem(self):
        """``pyarrow.fs.GcsFileSystem`` with this connector's credentials (or the emulator's endpoint)."""
        if self._fs is not None:
            return self._fs
        from pyarrow import fs as pafs

        emulator = os.environ.get("STORAGE_EMULATOR_HOST") or os.environ.get("CLOUD_STORAGE_EMULATOR_ENDPOINT")
        if emulator:
            scheme, _, host = emulator.partition("://")
            if not host:
                scheme, host = "http", emulator
            self._fs = pafs.GcsFileSystem(
                endpoint_override=host.rstrip("/"), scheme=scheme, anonymous=True,
                project_id=self.project or "test",
            )
            return self._fs
        creds, project = self._creds()
        if not getattr(creds, "token", None) or not getattr(creds, "valid", False):
            import google.auth.transport.requests

            try:
                creds.refresh(google.auth.transport.requests.Request())
            except Exception as exc:
                raise _google_error(exc, "getting a GCS access token", self.source) from None
        import datetime as dt

        expiry = creds.expiry or (dt.datetime.utcnow() + dt.timedelta(minutes=50))
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=dt.timezone.utc)
        self._fs = pafs.GcsFileSystem(
            access_token=creds.token, credential_token_expiration=expiry, project_id=self.project or project
        )
        return self._fs

    def _public_settings(self) -> dict[str, Any]:
        return {
            "credentials": "GOOGLE_SERVICE_ACC_KEY (***)" if self.credentials_mapping else (
                self.path_to_credentials or "default"
            ),
            "source": self.source,
        }
