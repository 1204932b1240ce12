"""``dagsmith run`` without Typer: its options in one table, a strict parser, its ``--help``.

Importing Typer and Click costs about as much as the rest of a small pipeline's run
(~0.1 s), so the console script (:mod:`dagsmith.cli.front`) parses the common
``dagsmith run`` command lines here and calls :func:`dagsmith.cli.running.run_command`
itself. The Typer command in :mod:`dagsmith.cli.app` is built from the same table
(``typer_option``), so the names, flags and help texts exist once; a unit test checks
that both parse a set of command lines into the same call.

The parser accepts a strict subset of what Click accepts (long options with ``=`` or a
separate value, ``-v VALUE``/``-vVALUE``, flags, ``--``, options between the
arguments). Anything else — an unknown or misspelt option, a missing value, a value
that looks like an option, the wrong number of arguments — returns ``None`` and the
command line goes to Typer, which prints its usual error: the error messages stay
Click's own.

Imports here: ``sys`` only (everything else is imported by the run itself).
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple


class RunOption(NamedTuple):
    """One option of ``dagsmith run``: the keyword of ``run_command`` it feeds, how it is written."""

    name: str
    flags: tuple[str, ...]
    kind: str
    """``value`` (one value, the last one wins), ``multi`` (repeatable), ``flag``, ``switch`` (``--x/--no-x``)."""
    help: str
    metavar: str = "TEXT"


SUMMARY = "Run a pipeline and show each block's progress (blocks run in this process, or on Dask)."

ARGUMENTS: tuple[tuple[str, str], ...] = (("project", "Project folder."), ("pipeline", "Pipeline uuid."))

OPTIONS: tuple[RunOption, ...] = (
    RunOption("runtime_vars", ("--runtime-vars",), "value", "Run variables as a JSON object."),
    RunOption("var", ("-v", "--var"), "multi", "A run variable as key=value (repeatable)."),
    RunOption("execution_date", ("--execution-date",), "value", "ISO date-time; default now (UTC)."),
    RunOption("block", ("--block", "--block-uuid"), "multi",
              "Run only this block (repeatable), with stored upstream outputs."),
    RunOption("with_upstream", ("--with-upstream",), "flag", "With --block: also run its upstream blocks."),
    RunOption("resume", ("--resume",), "value", "Resume a failed run: re-run its failed and unfinished blocks."),
    RunOption("no_tests", ("--no-tests",), "flag", "Skip the blocks' @test functions."),
    RunOption("sequential", ("--sequential",), "flag", "Run one block at a time."),
    RunOption("executor", ("--executor",), "value",
              "local (threads in this process, the default) or dask (also DAGSMITH_EXECUTOR)."),
    RunOption("dask_scheduler", ("--dask-scheduler",), "value",
              "tcp://HOST:PORT of a Dask scheduler (default: a local cluster of processes)."),
    RunOption("as_json", ("--json",), "flag", "Print the run result as JSON."),
    RunOption("cache", ("--cache/--no-cache",), "switch",
              "Skip blocks whose code, inputs and variables are unchanged (exporters only with their own cache: true);"
              " default: the YAML's cache: keys."),
    RunOption("from_run", ("--from-run",), "value",
              "With --block: replay the block with the upstream outputs, variables and execution_date of this run."),
    RunOption("pdb", ("--pdb",), "flag", "Open the Python debugger at the exception of a failing block (post-mortem)."),
)

_BY_NAME = {o.name: o for o in OPTIONS}


def defaults() -> dict[str, Any]:
    """What each keyword is when its option is not given (as Typer passes it)."""
    out: dict[str, Any] = {}
    for o in OPTIONS:
        out[o.name] = False if o.kind == "flag" else None
    return out


def _lookup() -> dict[str, tuple[RunOption, Any]]:
    """Every spelling → (option, the value a flag or switch spelling stands for)."""
    table: dict[str, tuple[RunOption, Any]] = {}
    for o in OPTIONS:
        if o.kind == "switch":
            on, off = o.flags[0].split("/")
            table[on], table[off] = (o, True), (o, False)
        else:
            for f in o.flags:
                table[f] = (o, True)
    return table


def parse(args: list[str]) -> dict[str, Any] | None:
    """The keywords of ``run`` for ``args`` (what follows ``run``), or None when Typer must decide."""
    table = _lookup()
    values = defaults()
    positional: list[str] = []
    i = 0
    only_args = False
    while i < len(args):
        tok = args[i]
        i += 1
        if only_args or not tok.startswith("-") or tok == "-":
            positional.append(tok)
            continue
        if tok == "--":
            only_args = True
            continue
        if tok.startswith("--"):
            name, eq, attached = tok.partition("=")
        elif len(tok) > 2:  # -vKEY=VALUE: a short option with its value attached
            name, eq, attached = tok[:2], "=", tok[2:]
        else:
            name, eq, attached = tok, "", ""
        hit = table.get(name)
        if hit is None:
            return None  # unknown (or --help): Typer answers
        opt, meaning = hit
        if opt.kind in ("flag", "switch"):
            if eq:
                return None  # a flag given a value: Click's error
            values[opt.name] = meaning
            continue
        if eq:
            value = attached
        else:
            if i >= len(args):
                return None  # the value is missing
            value = args[i]
            i += 1
        if value.startswith("-"):
            return None  # "--resume --json": let Click decide what was meant
        if opt.kind == "multi":
            values[opt.name] = [*(values[opt.name] or []), value]
        else:
            values[opt.name] = value
    if len(positional) != len(ARGUMENTS):
        return None
    for (name, _help), value in zip(ARGUMENTS, positional):
        values[name] = value
    return values


def help_text(prog: str = "dagsmith run") -> str:
    """``dagsmith run --help``: plain text, like ``dagsmith --help``."""
    shown = []
    for o in OPTIONS:
        if o.kind == "value" or o.kind == "multi":
            spell = ", ".join(o.flags) + f" {o.metavar}"
        elif o.kind == "switch":
            spell = " / ".join(o.flags[0].split("/"))
        else:
            spell = ", ".join(o.flags)
        shown.append((spell, o.help))
    shown.append(("--help", "Show this message and exit."))
    width = max(len(s) for s, _ in shown)
    arg_width = max(len(n) for n, _ in ARGUMENTS)
    lines = [
        f"Usage: {prog} [OPTIONS] {' '.join(n.upper() for n, _ in ARGUMENTS)}",
        "",
        f"  {SUMMARY}",
        "",
        "Arguments:",
        *(f"  {n.upper().ljust(arg_width)}  {h}  [required]" for n, h in ARGUMENTS),
        "",
        "Options:",
    ]
    import textwrap

    for spell, text in shown:  # the help column wrapped at 100 characters, as Click does at its width
        wrapped = textwrap.wrap(text, max(40, 100 - width - 4)) or [""]
        lines.append(f"  {spell.ljust(width)}  {wrapped[0]}")
        lines.extend(f"  {'':{width}}  {more}" for more in wrapped[1:])
    return "\n".join(lines) + "\n"


def typer_option(name: str) -> Any:
    """The ``typer.Option`` of table entry ``name`` (for the Typer command in ``cli.app``)."""
    import typer

    o = _BY_NAME[name]
    default = False if o.kind == "flag" else None
    return typer.Option(default, *o.flags, help=o.help)


def typer_argument(name: str) -> Any:
    import typer

    return typer.Argument(..., help=dict(ARGUMENTS)[name])


def print_error(exc: BaseException) -> None:
    """Print a dagsmith error the way a person can act on it: the message, then the hint."""
    from rich.console import Console
    from rich.markup import escape

    from dagsmith.project.masking import MaskedStream

    err = Console(stderr=True, highlight=False, file=MaskedStream(sys.stderr))
    msg = getattr(exc, "message", None) or str(exc)
    err.print(f"[bold red]error:[/] {escape(msg)}", markup=True, soft_wrap=True)
    hint = getattr(exc, "hint", None)
    if hint:
        err.print(f"[yellow]hint:[/] {escape(hint)}", soft_wrap=True)


def fail(exc: BaseException, code: int = 2) -> None:
    """``print_error``, then exit with ``code``."""
    print_error(exc)
    raise SystemExit(code)


def call(values: dict[str, Any], fail_with: Any = fail) -> int:
    """Run the command ``values`` describe (``parse``'s result); returns the exit code."""
    from dagsmith.cli.running import run_command
    from dagsmith.cli.runvars import parse_vars

    return run_command(
        project=values["project"],
        pipeline=values["pipeline"],
        runtime_vars=values["runtime_vars"],
        var=values["var"],
        execution_date=values["execution_date"],
        blocks=values["block"],
        with_upstream=values["with_upstream"],
        resume=values["resume"],
        run_tests=not values["no_tests"],
        parallel=not values["sequential"],
        executor=values["executor"],
        dask_scheduler=values["dask_scheduler"],
        as_json=values["as_json"],
        parse_vars=parse_vars,
        fail=fail_with,
        cache=values["cache"],
        from_run=values["from_run"],
        pdb=values["pdb"],
    )


def main(args: list[str]) -> bool:
    """Handle ``dagsmith run ARGS`` here when possible (exits); False: hand it to Typer."""
    before = args[: args.index("--")] if "--" in args else args
    if "--help" in before:
        sys.stdout.write(help_text())
        raise SystemExit(0)
    values = parse(args)
    if values is None:
        return False
    try:
        code = call(values)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        raise SystemExit(130) from None
    raise SystemExit(code)
