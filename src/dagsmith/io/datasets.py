"""Partitioned Parquet datasets that are never seen half-written: staged, then published atomically.

Owns writing and reading hive-partitioned Parquet datasets (``col=value/…parquet``) for
``FileIO`` (local folders) and the object stores (GCS, S3; any ``pyarrow.fs`` filesystem).
A writer killed at any instant leaves the dataset as it was before the write, or as
it is after it — never a mix, never a truncated file — and the next write cleans up
what the killed one left.

Every write first puts its new files in a *staging* folder beside the dataset,
``<parent>/.<name>.tmp-<pid>`` (outside the dataset, so no reader lists it), then
publishes:

- **local**: the staging folder is made into the complete next version (the new
  files, plus hard links to the current files it keeps — no data is copied), and is
  swapped with the dataset folder in one ``renameat2(RENAME_EXCHANGE)`` (two renames
  where the kernel lacks it, recovered on the next write). Any reader — pyarrow,
  pandas, DuckDB, Spark — sees the old folder or the new one. Writers of one dataset
  take turns (``flock`` on ``.<name>.lock`` beside it).
- **object stores** (no rename): the manifest beside the dataset,
  ``<parent>/.<name>.manifest.json``, lists exactly the dataset's files. A write
  records itself there as *pending* (its staging prefix, host and pid, then the files
  it will add), writes its files to staging, copies them into the dataset
  (server-side; each object appears whole or not at all), then rewrites the manifest
  with the new file list — one PUT, the commit point — and deletes the files it
  replaced. dagsmith's loaders read what the manifest lists, so they see the old
  version or the new one; other readers may meanwhile see complete new files beside
  the old ones. Nothing but Parquet files is put inside the dataset's prefix (an
  external table over it keeps working). A second writer while one is pending waits
  for it (up to ``WAIT_FOR_WRITER_S``, then a retryable error) unless the pending one
  is dead. Writers take turns through the manifest: every rewrite of it is a
  compare-and-swap through the connector's client (S3 ``If-None-Match: *`` /
  ``If-Match: <ETag>``, GCS ``ifGenerationMatch``), so of writers that claim at once —
  or take over a dead writer's claim at once — exactly one wins and the others wait,
  however slow they are. A store that cannot do that (another pyarrow filesystem, an
  endpoint that failed :meth:`~dagsmith.io.objectstore.ObjectStore.conditional_writes`)
  falls back to writing the claim, waiting ``SETTLE_S`` and reading it back: a writer
  starved for longer than that can lose its claim mid-write and fail (retryably).

Leftovers of a killed writer (``.<name>.tmp-<pid>``; copies it made before its
commit; files its commit replaced) are removed by the next write to the dataset:
locally under the lock, on object stores when the pending writer's process is gone
(same host) or started more than a day ago (another host).

Write modes: ``append`` (new files beside the current ones; pyarrow's
``overwrite_or_ignore``), ``delete_matching`` (the partitions written are replaced),
``replace_partition`` (the partition of ``partition`` is replaced: its files go,
even when the frame has no rows for it), ``replace`` (the whole dataset), ``error``
(refuse when the dataset has files). Test hooks (:mod:`dagsmith.io.faults`):
``dataset.file_written``, ``dataset.written``, ``dataset.staged``,
``dataset.copied``, ``dataset.committed``, ``dataset.swapped``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import unquote

from dagsmith.errors import ConfigError, TerminalConnectorError
from dagsmith.io.faults import fault_point

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from dagsmith.io.partitions import Partition

STALE_AFTER_S = 24 * 3600  # a pending write of another host is abandoned after this long
WAIT_FOR_WRITER_S = 600.0  # how long a write waits for another live writer of the same dataset
SETTLE_S = 0.2  # stores without conditional writes: wait before reading back a claim (two writers at once)
_LIVE_WRITES: set[str] = set()  # write ids in progress in this process (threads share a pid)
MODES = ("append", "delete_matching", "replace_partition", "replace", "error")


@dataclass
class DatasetWrite:
    """What one write did."""

    root: str
    files: list[str] = field(default_factory=list)
    """The new files, relative to the dataset's root."""
    removed: list[str] = field(default_factory=list)
    """Files of the previous version the write replaced."""
    rows: int = 0


