"""``dagsmith blocks …``: create blocks from templates for people who work in their editor.

``dagsmith blocks new PROJECT PIPELINE NAME --type data_loader --template api [--upstream UUID]``
writes ``<type dir>/<uuid>.py`` from a template (see ``dagsmith.blocks.templates``)
and wires the block into the pipeline's ``metadata.yaml``. ``dagsmith blocks
templates`` lists the templates. Heavy imports happen inside the commands.
"""

from __future__ import annotations

from typing import List, Optional

import typer

app = typer.Typer(help="Create blocks from templates (loaders, transformers, exporters).", no_args_is_help=True)

_EXT = {"python": "py", "sql": "sql"}


def _fail(exc: BaseException) -> None:
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, highlight=False)
    err.print(f"[bold red]error:[/] {escape(str(getattr(exc, 'message', None) or exc))}", soft_wrap=True)
    hint = getattr(exc, "hint", None)
    if hint:
        err.print(f"[yellow]hint:[/] {escape(hint)}", soft_wrap=True)
    raise typer.Exit(2)


@app.command("new")
def new(
    project: str = typer.Argument(..., help="Project folder."),
    pipeline: str = typer.Argument(..., help="Pipeline uuid."),
    name: str = typer.Argument(..., help="Block name (its uuid is the cleaned name)."),
    block_type: str = typer.Option("data_loader", "--type", "-t", help="data_loader, transformer, data_exporter, custom, sensor."),
    template: str = typer.Option(
        "generic", "--template", help="api, postgres, gcs, bigquery, duckdb, s3, file or generic."
    ),
    language: str = typer.Option("python", "--language", "-l", help="python or sql."),
    upstream: Optional[List[str]] = typer.Option(None, "--upstream", "-u", help="Upstream block uuid (repeatable)."),
    data_provider: Optional[str] = typer.Option(
        None, "--data-provider", help="SQL blocks: postgres, duckdb or bigquery (default: the template's, e.g. --template postgres)."
    ),
) -> None:
    """Write a new block file from a template and add it to PIPELINE."""
    from pathlib import Path

    from dagsmith.blocks.templates import SQL_PROVIDER_SCHEMAS, render_block_template, sql_block_configuration
    from dagsmith.errors import DagsmithError, ProjectError
    from dagsmith.project.layout import block_relpath, clean_name
    from dagsmith.project.pipelines import add_block

    try:
        root = Path(project).resolve()
        uid = clean_name(name)
        target = root / block_relpath(block_type, uid, language)
        content = render_block_template(block_type, language, template, name)
        configuration = None
        if language == "sql":  # what the editor writes: a SQL block cannot run without its data provider
            provider = (data_provider or (template if template in SQL_PROVIDER_SCHEMAS else "")).lower()
            if provider not in SQL_PROVIDER_SCHEMAS:
                raise ProjectError(
                    f"{provider!r} is not a data provider of SQL blocks" if provider
                    else "a SQL block needs a data provider: the database its SQL runs in",
                    hint="pass --data-provider " + " | ".join(SQL_PROVIDER_SCHEMAS) + " (or --template postgres | duckdb | bigquery)",
                )
            configuration = sql_block_configuration(block_type, provider, name)
        reused = target.exists()
        add_block(
            root, pipeline, uid, block_type, language=language, upstream=list(upstream or []),
            content=content, configuration=configuration, name=name,
        )
    except DagsmithError as exc:
        _fail(exc)
        return
    rel = target.relative_to(root)
    if reused:
        typer.echo(f"Added existing block {uid} ({rel}) to pipeline {pipeline}")
    else:
        typer.echo(f"Created {rel} ({block_type}, template {template}) and added it to pipeline {pipeline}")


@app.command("templates")
def templates(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the block templates."""
    from dagsmith.blocks.templates import list_templates

    items = list_templates()
    if as_json:
        import json

        typer.echo(json.dumps(items, indent=2))
        return
    for t in items:
        typer.echo(f"{t['block_type']:<14} {t['language']:<7} {t['template']}")
