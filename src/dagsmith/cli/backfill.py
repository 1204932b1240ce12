"""``dagsmith backfill PROJECT PIPELINE --start … --end … --interval day``: run a date range now.

Creates a backfill in the metadata DB (one run per date, ``execution_date`` = the
date), runs it in this process with a Rich progress bar (done/total, failures), and
ends with the failed dates and the command that reruns only them. Ctrl-C cancels the
backfill's waiting runs. ``--rerun-failed ID`` queues again the failed dates of an
earlier backfill and runs them. ``--queue-only`` leaves the runs to a running
``dagsmith start``. Only Typer is imported at module load.
"""

from __future__ import annotations

import json
from typing import List, Optional

import typer


def command(
    project: str = typer.Argument(..., help="Project folder."),
    pipeline: str = typer.Argument(..., help="Pipeline uuid."),
    start: Optional[str] = typer.Option(None, "--start", help="First date (ISO 8601, e.g. 2024-01-01)."),
    end: Optional[str] = typer.Option(None, "--end", help="Last date, inclusive."),
    interval: str = typer.Option("day", "--interval", help="second, minute, hour, day, week, month, year or custom (seconds)."),
    units: int = typer.Option(1, "--units", help="Interval units (e.g. --interval hour --units 6)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Runs at the same time (default: the worker's concurrency)."),
    timezone: str = typer.Option("UTC", "--timezone", help="Time zone of the dates (IANA name)."),
    runtime_vars: Optional[str] = typer.Option(None, "--runtime-vars", help="Variables for every run, as a JSON object."),
    var: Optional[List[str]] = typer.Option(None, "-v", "--var", help="A variable as key=value (repeatable)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the backfill."),
    rerun_failed: Optional[int] = typer.Option(None, "--rerun-failed", help="Rerun only the failed dates of backfill ID."),
    queue_only: bool = typer.Option(False, "--queue-only", help="Only create the runs; a running `dagsmith start` executes them."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run a pipeline once per date of a range, with a progress bar."""
    from pathlib import Path

    from rich.console import Console
    from rich.markup import escape

    from dagsmith.cli.runvars import parse_vars
    from dagsmith.errors import DagsmithError

    err = Console(stderr=True, highlight=False)
    root = Path(project).resolve()
    try:
        code = _backfill(
            root, pipeline, start=start, end=end, interval=interval, units=units, concurrency=concurrency,
            tz=timezone, variables=parse_vars(runtime_vars, var), name=name, rerun_failed=rerun_failed,
            queue_only=queue_only, as_json=as_json, project_arg=project,
        )
    except DagsmithError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]hint:[/] {escape(exc.hint)}", soft_wrap=True)
        raise typer.Exit(2)
    raise typer.Exit(code)


def _backfill(root, pipeline, *, start, end, interval, units, concurrency, tz, variables, name, rerun_failed, queue_only, as_json, project_arg) -> int:
    import threading
    from datetime import datetime, timezone as dt_tz

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dagsmith.errors import ConfigError
    from dagsmith.orchestration import service
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.scheduler import backfills as bf
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo
    from dagsmith.orchestration.worker import Worker
    from dagsmith.project.env import load_project_env

    console = Console(stderr=True, highlight=False)
    load_project_env(root)
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    now = datetime.now(dt_tz.utc)
    if rerun_failed is not None:
        with db.session() as session:
            backfill = repo.get_backfill(session, rerun_failed)
            if backfill.pipeline_uuid != pipeline:
                raise ConfigError(f"backfill {rerun_failed} belongs to pipeline '{backfill.pipeline_uuid}', not '{pipeline}'")
            count = bf.rerun_failed(session, backfill, now=now)
        backfill_id = rerun_failed
        console.print(f"backfill {backfill_id}: {count} failed date(s) queued again")
    else:
        if not start or not end:
            raise ConfigError("a backfill needs --start and --end", hint=f"dagsmith backfill {project_arg} {pipeline} --start 2024-01-01 --end 2024-01-31 --interval day")
        backfill_id = service.create_backfill(
            db, root, pipeline, start=start, end=end, interval_type=interval, interval_units=units,
            variables=variables, name=name, concurrency=concurrency, tz=tz, now=now,
        )
    with db.read() as session:
        total = repo.backfill_progress(session, backfill_id)["total"]
    console.print(f"backfill {backfill_id} of {pipeline}: {total} run(s)")
    if queue_only:
        console.print("runs queued; `dagsmith start` executes them. Follow with GET /api/backfills/%d" % backfill_id)
        return 0

    worker = Worker(settings, db, backfill_id=backfill_id, role="backfill", concurrency=concurrency or settings.worker_concurrency)
    stop = threading.Event()
    worker.start(stop)
    interrupted = False
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(), console=console, transient=False, disable=as_json,
        ) as bar:
            task = bar.add_task(pipeline, total=total, failed=0)
            while True:
                with db.read() as session:
                    progress = repo.backfill_progress(session, backfill_id)
                bar.update(task, completed=progress["done"], total=progress["total"], failed=progress["failed"])
                if progress["done"] >= progress["total"] and not worker.active_runs:
                    break
                stop.wait(0.2)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[magenta]interrupted: cancelling the backfill's waiting runs…[/]")
        with db.session() as session:
            bf.cancel_backfill(session, repo.get_backfill(session, backfill_id), now=datetime.now(dt_tz.utc))
        for run_id in worker.active_runs:
            worker.cancel_local(run_id)
    finally:
        stop.set()
        worker.shutdown(grace=5 if interrupted else 60)
    with db.session() as session:
        backfill = repo.get_backfill(session, backfill_id)
        bf.refresh_status(session, backfill, now=datetime.now(dt_tz.utc))
        progress = repo.backfill_progress(session, backfill_id)
        failed_runs, _ = repo.list_runs(session, backfill_id=backfill_id, status="failed", limit=100_000)
        failed = sorted((r.execution_date.isoformat(), r.id, r.error) for r in failed_runs)
        status = backfill.status
    if as_json:
        print(json.dumps({"backfill_id": backfill_id, "status": status, "progress": progress, "failed": [{"execution_date": d, "run_id": i, "error": e} for d, i, e in failed]}, default=str))
    else:
        console.print(f"backfill {backfill_id} {status}: {progress['completed']}/{progress['total']} completed, {progress['failed']} failed, {progress['cancelled']} cancelled")
        for date, run_id, error in failed[:20]:
            console.print(f"  [red]✘[/] {date} (run {run_id}): {error}", soft_wrap=True)
        if len(failed) > 20:
            console.print(f"  … and {len(failed) - 20} more")
        if failed:
            console.print(f"rerun only the failed dates with:  dagsmith backfill {project_arg} {pipeline} --rerun-failed {backfill_id}", markup=False)
    if interrupted:
        return 130
    return 0 if status == "completed" else 1
