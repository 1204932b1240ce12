"""Per-block capture of ``print`` output and the block ``logger``.

Blocks run in worker threads of one process, so ``sys.stdout`` is replaced
(once, for the process) by a router that sends each thread's writes to the
sink of the block that thread is running, and everything else to the real
stream. Each complete line becomes a structured record
``{timestamp, level, message, block_uuid}`` handed to ``emit``.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from datetime import datetime, timezone
from typing import Any, Callable

_local = threading.local()
_install_lock = threading.Lock()

Emit = Callable[[dict], None]


class BlockSink:
    """Collects one block's output lines and hands each to ``emit`` as a record."""

    def __init__(self, block_uuid: str, emit: Emit) -> None:
        self.block_uuid = block_uuid
        self.emit = emit
        self.lines: list[str] = []
        self._partial = {"info": "", "warning": ""}

    def write(self, text: str, level: str = "info") -> None:
        buf = self._partial[level] + text
        *complete, rest = buf.split("\n")
        self._partial[level] = rest
        for line in complete:
            self._line(line, level)

    def _line(self, line: str, level: str) -> None:
        self.lines.append(line)
        self.emit_record(
            {
                "timestamp": datetime.now(timezone.utc).isoformat(),
                "level": level,
                "message": line,
                "block_uuid": self.block_uuid,
            }
        )

    def emit_record(self, record: dict) -> None:
        # Observers print to the real streams: routing is off while they run.
        previous = getattr(_local, "sink", None)
        _local.sink = None
        try:
            self.emit(record)
        finally:
            _local.sink = previous

    def flush(self) -> None:
        for level, rest in self._partial.items():
            if rest:
                self._partial[level] = ""
                self._line(rest, level)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class _Router(io.TextIOBase):
    def __init__(self, real: Any, level: str) -> None:
        self.real = real
        self.level = level

    def write(self, text: str) -> int:  # type: ignore[override]
        sink = getattr(_local, "sink", None)
        if sink is None:
            return self.real.write(text)
        sink.write(text, self.level)
        return len(text)

    def flush(self) -> None:
        sink = getattr(_local, "sink", None)
        if sink is None:
            self.real.flush()

    def isatty(self) -> bool:
        return False if getattr(_local, "sink", None) else self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")


def _install() -> None:
    # Re-checked on every use: test runners and notebooks swap sys.stdout themselves.
    if isinstance(sys.stdout, _Router) and isinstance(sys.stderr, _Router):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, "info")  # type: ignore[assignment]
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, "warning")  # type: ignore[assignment]


class capturing:
    """Context manager: route this thread's stdout/stderr to ``sink`` while it is active."""

    def __init__(self, sink: BlockSink) -> None:
        self.sink = sink

    def __enter__(self) -> BlockSink:
        _install()
        self.previous = getattr(_local, "sink", None)
        _local.sink = self.sink
        return self.sink

    def __exit__(self, *exc: Any) -> None:
        self.sink.flush()
        _local.sink = self.previous


_FORMATTER = logging.Formatter()


class _BlockLogger(logging.Logger):
    """``kwargs['logger']``: records go straight to the block's sink (no handler objects to build per block)."""

    def __init__(self, name: str, sink: BlockSink) -> None:
        super().__init__(name, logging.INFO)
        self.sink = sink
        self.propagate = False

    def callHandlers(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        try:
            message = _FORMATTER.format(record)
        except Exception:  # a bad format string must not break the block
            message = str(record.msg)
        level = record.levelname.lower()
        for line in message.splitlines() or [""]:
            self.sink.lines.append(line)
            self.sink.emit_record(
                {
                    "timestamp": datetime.now(timezone.utc).isoformat(),
                    "level": level,
                    "message": line,
                    "block_uuid": self.sink.block_uuid,
                }
            )


def block_logger(sink: BlockSink, pipeline_uuid: str) -> logging.Logger:
    """A logger for ``kwargs['logger']``; not registered globally, so runs leave nothing behind."""
    return _BlockLogger(f"dagsmith.{pipeline_uuid}.{sink.block_uuid}", sink)
