"""The settings model: one field per ``DAGSMITH_*`` environment variable.

Each field's type, default, bounds and description are the variable's whole definition:
``dagsmith.settings.get`` validates set variables with these fields, and ``docs/settings.md``
is generated from them (``dagsmith.settings.table``). Import this module only where
pydantic-settings' start-up cost is already paid or does not matter (the server, ``dagsmith
start``, tests): the CLI and the engine go through ``dagsmith.settings.get``, which imports
it only when a variable that needs validating is set.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Optional

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dagsmith.errors import ConfigError
from dagsmith.settings import DEFAULTS, FALLBACKS, PREFIX, TEXT_FIELDS, env_name, env_names, raw

SECTIONS = {
    "paths": "Where things are",
    "runs": "Running pipelines",
    "orchestration": "Scheduler and workers",
    "server": "Server and sign-in",
    "faults": "Fault injection (tests only)",
}


def _f(section: str, description: str, *, allowed: str | None = None, secret: bool = False, **kw: Any) -> Any:
    """A field with its variable's names, its docs section and (optionally) how to say its allowed values."""
    extra = {"section": section, "allowed": allowed, "secret": secret}
    return Field(description=description, json_schema_extra=extra, **kw)


def _choices(field: str) -> Any:
    return AliasChoices(*env_names(field)) if field in FALLBACKS else None


