"""``dagsmith trigger …``: list triggers, sync triggers.yaml, switch triggers on/off, show the API URL.

Only Typer is imported at module load; everything else inside the commands.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

app = typer.Typer(help="Triggers: schedules, API triggers and triggers.yaml.", no_args_is_help=True)


def _open(project: str):
    from pathlib import Path

    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.project.env import load_project_env

    root = Path(project).resolve()
    if not (root / "pipelines").is_dir():
        _fail_text(f"{root} is not a project (it has no pipelines/ folder)")
    load_project_env(root)
    settings = OrchestrationSettings.from_env(root)
    return settings, get_database(settings)


def _fail_text(message: str, hint: str | None = None) -> None:
    from rich.console import Console

    err = Console(stderr=True, highlight=False)
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    if hint:
        err.print(f"[yellow]hint:[/] {hint}", soft_wrap=True)
    raise typer.Exit(2)


def _guard(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from dagsmith.errors import DagsmithError

        try:
            return fn(*args, **kwargs)
        except DagsmithError as exc:
            _fail_text(exc.message, exc.hint)

    return wrapper


@app.command("list")
@_guard
def list_cmd(
    project: str = typer.Argument(..., help="Project folder."),
    pipeline: Optional[str] = typer.Option(None, "--pipeline", "-p", help="Only this pipeline's triggers."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List triggers with their schedule, status and next execution date (reads triggers.yaml first)."""
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    from dagsmith.orchestration.scheduler.code_triggers import CodeTriggerSync
    from dagsmith.server.api.triggers import _next_run
    from dagsmith.orchestration.store import repo

    settings, db = _open(project)
    sync = CodeTriggerSync(settings.project_root, settings.env)
    sync.sync(db, now=datetime.now(timezone.utc))
    with db.read() as session:
        rows = [
            {
                "id": t.id, "pipeline": t.pipeline_uuid, "name": t.name, "type": t.schedule_type,
                "schedule": t.schedule_interval, "timezone": t.timezone, "status": t.status,
                "catchup": t.catchup or (t.settings or {}).get("catchup") or settings.catchup,
                "in_code": t.in_code, "next": _next_run(t),
            }
            for t in repo.list_triggers(session, pipeline)
        ]
    if as_json:
        print(json.dumps(rows, default=str, indent=2))
        return
    console = Console()
    table = Table(show_edge=False)
    for col in ("id", "pipeline", "name", "type", "schedule", "timezone", "status", "catchup", "in code", "next run"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), r["pipeline"], r["name"], r["type"], r["schedule"] or "", r["timezone"], r["status"], r["catchup"], "yes" if r["in_code"] else "", r["next"].isoformat() if r["next"] else "")
    console.print(table)
    for uuid, problem in sync.errors.items():
        Console(stderr=True).print(f"[yellow]warning:[/] pipelines/{uuid}/triggers.yaml: {problem}", soft_wrap=True)


@app.command("sync")
@_guard
def sync_cmd(project: str = typer.Argument(..., help="Project folder.")) -> None:
    """Read every pipelines/*/triggers.yaml into the metadata DB now."""
    from datetime import datetime, timezone

    from dagsmith.orchestration.scheduler.code_triggers import CodeTriggerSync

    settings, db = _open(project)
    sync = CodeTriggerSync(settings.project_root, settings.env)
    changed = sync.sync(db, now=datetime.now(timezone.utc))
    typer.echo(f"{changed} trigger(s) created or changed")
    if sync.errors:
        for uuid, problem in sync.errors.items():
            typer.echo(f"pipelines/{uuid}/triggers.yaml: {problem}", err=True)
        raise typer.Exit(1)


def _set_status(project: str, trigger_id: int, status: str) -> None:
    from dagsmith.orchestration.scheduler.code_triggers import write_triggers_yaml
    from dagsmith.orchestration.store import repo

    settings, db = _open(project)
    with db.session() as session:
        trigger = repo.get_trigger(session, trigger_id)
        repo.update_trigger(session, trigger, status=status)
        repo.audit(session, f"trigger.{status}", "trigger", trigger_id, {}, actor="cli")
        pipeline_uuid, in_code = trigger.pipeline_uuid, trigger.in_code
    if in_code:
        with db.read() as session:
            write_triggers_yaml(settings.project_root, pipeline_uuid, [t for t in repo.list_triggers(session, pipeline_uuid) if t.in_code])
    typer.echo(f"trigger {trigger_id} is now {status}")


@app.command("enable")
@_guard
def enable_cmd(project: str = typer.Argument(..., help="Project folder."), trigger_id: int = typer.Argument(..., help="Trigger id.")) -> None:
    """Switch a trigger on (schedules start from the current period; no catch-up of the off time)."""
    _set_status(project, trigger_id, "active")


@app.command("disable")
@_guard
def disable_cmd(project: str = typer.Argument(..., help="Project folder."), trigger_id: int = typer.Argument(..., help="Trigger id.")) -> None:
    """Switch a trigger off."""
    _set_status(project, trigger_id, "inactive")


@app.command("url")
@_guard
def url_cmd(
    project: str = typer.Argument(..., help="Project folder."),
    trigger_id: int = typer.Argument(..., help="Trigger id."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(6789, "--port"),
) -> None:
    """Print the API URL of a trigger and a curl example (the URL contains its token)."""
    from dagsmith.orchestration.store import repo

    _, db = _open(project)
    with db.read() as session:
        trigger = repo.get_trigger(session, trigger_id)
        url = f"http://{host}:{port}/api/pipeline_schedules/{trigger.id}/pipeline_runs/{trigger.token}"
    typer.echo(url)
    typer.echo(f"curl -X POST {url} -H 'Content-Type: application/json' -d '{{\"pipeline_run\": {{\"variables\": {{}}}}}}'")
