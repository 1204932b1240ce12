"""The one masking source: every known secret value, replaced by ``******`` wherever text leaves dagsmith.

Fed by:

* the secrets store (``orchestration.secrets``): a value set or changed in this process is
  added at once; other processes see it through ``add_source`` — a callable that returns
  every current value, consulted again whenever the last look is older than
  ``REFRESH_SECONDS`` (and forced at each run start with ``refresh()``);
* ``io_config.yaml`` values that came from ``env_var()`` or a secret under a secret-looking
  key (``POSTGRES_PASSWORD``, ``…_TOKEN``, ``…_SECRET``…), and every ``mage_secret_var()``;
* ``.env`` entries with secret-looking names, and the password of the metadata DB URL.

Applied by the run-log writer, the editor's output, the server log (a logging filter), the
CLI's run output, API errors and notification texts. Values shorter than ``MIN_LENGTH`` are
not masked (masking ``1`` or ``on`` would garble every log). The URL-encoded form of a value
is masked too (passwords inside connection URIs).

It is the only mask: ``io_config.redact``/``redact_text``/``is_secret_key`` (reprs and connector
errors), the run-log writer and notifications all come here (``redact_mapping``, ``mask_with``,
``looks_secret``), so a secret reads ``******`` wherever it would have appeared.

This module imports nothing of dagsmith, so every layer may use it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping

MASK = "******"
MIN_LENGTH = 4
#: placeholders an unset variable renders as; masking them would garble every log
_NOT_SECRETS = frozenset({"None", "none", "null", "NULL", "true", "false", "True", "False", "undefined"})
REFRESH_SECONDS = 2.0

_SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "PRIVATE", "PKEY", "CREDENTIAL", "API_KEY", "ACC_KEY", "ACCESS_KEY")
_NOT_SECRET_SUFFIXES = ("_FILEPATH", "_PATH", "_KEY_ID", "_ID")


def looks_secret(name: str) -> bool:
    """True for names that hold secrets by convention (``*_PASSWORD``, ``*_TOKEN``, ``*SECRET*``…)."""
    upper = str(name).upper()
    if upper.endswith(_NOT_SECRET_SUFFIXES):
        return False
    return any(word in upper for word in _SECRET_WORDS)


def redact_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``mapping`` with the value of every secret-looking key replaced by ``MASK`` (nested too)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if looks_secret(str(key)) and value not in (None, ""):
            out[key] = MASK
        elif isinstance(value, Mapping):
            out[key] = redact_mapping(value)
        else:
            out[key] = value
    return out


def secret_values(mapping: Mapping[str, Any]) -> list[str]:
    """Every value under a secret-looking key of ``mapping`` (nested, lists too), longest first."""
    found: set[str] = set()

    def walk(obj: Any, secret: bool) -> None:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                walk(v, secret or looks_secret(str(k)))
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v, secret)
        elif secret and obj is not None and str(obj):
            found.add(str(obj))

    walk(mapping, False)
    return sorted(found, key=len, reverse=True)


def _usable(value: object) -> str | None:
    text = str(value) if value is not None else ""
    return text if len(text) >= MIN_LENGTH and text not in _NOT_SECRETS else None


def _with_encoded(values: Iterable[str]) -> tuple[str, ...]:
    """The values and their URL-encoded forms (passwords inside connection URIs), longest first."""
    from urllib.parse import quote

    out = set(values)
    for value in list(out):
        encoded = quote(value, safe="")
        if encoded != value:
            out.add(encoded)
    return tuple(sorted(out, key=len, reverse=True))


def _replace(text: str, ordered: Iterable[str]) -> str:
    for value in ordered:
        if value in text:
            text = text.replace(value, MASK)
    return text


class Masker:
    """Known secret values and the text replacement; thread-safe, cheap when nothing is known."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._static: set[str] = set()
        self._sources: dict[str, Callable[[], Iterable[str]]] = {}
        self._from_sources: dict[str, set[str]] = {}
        self._checked = 0.0
        self._ordered: tuple[str, ...] = ()

    # ------------------------------------------------------------ feeding
    def add(self, *values: object) -> None:
        """Mask these values from now on (strings shorter than ``MIN_LENGTH`` are ignored)."""
        fresh = {v for v in map(_usable, values) if v}
        if not fresh - self._static:
            return
        with self._lock:
            self._static |= fresh
            self._rebuild()

    def add_source(self, key: str, source: Callable[[], Iterable[str]]) -> None:
        """Register (or replace) a callable returning every current value, e.g. a secrets store."""
        with self._lock:
            self._sources[key] = source
            self._checked = 0.0  # look at it on the next mask()

    def provide(self, key: str, values: Iterable[str]) -> None:
        """Values source ``key`` holds now, read by its owner (a worker reads them in its claim's
        transaction): the same as a ``refresh()`` of that source, without asking it."""
        found = {v for v in map(_usable, values) if v}
        with self._lock:
            if key not in self._sources or self._from_sources.get(key) == found:
                return
            self._from_sources[key] = found
            self._rebuild()

    def remove_source(self, key: str) -> None:
        with self._lock:
            self._sources.pop(key, None)
            self._from_sources.pop(key, None)
            self._rebuild()

    def refresh(self) -> None:
        """Ask every source for its values now (a run start calls this)."""
        with self._lock:
            sources = dict(self._sources)
            self._checked = time.monotonic()
        found: dict[str, set[str]] = {}
        for key, source in sources.items():
            try:
                found[key] = {v for v in map(_usable, source()) if v}
            except Exception:  # noqa: BLE001 - a source that cannot answer keeps its last values
                continue
        with self._lock:
            self._from_sources.update(found)
            self._rebuild()

    def _rebuild(self) -> None:
        values = set(self._static)
        for group in self._from_sources.values():
            values |= group
        self._ordered = _with_encoded(values)

    def values(self) -> tuple[str, ...]:
        return self._ordered

    # ------------------------------------------------------------ applying
    def mask(self, text: str) -> str:
        """``text`` with every known value replaced by ``******``."""
        if self._sources and time.monotonic() - self._checked > REFRESH_SECONDS:
            self.refresh()
        if not text or not self._ordered:
            return text
        return _replace(text, self._ordered)

    def mask_obj(self, obj: object) -> object:
        """A copy of a JSON-like value with every string masked."""
        if isinstance(obj, str):
            return self.mask(obj)
        if isinstance(obj, dict):
            return {k: self.mask_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.mask_obj(v) for v in obj]
        return obj