class Settings(BaseSettings):
    """Every ``DAGSMITH_*`` variable; an unset or empty variable takes the default."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    # ---------------------------------------------------------------- paths
    data_dir: Optional[str] = _f(
        "paths", "dagsmith's data folder for the project (metadata DB, block outputs, logs, keys); "
        "unset: `<project>/.dagsmith`", allowed="a folder path", default=DEFAULTS["data_dir"])
    repo_path: Optional[str] = _f(
        "paths", "set by dagsmith while a pipeline runs: the project folder `get_repo_path()` returns "
        "(then `MAGE_REPO_PATH`, then the nearest project folder upwards)", allowed="a folder path",
        default=DEFAULTS["repo_path"])
    variables_dir: Optional[str] = _f(
        "paths", "where runs store block outputs; wins over the project's `remote_variables_dir`/`variables_dir`",
        allowed="a folder path, `s3://…` or `gs://…`", default=DEFAULTS["variables_dir"])
    max_yaml_bytes: int = _f("paths", "largest project YAML file read, in bytes", default=DEFAULTS["max_yaml_bytes"], ge=1)

    # ---------------------------------------------------------------- runs
    env: Optional[str] = _f(
        "runs", "environment name: `kwargs['env']` of runs and what a trigger's `envs` is matched against "
        "(falls back to `ENV`)", allowed="a name", default=DEFAULTS["env"], validation_alias=_choices("env"))
    executor: Optional[Literal["local", "dask"]] = _f(
        "runs", "where blocks run when neither `--executor` nor the pipeline's `executor_type` says; unset: local",
        default=DEFAULTS["executor"])
    dask_scheduler: Optional[str] = _f(
        "runs", "Dask scheduler address when `--dask-scheduler` does not say; unset: the project's "
        "`dask: {scheduler: …}`, else a local cluster", allowed="an address such as `tcp://host:8786`",
        default=DEFAULTS["dask_scheduler"])
    dask_connect_timeout: float = _f("runs", "seconds to wait for the Dask scheduler to answer", default=DEFAULTS["dask_connect_timeout"], gt=0)
    dask_lost_after: float = _f(
        "runs", "seconds a lost Dask scheduler connection may be retried before the run fails",
        default=DEFAULTS["dask_lost_after"], ge=0)
    dask_workers: Optional[int] = _f(
        "runs", "worker processes of the local Dask cluster; unset: one per CPU", default=DEFAULTS["dask_workers"], ge=1)
    no_history: bool = _f("runs", "`dagsmith run` records nothing in the project's run history", default=DEFAULTS["no_history"])

    # ---------------------------------------------------------------- orchestration
    database_url: Optional[str] = _f(
        "orchestration", "metadata database; unset: SQLite in the data folder. Share one PostgreSQL "
        "database to run more schedulers, servers and workers", allowed="`postgresql://user@host:port/db`",
        secret=True, default=DEFAULTS["database_url"])
    scheduler_interval: float = _f("orchestration", "seconds between scheduler ticks", default=DEFAULTS["scheduler_interval"], gt=0)
    poll_interval: float = _f(
        "orchestration", "seconds between a worker's polls for new runs (runs queued in the same process wake it at once)",
        default=DEFAULTS["poll_interval"], gt=0)
    heartbeat_interval: float = _f("orchestration", "seconds between worker heartbeats", default=DEFAULTS["heartbeat_interval"], gt=0)
    heartbeat_timeout: float = _f(
        "orchestration", "a running run whose heartbeat is older than this many seconds is taken over by another worker",
        default=DEFAULTS["heartbeat_timeout"], gt=0)
    worker_concurrency: int = _f("orchestration", "runs one worker process executes at the same time", default=DEFAULTS["worker_concurrency"], ge=1)
    global_run_limit: Optional[int] = _f(
        "orchestration", "runs executing at the same time across all workers; unset or 0: no limit "
        "(falls back to Mage's `CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT_ALL_TRIGGERS`)",
        default=DEFAULTS["global_run_limit"], ge=0, validation_alias=_choices("global_run_limit"))
    block_run_limit: Optional[int] = _f(
        "orchestration", "blocks of one run executing at the same time; unset or 0: the engine's default "
        "(falls back to Mage's `CONCURRENCY_CONFIG_BLOCK_RUN_LIMIT`)",
        default=DEFAULTS["block_run_limit"], ge=0, validation_alias=_choices("block_run_limit"))
    catchup: Literal["none", "latest", "all"] = _f(
        "orchestration", "catch-up policy of schedules that do not set one", default=DEFAULTS["catchup"])
    log_retention_days: float = _f("orchestration", "days run logs are kept; 0 keeps them", default=DEFAULTS["log_retention_days"], ge=0)
    run_retention_days: Optional[float] = _f(
        "orchestration", "finished runs older than this many days are deleted with their block runs, logs and outputs; "
        "unset or 0 keeps them (a project's `variables_retention_period` deletes old outputs only)",
        default=DEFAULTS["run_retention_days"], ge=0)
    base_url: str = _f("orchestration", "the web UI's address, used in notification links", allowed="a URL", default=DEFAULTS["base_url"])

    # ---------------------------------------------------------------- server
    max_body_bytes: int = _f("server", "largest request body the API accepts, in bytes", default=DEFAULTS["max_body_bytes"], ge=1)
    allowed_hosts: Optional[str] = _f(
        "server", "host names the browser may use besides localhost/127.0.0.1 (also `--allowed-host`)",
        allowed="comma-separated names, `*.example.com` wildcards", default=DEFAULTS["allowed_hosts"])
    auth_user: Optional[str] = _f(
        "server", "the user who signs in to the UI (with `DAGSMITH_AUTH_PASSWORD_HASH` or `DAGSMITH_AUTH_PASSWORD`); "
        "unset: `<data dir>/auth.json`", allowed="a name", default=DEFAULTS["auth_user"])
    auth_password_hash: Optional[SecretStr] = _f(
        "server", "that user's password hash (`python -m dagsmith.server.ui.auth --hash`)",
        allowed="a `scrypt$…` string", secret=True, default=DEFAULTS["auth_password_hash"])
    auth_password: Optional[SecretStr] = _f(
        "server", "that user's password in clear (hashed in memory at start); prefer the hash", allowed="text",
        secret=True, default=DEFAULTS["auth_password"])
    session_key: Optional[SecretStr] = _f(
        "server", "key that signs UI session cookies; unset: `<data dir>/secrets/ui_session_key`", allowed="text",
        secret=True, default=DEFAULTS["session_key"])
    session_seconds: int = _f("server", "a UI session ends this many seconds after sign-in", default=DEFAULTS["session_seconds"], ge=1)
    session_idle_seconds: int = _f(
        "server", "a UI session idle this many seconds ends", default=DEFAULTS["session_idle_seconds"], ge=1)
    secret_key: Optional[SecretStr] = _f(
        "server", "Fernet key that encrypts stored secrets; unset: `<data dir>/secrets/key` (made on first use)",
        allowed="a key from `cryptography.fernet.Fernet.generate_key()`", secret=True, default=DEFAULTS["secret_key"])
    secret_key_file: Optional[str] = _f(
        "server", "a file holding secrets the file browser must never serve", allowed="a file path",
        default=DEFAULTS["secret_key_file"])
    editor_kernel: bool = _f(
        "server", "editor block runs go to a child process (off: threads in the server)", default=DEFAULTS["editor_kernel"])
    editor_kernel_idle: float = _f(
        "server", "seconds an idle editor kernel lives before it exits", default=DEFAULTS["editor_kernel_idle"], gt=0)

    # ---------------------------------------------------------------- faults
    fault_point: Optional[str] = _f(
        "faults", "the process SIGKILLs itself at this named point (`…:N`: the N-th time it is reached)",
        allowed="a point name such as `dataset.file_written`", default=DEFAULTS["fault_point"])
    fault_kill_before_store: Optional[str] = _f(
        "faults", "the run's process SIGKILLs itself before storing this block's output", allowed="a block uuid",
        default=DEFAULTS["fault_kill_before_store"])

    @field_validator("executor", "catchup", mode="before")
    @classmethod
    def _fold_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


# ---------------------------------------------------------------- validation


def allowed_values(field: str) -> str:
    """How the docs and errors say what a field accepts."""
    info = Settings.model_fields[field]
    extra = info.json_schema_extra or {}
    if extra.get("allowed"):
        return str(extra["allowed"])
    kind = _bare(info.annotation)
    if typing.get_origin(kind) is Literal:
        return ", ".join(f"`{v}`" for v in typing.get_args(kind))
    if kind is bool:
        return "`1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`"
    word = {int: "a whole number", float: "a number"}.get(kind, "text")
    bounds = []
    for meta in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value}")
    return word + (" " + ", ".join(bounds) if bounds else "")


def _bare(annotation: Any) -> Any:
    """``Optional[X]`` → ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def is_secret(field: str) -> bool:
    return bool((Settings.model_fields[field].json_schema_extra or {}).get("secret"))