def dataset_mode(if_exists: Any = None, existing_data_behavior: str | None = None) -> str:
    """The write mode from Mage's ``if_exists`` or pyarrow's ``existing_data_behavior`` (the first wins)."""
    if if_exists not in (None, ""):
        from dagsmith.io.base import ExportWritePolicy, write_policy

        return {
            ExportWritePolicy.APPEND: "append",
            ExportWritePolicy.REPLACE: "replace",
            ExportWritePolicy.REPLACE_PARTITION: "replace_partition",
            ExportWritePolicy.FAIL: "error",
        }[write_policy(if_exists)]
    behavior = str(existing_data_behavior or "overwrite_or_ignore")
    modes = {"overwrite_or_ignore": "append", "delete_matching": "delete_matching", "error": "error"}
    if behavior not in modes:
        raise ConfigError(
            f"existing_data_behavior={behavior!r} is not one of {sorted(modes)}",
            hint="or pass if_exists='append' | 'replace' | 'replace_partition' | 'fail'",
        )
    return modes[behavior]


def write_dataset(
    data: Any,
    root: str | os.PathLike[str],
    partition_cols: list[str],
    *,
    filesystem: Any = None,
    mode: str = "append",
    partition: "Partition | None" = None,
    basename_template: str | None = None,
    where: str | None = None,
    store: Any = None,
    **options: Any,
) -> DatasetWrite:
    """Write ``data`` as a hive-partitioned Parquet dataset at ``root`` and publish it atomically.

    ``filesystem`` None (or a local one): ``root`` is a folder; otherwise ``bucket/prefix`` on that
    pyarrow filesystem, and ``store`` the :class:`~dagsmith.io.objectstore.ObjectStore` of that bucket,
    whose client rewrites the manifest with preconditions (without one: settle and read back).
    ``partition`` is required for ``mode='replace_partition'`` (rows outside it are refused before
    anything is written). ``options`` go to ``pyarrow.parquet.write_to_dataset``.
    """
    from dagsmith.io.base import to_arrow

    if mode not in MODES:
        raise ConfigError(f"dataset write mode {mode!r} is not one of {MODES}")
    table = to_arrow(data)
    where = where or str(root)
    missing = [c for c in partition_cols if c not in table.column_names]
    if missing:
        raise ConfigError(f"partition_cols {missing} are not columns of the frame ({table.column_names})")
    if mode == "replace_partition":
        if partition is None:
            raise ConfigError(f"{where}: replace_partition needs a partition")
        if partition.column not in partition_cols:
            raise ConfigError(
                f"{where}: partition_column {partition.column!r} is not one of partition_cols {list(partition_cols)}",
                hint="a dataset's partitions are its partition_cols folders: replace one of those",
            )
        from dagsmith.io.partitions import check_within

        check_within(table, partition, target=where)
    local = _local_root(filesystem, root)
    if local is not None:
        return _write_local(table, local, list(partition_cols), mode, partition, basename_template, where, options)
    return _write_remote(table, filesystem, store, str(root).strip("/"), list(partition_cols), mode, partition,
                         basename_template, where, options)


def partition_for_write(
    df: Any, mode: str, partition_cols: list[str], column: str | None, value: Any, where: str
) -> Any:
    """The partition a ``replace_partition`` dataset write replaces (None for other modes): the export
    call's ``partition_column`` (default: the only partition column) and ``partition_value`` (default: the
    running block's interval)."""
    if mode != "replace_partition":
        return None
    from dagsmith.io.partitions import partition_settings, resolve_partition

    column, value = partition_settings(column, value)
    if not column and len(partition_cols) == 1:
        column = partition_cols[0]
    from dagsmith.io.base import to_arrow

    table = to_arrow(df)
    if column and column not in table.column_names:
        raise ConfigError(f"{where}: partition_column {column!r} is not a column of the frame ({table.column_names})")
    arrow_type = table.schema.field(column).type if column else None
    return resolve_partition(column, value, arrow_type, where=where)