MASKER = Masker()


def mask(text: str) -> str:
    """The process-wide masker's ``mask``."""
    return MASKER.mask(text)


def mask_with(text: str, secrets: Mapping[str, Any] | Iterable[object] | None) -> str:
    """``text`` masked with the process-wide values and ``secrets`` as well: values a caller holds
    (a connector's password) or the secret-looking values of a profile mapping."""
    values = secret_values(secrets) if isinstance(secrets, Mapping) else list(secrets or [])
    extra = _with_encoded(v for v in map(_usable, values) if v)
    return _replace(MASKER.mask(text), extra) if extra else MASKER.mask(text)


def add_secret(*values: object) -> None:
    MASKER.add(*values)


def add_url_password(url: str | None) -> None:
    """Mask the password of a database URL (``scheme://user:password@host/db``)."""
    if not url or "://" not in url:
        return
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        MASKER.add(password, unquote(password))


class MaskingFilter(logging.Filter):
    """A logging filter that masks the message, its arguments and the formatted traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not MASKER.values() and not MASKER._sources:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string stays the logging module's problem
            return True
        masked = MASKER.mask(message)
        if record.exc_info and not record.exc_text:
            import traceback

            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = MASKER.mask(record.exc_text)
        record.msg, record.args = masked, ()
        return True


def install_logging_filter(logger: logging.Logger | None = None) -> None:
    """Mask every record that reaches the handlers of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    handlers = target.handlers or []
    for handler in handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


class MaskedStream:
    """A text stream that masks what is written to it (the CLI's consoles write through one)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(MASKER.mask(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def mask_process_streams() -> None:
    """Mask everything this process writes to ``sys.stdout``/``sys.stderr`` (once).

    For the output that bypasses loggers and consoles: a thread's uncaught traceback (its name and
    message may hold a secret), a library's print. ``dagsmith run``, ``dagsmith start`` and the
    editor kernel call it at start.
    """
    import sys

    if not isinstance(sys.stdout, MaskedStream):
        sys.stdout = MaskedStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, MaskedStream):
        sys.stderr = MaskedStream(sys.stderr)  # type: ignore[assignment]
