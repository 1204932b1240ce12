"""``dagsmith run`` parsed without Typer (cli.runargs) means exactly what Typer would have run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagsmith.cli import runargs

LINES = [
    ["proj", "pipe"],
    ["proj", "pipe", "--json"],
    ["--json", "proj", "pipe", "--sequential", "--no-tests", "--pdb", "--with-upstream"],
    ["proj", "pipe", "-v", "a=1", "--var", "b=x", "-vc=[1, 2]", "--var=d=4"],
    ["proj", "pipe", "--runtime-vars", '{"k": 1}', "--execution-date=2024-01-02T03:04:05Z"],
    ["proj", "pipe", "--block", "a", "--block-uuid", "b", "--block=c"],
    ["proj", "pipe", "--resume", "r1", "--resume", "r2"],
    ["proj", "pipe", "--executor", "dask", "--dask-scheduler", "tcp://h:8786"],
    ["proj", "pipe", "--cache"],
    ["proj", "pipe", "--no-cache"],
    ["proj", "pipe", "--cache", "--no-cache"],
    ["proj", "pipe", "--from-run", "r9", "--block", "b"],
    ["proj", "--json", "pipe"],
    ["--", "proj", "pipe"],
    ["proj", "-", ],
]


def _typer_call(args: list[str], monkeypatch) -> dict:
    """The keywords Typer's ``run`` command hands to ``runargs.call`` for ``args``."""
    from dagsmith.cli import app as app_module

    seen: dict = {}

    def record(values, fail_with=None):
        seen.update(values)
        return 0

    monkeypatch.setattr(app_module._run, "call", record)
    result = CliRunner().invoke(app_module.app_for(["run"]), ["run", *args])
    return seen if result.exit_code == 0 else {"exit": result.exit_code}


@pytest.mark.parametrize("args", LINES, ids=lambda a: " ".join(a) or "-")
def test_the_fast_parser_means_what_typer_means(args, monkeypatch):
    fast = runargs.parse(args)
    assert fast is not None  # every line here is one the console script runs without Typer
    assert fast == _typer_call(args, monkeypatch)


@pytest.mark.parametrize("args", [
    ["proj"], ["proj", "pipe", "extra"], ["proj", "pipe", "--bogus"], ["proj", "pipe", "--json=1"],
    ["proj", "pipe", "--resume"], ["proj", "pipe", "--resume", "--json"], ["proj", "pipe", "-x"],
    ["proj", "pipe", "--execut", "dask"],
])
def test_lines_the_fast_parser_does_not_know_go_to_typer(args):
    assert runargs.parse(args) is None


def test_every_typer_option_of_run_comes_from_the_table():
    import typer.main

    from dagsmith.cli.app import app_for

    cmd = typer.main.get_command(app_for(["run"])).commands["run"]
    opts = {p.name: (tuple(p.opts) + tuple(p.secondary_opts), p.multiple, p.help) for p in cmd.params if p.param_type_name == "option"}
    table = {}
    for o in runargs.OPTIONS:
        flags = tuple(f for spelling in o.flags for f in spelling.split("/"))
        table[o.name] = (flags, o.kind == "multi", o.help)
    assert {k: (set(v[0]), v[1], v[2]) for k, v in opts.items()} == {k: (set(v[0]), v[1], v[2]) for k, v in table.items()}
    args = [p.name for p in cmd.params if p.param_type_name == "argument"]
    assert args == [name for name, _ in runargs.ARGUMENTS]


def test_run_help_lists_every_option_without_importing_typer():
    code = (
        "import sys\nfrom dagsmith.cli import front\n"
        "try:\n    front.main(['run', '--help'])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich', 'yaml')), code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "MODULES [] 0"
    assert "Usage: dagsmith run [OPTIONS] PROJECT PIPELINE" in out
    for o in runargs.OPTIONS:
        for spelling in o.flags:
            for flag in spelling.split("/"):
                assert flag in out
        assert o.help.split()[0] in out


def test_a_run_from_the_console_script_does_not_import_typer(tmp_path):
    from tests.projects import add_pipeline, make_project

    root = make_project(tmp_path)
    add_pipeline(root, "example_pipeline", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef load(*args, **kwargs):\n    return 1\n"},
    ])
    code = (
        "import sys\nfrom dagsmith.cli import front\n"
        f"sys.argv = ['dagsmith', 'run', {str(root)!r}, 'example_pipeline']\n"
        "try:\n    front.main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('MODULES', sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'click'}), code)\n"
    )
    env_out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**__import__("os").environ, "DAGSMITH_NO_HISTORY": "1"})
    assert env_out.stdout.strip().splitlines()[-1] == "MODULES [] 0", env_out.stdout + env_out.stderr
    assert "completed" in env_out.stdout


def test_a_line_typer_must_explain_still_gets_clicks_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dagsmith", "run", str(tmp_path), "p", "--bogus"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "No such option" in r.stderr and "--bogus" in r.stderr
