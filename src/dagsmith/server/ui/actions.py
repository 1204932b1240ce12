"""Editor routes for Mage's comforts (its own ``router``, mounted beside the pages): per-block actions and the file tree.

Per block: ``…/blocks/<b>/duplicate`` (a copy of the file under a new uuid, same type, language,
settings and upstream), ``…/rename`` (the file and the uuid, in EVERY pipeline that lists the
block, with the edges that name it — Mage renames the file but leaves other pipelines pointing
at the old one, #2742), ``…/disable`` (``configuration.disabled``: pipeline runs skip the block and
its downstream blocks read its latest stored output; the editor can still run it).

Files beside the cells: ``GET /pipelines/<p>/edit/files`` (the project tree, block files
draggable into the pipeline), ``GET /pipelines/<p>/edit/file?path=`` (a file opened in a panel
above the cells, saved through ``/files/save``), ``POST /files/rename`` (refused for block files,
which are renamed with their block).

Names typed by the user become uuids with ``project.layout.clean_name`` (no folders); paths go
through ``project.names.safe_path`` (confined to the project, no ``..``, no symlinks).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from dagsmith.errors import DagsmithError, ProjectError
from dagsmith.project.names import safe_path
from dagsmith.server.ui.pages.common import cached_raw, content_hash, error_text, flash_url, load_spec, page_router, project_root, redirect, render
from dagsmith.server.ui.pages.files import MAX_EDIT_BYTES, file_tree, mode_for, private_paths

router, get, post = page_router()



def block_uuid_from(name: str) -> str:
    """A new block uuid from a typed name (Mage's cleaning through the name gate, never a folder)."""
    from dagsmith.project.names import check_name, clean_name

    uid = clean_name(str(name or ""), default="")
    if not uid:
        raise ProjectError(f"{name!r} cannot be a block name", hint="use letters, digits and _ (e.g. load_taxi_data)")
    check_name(uid, "block")
    return uid


def _users(root: Path, block_type: str, uuid: str) -> list[str]:
    from dagsmith.project.pipelines import block_users

    return block_users(root, block_type, uuid)


def _back(pipeline_uuid: str, block: str | None = None, message: str | None = None, kind: str = "ok") -> str:
    url = f"/pipelines/{quote(pipeline_uuid)}/edit"
    if message:
        url = flash_url(url, message, kind)
    return url + (f"#block-{quote(block)}" if block else "")


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/duplicate")
def block_duplicate(request: Request, pipeline_uuid: str, block_uuid: str) -> Response:
    from dagsmith.project.layout import block_relpath
    from dagsmith.project.pipelines import add_block

    root = project_root(request)
    try:
        spec = load_spec(request, pipeline_uuid)
        block = spec.block(block_uuid)
        taken = {b.uuid for b in spec.blocks}
        n, new = 1, f"{block_uuid}_copy"
        while new in taken or (root / block_relpath(block.type, new, block.language)).exists():
            n += 1
            new = f"{block_uuid}_copy{n}"
        content = block.path.read_text(encoding="utf-8") if block.path.is_file() else ""
        config = {k: v for k, v in dict(block.configuration or {}).items() if k != "file_source"}
        add_block(root, pipeline_uuid, new, block.type, language=block.language, upstream=list(block.upstream_blocks),
                  content=content, configuration=config, name=new)
    except DagsmithError as exc:
        return redirect(request, _back(pipeline_uuid, block_uuid, error_text(exc), "error"))
    return redirect(request, _back(pipeline_uuid, new, f"Duplicated {block_uuid} as {new}."))


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/rename")
async def block_rename(request: Request, pipeline_uuid: str, block_uuid: str) -> Response:
    form = await request.form()
    try:
        new, users = rename_block(project_root(request), pipeline_uuid, block_uuid, str(form.get("name") or ""))
    except DagsmithError as exc:
        return redirect(request, _back(pipeline_uuid, block_uuid, error_text(exc), "error"))
    others = [u for u in users if u != pipeline_uuid]
    note = f" (also in {', '.join(others)})" if others else ""
    return redirect(request, _back(pipeline_uuid, new, f"Renamed {block_uuid} to {new}{note}."))


def rename_block(root: Path, pipeline_uuid: str, block_uuid: str, name: str) -> tuple[str, list[str]]:
    """Rename a block's uuid and file in every pipeline that lists it; returns (new uuid, those pipelines)."""
    import os

    from dagsmith.project.layout import block_relpath, confine
    from dagsmith.project.pipelines import load_pipeline, read_pipeline_raw, write_pipeline_raw

    spec = load_pipeline(root, pipeline_uuid)
    block = spec.block(block_uuid)
    new = block_uuid_from(name)
    if new == block_uuid:
        return new, [pipeline_uuid]
    users = _users(root, block.type, block_uuid) or [pipeline_uuid]
    raws = {p: read_pipeline_raw(root, p) for p in users}
    for p, raw in raws.items():
        if any(str(b.get("uuid")) == new for b in raw.get("blocks") or [] if isinstance(b, dict)):
            raise ProjectError(f"pipeline '{p}' already has a block '{new}'", hint="choose another name")
    old_path = block.path
    new_rel = block_relpath(block.type, new, block.language)
    new_path = confine(root, new_rel)
    if new_path.exists():
        raise ProjectError(f"{new_rel} already exists", hint="choose another name, or add that file as a block with “reuse”")
    if old_path.is_file():
        new_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old_path, new_path)
    try:
        for p, raw in raws.items():
            for b in raw.get("blocks") or []:
                if not isinstance(b, dict):
                    continue
                if str(b.get("uuid")) == block_uuid and str(b.get("type")) == block.type:
                    b["uuid"] = new
                    if str(b.get("name") or "") in ("", block_uuid):
                        b["name"] = new
                    source = (b.get("configuration") or {}).get("file_source")
                    if isinstance(source, dict) and source.get("path"):
                        source["path"] = new_rel
                for key in ("upstream_blocks", "downstream_blocks"):
                    b[key] = [new if u == block_uuid else u for u in b.get(key) or []]
            write_pipeline_raw(root, p, raw)
    except BaseException:
        if new_path.is_file() and not old_path.exists():
            os.replace(new_path, old_path)
        raise
    return new, users


