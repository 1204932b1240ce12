"""Block templates: the starting file of a new block, per block type, language and connector.

Files are ``<block_type>/<template>.<language>.jinja`` in this folder, rendered
with Jinja (``name`` is the block's display name). Python templates import the
decorators behind Mage's ``if '<type>' not in globals()`` guard and the
connectors from ``dagsmith.io``, use the fast paths (pyarrow CSV, ADBC/COPY,
Arrow), and carry a ``@test``.
"""

from __future__ import annotations

from pathlib import Path

from dagsmith.errors import ProjectError

__all__ = ["render_block_template", "list_templates", "TEMPLATE_DIR"]

TEMPLATE_DIR = Path(__file__).resolve().parent
_SUFFIX = ".jinja"


def list_templates() -> list[dict[str, str]]:
    """Every template: ``{"block_type", "language", "template"}``, sorted."""
    out = []
    for path in sorted(TEMPLATE_DIR.glob(f"*/*{_SUFFIX}")):
        stem = path.name[: -len(_SUFFIX)]
        template, _, language = stem.rpartition(".")
        out.append({"block_type": path.parent.name, "language": language, "template": template})
    return out


def render_block_template(block_type: str, language: str = "python", template: str = "generic", name: str = "") -> str:
    """The text of a new block file; ProjectError listing the choices when there is no such template."""
    import jinja2

    path = TEMPLATE_DIR / block_type / f"{template}.{language}{_SUFFIX}"
    if not path.is_file():
        choices = [t["template"] for t in list_templates() if t["block_type"] == block_type and t["language"] == language]
        raise ProjectError(
            f"no {language} template {template!r} for {block_type} blocks",
            hint=("templates: " + ", ".join(choices)) if choices else
            "block types with templates: " + ", ".join(sorted({t["block_type"] for t in list_templates()})),
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        keep_trailing_newline=True,
        trim_blocks=False,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
    )
    rel = f"{block_type}/{template}.{language}{_SUFFIX}"
    text = env.get_template(rel).render(name=name or f"new {block_type}")
    return text.lstrip("\n")
