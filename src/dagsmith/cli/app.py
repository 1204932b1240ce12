"""The ``dagsmith`` command (Typer). Each command imports what it needs when it runs.

Start-up cost matters, so this module imports only Typer; engines, data libraries and
the server load inside the commands that use them. The console script enters through
:mod:`dagsmith.cli.front`, which answers ``dagsmith --help`` and ``--version`` without
importing Typer at all and hands every other invocation to ``main()`` here.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from dagsmith.cli import runargs as _run

_APP_SETTINGS = dict(
    name="dagsmith",
    help="dagsmith: a fast, dependable orchestrator for data pipelines (runs Mage projects unchanged).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app = typer.Typer(**_APP_SETTINGS)
pipelines_app = typer.Typer(help="Create, list and inspect pipelines.", no_args_is_help=True)
app.add_typer(pipelines_app, name="pipelines")


def _print_version(value: bool) -> None:
    if value:
        from dagsmith.cli.front import version

        typer.echo(f"dagsmith {version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Show the version and exit.", is_eager=True, callback=_print_version),
) -> None:
    """dagsmith: a fast, dependable orchestrator for data pipelines (runs Mage projects unchanged)."""


def _fail(exc: BaseException, code: int = 2) -> None:
    """Print a dagsmith error the way a person can act on it, then exit."""
    _run.print_error(exc)
    raise typer.Exit(code)


@app.command()
def init(path: str = typer.Argument(..., help="Folder to create (its name is the project name).")) -> None:
    """Create a project in Mage's layout, with an example pipeline that runs offline."""
    from dagsmith.errors import DagsmithError
    from dagsmith.project.scaffold import EXAMPLE_PIPELINE, init_project

    try:
        root = init_project(path)
    except DagsmithError as exc:
        _fail(exc)
    typer.echo(f"Created project {root}")
    if not root.name.isidentifier():
        typer.echo(
            f"note: '{root.name}' is not a Python package name, so blocks cannot `import {root.name}.utils…`;"
            " everything else works (Mage allows such names too)", err=True,
        )
    typer.echo(f"Run the example pipeline with:  {_self_command()} run {path} {EXAMPLE_PIPELINE}")


def _self_command() -> str:
    """How to type this dagsmith again: ``dagsmith`` when that is on PATH, else the path that ran it
    (``.venv/bin/dagsmith`` when the venv is not activated)."""
    import os
    import shutil
    from pathlib import Path

    me = Path(sys.argv[0])
    if me.name != "dagsmith":  # python -m dagsmith
        me = Path(sys.executable).with_name("dagsmith")
        if not me.exists():
            return f"{sys.executable} -m dagsmith"
    found = shutil.which("dagsmith")
    try:
        if found and os.path.samefile(found, me):
            return "dagsmith"
    except OSError:
        pass
    try:
        rel = os.path.relpath(me)
    except ValueError:  # another drive (Windows)
        rel = ".."
    return str(me.absolute()) if rel.startswith("..") else rel


@app.command()
def run(
    project: str = _run.typer_argument("project"),
    pipeline: str = _run.typer_argument("pipeline"),
    runtime_vars: Optional[str] = _run.typer_option("runtime_vars"),
    var: Optional[List[str]] = _run.typer_option("var"),
    execution_date: Optional[str] = _run.typer_option("execution_date"),
    block: Optional[List[str]] = _run.typer_option("block"),
    with_upstream: bool = _run.typer_option("with_upstream"),
    resume: Optional[str] = _run.typer_option("resume"),
    no_tests: bool = _run.typer_option("no_tests"),
    sequential: bool = _run.typer_option("sequential"),
    executor: Optional[str] = _run.typer_option("executor"),
    dask_scheduler: Optional[str] = _run.typer_option("dask_scheduler"),
    as_json: bool = _run.typer_option("as_json"),
    cache: Optional[bool] = _run.typer_option("cache"),
    from_run: Optional[str] = _run.typer_option("from_run"),
    pdb: bool = _run.typer_option("pdb"),
) -> None:
    """Run a pipeline and show each block's progress (blocks run in this process, or on Dask)."""
    # the options are declared once, in cli/runargs.py: the console script parses ordinary
    # `dagsmith run` lines there without Typer, and hands this command only what it cannot parse
    values = dict(locals())
    raise typer.Exit(_run.call(values, fail_with=_fail))


