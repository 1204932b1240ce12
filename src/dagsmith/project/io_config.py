"""Connection profiles from a project's ``io_config.yaml`` (Mage's format), and secret redaction.

Owns:
- reading ``<project>/io_config.yaml``: the WHOLE file is rendered with Jinja first
  (``env_var``, ``json_value``, ``mage_secret_var``/``secret``, ``aws_secret_var``,
  ``azure_secret_var``) and only then parsed as YAML, because real projects write
  unquoted ``{{ env_var('X') }}`` that is valid YAML only after rendering;
- the project's ``.env`` (through :func:`dagsmith.project.env.load_project_env`);
- the legacy nested "verbose" profile format (``PostgreSQL: {host: …}``), flattened
  to the flat ``POSTGRES_HOST`` keys every connector reads;
- :class:`ConfigFileLoader` with Mage's interface (``[]``, ``get``, ``in``);
- :func:`redact` / :func:`redact_text` / :func:`is_secret_key`, so passwords and
  keys never reach logs, errors or reprs (names kept for callers; the mask itself is
  ``project.masking``, the codebase's only one).

An ``env_var('X')`` whose variable is unset or empty (and that gives no default)
renders as a marker: reading a key that holds it raises a :class:`~dagsmith.errors.ConfigError`
naming the profile, the key and the variable — before any connector connects — so a
missing ``POSTGRES_DBNAME`` never silently becomes the driver's default database. Keys
nobody reads (another system's settings in the same profile) stay harmless.

Secrets (``mage_secret_var('x')``) come from a resolver that the orchestration
layer registers with :func:`set_secret_resolver`; without one, a profile that
uses a secret fails with a :class:`~dagsmith.errors.ConfigError` when (and only
when) a key holding it is read, so unrelated profiles keep working.

This module is pure: no network, no database.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from dagsmith.errors import ConfigError, ProjectError
from dagsmith.project.masking import MASK, looks_secret, mask_with, redact_mapping, secret_values

__all__ = [
    "ConfigFileLoader",
    "ConfigKey",
    "MissingConfigKeyError",
    "is_secret_key",
    "load_profile",
    "read_io_config",
    "redact",
    "redact_text",
    "set_secret_resolver",
    "get_secret_value",
]

IO_CONFIG_FILENAME = "io_config.yaml"
REDACTED = MASK


class ConfigKey(str, Enum):
    """The flat profile keys of the systems dagsmith connects to (Mage's names)."""

    AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
    AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
    AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN"
    AWS_REGION = "AWS_REGION"
    AWS_ENDPOINT = "AWS_ENDPOINT"
    DUCKDB_DATABASE = "DUCKDB_DATABASE"
    DUCKDB_SCHEMA = "DUCKDB_SCHEMA"
    GOOGLE_SERVICE_ACC_KEY = "GOOGLE_SERVICE_ACC_KEY"
    GOOGLE_SERVICE_ACC_KEY_FILEPATH = "GOOGLE_SERVICE_ACC_KEY_FILEPATH"
    GOOGLE_LOCATION = "GOOGLE_LOCATION"
    POSTGRES_CONNECT_TIMEOUT = "POSTGRES_CONNECT_TIMEOUT"
    POSTGRES_DBNAME = "POSTGRES_DBNAME"
    POSTGRES_SCHEMA = "POSTGRES_SCHEMA"
    POSTGRES_USER = "POSTGRES_USER"
    POSTGRES_PASSWORD = "POSTGRES_PASSWORD"
    POSTGRES_HOST = "POSTGRES_HOST"
    POSTGRES_PORT = "POSTGRES_PORT"
    POSTGRES_CONNECTION_METHOD = "POSTGRES_CONNECTION_METHOD"
    POSTGRES_SSH_HOST = "POSTGRES_SSH_HOST"
    POSTGRES_SSH_PORT = "POSTGRES_SSH_PORT"
    POSTGRES_SSH_USERNAME = "POSTGRES_SSH_USERNAME"
    POSTGRES_SSH_PASSWORD = "POSTGRES_SSH_PASSWORD"
    POSTGRES_SSH_PKEY = "POSTGRES_SSH_PKEY"
    MYSQL_DATABASE = "MYSQL_DATABASE"
    MYSQL_HOST = "MYSQL_HOST"
    MYSQL_PASSWORD = "MYSQL_PASSWORD"
    MYSQL_PORT = "MYSQL_PORT"
    MYSQL_USER = "MYSQL_USER"
    SNOWFLAKE_USER = "SNOWFLAKE_USER"
    SNOWFLAKE_PASSWORD = "SNOWFLAKE_PASSWORD"
    SNOWFLAKE_ACCOUNT = "SNOWFLAKE_ACCOUNT"
    SNOWFLAKE_DEFAULT_WH = "SNOWFLAKE_DEFAULT_WH"
    SNOWFLAKE_DEFAULT_DB = "SNOWFLAKE_DEFAULT_DB"
    SNOWFLAKE_DEFAULT_SCHEMA = "SNOWFLAKE_DEFAULT_SCHEMA"
    SNOWFLAKE_ROLE = "SNOWFLAKE_ROLE"
    SNOWFLAKE_PRIVATE_KEY_PATH = "SNOWFLAKE_PRIVATE_KEY_PATH"

    def __str__(self) -> str:  # so f"{ConfigKey.X}" prints the key itself
        return self.value


# Legacy nested ("verbose") format: section -> {nested key -> flat key}. A nested
# section may hold further sections (AWS: {Redshift: {...}}).
_VERBOSE_SECTIONS: dict[str, dict[str, Any]] = {
    "AWS": {
        "access_key_id": "AWS_ACCESS_KEY_ID",
        "secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "session_token": "AWS_SESSION_TOKEN",
        "region": "AWS_REGION",
        "endpoint": "AWS_ENDPOINT",
        "Redshift": {
            "database": "REDSHIFT_DBNAME",
            "host": "REDSHIFT_HOST",
            "port": "REDSHIFT_PORT",
            "user": "REDSHIFT_DBUSER",
            "password": "REDSHIFT_PASSWORD",
            "schema": "REDSHIFT_SCHEMA",
            "cluster_identifier": "REDSHIFT_CLUSTER_ID",
            "temp_cred_user": "REDSHIFT_TEMP_CRED_USER",
            "temp_cred_password": "REDSHIFT_TEMP_CRED_PASSWORD",
            "iam_profile": "REDSHIFT_IAM_PROFILE",
        },
    },
    "BigQuery": {
        "credentials_mapping": "GOOGLE_SERVICE_ACC_KEY",
        "path_to_credentials": "GOOGLE_SERVICE_ACC_KEY_FILEPATH",
        "location": "GOOGLE_LOCATION",
    },
    "GoogleCloudStorage": {
        "credentials_mapping": "GOOGLE_SERVICE_ACC_KEY",
        "path_to_credentials": "GOOGLE_SERVICE_ACC_KEY_FILEPATH",
    },
    "PostgreSQL": {
        "database": "POSTGRES_DBNAME",
        "dbname": "POSTGRES_DBNAME",
        "host": "POSTGRES_HOST",
        "password": "POSTGRES_PASSWORD",
        "port": "POSTGRES_PORT",
        "schema": "POSTGRES_SCHEMA",
        "user": "POSTGRES_USER",
        "connect_timeout": "POSTGRES_CONNECT_TIMEOUT",
    },
    "DuckDB": {"database": "DUCKDB_DATABASE", "schema": "DUCKDB_SCHEMA"},
    "MySQL": {
        "database": "MYSQL_DATABASE",
        "host": "MYSQL_HOST",
        "password": "MYSQL_PASSWORD",
        "port": "MYSQL_PORT",
        "user": "MYSQL_USER",
    },
    "Snowflake": {
        "user": "SNOWFLAKE_USER",
        "password": "SNOWFLAKE_PASSWORD",
        "account": "SNOWFLAKE_ACCOUNT",
        "database": "SNOWFLAKE_DEFAULT_DB",
        "schema": "SNOWFLAKE_DEFAULT_SCHEMA",
        "warehouse": "SNOWFLAKE_DEFAULT_WH",
        "role": "SNOWFLAKE_ROLE",
    },
}

# --------------------------------------------------------------------------- secrets

# One mask for the whole codebase (``project.masking``); these names stay for Mage-style callers.
is_secret_key = looks_secret
redact = redact_mapping
redact_text = mask_with


SecretResolver = Callable[[str], Any]


def _no_secret_store(name: str) -> Any:
    raise ConfigError(
        f"secret {name!r} cannot be resolved: secrets live in dagsmith's metadata database",
        hint="run the pipeline through `dagsmith start` (or register a resolver), or use env_var('X') instead",
    )


_secret_resolver: SecretResolver = _no_secret_store


def set_secret_resolver(fn: SecretResolver | None) -> None:
    """Register the function that turns a secret name into its value (``None`` restores the default)."""
    global _secret_resolver
    _secret_resolver = fn or _no_secret_store


def get_secret_value(name: str) -> Any:
    """The value of secret ``name`` from the registered resolver (Mage's ``get_secret_value``)."""
    return _secret_resolver(name)


# --------------------------------------------------------------------------- rendering

_UNRESOLVED = "__dagsmith_unresolved_{}__"


class _Unset(str):
    """What ``env_var('X')`` gives when X resolves to nothing: renders as a marker, is falsy
    (so ``env_var('X') or 'default'`` still works in a template)."""

    def __bool__(self) -> bool:
        return False


_NO_DEFAULT = object()


class _RenderState:
    """Collects look-ups that failed while rendering (secrets, unset env vars), so only their users fail."""

    def __init__(self, env_file: str = ".env") -> None:
        self.failures: dict[str, tuple[str, ConfigError]] = {}
        self.env_file = env_file

    def env_var(self, name: str, default: Any = _NO_DEFAULT) -> Any:
        value = os.environ.get(str(name))
        if value in (None, "") and default is not _NO_DEFAULT and default is not None:
            value = default
        if value not in (None, ""):
            if is_secret_key(str(name)):  # masked wherever it is printed
                from dagsmith.project.masking import add_secret

                add_secret(value)
            return value
        token = _UNRESOLVED.format(len(self.failures))
        state = "is not set" if value is None else "is empty"
        self.failures[token] = (
            f"env_var({name!r})",
            ConfigError(
                f"env_var({name!r}) resolves to nothing: environment variable {name} {state}",
                hint=f"set {name} in the environment or in {self.env_file}"
                f" (or give a default in io_config.yaml: env_var({name!r}, 'value'))",
            ),
        )
        return _Unset(token)

    def secret(self, name: str) -> Any:
        try:
            value = _secret_resolver(name)
            from dagsmith.project.masking import add_secret

            add_secret(value)
            return value
        except ConfigError as exc:
            token = _UNRESOLVED.format(len(self.failures))
            self.failures[token] = (name, exc)
            return token

    def unsupported(self, func: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            token = _UNRESOLVED.format(len(self.failures))
            self.failures[token] = (
                f"{func}({', '.join(repr(a) for a in args)})",
                ConfigError(
                    f"{func}() is not supported by dagsmith",
                    hint="put the value in an environment variable and use env_var('NAME')",
                ),
            )
            return token

        return call


def _json_value(value: Any, key: Any = None) -> Any:
    if value is None or isinstance(value, _Unset):
        return value
    data = json.loads(value) if isinstance(value, (str, bytes)) else value
    if key is None:
        return data
    for part in str(key).split("."):
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit():
            data = data[int(part)] if int(part) < len(data) else None
        else:
            return None
    return data


def _render(text: str, filename: str, state: _RenderState) -> str:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.Undefined, keep_trailing_newline=True, autoescape=False)
    env.globals.update(
        env_var=state.env_var,
        json_value=_json_value,
        mage_secret_var=state.secret,
        secret=state.secret,
        aws_secret_var=state.unsupported("aws_secret_var"),
        azure_secret_var=state.unsupported("azure_secret_var"),
    )
    try:
        return env.from_string(text).render()
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"{filename}:{exc.lineno}: template error: {exc.message}",
            hint="check the {{ … }} expressions on that line",
        ) from None
    except ConfigError:
        raise
    except Exception as exc:  # an env var holding bad JSON for json_value, …
        raise ConfigError(f"{filename}: could not render the template: {type(exc).__name__}: {exc}") from None


