"""The variables store: block outputs per pipeline and partition, on a local disk or an object store.

Layout (Mage's, under the store's root: dagsmith's data folder, a shared folder,
or an ``s3://bucket/prefix`` / ``gs://bucket/prefix`` URL)::

    <root>/pipelines/<pipeline>/.variables/<partition>/<block_uuid>/
        _meta.json            {"count": n, "multi": bool, "version": "…"} (small values inline)
        output_0/ output_1/   one folder per output (see dagsmith.data.serde); under v-<version>/ remotely
    <root>/pipelines/<pipeline>/.variables/<partition>/_inline.jsonl  small plain outputs (local disk)
    <root>/pipelines/<pipeline>/.variables/<partition>/_run.json   run manifest
    <root>/pipelines/<pipeline>/.variables/latest.json             block -> newest partition

Readers see all of a block's outputs or none. On a local disk the outputs are
written to a temporary folder that is renamed into place. Object stores have no
rename: the files go under a fresh ``v-<version>/`` prefix, then ``_meta.json``
— the manifest naming that version — is written in one request; a reader
follows the manifest, so a half-written version is never seen, and older
versions are deleted after the new manifest is in place. Object stores are
reached through ``pyarrow.fs`` (S3: the usual ``AWS_*`` variables, plus
``AWS_ENDPOINT_URL`` for S3-compatible servers; GCS: application default
credentials, ``STORAGE_EMULATOR_HOST`` for the emulator; options may also be
given in the URL's query, e.g. ``s3://b/p?endpoint_override=host:9000&scheme=http``).

On a local disk a block whose outputs are small plain values (the usual case in long chains
and fan-outs) gets no folder: its ``_meta.json`` record is appended as one line to the
partition's ``_inline.jsonl`` — one ``write`` instead of a folder and a file, which cost more
than running a trivial block. A block folder, when there is one, wins over the log: a write
goes to the log only while the block has no folder, so the folder is always the newer.
Within the log the last line of a block wins; a line torn by a crash is not valid JSON and
reads as "not stored", and every line starts with a newline so a torn one never swallows
the next.

Every path the store reads or writes is built by ``VariableStore._path``.
Values, not files, cross the API: ``write_outputs`` takes the list of outputs;
``read_block_value`` returns what a downstream block receives.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from dagsmith.data.serde import from_frame_library, read_value, write_value
from dagsmith.errors import ProjectError
from dagsmith.util.fs import write_text_atomic

_latest_lock = threading.Lock()

INLINE_MAX_ITEMS = 10_000
INLINE_MAX_BYTES = 256 * 1024
META = "_meta.json"
INLINE_LOG = "_inline.jsonl"


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


def _check_block_name(block_uuid: str) -> None:
    if not _segments_ok(str(block_uuid), nested=True):
        raise UnsafeStorePath(f"block {str(block_uuid)[:80]!r} is not a safe folder name for block outputs")


class VariableStore:
    """Block outputs under ``<root>/pipelines``; safe for concurrent writers of different blocks.

    Every path it builds is checked here as well as by the project's name gate (defence in
    depth): names must be relative, without ``..`` or hidden segments, and on a local disk
    the resolved folder must lie under ``<root>/pipelines`` — so a block named
    ``/srv/shared/v`` or ``../x`` can never make a run replace or delete anything outside
    the store. Object stores have no links; the name checks apply to them as well.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self._partitions: dict[tuple[str, str], Any] = {}
        self._logs: dict[str, tuple[int, int, dict[str, dict[str, Any]]]] = {}
        """log path → (inode, bytes parsed, block → newest record), so a reader parses only what was appended"""
        self._logs_lock = threading.Lock()
        self._open_logs: dict[str, int] | None = None
        """partition log → its open descriptor, while a run keeps them open (``keep_logs_open``)"""
        self._real_root: str | None = None
        self.url = str(data_dir)
        self.remote = "://" in self.url and not self.url.startswith("file://")
        if self.remote:
            self.fs, base = _arrow_filesystem(self.url)
            self.base = base.rstrip("/")
            self.root: Any = PurePosixPath(self.base) / "pipelines"
        else:
            local = self.url[len("file://"):] if self.url.startswith("file://") else self.url
            self.fs = None
            self.root = Path(local) / "pipelines"

    # ------------------------------------------------------------ paths
    def _path(self, *parts: str) -> Any:
        """The one place store paths are made: ``<root>/pipelines/<parts…>`` (a Path, or a key remotely)."""
        return self.root.joinpath(*parts)

    def _confine(self, path: Any, what: str) -> Any:
        if self.remote:
            return path
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise UnsafeStorePath(f"{what} resolves to {real}, outside the variables store {self._real_root}")
        return path

    def variables_dir(self, pipeline: str) -> Any:
        if not _segments_ok(str(pipeline), nested=False):
            raise UnsafeStorePath(f"pipeline {str(pipeline)[:80]!r} is not a safe folder name for block outputs")
        return self._confine(self._path(pipeline, ".variables"), f"pipeline {pipeline!r}")

    def _partition_dir(self, pipeline: str, partition: str) -> Any:
        base = self._partitions.get((pipeline, partition))
        if base is None:  # checked once per partition; a run stores many blocks in one
            if not _segments_ok(str(partition), nested=False):
                raise UnsafeStorePath(f"partition {str(partition)[:80]!r} is not a safe folder name for block outputs")
            base = self._confine(self.variables_dir(pipeline) / partition, f"partition {partition!r}")
            self._partitions[(pipeline, partition)] = base
        return base

    def block_dir(self, pipeline: str, partition: str, block_uuid: str) -> Any:
        _check_block_name(block_uuid)
        path = self._partition_dir(pipeline, partition) / block_uuid
        if self.remote or ("/" not in block_uuid and not os.path.islink(path)):
            # the partition folder is confined already and the name is one plain segment that is not
            # a link (or does not exist yet): it cannot lead anywhere else (resolving every path, one
            # lstat per component, costs a run of thousands of blocks more than storing them)
            return path
        return self._confine(path, f"block {block_uuid!r}")

    def describe(self, pipeline: str) -> str:
        """Where a pipeline's outputs are, for messages."""
        where = self.variables_dir(pipeline)
        return f"{self.url.split('://', 1)[0]}://{where}" if self.remote else str(where)

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
    ) -> str:
        """Store a block's outputs atomically and (unless told not to) point ``latest`` at this partition.

        Returns the version written (a token that changes with every write). A run
        passes ``update_latest=False`` and calls ``set_latest`` once at its end.
        """
        _check_block_name(block_uuid)  # before anything is written, whichever way the outputs go
        version = os.urandom(6).hex()  # 48 random bits, as uuid4().hex[:12] had (uuid costs an import)
        inline = self._inline_text(outputs, multi, version, block_uuid)
        if inline is not None and not self.remote and "/" not in block_uuid:
            base = self._partition_dir(pipeline, partition)
            # no folder (nor link) in the block's place: the partition's log takes it (see the module doc)
            if not os.path.lexists(os.path.join(base, block_uuid)):
                self._append_inline(base, inline)
                if update_latest:
                    self.set_latest(pipeline, {block_uuid: partition})
                return version
        final = self.block_dir(pipeline, partition, block_uuid)
        if inline is not None:
            if self.remote:
                self._put_text(final / META, inline)
                self._drop_versions(final, keep=None)
            else:
                self._write_inline_local(final, inline)
        elif self.remote:
            self._write_remote(final, outputs, multi, version)
        else:
            self._write_local(final, outputs, multi, version)
        if update_latest:
            self.set_latest(pipeline, {block_uuid: partition})
        return version

    def keep_logs_open(self) -> None:
        """Keep partition logs open between appends until ``close`` (a run's own store: one open per
        partition instead of one per block)."""
        if self._open_logs is None:
            self._open_logs = {}

    def close(self) -> None:
        """Close the logs ``keep_logs_open`` kept open (the store stays usable)."""
        with self._logs_lock:
            held, self._open_logs = self._open_logs or {}, None
        for fd in held.values():
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _append_inline(self, partition_dir: Path, text: str) -> None:
        """One line of the partition's inline log, in one ``write`` (O_APPEND: writers never interleave)."""
        data = ("\n" + text + "\n").encode("utf-8")
        path = os.path.join(partition_dir, INLINE_LOG)
        held = self._open_logs
        fd = held.get(path) if held is not None else None
        if fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
            try:
                fd = os.open(path, flags, 0o666)
            except FileNotFoundError:
                Path(partition_dir).mkdir(parents=True, exist_ok=True)
                fd = os.open(path, flags, 0o666)
            if held is not None:
                with self._logs_lock:
                    kept = held.setdefault(path, fd)
                if kept != fd:  # another thread opened it first
                    os.close(fd)
                    fd = kept
        try:
            written = os.write(fd, data)
        finally:
            if held is None:
                os.close(fd)
        if written != len(data):  # a full disk: the line is torn, so it reads as not stored
            raise OSError(f"could not append to {path}: disk full? ({written} of {len(data)} bytes written)")

    def _inline_records(self, pipeline: str, partition: str) -> dict[str, dict[str, Any]]:
        """block → its newest record in the partition's inline log (local disk; empty when there is none)."""
        if self.remote:
            return {}
        path = os.path.join(self._partition_dir(pipeline, partition), INLINE_LOG)
        try:
            fh = open(path, "rb")
        except OSError:
            return {}
        with fh, self._logs_lock:
            st = os.fstat(fh.fileno())
            inode, done, records = self._logs.get(path, (st.st_ino, 0, {}))
            if inode != st.st_ino or st.st_size < done:  # replaced or cut: parse it again
                done, records = 0, {}
            if st.st_size > done:
                fh.seek(done)
                chunk = fh.read(st.st_size - done)
                end = chunk.rfind(b"\n") + 1  # a line still being written is read next time
                for line in chunk[:end].split(b"\n"):
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:  # torn by a crash: that write did not happen
                        continue
                    if isinstance(rec, dict) and isinstance(rec.get("block"), str):
                        records[rec["block"]] = rec
                done += end
            self._logs[path] = (st.st_ino, done, records)
            return dict(records)

    def _write_inline_local(self, final: Path, text: str) -> None:
        try:
            os.mkdir(final)
        except FileNotFoundError:
            final.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # written before (a re-run of this partition): replace atomically
            import shutil

            write_text_atomic(final / META, text)
            for old in final.glob("output_*"):
                shutil.rmtree(old, ignore_errors=True)
            return
        # a fresh folder: nobody reads a block before it is reported completed, which waits for this
        # write, and a torn file from a crash reads as "not stored" (invalid JSON); no rename needed
        with open(final / META, "w", encoding="utf-8") as fh:
            fh.write(text)

    def _write_local(self, final: Path, outputs: list[Any], multi: bool, version: str) -> None:
        import shutil
        import tempfile

        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name.replace('/', '_')}.", dir=final.parent))
        try:
            meta = _write_folder(tmp, outputs, multi, version)
            (tmp / META).write_text(json.dumps(meta))
            if final.exists():
                trash = final.with_name(f".{final.name}.old.{os.getpid()}.{threading.get_ident()}")
                os.replace(final, trash)
                os.replace(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_remote(self, final: PurePosixPath, outputs: list[Any], multi: bool, version: str) -> None:
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="dagsmith-out-"))
        try:
            meta = _write_folder(tmp, outputs, multi, version)
            meta["dir"] = f"v-{version}"
            target = final / meta["dir"]
            for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
                with open(file, "rb") as src, self.fs.open_output_stream(str(target / file.relative_to(tmp).as_posix())) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            self._put_text(final / META, json.dumps(meta))  # the publish: one request names the new version
            self._drop_versions(final, keep=meta["dir"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _drop_versions(self, folder: PurePosixPath, keep: str | None) -> None:
        for name in self._list_dirs(folder):
            if name.startswith("v-") and name != keep:
                self._delete_tree(folder / name)

    def _inline_text(self, outputs: list[Any], multi: bool, version: str, block_uuid: str) -> str | None:
        """Small plain values live inside ``_meta.json``: one file per block instead of a folder tree.

        Most blocks of long chains return small values; this keeps persisting them from
        costing more than running them.
        """
        if len(outputs) > INLINE_MAX_ITEMS or any(from_frame_library(v) for v in outputs):
            return None
        from dagsmith.data.serde import is_plain_json

        if not is_plain_json(list(outputs)):
            return None
        text = json.dumps({"block": block_uuid, "count": len(outputs), "multi": multi, "version": version, "inline": list(outputs)})
        return text if len(text) <= INLINE_MAX_BYTES else None

    def set_latest(self, pipeline: str, entries: dict[str, str]) -> None:
        path = self.variables_dir(pipeline) / "latest.json"
        with _latest_lock:
            current = self._read_json(path) or {}
            current.update(entries)
            self._write_json(path, current)

    def write_manifest(self, pipeline: str, partition: str, manifest: dict[str, Any]) -> None:
        self._write_json(self._partition_dir(pipeline, partition) / "_run.json", manifest)

    # ------------------------------------------------------------ block cache entries
    def _cache_file(self, pipeline: str, block_uuid: str) -> Any:
        import hashlib

        name = hashlib.blake2b(str(block_uuid).encode(), digest_size=12).hexdigest()
        return self.variables_dir(pipeline) / ".cache" / f"{name}.json"

    def cache_lookup(self, pipeline: str, block_uuid: str, key: str) -> dict[str, Any] | None:
        """The cache entry of ``key`` (``{"partition": …, "rows": …}``) when its outputs are still stored."""
        entries = self._read_json(self._cache_file(pipeline, block_uuid)) or {}
        entry = entries.get(key) if isinstance(entries, dict) else None
        if not isinstance(entry, dict) or not entry.get("partition"):
            return None
        if not self.has_outputs(pipeline, str(entry["partition"]), block_uuid):
            return None  # deleted by retention: a miss
        return entry

    def cache_record(self, pipeline: str, block_uuid: str, key: str, entry: dict[str, Any], *, keep: int = 16) -> None:
        """Remember that ``key`` produced the outputs described by ``entry`` (the newest ``keep`` keys stay)."""
        path = self._cache_file(pipeline, block_uuid)
        with _latest_lock:
            entries = self._read_json(path) or {}
            if not isinstance(entries, dict):
                entries = {}
            entries.pop(key, None)
            entries[key] = entry
            while len(entries) > keep:
                entries.pop(next(iter(entries)))
            self._write_json(path, entries)

    # ------------------------------------------------------------ reading
    def read_manifest(self, pipeline: str, partition: str) -> dict[str, Any] | None:
        return self._read_json(self._partition_dir(pipeline, partition) / "_run.json")

    def latest_partition(self, pipeline: str, block_uuid: str) -> str | None:
        latest = self._read_json(self.variables_dir(pipeline) / "latest.json") or {}
        return latest.get(block_uuid)

    def read_meta(self, pipeline: str, partition: str, block_uuid: str) -> dict[str, Any] | None:
        """The record describing a block's stored outputs (its folder's ``_meta.json``, else its inline-log line)."""
        return self._meta_in(self.block_dir(pipeline, partition, block_uuid), pipeline, partition, block_uuid)

    def _meta_in(self, folder: Any, pipeline: str, partition: str, block_uuid: str) -> dict[str, Any] | None:
        meta = self._read_json(folder / META)
        if meta is None:
            meta = self._inline_records(pipeline, partition).get(block_uuid)
        return meta if isinstance(meta, dict) else None

    def has_outputs(self, pipeline: str, partition: str, block_uuid: str) -> bool:
        return self.read_meta(pipeline, partition, block_uuid) is not None

    def stored_blocks(self, pipeline: str, partition: str) -> list[str]:
        """Blocks (and dynamic children) whose outputs are stored in ``partition``."""
        base = self._partition_dir(pipeline, partition)
        names = [n for n in self._list_dirs(base) if not n.startswith(".")]
        stored = {n for n in names if self._exists(base / n / META)}
        stored.update(self._inline_records(pipeline, partition))
        return sorted(stored)

    def read_outputs(self, pipeline: str, partition: str, block_uuid: str) -> tuple[list[Any], bool]:
        folder = self.block_dir(pipeline, partition, block_uuid)
        meta = self._meta_in(folder, pipeline, partition, block_uuid)
        if meta is None:
            raise OutputsMissing(f"no stored output of block '{block_uuid}' in {folder}")
        if "inline" in meta:
            return list(meta["inline"]), bool(meta.get("multi"))
        if meta.get("dir"):
            folder = folder / meta["dir"]
        count = int(meta["count"])
        if self.remote:
            values = [self._read_remote_value(folder / f"output_{i}") for i in range(count)]
        else:
            values = [read_value(folder / f"output_{i}") for i in range(count)]
        if meta.get("packed"):
            values = list(values[0])
        return values, bool(meta.get("multi"))

    def _read_remote_value(self, folder: PurePosixPath) -> Any:
        import shutil
        import tempfile

        import pyarrow.fs as pafs

        tmp = Path(tempfile.mkdtemp(prefix="dagsmith-in-"))
        try:
            for info in self.fs.get_file_info(pafs.FileSelector(str(folder), recursive=True)):
                if info.type != pafs.FileType.File:
                    continue
                rel = info.path[len(str(folder)):].lstrip("/")
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with self.fs.open_input_stream(info.path) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            return read_value(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def read_block_value(self, pipeline: str, partition: str, block_uuid: str) -> Any:
        """What a downstream block receives: the single output, or the list of outputs."""
        values, multi = self.read_outputs(pipeline, partition, block_uuid)
        return as_input(values, multi)

    def partitions(self, pipeline: str) -> list[str]:
        return sorted(n for n in self._list_dirs(self.variables_dir(pipeline)) if not n.startswith("."))

    def pipelines(self) -> list[str]:
        """Pipelines with a folder in the store (retention walks them)."""
        names = self._list_dirs(self.root)
        return sorted(n for n in names if _segments_ok(n, nested=False))

    def partition_mtime(self, pipeline: str, partition: str) -> float | None:
        """When ``partition`` was last written (epoch seconds); None when it is gone.

        On disk: the folder's own mtime, or its inline log's if newer. Object stores have no folders: the newest object under it.
        """
        folder = self._partition_dir(pipeline, partition)
        if not self.remote:
            try:
                folder_mtime = Path(folder).stat().st_mtime
            except OSError:
                return None
            try:  # appending to the inline log does not touch the folder
                return max(folder_mtime, (Path(folder) / INLINE_LOG).stat().st_mtime)
            except OSError:
                return folder_mtime
        import pyarrow.fs as pafs

        newest = None
        for info in self.fs.get_file_info(pafs.FileSelector(str(folder), recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File and info.mtime is not None:
                stamp = info.mtime.timestamp()
                newest = stamp if newest is None else max(newest, stamp)
        return newest

    def latest_pins(self, pipeline: str) -> set[str] | None:
        """Partitions ``latest.json`` points to; None when it exists but cannot be read (keep everything then)."""
        path = self.variables_dir(pipeline) / "latest.json"
        try:
            if self.remote:
                try:
                    with self.fs.open_input_stream(str(path)) as fh:
                        raw = fh.read().decode("utf-8")
                except FileNotFoundError:
                    return set()
                except OSError as exc:
                    text = str(exc).lower()
                    if "nosuchkey" in text or "not found" in text or "does not exist" in text:
                        return set()
                    raise
            else:
                if not Path(path).is_file():
                    return set()
                raw = Path(path).read_text(encoding="utf-8")
            latest = json.loads(raw) or {}
            return {str(v) for v in latest.values() if v}
        except (OSError, ValueError, AttributeError):
            return None

    def delete_partitions(self, pipeline: str, partitions: Iterable[str]) -> int:
        import shutil

        removed = 0
        for part in partitions:
            folder = self._partition_dir(pipeline, part)
            if self.remote:
                if self._list_dirs(folder) or self._exists(folder / "_run.json"):
                    self._delete_tree(folder)
                    removed += 1
            elif folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    # ------------------------------------------------------------ filesystem primitives
    def _read_json(self, path: Any) -> Any:
        if not self.remote:
            return _read_json(path)
        try:
            with self.fs.open_input_stream(str(path)) as fh:
                return json.loads(fh.read().decode("utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        except OSError as exc:
            if "NoSuchKey" in str(exc) or "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise

    def _write_json(self, path: Any, data: Any) -> None:
        if self.remote:
            self._put_text(path, json.dumps(data, default=str))
        else:
            _write_json_atomic(path, data)

    def _put_text(self, path: PurePosixPath, text: str) -> None:
        with self.fs.open_output_stream(str(path)) as fh:  # one PUT: whole or absent
            fh.write(text.encode("utf-8"))

    def _delete_tree(self, path: PurePosixPath) -> None:
        try:
            self.fs.delete_dir_contents(str(path), missing_dir_ok=True)
            self.fs.delete_dir(str(path))
        except OSError:  # object stores have no real folders: the "folder" may be gone with its contents
            pass

    def _exists(self, path: Any) -> bool:
        if not self.remote:
            return Path(path).exists()
        import pyarrow.fs as pafs

        return self.fs.get_file_info(str(path)).type != pafs.FileType.NotFound

    def _list_dirs(self, path: Any) -> list[str]:
        if not self.remote:
            folder = Path(path)
            return [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
        import pyarrow.fs as pafs

        # from a recursive listing: object stores (and their emulators) differ in how they show "folders"
        prefix = str(path).rstrip("/") + "/"
        names: dict[str, None] = {}
        for info in self.fs.get_file_info(pafs.FileSelector(str(path), recursive=True, allow_not_found=True)):
            rest = info.path[len(prefix):] if info.path.startswith(prefix) else ""
            head, sep, _tail = rest.partition("/")
            if head and (sep or info.type == pafs.FileType.Directory):
                names[head] = None
        return list(names)


def _write_folder(folder: Path, outputs: list[Any], multi: bool, version: str) -> dict[str, Any]:
    """Write outputs as ``output_<i>/`` folders; returns the manifest describing them."""
    packed = multi and not any(from_frame_library(v) for v in outputs)
    if packed:  # a long list of plain values is one file, not one folder per item
        write_value(list(outputs), folder / "output_0")
    else:
        for i, value in enumerate(outputs):
            write_value(value, folder / f"output_{i}")
    return {"count": 1 if packed else len(outputs), "multi": multi, "packed": packed, "version": version}


def _arrow_filesystem(url: str) -> tuple[Any, str]:
    """A ``pyarrow.fs`` filesystem and the path inside it for an ``s3://`` / ``gs://`` URL."""
    import pyarrow.fs as pafs
    from urllib.parse import urlparse

    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if parsed.query:  # explicit options win: pyarrow parses them
        fs, path = pafs.FileSystem.from_uri(url)
        return fs, path
    path = f"{parsed.netloc}{parsed.path}"
    if scheme == "s3":
        kwargs: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
        if endpoint:
            ep = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            kwargs["endpoint_override"] = ep.netloc
            kwargs["scheme"] = ep.scheme
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kwargs["region"] = region
        return pafs.S3FileSystem(**kwargs), path
    if scheme in ("gs", "gcs"):
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            ep = urlparse(emulator if "://" in emulator else f"http://{emulator}")
            return pafs.GcsFileSystem(endpoint_override=ep.netloc, scheme=ep.scheme, anonymous=True), path
        return pafs.GcsFileSystem(), path
    fs, inner = pafs.FileSystem.from_uri(url)
    return fs, inner


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
        copied = value.copy(deep=not _copy_on_write())
        return _mage_labels(copied) if type(value).__name__ == "DataFrame" else copied
    if type(value) is list and any(type(v).__module__.startswith("pandas") for v in value):
        return [handoff(v) for v in value]
    return value


def _mage_labels(df: Any) -> Any:
    """Unnamed columns as Mage's downstream blocks see them: string labels.

    Mage 0.9.80 hands a frame downstream through its store; a frame with the default row index
    goes through polars, which names columns by strings. So a frame whose columns were never
    named (a ``RangeIndex``: ``pd.DataFrame([[1, 2]])``, or the 0x0 ``DataFrame()`` a missing
    GCS object loads as) arrives with ``'0', '1'`` / an empty object ``Index`` — on which the
    course's ``data.columns.str.lower()`` works where a ``RangeIndex`` raises.
    """
    import pandas as pd

    if type(df.columns) is pd.RangeIndex and type(df.index) is pd.RangeIndex and df.index.start == 0 and df.index.step == 1:
        df.columns = pd.Index([str(c) for c in df.columns], dtype=object)
    return df


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
    write_text_atomic(path, json.dumps(data, default=str))
