"""``dagsmith trigger …``: list triggers, sync triggers.yaml, switch triggers on/off, show the API URL.

Only Typer is imported at module load; everything else inside the commands.
"""

from __future__ import annotations

import json
from typing import List, Optional

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
    from rich.markup import escape

    err = Console(stderr=True, highlight=False)
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        err.print(f"[yellow]hint:[/] {escape(hint)}", soft_wrap=True)
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
    from dagsmith.orchestration.triggers import next_run as _next_run
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
    if not console.is_terminal:  # piped or captured: full cells rather than 80 columns of ellipses
        console.width = 240
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


@app.command("create")
@_guard
def create_cmd(
    project: str = typer.Argument(..., help="Project folder."),
    pipeline: str = typer.Argument(..., help="Pipeline uuid."),
    name: str = typer.Argument(..., help="Trigger name (unique in the pipeline)."),
    schedule: Optional[str] = typer.Option(
        None, "--schedule", "-s", help="A schedule: @once @hourly @daily @weekly @monthly, or a 5-field cron such as '0 5 * * *'."
    ),
    api: bool = typer.Option(False, "--api", help="An API trigger instead: runs start with POST to its URL (printed)."),
    tz: str = typer.Option("UTC", "--timezone", help="IANA time zone of the schedule, e.g. Europe/Berlin."),
    start_time: Optional[str] = typer.Option(None, "--start-time", help="First execution date (ISO 8601); default: now."),
    catchup: Optional[str] = typer.Option(None, "--catchup", help="After downtime run none, the latest or all missed periods."),
    var: Optional[List[str]] = typer.Option(None, "-v", "--var", help="A run variable as key=value (repeatable)."),
    inactive: bool = typer.Option(False, "--inactive", help="Create it switched off (enable with `dagsmith trigger enable`)."),
    in_code: bool = typer.Option(False, "--in-code", help="Also keep it in pipelines/<p>/triggers.yaml."),
) -> None:
    """Create a schedule (--schedule) or an API trigger (--api), checked like the REST API checks it."""
    from dagsmith.errors import ConfigError
    from dagsmith.orchestration.service import create_trigger, parse_datetime
    from dagsmith.orchestration.store import repo

    if bool(schedule) == api:
        raise ConfigError(
            "give either --schedule (a time trigger) or --api (an API trigger)",
            hint=f"e.g. dagsmith trigger create {project} {pipeline} {name} --schedule '0 5 * * *'",
        )
    fields: dict = {"name": name, "schedule_type": "api" if api else "time", "timezone": tz,
                    "status": "inactive" if inactive else "active"}
    if schedule:
        fields["schedule_interval"] = schedule.strip()
    if start_time:
        fields["start_time"] = parse_datetime(start_time, field="--start-time", tz=tz)
    if catchup:
        fields["catchup"] = catchup
    if var:
        from dagsmith.cli.runvars import parse_vars

        fields["variables"] = parse_vars(None, var)
    if in_code:
        fields["in_code"] = True
    settings, db = _open(project)
    trigger_id = create_trigger(db, settings.project_root, pipeline, fields, actor="cli")
    from dagsmith.orchestration.triggers import next_run as _next_run

    with db.read() as session:
        trigger = repo.get_trigger(session, trigger_id)
        next_run = _next_run(trigger)
    typer.echo(f"Created trigger {trigger_id} ({name}) of pipeline {pipeline}: {trigger.status}")
    if api:
        _print_url(settings, trigger)
    elif next_run is not None:
        typer.echo(f"next run: {next_run.isoformat()} — runs start while `dagsmith start {project}` is running")
    elif trigger.status == "active":
        typer.echo(f"runs start while `dagsmith start {project}` is running")


def _print_url(settings, trigger, host: str | None = None, port: int | None = None) -> None:
    """The trigger's URL at the running server's real address (else --host/--port or 127.0.0.1:6789)."""
    from dagsmith.cli.instance import running_server

    live = running_server(settings.data_dir)
    if live and host is None and port is None:
        host, port = live["host"], live["port"]
    host = host or "127.0.0.1"
    port = port or 6789
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    url = f"http://{host}:{port}/api/pipeline_schedules/{trigger.id}/pipeline_runs/{trigger.token}"
    typer.echo(url)
    typer.echo(f"curl -X POST {url} -H 'Content-Type: application/json' -d '{{\"pipeline_run\": {{\"variables\": {{}}}}}}'")
    if not live:
        typer.echo(f"(no `dagsmith start` is running for this project now; the URL assumes {host}:{port})", err=True)


@app.command("url")
@_guard
def url_cmd(
    project: str = typer.Argument(..., help="Project folder."),
    trigger: str = typer.Argument(..., help="Trigger id, or a pipeline uuid followed by the trigger's name."),
    name: Optional[str] = typer.Argument(None, help="Trigger name (when the second argument is a pipeline uuid)."),
    host: Optional[str] = typer.Option(None, "--host", help="Server host (default: the running server's, else 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Server port (default: the running server's, else 6789)."),
) -> None:
    """Print the API URL of a trigger and a curl example (the URL contains its token)."""
    from dagsmith.errors import ConfigError
    from dagsmith.orchestration.store import repo

    settings, db = _open(project)
    with db.read() as session:
        if name is not None:
            found = repo.find_trigger(session, trigger, name)
            if found is None:
                names = [t.name for t in repo.list_triggers(session, trigger)]
                raise ConfigError(
                    f"pipeline '{trigger}' has no trigger named {name!r}",
                    hint=("its triggers: " + ", ".join(names)) if names else f"create one: dagsmith trigger create {project} {trigger} {name} --api",
                )
        elif trigger.isdigit():
            from dagsmith.orchestration.store.models import Trigger

            found = session.get(Trigger, int(trigger))
            if found is None:
                raise ConfigError(f"trigger {trigger} does not exist", hint=f"see the ids with: dagsmith trigger list {project}")
        else:
            raise ConfigError(
                f"{trigger!r} is not a trigger id",
                hint=f"give the id (dagsmith trigger list {project}) or the pipeline and the name: dagsmith trigger url {project} PIPELINE NAME",
            )
        if found.schedule_type != "api":
            typer.echo(f"note: trigger {found.id} is a {found.schedule_type} trigger; its URL starts runs too", err=True)
    _print_url(settings, found, host, port)