def _parse(rendered: str, filename: str) -> dict[str, Any]:
    from dagsmith.project.yamlio import parse_yaml

    try:  # the project's one YAML gate: size limit and alias budget included
        data = parse_yaml(rendered, filename)
    except ProjectError as exc:
        raise ConfigError(
            exc.message,
            hint=exc.hint if "malformed YAML" not in exc.message
            else "io_config.yaml holds profiles of KEY: value pairs; quote values that contain ':' or '{'",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}: expected profiles (a mapping) at the top level, got {type(data).__name__}")
    return data


def _flatten_verbose(profile: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the legacy nested format into flat keys; flat keys already present win."""
    flat: dict[str, Any] = {}
    nested: dict[str, Any] = {}

    def walk(section: Mapping[str, Any], mapping: Mapping[str, Any]) -> None:
        for key, value in section.items():
            target = mapping.get(key)
            if isinstance(target, dict) and isinstance(value, Mapping):
                walk(value, target)
            elif isinstance(target, str):
                nested.setdefault(target, value)

    for key, value in profile.items():
        if key in _VERBOSE_SECTIONS and isinstance(value, Mapping):
            walk(value, _VERBOSE_SECTIONS[key])
        else:
            flat[key] = value
    for key, value in nested.items():
        flat.setdefault(key, value)
    return flat


def _is_verbose(mapping: Mapping[str, Any]) -> bool:
    return any(k in _VERBOSE_SECTIONS and isinstance(v, Mapping) for k, v in mapping.items())


def _clean_value(value: Any) -> Any:
    # env_var() of a missing variable renders as "None": give it back as None
    if isinstance(value, str) and value.strip() == "None":
        return None
    if isinstance(value, dict):
        return {k: _clean_value(v) for k, v in value.items()}
    return value


class ParsedConfig:
    """A rendered and parsed io_config.yaml: profiles by name, plus the secrets that failed."""

    def __init__(self, filename: str, profiles: dict[str, Any], failures: dict[str, tuple[str, ConfigError]]):
        self.filename = filename
        self.profiles = profiles
        self.failures = failures

    def profile_names(self) -> list[str]:
        return [k for k, v in self.profiles.items() if k != "version" and isinstance(v, Mapping)]

    def profile(self, name: str) -> dict[str, Any]:
        if _is_verbose(self.profiles) and name not in self.profiles:
            # oldest format: sections at the top level, no profiles at all
            return _flatten_verbose({k: v for k, v in self.profiles.items() if k != "version"})
        if name not in self.profiles or not isinstance(self.profiles.get(name), Mapping):
            names = ", ".join(self.profile_names()) or "none"
            raise ConfigError(
                f"{self.filename}: profile {name!r} not found (profiles: {names})",
                hint=f"add a '{name}:' section to io_config.yaml or pick one of the profiles above",
            )
        raw = dict(self.profiles[name])
        if _is_verbose(raw):
            raw = _flatten_verbose(raw)
        return {str(k): _clean_value(v) for k, v in raw.items()}

    def check_value(self, profile: str, key: str, value: Any) -> Any:
        """Raise for a value that holds an unresolved secret or env_var(); return it otherwise."""
        if not self.failures:
            return value
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        for token, (name, exc) in self.failures.items():
            if token in text:
                kind = UnsetEnvVarError if name.startswith("env_var(") else ConfigError
                raise kind(
                    f"{self.filename}: profile {profile!r}, key {key!r}: {exc.message}", hint=exc.hint
                ) from None
        return value


class UnsetEnvVarError(ConfigError):
    """A profile key read through ``env_var('X')`` while X is unset or empty."""


def read_io_config(path: str | os.PathLike[str]) -> ParsedConfig:
    """Render (Jinja) then parse (YAML) one io_config.yaml; the project's .env is loaded first."""
    from dagsmith.project.env import load_project_env

    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"{file}: io_config.yaml not found",
            hint="create it (dagsmith init writes one) or pass the right project folder",
        )
    load_project_env(file.parent)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = file.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{file}:{line}: not UTF-8 text") from None
    state = _RenderState(str(file.parent / ".env"))
    rendered = _render(text, str(file), state)
    profiles = _parse(rendered, str(file))
    from dagsmith.project.masking import add_secret

    # values under secret-looking keys (POSTGRES_PASSWORD, …_TOKEN) are masked wherever printed
    add_secret(*[v for v in secret_values(profiles) if not v.startswith("__dagsmith_unresolved")])
    return ParsedConfig(str(file), profiles, state.failures)


