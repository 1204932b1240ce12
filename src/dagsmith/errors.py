"""The one error root of dagsmith and the families every layer raises.

Every error a user can cause is a ``DagsmithError`` whose message says what is
wrong, where (file, line, block, profile, field) and what to do about it.
Errors are picklable (they cross thread and process boundaries) and carry an
optional ``hint`` that the CLI and the API print after the message.

``TransientError`` marks failures worth retrying (network hiccups, a 5xx, a
lock); ``TerminalError`` marks failures a retry cannot fix (bad config, 4xx).
"""

from __future__ import annotations


class DagsmithError(Exception):
    """Root of every error dagsmith raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self):  # keep errors picklable with their keyword arguments
        return (_rebuild, (type(self), self.message, self.hint, self.__dict__))

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


def _rebuild(cls, message, hint, state):
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    err.message = message
    err.hint = hint
    return err


class TransientError(DagsmithError):
    """A failure that may succeed when tried again (retries apply)."""


class TerminalError(DagsmithError):
    """A failure no retry can fix; fix the input or configuration instead."""


class ProjectError(TerminalError, ValueError):
    """The project on disk is malformed: a YAML file, a block file, a missing folder."""


class ConfigError(ProjectError):
    """io_config.yaml, a profile, an env var or a setting is missing or wrong."""


class ValidationError(ProjectError):
    """A pipeline failed validation; ``problems`` lists every problem found."""

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])


class NothingToRun(ValidationError):
    """A pipeline without a block to run (empty, or only notes such as scratchpads).

    Mage's ``mage run`` exits 0 for such a pipeline having run nothing; ``dagsmith run``
    says so and exits 0 too, records no run, and a triggered run of it fails (a run that
    executed none of its blocks is never ``completed``).
    """


class BlockError(DagsmithError):
    """A block failed while running: user code raised, a test failed, or it timed out.

    ``block_uuid`` names the block; ``location`` is ``file:line`` in the user's code
    when known; ``user_traceback`` is the traceback trimmed to the user's frames.
    """

    def __init__(
        self,
        message: str,
        *,
        block_uuid: str | None = None,
        location: str | None = None,
        user_traceback: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.block_uuid = block_uuid
        self.location = location
        self.user_traceback = user_traceback


class BlockTimeout(BlockError):
    """A block ran longer than its ``timeout``."""


class BlockTestFailure(BlockError):
    """One or more ``@test`` functions of a block failed."""


class RunCancelled(DagsmithError):
    """The run was cancelled while this block was running or waiting."""


class ConnectorError(DagsmithError):
    """A connector could not reach, read or write its system."""


class TransientConnectorError(ConnectorError, TransientError):
    """A connector failure worth retrying (timeout, 5xx, dropped connection)."""


class TerminalConnectorError(ConnectorError, TerminalError):
    """A connector failure a retry cannot fix (auth, 4xx, schema mismatch)."""


class SchemaDriftError(TerminalConnectorError):
    """An append or partition replace was refused before writing: the frame's columns or types do not
    match the target's (``changes`` lists them; the message shows them side by side)."""

    def __init__(self, message: str, *, changes: list | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.changes = list(changes or [])


class MissingDependencyError(DagsmithError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the Python package '{module}', which is not installed.",
            hint=f"pip install 'dagsmith[{extra}]'",
        )
        self.feature = feature
        self.extra = extra
        self.module = module


def require(module: str, *, feature: str, extra: str):
    """Import an optional module or raise ``MissingDependencyError`` with the install line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(feature, extra, module) from exc


class NotAvailableInDagsmith(TerminalError):
    """Block code used a ``mage_ai`` name that dagsmith does not implement (yet), e.g. a MySQL connector."""


class MageNameUnavailable(DagsmithError, ImportError):
    """Block code imported a ``mage_ai`` module that dagsmith does not provide (yet)."""

    def __init__(self, message: str, *, name: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.name = name
