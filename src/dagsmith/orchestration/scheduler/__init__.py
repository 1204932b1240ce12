"""The scheduler: schedule arithmetic (``triggers``), the tick loop (``loop``) and backfills."""