def load_profile(project_root: str | os.PathLike[str], profile: str = "default") -> dict[str, Any]:
    """The flat ``KEY: value`` mapping of ``profile`` in ``<project_root>/io_config.yaml``.

    Raises :class:`ConfigError` naming the file and profile when either is missing, and
    naming the key when it holds a secret that cannot be resolved.
    """
    parsed = read_io_config(Path(project_root) / IO_CONFIG_FILENAME)
    values = parsed.profile(profile)
    return {k: parsed.check_value(profile, k, v) for k, v in values.items()}


class MissingConfigKeyError(ConfigError, KeyError):
    """A key a connector needs is not in the profile."""


def _key_name(key: Any) -> str:
    return key.value if isinstance(key, Enum) else str(key)


class ConfigFileLoader:
    """One profile of an ``io_config.yaml``, read like a mapping (Mage's ``ConfigFileLoader``).

    ``ConfigFileLoader()`` reads ``<repo>/io_config.yaml`` (the running project);
    ``config=`` gives the profile's values directly instead of a file.
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str] | None = None,
        profile: str = "default",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.profile = profile or "default"
        self._parsed: ParsedConfig | None = None
        if config is not None:
            self.filepath = str(filepath) if filepath else None
            values = dict(config)
            self.config = _flatten_verbose(values) if _is_verbose(values) else values
            return
        if filepath is None:
            from dagsmith.project.layout import get_repo_path

            filepath = Path(get_repo_path()) / IO_CONFIG_FILENAME
        self.filepath = str(filepath)
        self._parsed = read_io_config(filepath)
        self.config = self._parsed.profile(self.profile)

    @property
    def source(self) -> str:
        """``file (profile 'name')`` — how errors refer to this profile."""
        where = self.filepath or "<config>"
        return f"{where} (profile {self.profile!r})"

    def _check(self, key: str, value: Any) -> Any:
        return self._parsed.check_value(self.profile, key, value) if self._parsed else value

    def __getitem__(self, key: Any) -> Any:
        name = _key_name(key)
        if name not in self.config:
            raise MissingConfigKeyError(
                f"{self.source}: key {name!r} is not set",
                hint=f"add '{name}: …' under the '{self.profile}:' profile",
            )
        return self._check(name, self.config[name])

    def get(self, key: Any, default: Any = None) -> Any:
        name = _key_name(key)
        if name not in self.config:
            return default
        return self._check(name, self.config[name])

    def __contains__(self, key: Any) -> bool:
        return _key_name(key) in self.config

    def keys(self) -> Iterator[str]:
        return iter(self.config.keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self.config)

    def __len__(self) -> int:
        return len(self.config)

    def items(self) -> list[tuple[str, Any]]:
        """Every key with its value; a key whose env_var() resolves to nothing shows None here
        (reading that key itself, as connectors do, is the error)."""
        out = []
        for k in self.config:
            try:
                out.append((k, self.get(k)))
            except UnsetEnvVarError:
                out.append((k, None))
        return out

    def secrets(self) -> list[str]:
        """Secret values of this profile (resolved ones only), for scrubbing messages."""
        return secret_values({k: v for k, v in self.config.items() if not str(v).startswith("__dagsmith_unresolved")})

    def __repr__(self) -> str:
        return f"ConfigFileLoader({self.source}, {redact(self.config)!r})"

    __str__ = __repr__