def read_dataset(
    root: str | os.PathLike[str], *, filesystem: Any = None, filters: Any = None, columns: list[str] | None = None
) -> "pa.Table":
    """Read a (hive-partitioned) Parquet dataset: the files its manifest lists when it has one (a
    dataset published to an object store), else every Parquet file under ``root``."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    local = _local_root(filesystem, root)
    if local is not None and not local.exists():
        olds = sorted(local.parent.glob(f".{local.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:  # a writer died between the two renames of the fallback swap: the previous version
            local = olds[-1]
    fs, base = _fs_and_base(filesystem, local, root)
    expression = pq.filters_to_expression(filters) if isinstance(filters, (list, tuple)) else filters
    partitioning = ds.HivePartitioning.discover(infer_dictionary=True)
    for attempt in (1, 2):
        manifest = _read_json(fs, _manifest_path(base)) if local is None else None
        try:
            if manifest is not None:
                paths = [f"{base}/{rel}" for rel in manifest.get("files", [])]
                if not paths:
                    return _manifest_schema(manifest).empty_table()
                dataset = ds.dataset(paths, filesystem=fs, format="parquet", partitioning=partitioning,
                                     partition_base_dir=base)
            else:
                dataset = ds.dataset(base, filesystem=fs, format="parquet", partitioning=partitioning)
            return dataset.to_table(filter=expression, columns=columns)
        except FileNotFoundError:
            if manifest is None or attempt == 2:
                raise
            # a writer published a new version and removed files of the one we read: read the new one


# --------------------------------------------------------------------------- local


def _local_root(filesystem: Any, root: Any) -> Path | None:
    if filesystem is None:
        return Path(os.path.abspath(os.fspath(root)))
    from pyarrow import fs as pafs

    if isinstance(filesystem, pafs.LocalFileSystem):
        return Path(os.path.abspath(os.fspath(root)))
    return None


def _fs_and_base(filesystem: Any, local: Path | None, root: Any) -> tuple[Any, str]:
    if local is not None:
        from pyarrow import fs as pafs

        return pafs.LocalFileSystem(), local.as_posix()
    return filesystem, str(root).strip("/")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing) for one writer of the dataset at a time."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_local(
    table: "pa.Table", root: Path, partition_cols: list[str], mode: str, partition: Any,
    basename: str | None, where: str, options: dict[str, Any],
) -> DatasetWrite:
    import shutil

    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    if root.exists() and not root.is_dir():
        raise TerminalConnectorError(f"{where}: {root} is a file, not a dataset folder")
    with _locked(parent / f".{root.name}.lock"):
        _recover_local(root)
        current = _local_files(root)
        if mode == "error" and current:
            raise TerminalConnectorError(
                f"{where}: the dataset {root} already has files and existing_data_behavior='error' (if_exists='fail')"
            )
        staging = parent / f".{root.name}.tmp-{os.getpid()}"
        write_id = uuid.uuid4().hex[:12]
        try:
            staging.mkdir()
            new = _write_files(table, staging.as_posix(), partition_cols, _basename(basename, write_id), None, options)
            fault_point("dataset.written")
            dropped = _dropped(current, new, mode, partition, table.schema)
            taken = set(new)
            for rel in current:  # the files the next version keeps: hard links, no data copied
                if rel in dropped or rel in taken:
                    continue
                _link(root / rel, staging / rel)
            _fsync_files(staging, new)
            fault_point("dataset.staged")
            if root.exists():
                _exchange(staging, root)
                fault_point("dataset.swapped")
            else:
                os.rename(staging, root)
            _fsync_dir(parent)
        finally:
            # before the swap: the unpublished files; after it: the previous version (its links)
            shutil.rmtree(staging, ignore_errors=True)
    return DatasetWrite(root.as_posix(), new, sorted(dropped), table.num_rows)


def _recover_local(root: Path) -> None:
    """Under the dataset's lock: put back a dataset left mid-swap by the two-rename fallback, and remove
    staging folders of writers that died (any writer alive would hold the lock)."""
    import shutil

    parent, name = root.parent, root.name
    olds = sorted(parent.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not root.exists() and olds:
        os.rename(olds.pop(), root)
    for leftover in list(parent.glob(f".{name}.tmp-*")) + olds:
        shutil.rmtree(leftover, ignore_errors=True)


def _local_files(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    out = []
    for folder, _, names in os.walk(root):
        for n in names:
            out.append((Path(folder) / n).relative_to(root).as_posix())
    return sorted(out)


def _link(src: Path, dst: Path) -> None:
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # a filesystem without hard links: copy instead
        shutil.copy2(src, dst)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one system call (Linux ≥ 3.15); False where the system cannot."""
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders atomically; without ``renameat2``, two renames: interrupted between them, the
    previous version waits in ``.<name>.old-<pid>`` — readers read it, the next write puts it back."""
    if _renameat2_exchange(a, b):
        return
    old = b.parent / f".{b.name}.old-{os.getpid()}"
    os.rename(b, old)
    fault_point("dataset.half_swapped")
    os.rename(a, b)
    os.rename(old, a)


def _fsync_files(base: Path, rels: list[str]) -> None:
    """New files reach the disk before the swap makes them the dataset (a power cut after the swap
    must not leave empty files in the published version)."""
    for rel in rels:
        fd = os.open(base / rel, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- object stores


def _manifest_path(root: str) -> str:
    parent, _, name = root.rpartition("/")
    return f"{parent}/.{name}.manifest.json"


class _ConditionalManifest:
    """The manifest through the connector's client: every rewrite is a compare-and-swap on the version
    read (S3 ETag, GCS generation), so two writers that read the same version cannot both replace it."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def read(self, path: str) -> tuple[dict[str, Any] | None, Any]:
        """The manifest (None when missing or unreadable) and its version (None when missing)."""
        bucket, _, key = path.partition("/")
        got = self.store._get_versioned(bucket, key)
        if got is None:
            return None, None
        data, version = got
        try:
            return json.loads(data.decode("utf-8")), version
        except ValueError:
            return None, version

    def write(self, path: str, value: dict[str, Any], expect: Any, settle: bool = False) -> Any:
        """Replace the manifest if it is still at ``expect`` (None: create it); its new version, or None
        when another writer got there first."""
        bucket, _, key = path.partition("/")
        version = self.store._put_if(bucket, key, _json_bytes(value), expect, "application/json")
        if version is None:
            # the client retries a request whose answer was lost: the retry of our own successful
            # write fails its precondition, so a failure whose manifest is exactly ours is our success
            current, now = self.read(path)
            if current == value:
                return now
        return version


