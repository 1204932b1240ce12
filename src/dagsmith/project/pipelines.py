"""Pipelines on disk: ``pipelines/<uuid>/metadata.yaml`` read, edited and written.

Reading turns the YAML into a ``PipelineSpec`` and resolves each block's file
(the ``<type dir>/<uuid>.<ext>`` path wins; a stale ``configuration.file_source.path``
is only used when that file does not exist, as real course projects need).
Editing functions change the raw mapping and write it back atomically, so keys
dagsmith does not know survive every round trip. One block file listed in two
pipelines is one block: editing it edits both.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from dagsmith.errors import ProjectError, ValidationError
from dagsmith.project.layout import (
    BLOCK_TYPE_DIRS,
    LANGUAGE_EXTENSIONS,
    block_relpath,
    clean_name,
)
from dagsmith.project.names import check_name, is_safe_name
from dagsmith.project.specs import BlockSpec, PipelineSpec, Project
from dagsmith.project.yamlio import parse_yaml, parse_yaml_cached, read_yaml, write_text_atomic, write_yaml

PIPELINES_DIR = "pipelines"
METADATA_FILE = "metadata.yaml"


def load_project(root: str | os.PathLike[str]) -> Project:
    """Read a project folder; its ``metadata.yaml`` is Jinja-rendered first, as Mage does."""
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise ProjectError(
            f"project folder {path} does not exist",
            hint=f"create one with: dagsmith init {root}",
        )
    meta_path = path / METADATA_FILE
    metadata: dict[str, Any] = {}
    if meta_path.is_file():
        text = meta_path.read_text(encoding="utf-8")
        if "{{" in text or "{%" in text:
            # rendered with the environment (secrets, perhaps): parsed each time, never cached on disk
            loaded = parse_yaml(_render_env_template(text, meta_path), meta_path)
        else:
            loaded = parse_yaml_cached(text, meta_path)
        if loaded is not None and not isinstance(loaded, dict):
            raise ProjectError(f"{meta_path}: expected a mapping of settings at the top level")
        metadata = loaded or {}
    elif not (path / PIPELINES_DIR).is_dir():
        raise ProjectError(
            f"{path} is not a dagsmith/Mage project: it has neither metadata.yaml nor pipelines/",
            hint=f"create one with: dagsmith init {root}",
        )
    return Project(root=path, name=path.name, metadata=metadata)


def _render_env_template(text: str, source: Path) -> str:
    import jinja2

    env = jinja2.Environment()
    env.globals["env_var"] = lambda name, default=None: os.environ.get(name, default)
    try:
        return env.from_string(text).render()
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise ProjectError(f"{source}:{line or '?'}: template error: {exc}") from None


def pipelines_root(root: str | os.PathLike[str]) -> Path:
    return Path(root) / PIPELINES_DIR


def pipeline_dir(root: str | os.PathLike[str], uuid: str) -> Path:
    """``pipelines/<uuid>`` after the name gate: refuses ``..``, absolute paths and links out of ``pipelines/``."""
    from dagsmith.project.names import confined

    return confined(pipelines_root(root), uuid, kinds=["pipeline"])


def metadata_path(root: str | os.PathLike[str], uuid: str) -> Path:
    return pipeline_dir(root, uuid) / METADATA_FILE


def list_pipelines(root: str | os.PathLike[str]) -> list[str]:
    """Uuids of the pipelines of a project, sorted."""
    base = pipelines_root(root)
    if not base.is_dir():
        return []
    from dagsmith.project.names import is_safe_name

    real = base.resolve()
    return sorted(
        p.name
        for p in base.iterdir()
        if is_safe_name(p.name, "pipeline") and (p / METADATA_FILE).is_file() and real in p.resolve().parents
    )


def read_pipeline_raw(root: str | os.PathLike[str], uuid: str) -> dict[str, Any]:
    path = metadata_path(root, uuid)
    if not path.is_file():
        known = ", ".join(list_pipelines(root)) or "(none)"
        raise ProjectError(
            f"pipeline '{uuid}' not found: {path} does not exist",
            hint=f"pipelines in this project: {known}",
        )
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def load_pipeline(root: str | os.PathLike[str], uuid: str) -> PipelineSpec:
    """Read and check one pipeline; every structural problem is reported at once."""
    root_path = Path(root).resolve()
    raw = read_pipeline_raw(root_path, uuid)
    path = metadata_path(root_path, uuid)
    problems: list[str] = []
    blocks = tuple(_block_specs(root_path, raw.get("blocks"), path, "blocks", problems))
    callbacks = tuple(_block_specs(root_path, raw.get("callbacks"), path, "callbacks", problems, "callback"))
    conditionals = tuple(
        _block_specs(root_path, raw.get("conditionals"), path, "conditionals", problems, "conditional")
    )
    seen: set[str] = set()
    for b in blocks:
        if b.uuid in seen:
            problems.append(f"{path}: block '{b.uuid}' is listed twice")
        seen.add(b.uuid)
    variables = raw.get("variables") or {}
    if not isinstance(variables, dict):
        problems.append(f"{path}: 'variables' must be a mapping of name: value")
        variables = {}
    if problems:
        raise ValidationError(
            f"pipeline '{uuid}' is invalid:\n  - " + "\n  - ".join(problems),
            problems=problems,
        )
    return PipelineSpec(
        uuid=uuid,
        name=str(raw.get("name") or uuid),
        type=str(raw.get("type") or "python"),
        description=raw.get("description"),
        blocks=blocks,
        callbacks=callbacks,
        conditionals=conditionals,
        variables=variables,
        retry_config=raw.get("retry_config"),
        concurrency_config=raw.get("concurrency_config") or {},
        notification_config=raw.get("notification_config") or {},
        settings=raw.get("settings") or {},
        metadata_path=path,
        raw=raw,
    )


def _block_specs(
    root: Path,
    entries: Any,
    source: Path,
    key: str,
    problems: list[str],
    forced_type: str | None = None,
) -> Iterable[BlockSpec]:
    if entries is None:
        return
    if not isinstance(entries, list):
        problems.append(f"{source}: '{key}' must be a list of blocks")
        return
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("uuid"):
            problems.append(f"{source}: {key}[{index}] needs at least a 'uuid'")
            continue
        uuid = str(entry["uuid"])
        if not is_safe_name(uuid, "block"):
            problems.append(f"{source}: {key}[{index}] has uuid {uuid[:80]!r}, which is not a safe block name (no '..', absolute paths, backslashes or control characters)")
            continue
        btype = str(entry.get("type") or forced_type or "")
        if btype not in BLOCK_TYPE_DIRS:
            known = ", ".join(sorted(BLOCK_TYPE_DIRS))
            problems.append(
                f"{source}: block '{uuid}' has unknown type '{btype}' (known types: {known})"
            )
            continue
        language = str(entry.get("language") or "python")
        if language not in LANGUAGE_EXTENSIONS:
            problems.append(f"{source}: block '{uuid}' has unknown language '{language}'")
            continue
        configuration = entry.get("configuration") or {}
        if not isinstance(configuration, dict):
            problems.append(f"{source}: block '{uuid}': 'configuration' must be a mapping")
            continue
        relpath, note = resolve_block_file(root, uuid, btype, language, configuration)
        timeout = entry.get("timeout")
        yield BlockSpec(
            uuid=uuid,
            name=str(entry.get("name") or uuid),
            type=btype,
            language=language,
            upstream_blocks=tuple(str(u) for u in (entry.get("upstream_blocks") or [])),
            downstream_blocks=tuple(str(d) for d in (entry.get("downstream_blocks") or [])),
            configuration=configuration,
            retry_config=entry.get("retry_config"),
            timeout=float(timeout) if timeout not in (None, "") else None,
            executor_type=entry.get("executor_type"),
            relpath=relpath,
            path=root / relpath,
            path_note=note,
            raw=entry,
        )


def resolve_block_file(
    root: Path, uuid: str, block_type: str, language: str, configuration: Mapping[str, Any]
) -> tuple[str, str | None]:
    """Which file a block entry means: (relative path, note when a fallback was used)."""
    derived = block_relpath(block_type, uuid, language)
    if os.path.isfile(os.path.join(root, derived)):
        return derived, None
    source = (configuration.get("file_source") or {}) if isinstance(configuration, dict) else {}
    declared = source.get("path") if isinstance(source, dict) else None
    if declared:
        declared = str(declared)
        # Mage writes the path relative to the project, sometimes prefixed with the project name.
        candidates = [declared]
        first, _, rest = declared.partition("/")
        if first == root.name and rest:
            candidates.append(rest)
        for candidate in candidates:
            if os.path.isabs(candidate) or ".." in candidate.replace("\\", "/").split("/"):
                continue  # a file_source.path never leads out of the project
            if (root / candidate).is_file() and root.resolve() in (root / candidate).resolve().parents:
                return candidate, f"{derived} not found; using file_source.path {candidate}"
    return derived, None


# ---------------------------------------------------------------- editing


def _now_str() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def create_pipeline(root: str | os.PathLike[str], name: str, *, uuid: str | None = None) -> str:
    """Create an empty pipeline; returns its uuid. Refuses to overwrite an existing one."""
    uid = check_name(uuid, "pipeline") if uuid else clean_name(name)
    folder = pipeline_dir(root, uid)
    if folder.exists():
        raise ProjectError(f"pipeline '{uid}' already exists at {folder}", hint="choose another name")
    folder.mkdir(parents=True)
    (folder / "__init__.py").touch()
    write_yaml(
        folder / METADATA_FILE,
        {
            "blocks": [],
            "callbacks": [],
            "conditionals": [],
            "concurrency_config": {},
            "created_at": _now_str(),
            "description": None,
            "name": name,
            "notification_config": {},
            "retry_config": {},
            "settings": {"triggers": None},
            "spark_config": {},
            "tags": [],
            "type": "python",
            "uuid": uid,
            "variables": {},
            "widgets": [],
        },
    )
    return uid


def write_pipeline_raw(root: str | os.PathLike[str], uuid: str, data: Mapping[str, Any]) -> None:
    """Write a pipeline's mapping back; it is checked first so a bad edit changes nothing."""
    data = dict(data)
    data["updated_at"] = _now_str()
    _check_edges(uuid, data)
    write_yaml(metadata_path(root, uuid), data)


