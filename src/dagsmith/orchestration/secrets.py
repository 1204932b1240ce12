"""Secrets: values encrypted at rest with Fernet; the key lives in the data folder.

The key file is ``<data dir>/secrets/key`` (created with mode 0600 on first use), or
``DAGSMITH_SECRET_KEY`` when set. Neither the key nor a value is ever logged or
returned by the API's list calls; ``get_secret_value`` is what blocks and
``io_config.yaml`` interpolation call.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagsmith.errors import ConfigError
from dagsmith.settings import get

KEY_ENV = "DAGSMITH_SECRET_KEY"


def key_path(data_dir: Path) -> Path:
    return Path(data_dir) / "secrets" / "key"


def load_or_create_key(data_dir: Path) -> bytes:
    env = get("secret_key")
    if env:
        return env.encode()
    from cryptography.fernet import Fernet

    path = key_path(data_dir)
    if path.is_file():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(path.parent, 0o700)
    except OSError:  # pragma: no cover
        pass
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class SecretStore:
    """Encrypt, store, read and delete named secrets in the metadata database."""

    def __init__(self, db, data_dir: Path) -> None:
        from cryptography.fernet import Fernet

        self.db = db
        try:
            self._fernet = Fernet(load_or_create_key(data_dir))
        except ValueError as exc:
            raise ConfigError(
                "the secrets key is not a valid Fernet key",
                hint=f"set {KEY_ENV} to a key made by cryptography.fernet.Fernet.generate_key(), or delete {key_path(data_dir)} (stored secrets are then lost)",
            ) from exc
        # The masking source of this process: values set anywhere (another process, the CLI)
        # are picked up within REFRESH_SECONDS, and at once at every run start.
        from dagsmith.project.masking import MASKER

        self.source_key = f"secrets:{getattr(db, 'url', id(db))}"
        self._published: tuple[bytes, ...] | None = None
        MASKER.add_source(self.source_key, self.all_values)

    @staticmethod
    def _scope(pipeline_uuid: str | None) -> str:
        return f"pipeline:{pipeline_uuid}" if pipeline_uuid else "project"

    def set(self, name: str, value: str, *, pipeline_uuid: str | None = None) -> None:
        from dagsmith.orchestration.store import repo

        from dagsmith.project.masking import add_secret
        from dagsmith.project.names import check_name

        check_name(name, "secret")
        if pipeline_uuid:
            check_name(pipeline_uuid, "pipeline")
        if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ConfigError(f"secret name {name!r} is not valid", hint="use letters, digits, '_', '-' or '.'")
        add_secret(str(value))  # masked from this moment on, before it is even stored
        token = self._fernet.encrypt(str(value).encode())
        with self.db.session() as session:
            repo.put_secret(session, name, token, scope=self._scope(pipeline_uuid))
            repo.audit(session, "secret.set", "secret", name, {"scope": self._scope(pipeline_uuid)})

    def get(self, name: str, *, pipeline_uuid: str | None = None) -> str:
        from cryptography.fernet import InvalidToken

        from dagsmith.orchestration.store import repo

        with self.db.read() as session:
            row = None
            if pipeline_uuid:
                row = repo.get_secret_row(session, name, scope=self._scope(pipeline_uuid))
            if row is None:
                row = repo.get_secret_row(session, name)
            if row is None:
                raise ConfigError(f"secret {name!r} does not exist", hint="create it with POST /api/secrets or the UI's Secrets tab")
            token = row.value
        try:
            value = self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ConfigError(
                f"secret {name!r} cannot be decrypted with this project's key",
                hint="the key file changed; set the secret again",
            ) from exc
        from dagsmith.project.masking import add_secret

        add_secret(value)
        return value

    def names(self, *, pipeline_uuid: str | None = None) -> list[dict]:
        from dagsmith.orchestration.store import repo

        with self.db.read() as session:
            rows = repo.list_secrets(session, self._scope(pipeline_uuid) if pipeline_uuid else None)
            return [{"name": r.name, "scope": r.scope, "created_at": r.created_at, "updated_at": r.updated_at} for r in rows]

    def delete(self, name: str, *, pipeline_uuid: str | None = None) -> bool:
        from dagsmith.orchestration.store import repo

        with self.db.session() as session:
            removed = repo.delete_secret(session, name, scope=self._scope(pipeline_uuid))
            if removed:
                repo.audit(session, "secret.delete", "secret", name, {})
            return removed

    def publish(self, ciphertexts: list[bytes]) -> None:
        """Hand the masking source the values of ``ciphertexts`` (every stored value, read by the caller
        in a transaction of its own, e.g. a worker's claim): decrypted only when they changed."""
        from dagsmith.project.masking import MASKER

        current = tuple(bytes(c) for c in ciphertexts)
        if current == self._published:
            return
        MASKER.provide(self.source_key, self._decrypt_all(current))
        self._published = current

    def _decrypt_all(self, tokens) -> list[str]:
        out = []
        for token in tokens:
            try:
                out.append(self._fernet.decrypt(token).decode())
            except Exception:  # noqa: BLE001 - an undecryptable value cannot leak either
                continue
        return out

    def all_values(self) -> list[str]:
        """Every decrypted value, for masking logs (never returned to a client)."""
        from dagsmith.orchestration.store import repo

        with self.db.read() as session:
            tokens = [r.value for r in repo.list_secrets(session)]
        return self._decrypt_all(tokens)


def get_secret_value(name: str, project_root: str | os.PathLike[str] | None = None) -> str:
    """A secret's clear value for block code (Mage's ``get_secret_value``)."""
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.project.layout import get_repo_path

    settings = OrchestrationSettings.from_env(project_root or get_repo_path())
    return SecretStore(get_database(settings), settings.data_dir).get(name)


def install_project_resolver(project_root: str | os.PathLike[str]) -> None:
    """Resolve ``secret_var()``/``get_secret_value`` in this process from the project's metadata DB.

    Called on each Dask worker (``RunConfig.worker_setup``); the DB is opened on the first lookup.
    """
    from dagsmith.project.io_config import set_secret_resolver

    store: list[SecretStore] = []

    def resolve(name: str, **kw):
        if not store:
            from dagsmith.orchestration.db import get_database
            from dagsmith.orchestration.settings import OrchestrationSettings

            settings = OrchestrationSettings.from_env(project_root)
            store.append(SecretStore(get_database(settings), settings.data_dir))
        return store[0].get(name, **kw)

    set_secret_resolver(resolve)