def _bad(field: str, name: str, text: str, reason: str) -> str:
    shown = "(hidden)" if is_secret(field) else repr(text)
    return f"environment variable {name}={shown} is not valid ({reason})"


def _hint(fields: list[tuple[str, str]]) -> str:
    return "; ".join(f"set {name} to {allowed_values(field).replace('`', '')}, or unset it (default {_shown_default(field)})"
                     for field, name in fields) + " — every variable: docs/settings.md"


def _shown_default(field: str) -> str:
    value = DEFAULTS[field]
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def validate_field(field: str, text: str, name: str | None = None) -> Any:
    """Validate one variable's text with its field; ``ConfigError`` names the variable and what it allows."""
    name = name or env_name(field)
    try:
        value = Settings.__pydantic_validator__.validate_assignment(Settings.model_construct(), field, text)
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"]
        raise ConfigError(_bad(field, name, text, reason), hint=_hint([(field, name)])) from None
    return _plain(field, getattr(value, field))


def _plain(field: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


def load_settings() -> Settings:
    """Every variable validated at once; one ``ConfigError`` lists each bad one."""
    try:
        return Settings()
    except ValidationError as exc:
        problems, fields = [], []
        for err in exc.errors(include_url=False):
            loc = str(err["loc"][0]) if err["loc"] else ""
            field = loc if loc in DEFAULTS else _by_variable().get(loc.upper(), "")  # fields with fallbacks report the alias
            if not field:
                continue
            found = raw(field)
            name, text = found if found else (env_name(field), "")
            problems.append(_bad(field, name, text, err["msg"]))
            fields.append((field, name))
        raise ConfigError("; ".join(problems) or str(exc), hint=_hint(fields) if fields else None) from None


def _by_variable() -> dict[str, str]:
    return {name.upper(): field for field in DEFAULTS for name in env_names(field)}


assert set(Settings.model_fields) == set(DEFAULTS), "dagsmith.settings.DEFAULTS and the model name different fields"
assert TEXT_FIELDS <= set(DEFAULTS)