class _SettledManifest:
    """The manifest through a pyarrow filesystem, for stores without conditional writes: a write checks
    the manifest is still what was read, writes, and (a claim) waits ``SETTLE_S`` and reads it back.
    Two writers at once are told apart only if neither is paused for longer than that."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def read(self, path: str) -> tuple[dict[str, Any] | None, Any]:
        manifest = _read_json(self.fs, path)
        return manifest, manifest

    def write(self, path: str, value: dict[str, Any], expect: Any, settle: bool = False) -> Any:
        if _read_json(self.fs, path) != expect:
            return None
        _write_json(self.fs, path, value)
        written = json.loads(_json_bytes(value))  # the version is what was written, not the caller's dict
        if settle:
            time.sleep(SETTLE_S)
            if _read_json(self.fs, path) != written:
                return None
        return written


def _manifest_gate(fs: Any, store: Any, root: str) -> "_ConditionalManifest | _SettledManifest":
    """The one way a write reads and rewrites its dataset's manifest: the connector's conditional writes
    when the store honours them, else the filesystem with settle-and-read-back."""
    bucket, _, _ = root.partition("/")
    if store is not None and store.conditional_writes(bucket, _manifest_path(root).partition("/")[2]):
        return _ConditionalManifest(store)
    return _SettledManifest(fs)


def _write_remote(
    table: "pa.Table", fs: Any, store: Any, root: str, partition_cols: list[str], mode: str, partition: Any,
    basename: str | None, where: str, options: dict[str, Any],
) -> DatasetWrite:
    parent, _, name = root.rpartition("/")
    if not parent or not name:
        raise ConfigError(f"{where}: give the dataset a prefix inside the bucket (bucket/prefix)")
    manifest_path = _manifest_path(root)
    write_id = uuid.uuid4().hex[:12]
    staging = f"{parent}/.{name}.tmp-{os.getpid()}-{write_id}"
    base = {"format": "dagsmith-dataset", "version": 1, "partition_cols": partition_cols}
    pending = {"write_id": write_id, "host": socket.gethostname(), "pid": os.getpid(), "started_at": time.time(),
               "staging": staging, "files": []}
    gate = _manifest_gate(fs, store, root)
    _LIVE_WRITES.add(write_id)
    try:
        return _publish_remote(table, fs, gate, root, manifest_path, staging, base, pending, partition_cols, mode,
                               partition, basename, where, options)
    finally:
        _LIVE_WRITES.discard(write_id)


def _claim(
    fs: Any, gate: Any, root: str, manifest_path: str, base: dict[str, Any], pending: dict[str, Any], where: str
) -> tuple[list[str], Any]:
    """Record this write as the dataset's pending one, after any live writer finished (waiting up to
    ``WAIT_FOR_WRITER_S``) and what dead ones left was cleaned up; returns the dataset's current files
    and the manifest's version holding the claim.

    The claim replaces the manifest version it was read from (a committed one, or a dead writer's
    claim): of writers claiming — or taking over — at once, one replaces it and the others read the
    winner's claim and wait."""
    from dagsmith.errors import TransientConnectorError

    deadline = time.monotonic() + WAIT_FOR_WRITER_S
    delay = 0.05
    while True:
        manifest, version = gate.read(manifest_path)
        manifest = manifest or {}
        busy = manifest.get("pending")
        if busy and _abandoned(busy):
            busy = None
        if busy is None:
            _recover_remote(fs, root, manifest)
            current = _remote_files(fs, root)  # committed files, and files other tools put there (adopted)
            claimed = gate.write(manifest_path, {**base, "files": current, "pending": pending}, version, settle=True)
            if claimed is not None:
                return current, claimed
            continue  # another writer changed the manifest since we read it: read its claim
        if time.monotonic() > deadline:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(busy.get("started_at") or 0)))
            raise TransientConnectorError(
                f"{where}: another write to this dataset is still in progress after {WAIT_FOR_WRITER_S:.0f} s"
                f" (pid {busy.get('pid')} on {busy.get('host')}, since {since}); nothing was written",
                hint="a writer that died is cleaned up by the next write (at once on the same machine, after 24 h "
                "from another one); retry later",
            )
        time.sleep(delay + random.uniform(0, delay))
        delay = min(delay * 2, 2.0)


