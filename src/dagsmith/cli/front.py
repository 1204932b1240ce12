"""The ``dagsmith`` entry point: answers ``dagsmith --help`` and ``--version`` without Typer.

Importing Typer and Click (and Rich, which Typer uses to draw help) costs more than every
other part of ``dagsmith --help`` together, so the top-level help and the version are
answered here from a small table, and so are ordinary ``dagsmith run`` command lines and
``dagsmith run --help`` (:mod:`dagsmith.cli.runargs`). Everything else — a command, a command's own
``--help``, a group such as ``dagsmith trigger`` — goes to the Typer app in
:mod:`dagsmith.cli.app`, which imports Typer as before. ``COMMANDS`` must list what the
Typer app registers, with the first line of each command's help; a unit test holds them
together.

Imports here: ``sys`` only.
"""

from __future__ import annotations

import sys

SUMMARY = "dagsmith: a fast, dependable orchestrator for data pipelines (runs Mage projects unchanged)."

#: (command, first line of its help) in the order the Typer app registers them
COMMANDS: tuple[tuple[str, str], ...] = (
    ("init", "Create a project in Mage's layout, with an example pipeline that runs offline."),
    ("run", "Run a pipeline and show each block's progress (blocks run in this process, or on Dask)."),
    ("dev", "Watch a pipeline's files; on each save re-run the changed block and its downstream blocks."),
    ("test", "Run pipelines' loaders and transformers with their @test functions and report the results."),
    ("validate", "Check pipelines without running anything: graph, files, block code (exit 2 on problems)."),
    ("start", "Start the server, the scheduler and a worker (migrates the metadata DB first)."),
    ("backfill", "Run a pipeline once per date of a range, with a progress bar."),
    ("pipelines", "Create, list and inspect pipelines."),
    ("blocks", "Create blocks from templates (loaders, transformers, exporters)."),
    ("trigger", "Triggers: schedules, API triggers and triggers.yaml."),
)

FOOTER = """\
Start here:
  dagsmith init my_project && dagsmith run my_project example_pipeline
Run 'dagsmith COMMAND --help' for a command's arguments and options."""


def version() -> str:
    """dagsmith's version (``dagsmith.__version__``; a test keeps it equal to the installed metadata's,
    which ``importlib.metadata`` would take ~0.1 s to read)."""
    from dagsmith import __version__

    return __version__


def help_text() -> str:
    width = max(len(name) for name, _ in COMMANDS)
    lines = [
        "Usage: dagsmith [OPTIONS] COMMAND [ARGS]...",
        "",
        f"  {SUMMARY}",
        "",
        "Options:",
        "  --version  Show the version and exit.",
        "  --help     Show this message and exit.",
        "",
        "Commands:",
        *(f"  {name.ljust(width)}  {text}" for name, text in COMMANDS),
        "",
        FOOTER,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``dagsmith``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--help"] or not args:
        (sys.stdout if args else sys.stderr).write(help_text())
        raise SystemExit(0 if args else 2)  # no command at all is a usage error, as in Typer
    if args == ["--version"]:
        sys.stdout.write(f"dagsmith {version()}\n")
        raise SystemExit(0)
    if args[0] == "run":
        from dagsmith.cli import runargs

        runargs.main(args[1:])  # exits, unless the command line needs Typer (an error to explain)
    from dagsmith.cli.app import main as typer_main

    typer_main()


if __name__ == "__main__":  # pragma: no cover
    main()
