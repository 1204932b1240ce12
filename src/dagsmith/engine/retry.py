"""Retry settings (Mage's ``retry_config``) and the waits between attempts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 0
    delay: float = 5.0
    max_delay: float = 60.0
    exponential_backoff: bool = True

    @classmethod
    def merged(cls, *configs: Mapping[str, Any] | None) -> "RetryPolicy":
        """Project ⊕ pipeline ⊕ block: later configs override earlier keys."""
        values: dict[str, Any] = {}
        for cfg in configs:
            if cfg:
                values.update({k: v for k, v in cfg.items() if v is not None})
        return cls(
            retries=max(0, int(values.get("retries", 0) or 0)),
            delay=max(0.0, float(values.get("delay", 5) or 0)),
            max_delay=max(0.0, float(values.get("max_delay", 60) or 0)),
            exponential_backoff=bool(values.get("exponential_backoff", True)),
        )

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 = first retry), capped by ``max_delay``."""
        if attempt <= 1:
            return 0.0
        wait = self.delay * (2 ** (attempt - 2)) if self.exponential_backoff else self.delay
        return min(wait, self.max_delay) if self.max_delay else wait
