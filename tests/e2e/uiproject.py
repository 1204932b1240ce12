"""Small Mage-format projects for the browser tests of the editor and run pages."""

from __future__ import annotations

from pathlib import Path

import yaml

HEAD = {
    "data_loader": "if 'data_loader' not in globals():\n    from mage_ai.data_preparation.decorators import data_loader\n",
    "transformer": "if 'transformer' not in globals():\n    from mage_ai.data_preparation.decorators import transformer\n",
    "data_exporter": "if 'data_exporter' not in globals():\n    from mage_ai.data_preparation.decorators import data_exporter\n",
}
FOLDER = {"data_loader": "data_loaders", "transformer": "transformers", "data_exporter": "data_exporters", "scratchpad": "scratchpads", "markdown": "markdowns"}


def block_code(btype: str, body: str, args: str = "") -> str:
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    params = f"{args}, *args, **kwargs" if args else "*args, **kwargs"
    return f"{HEAD[btype]}\n\n@{btype}\ndef run({params}):\n{lines}\n"


def write_pipeline(project: Path, uuid: str, blocks: list[dict]) -> None:
    """``blocks``: dicts with uuid, type, code (file text), upstream (list), language (default python), configuration."""
    entries = []
    for b in blocks:
        lang = b.get("language", "python")
        ext = {"python": "py", "sql": "sql", "markdown": "md"}[lang]
        path = project / FOLDER[b["type"]] / f"{b['uuid']}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if "code" in b:
            path.write_text(b["code"])
        entries.append({"uuid": b["uuid"], "name": b["uuid"], "type": b["type"], "language": lang, "upstream_blocks": list(b.get("upstream", [])),
                        "downstream_blocks": [], "configuration": dict(b.get("configuration", {}))})
    for e in entries:
        for up in e["upstream_blocks"]:
            next(x for x in entries if x["uuid"] == up)["downstream_blocks"].append(e["uuid"])
    folder = project / "pipelines" / uuid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.yaml").write_text(yaml.safe_dump({"name": uuid, "uuid": uuid, "type": "python", "blocks": entries}, sort_keys=False))


def new_project(tmp_path: Path, name: str = "proj") -> Path:
    from dagsmith.project.scaffold import init_project

    return init_project(tmp_path / name, example=False)


def set_code(page, block: str, code: str) -> None:
    page.locator(f"#block-{block} .CodeMirror").wait_for()
    page.evaluate("([id, code]) => document.getElementById(id).cmEditor.setValue(code)", [f"code-{block}", code])


def open_cell(page, block: str) -> None:
    page.locator(f"#block-{block}").scroll_into_view_if_needed()
    page.locator(f"#block-{block} .CodeMirror").wait_for()


def run_cell(page, block: str, timeout: float = 60_000) -> str:
    open_cell(page, block)
    page.locator(f"#block-{block} .run-btn").click()
    out = page.locator(f"#out-{block}.done")
    out.wait_for(timeout=timeout)
    return out.inner_text()
