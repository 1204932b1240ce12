"""The block cache (opt-in): skip a block whose code, inputs and variables are unchanged.

A block is cached when its own YAML entry says ``cache: true``, or its pipeline's YAML does
(``cache: true`` at the top), or the run asks for it (``dagsmith run --cache``); its own
``cache: false`` and ``--no-cache`` win. Data exporters write to the outside world, so
they are cached only when their own entry says ``cache: true`` — never through the
pipeline or ``--cache``. Dynamic blocks, their children and sensors are never cached.

The key is a digest of three things:

- the block's **code**: its file and the project modules it imports, transitively
  (``blocks.imports``), plus its YAML configuration;
- the **fingerprints of its upstream outputs** (``data.fingerprint``: content, not which
  run made them);
- its **runtime variables**: pipeline and run variables, ``env`` and the event; the
  execution date and interval (``execution_date``, ``interval_start_datetime``, ``ds``, …)
  only when the block's code (or a project module it imports, or its SQL) names one of
  them — otherwise every run, each with its own date, would miss.

A hit points the block's output at the stored partition of the run that made it and runs
no code; the block's status is ``cached``. Entries live beside the outputs
(``<store>/pipelines/<p>/.variables/.cache/``); one whose partition has been deleted by
retention is a miss.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

from dagsmith.blocks.imports import code_digest
from dagsmith.project.specs import BlockSpec, PipelineSpec

CACHED = "cached"

#: variables that name this run rather than describe its inputs
_RUN_KEYS = frozenset({"pipeline_run_id", "execution_partition", "context", "repo_path", "trigger_name", "pipeline_uuid"})
_DATE_KEYS = frozenset({"execution_date", "interval_start_datetime", "interval_end_datetime", "interval_seconds", "ds", "hr"})
_NEVER = frozenset({"sensor", "conditional", "callback", "extension", "scratchpad"})


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def cache_enabled(block: BlockSpec, spec: PipelineSpec, override: bool | None) -> bool:
    """Whether ``block`` is cached in a run with ``--cache`` (True), ``--no-cache`` (False) or neither (None)."""
    if override is False or block.type in _NEVER or block.is_dynamic:
        return False
    own = _flag((block.raw or {}).get("cache"))
    if own is None:
        own = _flag((block.configuration or {}).get("cache"))
    if own is not None:
        return own
    if block.type == "data_exporter":
        return False  # writes to a target: only the block's own ``cache: true`` may skip it
    if override:
        return True
    return bool(_flag((spec.raw or {}).get("cache")))


def key_variables(variables: Mapping[str, Any], *, dated: bool) -> str:
    """The part of a block's runtime variables that describes its inputs, as canonical JSON."""
    kept = {k: v for k, v in variables.items() if k not in _RUN_KEYS and (dated or k not in _DATE_KEYS)}
    return json.dumps(kept, sort_keys=True, default=str)


_DATE_NAMES = re.compile(r"\b(" + "|".join(sorted(_DATE_KEYS)) + r")\b")


def uses_dates(block: BlockSpec, project_root: Any) -> bool:
    """Whether the block's code names a date variable (then the run's dates are part of its key)."""
    from pathlib import Path

    from dagsmith.blocks.imports import project_dependencies

    files = [Path(block.path)]
    if not block.is_sql:
        files += project_dependencies(Path(block.path), Path(project_root))
    for f in files:
        try:
            if _DATE_NAMES.search(f.read_text(encoding="utf-8", errors="replace")):
                return True
        except OSError:
            return True
    return False


def cache_key(block: BlockSpec, project_root: Any, input_fingerprints: Iterable[str], variables: str) -> str:
    """The cache key of one block attempt."""
    config = json.dumps(dict(block.configuration or {}), sort_keys=True, default=str)
    parts = [f"type={block.type}", f"config={config}", *(f"in={fp}" for fp in input_fingerprints), f"vars={variables}"]
    return code_digest(block.path, project_root, extra=parts)
