"""Builders for small projects on disk, used by tests across packages."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterable

import yaml

from dagsmith.project.layout import block_relpath


def make_project(base: Path, name: str = "proj") -> Path:
    """An empty project folder in Mage's layout (no example pipeline)."""
    from dagsmith.project.scaffold import init_project

    return init_project(base / name, example=False)


def add_pipeline(
    root: Path,
    uuid: str,
    blocks: Iterable[dict],
    *,
    extra: dict | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Write ``pipelines/<uuid>/metadata.yaml`` and block files.

    Each block dict: uuid, type (default transformer), upstream (list), code (str, dedented),
    language (python), plus any raw keys (configuration, retry_config, timeout).
    """
    entries = []
    for b in blocks:
        b = dict(b)
        code = b.pop("code", None)
        btype = b.pop("type", "transformer")
        language = b.pop("language", "python")
        upstream = b.pop("upstream", [])
        entry = {
            "uuid": b.pop("uuid"),
            "type": btype,
            "language": language,
            "upstream_blocks": upstream,
            "downstream_blocks": [],
            "configuration": b.pop("configuration", {}),
        }
        entry.update(b)
        entries.append(entry)
        if code is not None:
            path = root / block_relpath(btype, entry["uuid"], language)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(code))
    for e in entries:
        e["downstream_blocks"] = [x["uuid"] for x in entries if e["uuid"] in x["upstream_blocks"]]
    data = {"name": uuid, "uuid": uuid, "type": "python", "blocks": entries, "callbacks": [], "conditionals": []}
    data.update(extra or {})
    folder = root / "pipelines" / uuid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for rel, text in (files or {}).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return folder / "metadata.yaml"