def _check_edges(uuid: str, data: Mapping[str, Any]) -> None:
    from dagsmith.dag.graph import find_cycle

    blocks = data.get("blocks") or []
    edges = {str(b["uuid"]): [str(u) for u in (b.get("upstream_blocks") or [])] for b in blocks}
    cycle = find_cycle(edges)
    if cycle:
        raise ValidationError(
            f"pipeline '{uuid}': this change would create a cycle: {' -> '.join(cycle)}",
            problems=[f"cycle: {' -> '.join(cycle)}"],
            hint="remove one of the edges in that loop",
        )


def _sync_downstream(data: dict[str, Any]) -> None:
    """Recompute every block's ``downstream_blocks`` from the upstream lists (Mage stores both)."""
    from dagsmith.dag.graph import downstream_of, known_upstream

    blocks = data.get("blocks") or []
    edges = {str(b["uuid"]): [str(u) for u in (b.get("upstream_blocks") or [])] for b in blocks}
    order = {n: list(dict.fromkeys(down)) for n, down in downstream_of(known_upstream(edges)).items()}
    for b in blocks:
        existing = [d for d in (b.get("downstream_blocks") or []) if d in order.get(str(b["uuid"]), [])]
        extra = [d for d in order.get(str(b["uuid"]), []) if d not in existing]
        b["downstream_blocks"] = existing + extra