@post("/pipelines/{pipeline_uuid}/edit/blocks/{block_uuid}/disable")
async def block_disable(request: Request, pipeline_uuid: str, block_uuid: str) -> Response:
    from dagsmith.project.pipelines import update_block_entry

    form = await request.form()
    off = form.get("disabled") == "1"
    try:
        block = load_spec(request, pipeline_uuid).block(block_uuid)
        config = dict(block.configuration or {})
        if off:
            config["disabled"] = True
        else:
            config.pop("disabled", None)
        update_block_entry(project_root(request), pipeline_uuid, block_uuid, {"configuration": config})
    except DagsmithError as exc:
        return redirect(request, _back(pipeline_uuid, block_uuid, error_text(exc), "error"))
    word = "disabled: pipeline runs skip it" if off else "enabled again"
    return redirect(request, _back(pipeline_uuid, block_uuid, f"Block {block_uuid} {word}."))


# ---------------------------------------------------------------- files beside the cells


def _block_files_used(root: Path) -> dict[str, list[str]]:
    """relpath of each block file → pipelines that list it."""
    from dagsmith.project.layout import block_relpath
    from dagsmith.project.pipelines import list_pipelines

    used: dict[str, list[str]] = {}
    for p in list_pipelines(root):
        try:
            raw = cached_raw(root, p)
        except DagsmithError:
            continue
        for b in raw.get("blocks") or []:
            if isinstance(b, dict) and b.get("type") and b.get("uuid"):
                rel = block_relpath(str(b["type"]), str(b["uuid"]), str(b.get("language") or "python"))
                used.setdefault(rel, []).append(p)
    return used


@get("/pipelines/{pipeline_uuid}/edit/files")
def editor_files(request: Request, pipeline_uuid: str) -> HTMLResponse:
    from dagsmith.server.ui.pages.editor import block_files

    root = project_root(request)
    reusable = {f["relpath"]: f for f in block_files(root)}
    private = frozenset(p.resolve() for p in private_paths(request))
    return render(request, "_editor_files.html", pipeline_uuid=pipeline_uuid, tree=file_tree(root, root, private=private), path="",
                  reusable=reusable, used=_block_files_used(root))


@get("/pipelines/{pipeline_uuid}/edit/file")
def editor_file(request: Request, pipeline_uuid: str, path: str = "") -> HTMLResponse:
    try:
        target = safe_path(project_root(request), path, private_paths(request))
        if not target.is_file():
            raise ProjectError(f"{path} is not a file")
        data = target.read_bytes()
        if len(data) > MAX_EDIT_BYTES or b"\0" in data[:8192]:
            raise ProjectError(f"{path} is binary or larger than {MAX_EDIT_BYTES // 1_000_000} MB; open it in another editor")
    except DagsmithError as exc:
        return render(request, "_error.html", message=error_text(exc))
    file = {"path": path, "content": data.decode("utf-8", errors="replace"), "hash": content_hash(data), "mode": mode_for(path)}
    return render(request, "_editor_file.html", pipeline_uuid=pipeline_uuid, file=file)


@post("/files/rename")
async def files_rename(request: Request) -> Response:
    import os

    form = await request.form()
    old, new = str(form.get("path") or "").strip(), str(form.get("new_path") or "").strip()
    back = str(form.get("back") or "/files")
    if not back.startswith("/") or back.startswith("//"):
        back = "/files"
    root = project_root(request)
    try:
        private = private_paths(request)
        src, dst = safe_path(root, old, private), safe_path(root, new, private)
        if not src.is_file():
            raise ProjectError(f"{old} is not a file")
        if dst == root or dst.exists():
            raise ProjectError(f"{new} already exists" if dst.exists() else "give the new path", hint="e.g. utils/helpers_v2.py")
        users = _block_files_used(root).get(src.relative_to(root).as_posix())
        if users:
            raise ProjectError(f"{old} is the file of a block in {', '.join(users)}",
                               hint="rename the block in the editor (block menu → Rename): its file and every pipeline follow")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    except DagsmithError as exc:
        return redirect(request, flash_url(back, error_text(exc), "error"))
    return redirect(request, flash_url(back, f"Renamed {old} to {new}."))


