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

__all__ = ["render_block_template", "list_templates", "sql_block_configuration", "TEMPLATE_DIR", "SQL_PROVIDER_SCHEMAS"]

TEMPLATE_DIR = Path(__file__).resolve().parent
_SUFFIX = ".jinja"

#: SQL data providers a new SQL block can target, with their default schema (BigQuery: the
#: dataset, which only the user knows)
SQL_PROVIDER_SCHEMAS = {"postgres": "public", "duckdb": "main", "bigquery": ""}


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


def sql_block_configuration(block_type: str, provider: str, name: str) -> dict:
    """The ``configuration`` a new SQL block gets in metadata.yaml (what the editor writes).

    A SQL block cannot run without ``data_provider``; the profile is ``default`` and an
    exporter writes a table named after the block, replacing it on each run.
    """
    from dagsmith.project.layout import clean_name

    exporter = block_type == "data_exporter"
    return {
        "data_provider": provider,
        "data_provider_profile": "default",
        "data_provider_schema": SQL_PROVIDER_SCHEMAS.get(provider, "public"),
        "data_provider_table": clean_name(name) if exporter else "",
        "export_write_policy": "replace" if exporter else "append",
        "use_raw_sql": False,
        "limit": 1000,
    }