@app.command()
def dev(
    project: str = typer.Argument(..., help="Project folder."),
    pipeline: str = typer.Argument(..., help="Pipeline uuid."),
    no_tests: bool = typer.Option(False, "--no-tests", help="Skip the blocks' @test functions."),
) -> None:
    """Watch a pipeline's files; on each save re-run the changed block and its downstream blocks."""
    from dagsmith.cli.dev import dev_command

    raise typer.Exit(dev_command(project, pipeline, run_tests=not no_tests, fail=_fail))


@app.command("test")
def test_cmd(
    project: str = typer.Argument(..., help="Project folder."),
    pipeline: Optional[str] = typer.Argument(None, help="Pipeline uuid (default: every pipeline)."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    with_exports: bool = typer.Option(False, "--with-exports", help="Also run data exporters (they write to their targets)."),
) -> None:
    """Run pipelines' loaders and transformers with their @test functions and report the results.

    Data exporters, and blocks downstream of them, are not run (the output says so), so a
    test never writes to the pipeline's tables or buckets; --with-exports runs them too.
    Nothing is stored and no run is recorded. Ordinary runs (`dagsmith run`) run @test too.
    """
    from dagsmith.cli.running import test_command

    raise typer.Exit(test_command(project, pipeline, as_json=as_json, fail=_fail, with_exports=with_exports))


@app.command()
def validate(
    project: str = typer.Argument(..., help="Project folder."),
    pipeline: Optional[str] = typer.Argument(None, help="Pipeline uuid (default: every pipeline)."),
    as_json: bool = typer.Option(False, "--json", help="Print problems as JSON."),
) -> None:
    """Check pipelines without running anything: graph, files, block code (exit 2 on problems)."""
    from dagsmith.cli.running import validate_command

    raise typer.Exit(validate_command(project, pipeline, as_json=as_json, fail=_fail))


@pipelines_app.command("list")
def pipelines_list(
    project: str = typer.Argument(..., help="Project folder."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List the project's pipelines with their blocks."""
    from dagsmith.cli.running import list_command

    raise typer.Exit(list_command(project, as_json=as_json, fail=_fail))


@pipelines_app.command("new")
def pipelines_new(
    project: str = typer.Argument(..., help="Project folder."),
    name: str = typer.Argument(..., help="Pipeline name (its uuid is the cleaned name, e.g. 'green taxi etl' → green_taxi_etl)."),
    description: Optional[str] = typer.Option(None, "--description", help="What the pipeline does."),
) -> None:
    """Create an empty pipeline; add blocks with `dagsmith blocks new` (or in the editor)."""
    from dagsmith.errors import DagsmithError
    from dagsmith.project.pipelines import create_pipeline, load_project, read_pipeline_raw, write_pipeline_raw

    try:
        root = load_project(project).root
        uid = create_pipeline(root, name)
        if description:
            raw = read_pipeline_raw(root, uid)
            raw["description"] = description
            write_pipeline_raw(root, uid, raw)
    except DagsmithError as exc:
        _fail(exc)
        return
    typer.echo(f"Created pipeline {uid} (pipelines/{uid}/metadata.yaml)")
    typer.echo(f"Add a block with:  dagsmith blocks new {project} {uid} load_data --type data_loader --template api")


def _register_optional() -> None:
    """Command groups owned by other packages; each module imports only Typer at load."""
    import importlib

    for module, name, kind in (
        ("dagsmith.cli.blocks", "blocks", "group"),
        ("dagsmith.cli.start", "start", "command"),
        ("dagsmith.cli.backfill", "backfill", "command"),
        ("dagsmith.cli.trigger", "trigger", "group"),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        target = getattr(mod, "app", None) if kind == "group" else getattr(mod, "command", None)
        if target is None:
            continue
        if kind == "group":
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


_register_optional()


def app_for(args: list[str]) -> typer.Typer:
    """The app with only the command that ``args`` names, or the whole app when it names none.

    Typer turns every registered command into a Click command on each call (~25 ms for all of
    ours, parsing their signatures); a command line runs one command, so only that one is
    built. Usage lines, help and errors are the same: the slim app has the same root callback,
    so it stays a group (``dagsmith run …``).
    """
    from typer.main import get_command_name

    name = args[0] if args else ""
    if not name or name.startswith("-"):
        return app
    slim = typer.Typer(**_APP_SETTINGS)
    slim.registered_callback = app.registered_callback
    for info in app.registered_commands:
        if (info.name or get_command_name(info.callback.__name__)) == name:
            slim.registered_commands.append(info)
            return slim
    for group in app.registered_groups:
        if group.name == name:
            slim.registered_groups.append(group)
            return slim
    return app  # an unknown command: the whole app says so and lists the commands


def main() -> None:
    """Console-script entry point."""
    try:
        app_for(sys.argv[1:])()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
