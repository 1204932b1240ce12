"""The file browser and editor of the project (``/files``, ``/files/save``, ``/files/new``).

Every path goes through ``project.names.safe_path`` (inside the project, no ``..``, no
symlinks) with dagsmith's own data (``private_paths``) refused; saves check the hash the
file was read at, like block saves.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from dagsmith.errors import DagsmithError, ProjectError
from dagsmith.project.names import safe_path
from dagsmith.server.ui.pages.common import (
    UTC,
    back_url,
    check_hash,
    content_hash,
    error_text,
    flash_url,
    page_router,
    project_root,
    redirect,
    render,
)

router, get, post = page_router()

#: never shown in the tree: tools' folders and dagsmith's own
FILE_SKIP = {".git", ".dagsmith", "__pycache__", ".variables", ".logs", "mage_data", ".venv", "node_modules", ".ipynb_checkpoints"}
#: larger files are not opened in the browser
MAX_EDIT_BYTES = 2_000_000


def private_paths(request: Request) -> list[Path]:
    """dagsmith's own data for this app (data folder, SQLite DB, logs, key): never listed, read or written."""
    from dagsmith.project.names import private_paths as _private

    return _private(project_root(request), getattr(request.app.state, "settings", None))



def file_tree(root: Path, base: Path, depth: int = 0, limit: list[int] | None = None, private: frozenset[Path] = frozenset()) -> list[dict[str, Any]]:
    """The project's files and folders under ``base`` for the file tree (at most 3,000 entries, 7 levels)."""
    limit = limit if limit is not None else [3000]
    out = []
    try:
        entries = sorted(base.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
    except OSError:
        return out
    for entry in entries:
        if limit[0] <= 0:
            break
        if entry.name in FILE_SKIP or entry.name.endswith((".pyc",)) or entry.is_symlink() or (private and entry.resolve() in private):
            continue
        limit[0] -= 1
        rel = entry.relative_to(root).as_posix()
        if entry.is_dir():
            out.append({"name": entry.name, "path": rel, "dir": True, "children": file_tree(root, entry, depth + 1, limit, private) if depth < 6 else []})
        else:
            out.append({"name": entry.name, "path": rel, "dir": False})
    return out


def mode_for(path: str) -> str:
    """The editor mode (syntax colouring) for a file name."""
    if path.endswith(".py"):
        return "python"
    if path.endswith(".sql"):
        return "sql"
    if path.endswith((".yaml", ".yml")):
        return "yaml"
    if path.endswith((".sh", ".env")) or path.endswith(".env.example"):
        return "shell"
    if path.endswith(".md"):
        return "markdown"
    return "text"


@get("/files")
def files_page(request: Request, path: str = "", ok: str | None = None, error: str | None = None) -> HTMLResponse:
    root = project_root(request)
    private = private_paths(request)
    tree = file_tree(root, root, private=frozenset(p.resolve() for p in private))
    ctx: dict[str, Any] = {"title": "Files", "nav": "files", "tree": tree, "path": path, "ok": ok, "error": error, "file": None}
    if path:
        try:
            target = safe_path(root, path, private)
            if target.is_dir():
                ctx["error"] = ctx["error"] or f"{path} is a folder; pick a file"
            elif not target.is_file():
                ctx["error"] = ctx["error"] or f"{path} does not exist (create it with New file)"
            elif target.stat().st_size > MAX_EDIT_BYTES:
                ctx["error"] = f"{path} is larger than {MAX_EDIT_BYTES // 1_000_000} MB; open it in another editor"
            else:
                data = target.read_bytes()
                if b"\0" in data[:8192]:
                    ctx["error"] = f"{path} is a binary file"
                else:
                    ctx["file"] = {"path": path, "content": data.decode("utf-8", errors="replace"), "hash": content_hash(data), "mode": mode_for(path)}
        except DagsmithError as exc:
            return render(request, "files.html", status_code=403, **{**ctx, "error": error_text(exc)})
    return render(request, "files.html", **ctx)


@post("/files/save")
async def files_save(request: Request) -> HTMLResponse:
    from dagsmith.project.yamlio import write_text_atomic

    form = await request.form()
    path = str(form.get("path") or "")
    try:
        target = safe_path(project_root(request), path, private_paths(request))
        if target.is_dir():
            raise ProjectError(f"{path} is a folder")
        changed = check_hash(target, str(form.get("base_hash") or ""), form.get("force") == "1")
        if changed is not None:
            return render(request, "_file_status.html", status_code=409, conflict=True, path=path)
        text = str(form.get("content", "")).replace("\r\n", "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, text)
    except DagsmithError as exc:
        return render(request, "_error.html", status_code=403, message=error_text(exc))
    return render(request, "_file_status.html", conflict=False, path=path, file_hash=content_hash(text.encode("utf-8")), saved_at=datetime.now(UTC))


@post("/files/new")
async def files_new(request: Request) -> Response:
    form = await request.form()
    path = str(form.get("path") or "").strip()
    try:
        target = safe_path(project_root(request), path, private_paths(request))
        if target == project_root(request):
            raise ProjectError("give a file name", hint="e.g. utils/helpers.py")
        if target.exists():
            raise ProjectError(f"{path} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("", encoding="utf-8")
    except DagsmithError as exc:
        return redirect(request, flash_url(back_url(form, "/files"), error_text(exc), "error"))
    back = back_url(form, "")
    if back:  # created from the editor's file tree: open it there
        return redirect(request, f"{back}?open={quote(path)}")
    return redirect(request, f"/files?path={quote(path)}")
