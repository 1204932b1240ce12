"""The variables store: block outputs on disk, per pipeline and partition.

Layout (Mage's, under dagsmith's data folder)::

    <data_dir>/pipelines/<pipeline>/.variables/<partition>/<block_uuid>/
        _meta.json            {"count": n, "multi": bool}
        output_0/ output_1/   one folder per output (see dagsmith.data.serde)
    <data_dir>/pipelines/<pipeline>/.variables/<partition>/_run.json   run manifest
    <data_dir>/pipelines/<pipeline>/.variables/latest.json             block -> newest partition

A block's outputs are written to a temporary folder and renamed into place, so
readers see all of a block's outputs or none. Values, not files, cross the
API: ``write_outputs`` takes the list of outputs; ``read_block_value`` returns
what a downstream block receives.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

from dagsmith.data.serde import read_value, write_value
from dagsmith.errors import ProjectError

_latest_lock = threading.Lock()

INLINE_MAX_ITEMS = 10_000
INLINE_MAX_BYTES = 256 * 1024


class OutputsMissing(LookupError):
    """No stored outputs for a block in the asked partition."""


class UnsafeStorePath(ProjectError):
    """A pipeline, partition or block name that would put outputs outside the store's folder."""


def _segments_ok(name: str, *, nested: bool) -> bool:
    if not name or "\x00" in name or "\\" in name or os.path.isabs(name) or name.startswith("/"):
        return False
    parts = name.split("/")
    if len(parts) > 1 and not nested:
        return False
    return all(part not in ("", ".", "..") and not part.startswith(".") for part in parts)