def _publish_remote(
    table: "pa.Table", fs: Any, gate: Any, root: str, manifest_path: str, staging: str, base: dict[str, Any],
    pending: dict[str, Any], partition_cols: list[str], mode: str, partition: Any, basename: str | None,
    where: str, options: dict[str, Any],
) -> DatasetWrite:
    from dagsmith.errors import TransientConnectorError

    def rewrite(value: dict[str, Any], expect: Any) -> Any:
        """Replace our own claim; someone else's manifest there means our claim was taken over."""
        version = gate.write(manifest_path, value, expect)
        if version is None:
            raise TransientConnectorError(
                f"{where}: another writer took over the dataset during this write (its manifest "
                f"{manifest_path} no longer holds this write's claim); nothing was written",
                hint="run one export of a dataset at a time, or retry",
            )
        return version

    write_id = pending["write_id"]
    current, version = _claim(fs, gate, root, manifest_path, base, pending, where)
    copied: list[str] = []
    committed = False
    try:
        if mode == "error" and current:
            raise TerminalConnectorError(
                f"{where}: the dataset already has files and existing_data_behavior='error' (if_exists='fail')"
            )
        new = _write_files(table, staging, partition_cols, _basename(basename, write_id), fs, options)
        fault_point("dataset.written")
        dropped = _dropped(current, new, mode, partition, table.schema)
        pending = {**pending, "files": new}  # from here on, a dead writer's copies are known and removed
        version = rewrite({**base, "files": current, "pending": pending}, version)
        fault_point("dataset.staged")
        for rel in new:
            fs.copy_file(f"{staging}/{rel}", f"{root}/{rel}")
            copied.append(rel)
            fault_point("dataset.copied")
        files = sorted((set(current) - dropped) | set(new))
        version = rewrite({
            **base, "write_id": write_id, "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "schema": _schema_text(table.schema), "files": files,
            "cleanup": {"files": sorted(dropped), "staging": staging},
        }, version)
        committed = True
        fault_point("dataset.committed")
        for rel in sorted(dropped):
            _delete_file(fs, f"{root}/{rel}")
        _prune_folders(fs, root, dropped, files)
    except BaseException:
        if not committed:  # undo: the dataset stays as it was, and says no write is pending
            for rel in copied:
                _delete_file(fs, f"{root}/{rel}")
            gate.write(manifest_path, {**base, "files": current}, version)  # only while it holds our claim
        _delete_tree(fs, staging)
        raise  # after the commit, replaced files left behind are in "cleanup": the next write deletes them
    _delete_tree(fs, staging)
    return DatasetWrite(f"{root}", new, sorted(dropped), table.num_rows)


def _recover_remote(fs: Any, root: str, manifest: dict[str, Any]) -> None:
    """Finish what the last write left: delete the files its commit replaced; if it died before its
    commit (its pending record is abandoned), delete the copies it made and its staging prefix."""
    listed = set(manifest.get("files", []))
    cleanup = manifest.get("cleanup") or {}
    for rel in cleanup.get("files", []):
        if rel not in listed:
            _delete_file(fs, f"{root}/{rel}")
    if cleanup.get("staging"):
        _delete_tree(fs, str(cleanup["staging"]))
    pending = manifest.get("pending")
    if not pending:
        return
    for rel in pending.get("files", []):
        if rel not in listed:
            _delete_file(fs, f"{root}/{rel}")
    if pending.get("staging"):
        _delete_tree(fs, str(pending["staging"]))


