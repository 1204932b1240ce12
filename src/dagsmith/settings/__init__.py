"""dagsmith's settings: every ``DAGSMITH_*`` environment variable, read through one place.

The one definition of each variable (name, type, default, allowed values, meaning) is the
pydantic-settings model ``dagsmith.settings.model.Settings``; ``docs/settings.md`` is
generated from it (``python -m dagsmith.settings.table --write``). Importing pydantic-settings
costs more than the whole of ``dagsmith --help``, so this module stays standard-library only
and every layer reads a setting with ``get("data_dir")``:

* a variable that is unset (or empty) gives the model's default, without importing the model
  (``DEFAULTS`` mirrors the model's defaults; a unit test keeps them equal);
* a set variable of a plain-text field (``TEXT_FIELDS``: paths, URLs, names) is returned as is;
* a set variable whose text is plainly valid (``1``/``off``, ``42``, ``0.5``, ``dask``, within
  the bounds in ``CHECKS``) is converted here, again without the model;
* anything else is validated by the model's own field, so a bad value is a ``ConfigError``
  naming the variable and the values it allows, whichever module asked.

``DEFAULTS`` and ``CHECKS`` repeat what the model says so the hot path stays cheap; the unit
tests hold them equal to the model and compare both parsers over a grid of values.

``load()`` validates every variable at once; ``check()`` does the same for ``dagsmith start``
(a bad value stops the server at start, not at the first request that reads it) and imports
the model only when a variable is not plainly valid, so a correct setup starts without
pydantic-settings and a bad one gets the model's error, word for word.
Variables are read when asked, not cached at import: dagsmith itself sets
``DAGSMITH_REPO_PATH`` while a pipeline runs, and tests change them.
"""

from __future__ import annotations

import os
from typing import Any

PREFIX = "DAGSMITH_"

#: the model's defaults, by field (tests/unit/core/test_settings.py checks they are the model's)
DEFAULTS: dict[str, Any] = {
    # where things are
    "data_dir": None,
    "repo_path": None,
    "variables_dir": None,
    "max_yaml_bytes": 8 * 1024 * 1024,
    # running pipelines
    "env": None,
    "executor": None,
    "dask_scheduler": None,
    "dask_connect_timeout": 10.0,
    "dask_lost_after": 10.0,
    "dask_workers": None,
    "no_history": False,
    # scheduler and workers
    "database_url": None,
    "scheduler_interval": 1.0,
    "poll_interval": 0.25,
    "heartbeat_interval": 2.0,
    "heartbeat_timeout": 30.0,
    "worker_concurrency": 8,
    "global_run_limit": None,
    "block_run_limit": None,
    "catchup": "latest",
    "log_retention_days": 30.0,
    "run_retention_days": None,
    "base_url": "http://127.0.0.1:6789",
    # server and sign-in
    "max_body_bytes": 1_048_576,
    "allowed_hosts": None,
    "auth_user": None,
    "auth_password_hash": None,
    "auth_password": None,
    "session_key": None,
    "session_seconds": 12 * 3600,
    "session_idle_seconds": 2 * 3600,
    "secret_key": None,
    "secret_key_file": None,
    "editor_kernel": True,
    "editor_kernel_idle": 300.0,
    # fault injection (tests)
    "fault_point": None,
    "fault_kill_before_store": None,
}

#: fields whose value is the variable's text unchanged (the model declares them ``str``/``SecretStr``)
TEXT_FIELDS = frozenset({
    "data_dir", "repo_path", "variables_dir", "env", "dask_scheduler", "database_url", "base_url",
    "allowed_hosts", "auth_user", "auth_password_hash", "auth_password", "session_key", "secret_key",
    "secret_key_file", "fault_point", "fault_kill_before_store",
})

