"""Where things live in a Mage-format project, and the rules that map uuids to files.

A project is a folder (importable as a package by its folder name) holding
``metadata.yaml``, ``io_config.yaml``, one folder per block type and
``pipelines/<uuid>/metadata.yaml``. dagsmith keeps its own data (run history,
block outputs, logs) under ``<project>/.dagsmith`` unless ``DAGSMITH_DATA_DIR``
says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

# block type -> folder name (Mage: "<type>s", except custom)
BLOCK_TYPE_DIRS: dict[str, str] = {
    "data_loader": "data_loaders",
    "transformer": "transformers",
    "data_exporter": "data_exporters",
    "custom": "custom",
    "sensor": "sensors",
    "conditional": "conditionals",
    "callback": "callbacks",
    "scratchpad": "scratchpads",
    "chart": "charts",
    "markdown": "markdowns",
    "extension": "extensions",
    "dbt": "dbt",
    "global_data_product": "global_data_products",
}

#: block types whose code runs as a step of the DAG
EXECUTABLE_TYPES = frozenset({"data_loader", "transformer", "data_exporter", "custom", "sensor"})
#: block types that never run as steps (kept and shown, never executed)
PASSIVE_TYPES = frozenset({"scratchpad", "chart", "markdown", "extension", "global_data_product"})

LANGUAGE_EXTENSIONS: dict[str, str] = {
    "python": "py",
    "sql": "sql",
    "r": "r",
    "yaml": "yaml",
    "markdown": "md",
}

PROJECT_FOLDERS = (
    "data_loaders",
    "transformers",
    "data_exporters",
    "custom",
    "sensors",
    "conditionals",
    "callbacks",
    "charts",
    "dbt",
    "extensions",
    "interactions",
    "scratchpads",
    "utils",
    "pipelines",
)

DATA_DIR_NAME = ".dagsmith"
#: set while a pipeline runs, so ``get_repo_path()`` in block code finds its project
REPO_PATH_ENV = "DAGSMITH_REPO_PATH"


def clean_name(name: str) -> str:
    """Turn a display name into a uuid the way Mage does (see ``project.names.clean_name``)."""
    from dagsmith.project.names import clean_name as _clean

    return _clean(name)


def block_dir(block_type: str) -> str:
    """Folder (relative to the project) that holds blocks of ``block_type``."""
    return BLOCK_TYPE_DIRS.get(block_type, f"{block_type}s")


def block_relpath(block_type: str, uuid: str, language: str = "python") -> str:
    """``<type dir>/<uuid>.<ext>`` — the path Mage derives from a block's uuid (checked by the name gate)."""
    from dagsmith.project.names import check_name

    check_name(uuid, "block")
    ext = LANGUAGE_EXTENSIONS.get(language, language)
    return f"{block_dir(block_type)}/{uuid}.{ext}"


def get_repo_path() -> str:
    """The project folder of the code that is running (Mage's ``get_repo_path``).

    Set by dagsmith while a pipeline runs; otherwise ``MAGE_REPO_PATH`` or the
    nearest folder upwards from the working directory holding ``io_config.yaml``
    and ``pipelines/``; otherwise the working directory.
    """
    from dagsmith.settings import get

    value = get("repo_path") or os.environ.get("MAGE_REPO_PATH")
    if value:
        return value
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "io_config.yaml").is_file() and (folder / "pipelines").is_dir():
            return str(folder)
    return str(here)


def data_dir(project_root: str | os.PathLike[str]) -> Path:
    """dagsmith's own data folder for a project (history DB, outputs, logs)."""
    from dagsmith.settings import get

    override = get("data_dir")
    if override:
        return Path(override).expanduser().resolve()
    return Path(project_root).resolve() / DATA_DIR_NAME


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) and make it 0700: dagsmith's data, logs and keys are the owner's alone."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if folder.stat().st_mode & 0o077:
            os.chmod(folder, 0o700)
    except OSError:  # a folder we do not own (shared mount): leave it
        pass
    return folder


def private_file(path: str | os.PathLike[str]) -> Path:
    """Make sure ``path`` exists with mode 0600 (created empty if missing; an existing file is tightened)."""
    file = Path(path)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        if file.stat().st_mode & 0o077:
            os.chmod(file, 0o600)
    except OSError:
        pass
    return file


def confine(project_root: str | os.PathLike[str], relpath: str) -> Path:
    """Resolve ``relpath`` inside the project, refusing anything that escapes it.

    Refuses absolute paths, ``..`` segments that leave the folder, and symlinks
    pointing outside it.
    """
    from dagsmith.project.names import UnsafeName

    root = Path(project_root).resolve()
    if os.path.isabs(relpath) or "\x00" in relpath:
        raise UnsafeName(f"path {relpath!r} is absolute; give a path inside the project {root}")
    target = (root / relpath).resolve()
    if target != root and root not in target.parents:
        raise UnsafeName(f"path {relpath!r} is outside the project {root}")
    return target