def add_block(
    root: str | os.PathLike[str],
    pipeline_uuid: str,
    block_uuid: str,
    block_type: str,
    *,
    language: str = "python",
    upstream: Iterable[str] = (),
    content: str | None = None,
    configuration: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> BlockSpec:
    """Add a block to a pipeline, writing its file when ``content`` is given and none exists.

    An existing block file with the same uuid is reused as it is (one file, one
    block, shared between pipelines).
    """
    root_path = Path(root).resolve()
    if block_type not in BLOCK_TYPE_DIRS:
        raise ProjectError(
            f"unknown block type '{block_type}'",
            hint="use one of: " + ", ".join(sorted(BLOCK_TYPE_DIRS)),
        )
    uid = check_name(block_uuid, "block")
    data = read_pipeline_raw(root_path, pipeline_uuid)
    blocks = data.setdefault("blocks", []) or []
    data["blocks"] = blocks
    if any(str(b.get("uuid")) == uid for b in blocks):
        raise ProjectError(f"pipeline '{pipeline_uuid}' already has a block '{uid}'")
    ups = [str(u) for u in upstream]
    known = {str(b.get("uuid")) for b in blocks}
    missing = [u for u in ups if u not in known]
    if missing:
        raise ProjectError(
            f"pipeline '{pipeline_uuid}' has no block named {', '.join(missing)} to use as upstream",
            hint="known blocks: " + (", ".join(sorted(known)) or "(none)"),
        )
    relpath = block_relpath(block_type, uid, language)
    file_path = root_path / relpath
    entry = {
        "all_upstream_blocks_executed": True,
        "color": None,
        "configuration": dict(configuration or {}),
        "downstream_blocks": [],
        "executor_config": None,
        "executor_type": "local_python",
        "has_callback": False,
        "language": language,
        "name": name or uid,
        "retry_config": None,
        "status": "not_executed",
        "timeout": None,
        "type": block_type,
        "upstream_blocks": ups,
        "uuid": uid,
    }
    blocks.append(entry)
    _sync_downstream(data)
    wrote_file = False
    if content is not None and not file_path.exists():
        file_path.parent.mkdir(parents=True, exist_ok=True)
        init = file_path.parent / "__init__.py"
        if not init.exists() and language == "python":
            init.touch()
        write_text_atomic(file_path, content)
        wrote_file = True
    try:
        write_pipeline_raw(root_path, pipeline_uuid, data)
    except BaseException:
        if wrote_file:
            file_path.unlink(missing_ok=True)
        raise
    return load_pipeline(root_path, pipeline_uuid).block(uid)


def set_upstream(
    root: str | os.PathLike[str], pipeline_uuid: str, block_uuid: str, upstream: Iterable[str]
) -> None:
    """Replace a block's upstream list (order kept: it is the order of positional inputs)."""
    data = read_pipeline_raw(root, pipeline_uuid)
    blocks = data.get("blocks") or []
    known = {str(b.get("uuid")) for b in blocks}
    ups = [str(u) for u in upstream]
    bad = [u for u in ups if u not in known or u == block_uuid]
    if bad:
        raise ProjectError(f"pipeline '{pipeline_uuid}': cannot use {', '.join(bad)} as upstream of '{block_uuid}'")
    for b in blocks:
        if str(b.get("uuid")) == block_uuid:
            b["upstream_blocks"] = ups
            break
    else:
        raise ProjectError(f"pipeline '{pipeline_uuid}' has no block '{block_uuid}'")
    _sync_downstream(data)
    write_pipeline_raw(root, pipeline_uuid, data)


def remove_block(
    root: str | os.PathLike[str], pipeline_uuid: str, block_uuid: str, *, delete_file: bool = False
) -> None:
    """Remove a block from a pipeline; its file is deleted only if asked and no other pipeline uses it."""
    root_path = Path(root).resolve()
    data = read_pipeline_raw(root_path, pipeline_uuid)
    blocks = data.get("blocks") or []
    target = next((b for b in blocks if str(b.get("uuid")) == block_uuid), None)
    if target is None:
        raise ProjectError(f"pipeline '{pipeline_uuid}' has no block '{block_uuid}'")
    blocks.remove(target)
    for b in blocks:
        b["upstream_blocks"] = [u for u in (b.get("upstream_blocks") or []) if u != block_uuid]
    _sync_downstream(data)
    write_pipeline_raw(root_path, pipeline_uuid, data)
    if delete_file:
        spec_path = root_path / block_relpath(str(target.get("type")), block_uuid, str(target.get("language") or "python"))
        if spec_path.is_file() and not block_users(root_path, str(target.get("type")), block_uuid):
            spec_path.unlink()


def block_users(root: str | os.PathLike[str], block_type: str, block_uuid: str) -> list[str]:
    """Pipelines that list a block (same type and uuid = same file)."""
    users = []
    for uid in list_pipelines(root):
        try:
            raw = read_pipeline_raw(root, uid)
        except ProjectError:
            continue
        for b in raw.get("blocks") or []:
            if isinstance(b, dict) and str(b.get("uuid")) == block_uuid and str(b.get("type")) == block_type:
                users.append(uid)
                break
    return users


def delete_pipeline(root: str | os.PathLike[str], uuid: str) -> None:
    """Delete a pipeline folder; block files stay (other pipelines may use them)."""
    import shutil

    folder = pipeline_dir(root, uuid)
    if not (folder / METADATA_FILE).is_file():
        raise ProjectError(f"pipeline '{uuid}' not found")
    shutil.rmtree(folder)


def clone_pipeline(root: str | os.PathLike[str], uuid: str, new_name: str) -> str:
    """Copy a pipeline under a new name; the clone shares the block files."""
    data = read_pipeline_raw(root, uuid)
    new_uuid = clean_name(new_name)
    folder = pipeline_dir(root, new_uuid)
    if folder.exists():
        raise ProjectError(f"pipeline '{new_uuid}' already exists")
    folder.mkdir(parents=True)
    (folder / "__init__.py").touch()
    data["uuid"] = new_uuid
    data["name"] = new_name
    data["created_at"] = _now_str()
    write_pipeline_raw(root, new_uuid, data)
    return new_uuid


def rename_pipeline(root: str | os.PathLike[str], uuid: str, new_name: str) -> str:
    """Rename a pipeline (its folder and uuid); returns the new uuid."""
    new_uuid = clean_name(new_name)
    source, target = pipeline_dir(root, uuid), pipeline_dir(root, new_uuid)
    if new_uuid != uuid and target.exists():
        raise ProjectError(f"pipeline '{new_uuid}' already exists")
    data = read_pipeline_raw(root, uuid)
    data["name"] = new_name
    data["uuid"] = new_uuid
    if new_uuid != uuid:
        os.replace(source, target)
    write_pipeline_raw(root, new_uuid, data)
    return new_uuid


def set_pipeline_variables(root: str | os.PathLike[str], uuid: str, variables: Mapping[str, Any]) -> None:
    """Replace a pipeline's ``variables:`` (names must be identifiers, values YAML-serialisable)."""
    bad = [k for k in variables if not str(k).isidentifier()]
    if bad:
        raise ProjectError(f"variable names must be identifiers: {', '.join(map(str, bad))}")
    data = read_pipeline_raw(root, uuid)
    data["variables"] = dict(variables)
    write_pipeline_raw(root, uuid, data)


def update_block_entry(
    root: str | os.PathLike[str], pipeline_uuid: str, block_uuid: str, changes: Mapping[str, Any]
) -> None:
    """Merge ``changes`` into a block entry (e.g. ``configuration``, ``status``, ``timeout``)."""
    data = read_pipeline_raw(root, pipeline_uuid)
    for b in data.get("blocks") or []:
        if str(b.get("uuid")) == block_uuid:
            b.update(changes)
            break
    else:
        raise ProjectError(f"pipeline '{pipeline_uuid}' has no block '{block_uuid}'")
    write_pipeline_raw(root, pipeline_uuid, data)
