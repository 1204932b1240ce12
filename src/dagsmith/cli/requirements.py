"""A project's ``requirements.txt``, installed when ``dagsmith start`` starts — as Mage's container does.

Mage's image pip-installs ``<project>/requirements.txt`` each time the container starts, so
course projects list what their blocks import there. ``dagsmith start`` does the same into
the Python environment dagsmith runs in (``sys.executable -m pip install -r …``), but only
when the file changed since the last successful install (its SHA-256, with the interpreter's
path, is kept in ``<data_dir>/requirements.installed``), so restarts stay fast.
``dagsmith start --no-requirements`` skips it; ``dagsmith run`` never installs anything.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from dagsmith.errors import ConfigError

FILENAME = "requirements.txt"
MARKER = "requirements.installed"


def _wanted(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def install_requirements(project_root: Path, data_dir: Path, say=print) -> bool:
    """Install the project's requirements.txt if it lists anything new; True when pip ran.

    Raises ``ConfigError`` naming the file, with pip's last lines, when pip fails.
    """
    path = Path(project_root) / FILENAME
    if not path.is_file() or not _wanted(path):
        return False
    digest = hashlib.sha256(path.read_bytes() + sys.executable.encode()).hexdigest()
    marker = Path(data_dir) / MARKER
    try:
        if marker.read_text(encoding="utf-8").strip() == digest:
            return False
    except OSError:
        pass
    say(f"dagsmith: installing {path} into {sys.prefix} (pip install -r; skipped next time while the file is unchanged)")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r", str(path)],
        cwd=str(project_root), capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise ConfigError(
            f"{path}: pip could not install the project's requirements:\n{tail}",
            hint="fix requirements.txt (one pip requirement a line), or start with --no-requirements",
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(digest + "\n", encoding="utf-8")
    return True