class VariableStore:
    """Block outputs under ``<data_dir>/pipelines``; safe for concurrent writers of different blocks.

    Every path it builds is checked here as well as by the project's name gate (defence in
    depth): names must be relative, without ``..`` or hidden segments, and the resolved
    folder must lie under ``<data_dir>/pipelines`` — so a block named ``/srv/shared/v`` or
    ``../x`` can never make a run replace or delete anything outside the store.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir) / "pipelines"

    # ------------------------------------------------------------ paths
    def _confine(self, path: Path, what: str) -> Path:
        real_root = self.root.resolve()
        real = path.resolve()
        if real != real_root and real_root not in real.parents:
            raise UnsafeStorePath(f"{what} resolves to {real}, outside the variables store {real_root}")
        return path

    def variables_dir(self, pipeline: str) -> Path:
        if not _segments_ok(str(pipeline), nested=False):
            raise UnsafeStorePath(f"pipeline {str(pipeline)[:80]!r} is not a safe folder name for block outputs")
        return self._confine(self.root / pipeline / ".variables", f"pipeline {pipeline!r}")

    def block_dir(self, pipeline: str, partition: str, block_uuid: str) -> Path:
        if not _segments_ok(str(partition), nested=False):
            raise UnsafeStorePath(f"partition {str(partition)[:80]!r} is not a safe folder name for block outputs")
        if not _segments_ok(str(block_uuid), nested=True):
            raise UnsafeStorePath(f"block {str(block_uuid)[:80]!r} is not a safe folder name for block outputs")
        return self._confine(self.variables_dir(pipeline) / partition / block_uuid, f"block {block_uuid!r}")

    # ------------------------------------------------------------ writing
    def write_outputs(
        self,
        pipeline: str,
        partition: str,
        block_uuid: str,
        outputs: list[Any],
        *,
        multi: bool,
        update_latest: bool = True,
    ) -> Path:
        """Store a block's outputs atomically and (unless told not to) point ``latest`` at this partition.

        A run passes ``update_latest=False`` and calls ``set_latest`` once at its end.
        """
        final = self.block_dir(pipeline, partition, block_uuid)
        if self._write_inline(final, outputs, multi):
            if update_latest:
                self.set_latest(pipeline, {block_uuid: partition})
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name.replace('/', '_')}.", dir=final.parent))
        try:
            packed = multi and not any(_is_frame(v) for v in outputs)
            if packed:  # a long list of plain values is one file, not one folder per item
                write_value(list(outputs), tmp / "output_0")
            else:
                for i, value in enumerate(outputs):
                    write_value(value, tmp / f"output_{i}")
            meta = {"count": 1 if packed else len(outputs), "multi": multi, "packed": packed}
            (tmp / "_meta.json").write_text(json.dumps(meta))
            if final.exists():
                trash = final.with_name(f".{final.name}.old.{os.getpid()}.{threading.get_ident()}")
                os.replace(final, trash)
                os.replace(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if update_latest:
            self.set_latest(pipeline, {block_uuid: partition})
        return final

    def _write_inline(self, final: Path, outputs: list[Any], multi: bool) -> bool:
        """Small plain values live inside ``_meta.json``: one file per block instead of a folder tree.

        Most blocks of long chains return small values; this keeps persisting them from
        costing more than running them.
        """
        if len(outputs) > INLINE_MAX_ITEMS or any(_is_frame(v) for v in outputs):
            return False
        from dagsmith.data.serde import is_plain_json

        if not is_plain_json(list(outputs)):
            return False
        text = json.dumps({"count": len(outputs), "multi": multi, "inline": list(outputs)})
        if len(text) > INLINE_MAX_BYTES:
            return False
        final.mkdir(parents=True, exist_ok=True)
        _write_text_atomic(final / "_meta.json", text)
        for old in final.glob("output_*"):  # a re-run of the same partition replaced folder outputs
            shutil.rmtree(old, ignore_errors=True)
        return True

    def set_latest(self, pipeline: str, entries: dict[str, str]) -> None:
        path = self.variables_dir(pipeline) / "latest.json"
        with _latest_lock:
            current = _read_json(path) or {}
            current.update(entries)
            _write_json_atomic(path, current)

    def _partition_dir(self, pipeline: str, partition: str) -> Path:
        if not _segments_ok(str(partition), nested=False):
            raise UnsafeStorePath(f"partition {str(partition)[:80]!r} is not a safe folder name for block outputs")
        return self._confine(self.variables_dir(pipeline) / partition, f"partition {partition!r}")

    def write_manifest(self, pipeline: str, partition: str, manifest: dict[str, Any]) -> None:
        _write_json_atomic(self._partition_dir(pipeline, partition) / "_run.json", manifest)

    # ------------------------------------------------------------ reading
    def read_manifest(self, pipeline: str, partition: str) -> dict[str, Any] | None:
        return _read_json(self._partition_dir(pipeline, partition) / "_run.json")

    def latest_partition(self, pipeline: str, block_uuid: str) -> str | None:
        latest = _read_json(self.variables_dir(pipeline) / "latest.json") or {}
        return latest.get(block_uuid)

    def has_outputs(self, pipeline: str, partition: str, block_uuid: str) -> bool:
        return (self.block_dir(pipeline, partition, block_uuid) / "_meta.json").is_file()

    def read_outputs(self, pipeline: str, partition: str, block_uuid: str) -> tuple[list[Any], bool]:
        folder = self.block_dir(pipeline, partition, block_uuid)
        meta = _read_json(folder / "_meta.json")
        if meta is None:
            raise OutputsMissing(f"no stored output of block '{block_uuid}' in {folder}")
        if "inline" in meta:
            return list(meta["inline"]), bool(meta.get("multi"))
        values = [read_value(folder / f"output_{i}") for i in range(int(meta["count"]))]
        if meta.get("packed"):
            values = list(values[0])
        return values, bool(meta.get("multi"))

    def read_block_value(self, pipeline: str, partition: str, block_uuid: str) -> Any:
        """What a downstream block receives: the single output, or the list of outputs."""
        values, multi = self.read_outputs(pipeline, partition, block_uuid)
        return as_input(values, multi)

    def partitions(self, pipeline: str) -> list[str]:
        base = self.variables_dir(pipeline)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def delete_partitions(self, pipeline: str, partitions: Iterable[str]) -> int:
        removed = 0
        for part in partitions:
            folder = self._partition_dir(pipeline, part)
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def _copy_on_write() -> bool:
    import pandas as pd

    return int(pd.__version__.split(".", 1)[0]) >= 3 or bool(pd.options.mode.copy_on_write)


def handoff(value: Any) -> Any:
    """The value a downstream block receives from an upstream output held in memory.

    pandas frames and series are handed over as new objects (a shallow copy under
    pandas' copy-on-write, a deep copy without it), so a downstream block that edits its
    input in place changes neither the stored output (written in the background) nor
    what sibling blocks receive. Other values are passed as they are.
    """
    if type(value).__module__.split(".", 1)[0] == "pandas" and type(value).__name__ in ("DataFrame", "Series"):
        return value.copy(deep=not _copy_on_write())
    if type(value) is list and any(type(v).__module__.startswith("pandas") for v in value):
        return [handoff(v) for v in value]
    return value


def _is_frame(value: Any) -> bool:
    return type(value).__module__.split(".", 1)[0] in ("pandas", "polars", "pyarrow")


def as_input(values: list[Any], multi: bool) -> Any:
    """Mage's hand-off rule: one output is passed as itself, none or several as a list.

    Measured on Mage 0.9.80: a block returning ``[x]`` hands ``x`` downstream, ``None``
    hands ``[]``, ``(1, 2)`` hands ``[1, 2]``. ``multi`` (the block returned a list or tuple)
    is kept for callers that store it; it does not change what downstream blocks get.
    """
    if len(values) == 1:
        return values[0]
    return list(values)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return None


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(path, json.dumps(data, default=str))


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