def _abandoned(pending: dict[str, Any]) -> bool:
    if pending.get("host") == socket.gethostname():
        pid = int(pending.get("pid") or 0)
        if pid == os.getpid():  # this process: abandoned unless one of its threads is still writing it
            return pending.get("write_id") not in _LIVE_WRITES
        return not _alive(pid)
    return time.time() - float(pending.get("started_at") or 0) > STALE_AFTER_S


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remote_files(fs: Any, root: str) -> list[str]:
    """Data files under ``root`` (hidden and ``_``-prefixed names, the manifest among them, are not data)."""
    from pyarrow import fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    out = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(root) + 1:]
        if any(part.startswith((".", "_")) for part in rel.split("/")):
            continue
        out.append(rel)
    return sorted(out)


def _prune_folders(fs: Any, root: str, dropped: set[str], kept: list[str]) -> None:
    """Remove partition folders the write emptied (S3 keeps empty "folder" objects behind)."""
    from pyarrow import fs as pafs

    live = {rel.rpartition("/")[0] for rel in kept}
    for folder in sorted({rel.rpartition("/")[0] for rel in dropped} - live - {""}, reverse=True):
        path = f"{root}/{folder}"
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
            if not any(i.type == pafs.FileType.File for i in infos):
                fs.delete_dir(path)
        except OSError:
            pass  # only tidiness: an empty folder holds no data


def _delete_file(fs: Any, path: str) -> None:
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass


def _delete_tree(fs: Any, path: str) -> None:
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass
    except OSError:
        try:
            fs.delete_dir_contents(path, missing_dir_ok=True)
        except OSError:
            pass


def _json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=1).encode("utf-8")


def _write_json(fs: Any, path: str, value: dict[str, Any]) -> None:
    with fs.open_output_stream(path) as out:
        out.write(_json_bytes(value))


def _read_json(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        with fs.open_input_stream(path) as stream:
            return json.loads(stream.read().decode("utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    except OSError as exc:
        if "not found" in str(exc).lower() or "no such" in str(exc).lower():
            return None
        raise


# --------------------------------------------------------------------------- shared


def _basename(template: str | None, write_id: str) -> str:
    """File names unique to this write, so a publish never overwrites a file of the current version."""
    return f"{write_id}-{template or 'part-{i}.parquet'}"


def _write_files(
    table: "pa.Table", base: str, partition_cols: list[str], basename: str, fs: Any, options: dict[str, Any]
) -> list[str]:
    """Write the frame's files under ``base``; returns their paths relative to it."""
    import pyarrow.parquet as pq

    written: list[str] = []

    def visit(written_file: Any) -> None:
        written.append(written_file.path)
        fault_point("dataset.file_written")

    try:
        pq.write_to_dataset(
            table, root_path=base, partition_cols=partition_cols or None, filesystem=fs,
            basename_template=basename, existing_data_behavior="overwrite_or_ignore", file_visitor=visit, **options,
        )
    except OSError as exc:
        raise TerminalConnectorError(f"writing the dataset's files under {base} failed: {exc}") from None
    prefix = base.rstrip("/") + "/"
    return sorted(p[len(prefix):] if p.startswith(prefix) else p for p in written)


def _dropped(current: list[str], new: list[str], mode: str, partition: Any, schema: "pa.Schema") -> set[str]:
    """Files of the current version that the new version no longer has."""
    if mode == "replace":
        return set(current)
    if mode == "delete_matching":
        folders = {rel.rpartition("/")[0] for rel in new}
        return {rel for rel in current if rel.rpartition("/")[0] in folders}
    if mode == "replace_partition":
        arrow_type = schema.field(partition.column).type
        key = f"{partition.column}="
        out = set()
        for rel in current:
            for segment in rel.split("/")[:-1]:
                if segment.startswith(key) and partition.contains_text(unquote(segment[len(key):]), arrow_type):
                    out.add(rel)
        return out
    return set()


def _schema_text(schema: "pa.Schema") -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _manifest_schema(manifest: dict[str, Any]) -> "pa.Schema":
    import pyarrow as pa

    text = manifest.get("schema")
    if not text:
        return pa.schema([])
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