#: non-text fields: kind and lower bound (``>``/``>=``), or the choices (the model's bounds, repeated)
CHECKS: dict[str, tuple] = {
    "max_yaml_bytes": ("int", ">=", 1),
    "executor": ("choice", ("local", "dask")),
    "dask_connect_timeout": ("float", ">", 0),
    "dask_lost_after": ("float", ">=", 0),
    "dask_workers": ("int", ">=", 1),
    "no_history": ("bool",),
    "scheduler_interval": ("float", ">", 0),
    "poll_interval": ("float", ">", 0),
    "heartbeat_interval": ("float", ">", 0),
    "heartbeat_timeout": ("float", ">", 0),
    "worker_concurrency": ("int", ">=", 1),
    "global_run_limit": ("int", ">=", 0),
    "block_run_limit": ("int", ">=", 0),
    "catchup": ("choice", ("none", "latest", "all")),
    "log_retention_days": ("float", ">=", 0),
    "run_retention_days": ("float", ">=", 0),
    "max_body_bytes": ("int", ">=", 1),
    "session_seconds": ("int", ">=", 1),
    "session_idle_seconds": ("int", ">=", 1),
    "editor_kernel": ("bool",),
    "editor_kernel_idle": ("float", ">", 0),
}

_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "f", "n"})
_UNSURE = object()

#: variables read when the field's own is unset, in order (Mage's names)
FALLBACKS: dict[str, tuple[str, ...]] = {
    "env": ("ENV",),
    "global_run_limit": ("CONCURRENCY_CONFIG_PIPELINE_RUN_LIMIT_ALL_TRIGGERS",),
    "block_run_limit": ("CONCURRENCY_CONFIG_BLOCK_RUN_LIMIT",),
}

_validated: dict[tuple[str, str, str], Any] = {}


def env_name(field: str) -> str:
    """``data_dir`` → ``DAGSMITH_DATA_DIR``."""
    return PREFIX + field.upper()


def env_names(field: str) -> tuple[str, ...]:
    """The variables a field is read from, first match wins."""
    return (env_name(field), *FALLBACKS.get(field, ()))


def raw(field: str) -> tuple[str, str] | None:
    """``(variable, text)`` of the first set, non-empty variable of ``field``, else None."""
    if field not in DEFAULTS:
        raise KeyError(f"no setting named {field!r}")
    for name in env_names(field):
        value = os.environ.get(name)
        if value is not None and value.strip():
            return name, value
    return None


def get(field: str) -> Any:
    """The value of one setting now: the variable's, validated by the model, or the default."""
    found = raw(field)
    if found is None:
        return DEFAULTS[field]
    name, text = found
    if field in TEXT_FIELDS:
        return text
    quick = plain_value(field, text)
    if quick is not _UNSURE:
        return quick
    key = (field, name, text)
    if key not in _validated:
        from dagsmith.settings.model import validate_field

        _validated[key] = validate_field(field, text, name)
    return _validated[key]


def load() -> Any:
    """Every setting validated at once (a ``Settings``); one ``ConfigError`` lists each bad variable."""
    from dagsmith.settings.model import load_settings

    return load_settings()


def check() -> None:
    """Validate every variable as ``load()`` does; the model is imported only when one needs it.

    Every set variable plainly valid (see ``plain_value``): nothing more to do. Anything the
    quick parser is unsure of — a bad value, whitespace only, a lower-case name (pydantic-settings
    reads names case-insensitively) — goes to ``load()``, whose ``ConfigError`` lists each bad one.
    """
    if not _plainly_valid(os.environ):
        load()


def _plainly_valid(environ: Any) -> bool:
    known = {name for field in DEFAULTS for name in env_names(field)}
    for name in environ:
        upper = name.upper()
        if name != upper and (upper.startswith(PREFIX) or upper in known):
            return False
    for field in CHECKS:
        for name in env_names(field):
            text = environ.get(name)
            if not text:  # unset or empty: the next name, else the default (env_ignore_empty)
                continue
            if not text.strip() or plain_value(field, text) is _UNSURE:
                return False
            break
    return True


def plain_value(field: str, text: str) -> Any:
    """``text`` converted when it is plainly valid for ``field`` (as the model would convert it), else ``_UNSURE``."""
    check = CHECKS[field]
    kind = check[0]
    if kind == "bool":
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else _UNSURE
    if kind == "choice":
        folded = text.strip().lower()
        return folded if folded in check[1] else _UNSURE
    if not text.isascii() or not text.replace(".", "", 1 if kind == "float" else 0).isdigit():
        return _UNSURE  # signs, exponents, spaces, underscores: the model decides
    value = int(text) if kind == "int" else float(text)
    op, bound = check[1], check[2]
    ok = value > bound if op == ">" else value >= bound
    return value if ok else _UNSURE
