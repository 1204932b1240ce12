"""The hook ``dagsmith run`` uses to record CLI runs (``history_observer``); see ``service``."""

from __future__ import annotations

from dagsmith.orchestration.service import CliHistoryObserver, history_observer, record_cli_run

__all__ = ["CliHistoryObserver", "history_observer", "record_cli_run"]
