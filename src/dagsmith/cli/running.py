"""The work behind ``dagsmith run``, ``test``, ``validate`` and ``pipelines list``.

Draws a live table of block states while a run goes (Rich, only on a
terminal), prints block output lines as they come, and ends with a summary
table; on failure it prints the failed block's error and the command that
resumes the run.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Optional

if TYPE_CHECKING:  # Rich is imported only where a terminal (or an error) needs it: ~30% of a small run's start-up
    from rich.console import Console
    from rich.table import Table

STYLE = {
    "completed": "green",
    "failed": "bold red",
    "running": "cyan",
    "initial": "dim",
    "queued": "dim",
    "upstream_failed": "yellow",
    "condition_failed": "yellow",
    "cancelled": "magenta",
    "cached": "blue",
}


#: dynamic children listed per parent in the summary (failed ones always are)
SUMMARY_CHILDREN = 20


#: Rich markup tags in our own fixed messages (``[green]``, ``[bold red]``, ``[/]``); dynamic text is printed with markup off
_TAG = re.compile(r"(?<!\\)\[(?:/[a-z#@ ]*|[a-z#@][^\[\]]*)\]")


class PlainConsole:
    """What ``dagsmith run`` prints through when stdout is not a terminal (pipes, logs, CI): plain lines.

    Rich's ``Console`` would print the same text there (no colours, no live view), but importing
    Rich costs more than a small pipeline's run, so a pipe never pays for it. Only ``print``
    and ``is_terminal`` are offered: the run command's non-terminal paths use nothing else.
    """

    is_terminal = False

    def __init__(self, file: Any) -> None:
        self.file = file

    def print(self, text: Any = "", *, style: Any = None, markup: bool | None = None, highlight: bool | None = None,
              soft_wrap: bool | None = None) -> None:
        text = str(text)
        if markup is not False:
            text = _TAG.sub("", text).replace("\\[", "[")
        self.file.write(text + "\n")


def is_terminal_stream(stream: Any) -> bool:
    """True when Rich could treat ``stream`` as a terminal (a tty, or TTY_COMPATIBLE/FORCE_COLOR set); then Rich decides."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def run_console(stream: Any) -> Any:
    """The console ``dagsmith run`` prints through: Rich on a terminal, ``PlainConsole`` elsewhere (masked either way)."""
    from dagsmith.project.masking import MaskedStream

    if is_terminal_stream(stream):
        from rich.console import Console

        return Console(highlight=False, file=MaskedStream(stream))
    return PlainConsole(MaskedStream(stream))


def _plain(line: str) -> None:
    """Write a line to the real stdout without Rich (block output is routed per thread; this is not)."""
    from dagsmith.project.masking import mask

    out = getattr(sys.stdout, "real", sys.stdout)
    out.write(mask(line) + "\n")


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _plain_err(line: str) -> None:
    """Write a line to the real stderr without Rich."""
    from dagsmith.project.masking import mask

    err = getattr(sys.stderr, "real", sys.stderr)
    err.write(mask(line) + "\n")


class ctrl_c_cancels:
    """While active, the first Ctrl-C cancels the run (``event`` set: running blocks are interrupted,
    the summary is printed and the run is recorded as cancelled); a second one exits at once (130).

    Only the main thread can own SIGINT; elsewhere (tests calling the CLI in a thread) it does nothing.
    """

    def __init__(self, event: threading.Event, say: Callable[[str], None] | None = None) -> None:
        self.event = event
        self.say = say
        """prints the first press's notice (through the Rich console while its live view is drawn)"""
        self.presses = 0
        self.previous: Any = None

    def __enter__(self) -> "ctrl_c_cancels":
        import signal

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._pressed)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _pressed(self, signum: int, frame: Any) -> None:
        self.presses += 1
        err = getattr(sys.stderr, "real", sys.stderr)
        if self.presses == 1:
            self.event.set()
            notice = "cancelling the run: running blocks are interrupted (press Ctrl-C again to exit at once)"
            if self.say is not None:
                self.say(notice)
            else:
                err.write(f"\n{notice}\n")
                err.flush()
            return
        err.write("\nexiting now (the run is left unfinished)\n")
        err.flush()
        os._exit(130)


class LiveView:
    """A RunObserver that keeps a Rich live table of block states and prints block output."""

    def __init__(self, console: Console, live: Any | None, echo_logs: bool) -> None:
        self.console = console
        self.live = live
        self.echo_logs = echo_logs
        self.state: dict[str, dict[str, Any]] = {}
        self.children: dict[str, dict[str, str]] = {}
        """dynamic parent → {child: status}; children are counted on the parent's row."""
        self.lock = threading.Lock()

    def table(self) -> Table:
        from rich.table import Table

        t = Table(show_edge=False, pad_edge=False)
        t.add_column("block")
        t.add_column("status")
        for uid, st in self.state.items():
            status = st["status"]
            kids = self.children.get(uid)
            note = ""
            if kids:
                done = sum(1 for c in kids.values() if c not in ("initial", "running", "queued"))
                bad = sum(1 for c in kids.values() if c == "failed")
                note = f"  {done}/{len(kids)} children" + (f", {bad} failed" if bad else "")
            t.add_row(uid, f"[{STYLE.get(status, '')}]{status}[/]{note}")
        return t

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.table())

    def on_run_start(self, *, blocks: list[str], **kw: Any) -> None:
        for text in kw.get("warnings") or ():  # settings the run cannot honour: said before anything runs
            if self.live is not None:
                self.console.print(f"[yellow]warning:[/] {escape_markup(text)}", markup=True, soft_wrap=True)
            else:
                _plain_err(f"warning: {text}")
        with self.lock:
            for b in blocks:
                self.state[b] = {"status": "initial"}
            self._refresh()

    def on_block_start(self, *, block_uuid: str, attempt: int, **kw: Any) -> None:
        with self.lock:
            if kw.get("parent"):
                self.children.setdefault(kw["parent"], {})[block_uuid] = "running"
            else:
                self.state.setdefault(block_uuid, {})["status"] = "running"
            self._refresh()
        if kw.get("parent") and self.live is None:
            return  # thousands of children would flood the output; their parent's row counts them
        if self.live is None and self.echo_logs:
            suffix = f" (attempt {attempt})" if attempt > 1 else ""
            _plain(f"▶ {block_uuid}{suffix}")

    def on_block_log(self, *, block_uuid: str, record: dict, **kw: Any) -> None:
        if not self.echo_logs:
            return
        if self.live is None:
            _plain(f"{block_uuid} | {record.get('message', '')}")
            return
        level = record.get("level", "info")
        colour = "red" if level in ("error", "critical") else ("yellow" if level == "warning" else "dim")
        self.console.print(f"[{colour}]{block_uuid} |[/] {record.get('message', '')}", highlight=False, markup=True, soft_wrap=True)

    def on_block_end(self, *, block_uuid: str, status: str, result: Any, **kw: Any) -> None:
        with self.lock:
            if kw.get("parent"):
                self.children.setdefault(kw["parent"], {})[block_uuid] = status
            else:
                self.state.setdefault(block_uuid, {})["status"] = status
            self._refresh()
        if kw.get("parent") and status != "failed":
            return
        if self.live is None and self.echo_logs:
            extra = f" ({kw['reason']})" if kw.get("reason") else ""
            _plain(f"■ {block_uuid} {status}{extra}")
            for cb in kw.get("callbacks") or ():
                _plain(
                    f"  ↳ callback {cb.get('callback')}.{cb.get('function')} ({cb.get('on')}): {cb.get('status')}"
                    + (f" — {cb['error']}" if cb.get("error") else "")
                )

    def on_run_end(self, **kw: Any) -> None:
        pass


SUMMARY_COLUMNS = ("block", "status", "rows", "time", "tests", "notes")


def summary_rows(result: Any) -> list[tuple[str, ...]]:
    """One row per block (and listed dynamic child): the cells of the summary table, as text."""
    rows: list[tuple[str, ...]] = []
    by_parent: dict[str, list[Any]] = {}
    for b in result.blocks.values():
        if getattr(b, "parent", None):
            by_parent.setdefault(b.parent, []).append(b)
    shown: dict[str, int] = {}
    for uid, b in result.blocks.items():
        secs = b.seconds
        parent = getattr(b, "parent", None)
        if parent:
            # list the first children and every failed one; the parent's row counts the rest
            shown[parent] = shown.get(parent, 0) + 1
            if shown[parent] > SUMMARY_CHILDREN and b.status in ("completed", "condition_failed"):
                continue
        notes = []
        if getattr(b, "skip_reason", None):
            notes.append(f"skipped: {b.skip_reason}")
        kids = by_parent.get(uid)
        if kids:
            counts: dict[str, int] = {}
            for c in kids:
                counts[c.status] = counts.get(c.status, 0) + 1
            notes.append(f"{len(kids)} dynamic children: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
            if len(kids) > SUMMARY_CHILDREN:
                notes.append(f"first {SUMMARY_CHILDREN} and failed ones listed")
        for cb in getattr(b, "callbacks", None) or ():
            mark = "✔" if cb.get("status") == "completed" else "✘"
            notes.append(f"{mark} callback {cb.get('callback')}.{cb.get('function')} ({cb.get('on')})")
        rows.append((
            ("  ↳ " + uid) if parent else uid,
            b.status,
            "" if b.rows is None else f"{b.rows:,}",
            "" if secs is None else f"{secs:.3f}s",
            f"{b.tests_passed}/{b.tests_total}" if b.tests_total else "",
            "; ".join(notes),
        ))
    return rows


def summary_table(result: Any) -> Table:
    """The summary as a Rich table (for terminals)."""
    from rich.table import Table

    t = Table(title=f"run {result.run_id} — {result.pipeline_uuid}", title_justify="left")
    for name in SUMMARY_COLUMNS:
        t.add_column(name, justify="right" if name in ("rows", "time", "tests") else "left")
    for row in summary_rows(result):
        t.add_row(row[0], f"[{STYLE.get(row[1], '')}]{row[1]}[/]", *row[2:])
    return t


def summary_text(result: Any) -> str:
    """The summary as aligned plain text (for logs and pipes: cheap even with thousands of rows)."""
    rows = [SUMMARY_COLUMNS, *summary_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(SUMMARY_COLUMNS) - 1)]
    lines = [f"run {result.run_id} — {result.pipeline_uuid}"]
    for r in rows:
        cells = [r[i].rjust(widths[i]) if SUMMARY_COLUMNS[i] in ("rows", "time", "tests") else r[i].ljust(widths[i]) for i in range(len(widths))]
        lines.append("  ".join(cells + [r[-1]]).rstrip())
    return "\n".join(lines)


def run_command(
    *,
    project: str,
    pipeline: str,
    runtime_vars: Optional[str],
    var: Optional[List[str]],
    execution_date: Optional[str],
    blocks: Optional[List[str]],
    with_upstream: bool,
    resume: Optional[str],
    run_tests: bool,
    parallel: bool,
    as_json: bool,
    parse_vars: Callable[..., dict],
    fail: Callable[..., None],
    executor: Optional[str] = None,
    dask_scheduler: Optional[str] = None,
    cache: Optional[bool] = None,
    from_run: Optional[str] = None,
    pdb: bool = False,
) -> int:
    from dagsmith.errors import DagsmithError, NothingToRun, ValidationError

    from dagsmith.project.masking import mask_process_streams

    mask_process_streams()  # a thread a block started that dies with a secret in its traceback, too
    console = run_console(sys.stdout)  # masked: secrets never reach the terminal
    try:
        if executor is not None and executor not in ("local", "dask"):
            raise DagsmithError(f"--executor {executor!r} is not an executor", hint="use --executor local or --executor dask")
        if dask_scheduler and executor is None:
            executor = "dask"
        variables = parse_vars(runtime_vars, var)
        if resume and from_run:
            raise DagsmithError("--resume and --from-run cannot be combined",
                                hint="--resume finishes a run; --from-run replays one block of it here")
        completed = _resume_state(project, pipeline, resume) if resume else None
        replay: dict[str, Any] = {}
        if from_run:
            from dagsmith.cli.replay import replay_options

            replay = replay_options(project, pipeline, from_run, blocks)
            if variables:  # what the user adds on the command line wins over the run's own
                replay["variables"] = {**replay["variables"], **variables}
            if execution_date is not None:
                replay.pop("execution_date", None)
        if pdb and executor == "dask":
            raise DagsmithError("--pdb needs the block in this process", hint="drop --executor dask")
        if execution_date is not None:
            from dagsmith.engine.variables import as_aware

            try:
                execution_date = as_aware(execution_date)  # type: ignore[assignment]
            except ValueError:
                raise DagsmithError(
                    f"--execution-date {execution_date!r} is not an ISO date-time",
                    hint="example: --execution-date 2021-01-01T05:00:00Z",
                ) from None
    except DagsmithError as exc:
        fail(exc)
        return 2
    result = None
    cancel = threading.Event()
    try:
        say = (lambda text: console.print(text, style="magenta", markup=False)) if console.is_terminal and not as_json else None
        with ctrl_c_cancels(cancel, say):
            options: dict[str, Any] = dict(
                variables=variables,
                execution_date=execution_date,
                block_uuids=blocks,
                with_upstream=with_upstream,
                completed=completed,
                run_tests=run_tests,
                parallel=parallel and not pdb,
                executor="local" if pdb else executor,
                dask_scheduler=dask_scheduler,
                worker_setup=("dagsmith.orchestration.secrets:install_project_resolver",),
                cache=cache,
                keep_exceptions=pdb,
            )
            options.update(replay)
            if replay:
                console.print(
                    f"replaying {', '.join(blocks or [])} with the inputs of run {from_run} "
                    f"(execution_date {replay.get('execution_date') or execution_date}); nothing is stored",
                    style="dim", markup=False, soft_wrap=True,
                )
            result = _run(project, pipeline, console, as_json=as_json, cancel_event=cancel, **options)
    except NothingToRun as exc:
        # Mage exits 0 for a pipeline with nothing to run; so do we, without recording a run
        if as_json:
            sys.stdout.write(json.dumps({"pipeline": pipeline, "status": "nothing_to_run", "message": exc.message}) + "\n")
        else:
            console.print(f"{exc.message}.", style="yellow", markup=False)
        return 0
    except ValidationError as exc:
        fail(exc)
    except DagsmithError as exc:
        fail(exc)
    finally:
        if "dagsmith.engine.executors.dask" in sys.modules:  # our local cluster goes with this command
            sys.modules["dagsmith.engine.executors.dask"].close_shared_clients()
    assert result is not None
    if as_json:
        from dagsmith.project.masking import mask

        sys.stdout.write(mask(json.dumps(result.to_dict(), indent=2, default=str)) + "\n")
    else:
        _report(console, result, project, pipeline, blocks, replayable=not from_run)
    if pdb and not result.ok:
        from dagsmith.cli.replay import post_mortem

        post_mortem(result, console)
    code = 0 if result.ok else 1
    if cancel.is_set():
        code = 130  # what a shell expects of a command stopped by Ctrl-C
    if result.abandoned_threads:
        # a timed-out block may still be sleeping in C code; do not wait for it to exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(project: str, pipeline: str, console: Console, *, as_json: bool, **kw: Any) -> Any:
    from dagsmith.engine.config import RunConfig
    from dagsmith.engine.observer import Fanout
    from dagsmith.engine.runner import Run

    _lazy_secret_resolver(project)
    recorder = _history_observer(project, pipeline, kw.get("variables"))
    cancel_event = kw.pop("cancel_event", None)
    fanout = Fanout([])

    def start(view: Any) -> Any:
        # the run loads the project (after its .env) and the pipeline once; the notifier reads the same specs
        run = Run(RunConfig.from_keywords(project, pipeline, **kw), observer=fanout, cancel_event=cancel_event)
        notifier = _notification_observer(run.project, run.spec, recorder)
        fanout.observers = [o for o in (view, recorder, notifier) if o is not None]
        return run.execute()

    if as_json:
        return start(None)
    if console.is_terminal:
        from rich.live import Live

        with Live(console=console, refresh_per_second=8, transient=True, redirect_stdout=False, redirect_stderr=False) as live:
            return start(LiveView(console, live, echo_logs=True))
    return start(LiveView(console, None, echo_logs=True))


def _notification_observer(project: Any, pipeline: Any, recorder: Any) -> Any:
    """Alerts from the pipeline's ``notification_config`` (None when it configures no channel)."""
    from dagsmith.errors import DagsmithError

    try:
        from dagsmith.orchestration.notifications import NotificationObserver

        obs = NotificationObserver(project, pipeline, run_ref=lambda: getattr(recorder, "db_run_id", None))
        return obs if obs.enabled else None
    except DagsmithError:  # a missing or broken pipeline is reported by the run itself
        return None
    except Exception as exc:  # alerts are a convenience; the run must not depend on them
        from rich.console import Console

        Console(stderr=True).print(f"[yellow]warning:[/] notifications disabled: {exc}")
        return None


def _lazy_secret_resolver(project: str) -> None:
    """Secrets stored with the UI/API resolve in ``dagsmith run`` too; the metadata DB is opened only when one is asked for.

    The store, once opened, is also the masking source: the values it hands out never reach
    the terminal (``project.masking``).
    """
    from dagsmith.project.io_config import set_secret_resolver

    store: list[Any] = []

    def resolve(name: str) -> Any:
        if not store:
            from dagsmith.orchestration.db import get_database
            from dagsmith.orchestration.secrets import SecretStore
            from dagsmith.orchestration.settings import OrchestrationSettings

            settings = OrchestrationSettings.from_env(project)
            store.append(SecretStore(get_database(settings), settings.data_dir))
        return store[0].get(name)

    set_secret_resolver(resolve)


def _history_observer(project: str, pipeline: str, variables: dict | None = None) -> Any:
    """Record the run in the project's history inbox (ingested by the metadata DB later)."""
    from dagsmith.settings import get

    if get("no_history"):
        return None
    from dagsmith.cli.history import InboxRecorder

    return InboxRecorder(project, pipeline, variables=variables)


def _resume_state(project: str, pipeline: str, run_id: str) -> dict[str, str]:
    from dagsmith.engine.storage import project_store
    from dagsmith.errors import DagsmithError

    store = project_store(Path(project).resolve())
    manifest = store.read_manifest(pipeline, run_id)
    if manifest is None:
        # the run's process died before its end: every block whose outputs are stored had completed
        stored = store.stored_blocks(pipeline, run_id)
        if stored:
            return {uid: run_id for uid in stored}
        raise DagsmithError(
            f"no record of run '{run_id}' of pipeline '{pipeline}' in {store.describe(pipeline)}",
            hint="the run id is printed at the end of each run",
        )
    return {
        uid: info.get("partition", run_id)
        for uid, info in manifest.get("blocks", {}).items()
        if info.get("status") in ("completed", "cached")
    }


def _report(console: Console, result: Any, project: str, pipeline: str, blocks: Optional[List[str]], *, replayable: bool = True) -> None:
    if console.is_terminal:
        console.print(summary_table(result))
    else:
        _plain(summary_text(result))
    for uid in blocks or []:  # SQL blocks run alone: show what the database got and the first rows
        extra = result.blocks[uid].extra if uid in result.blocks else {}
        if extra.get("rendered_sql"):
            console.print(f"[bold]rendered SQL of {uid}:[/]")
            console.print(extra["rendered_sql"], markup=False, soft_wrap=True)
            for line in extra.get("sql_params") or []:
                console.print(f"  {line}", markup=False, soft_wrap=True)
            if extra.get("preview"):
                console.print(extra["preview"], markup=False, soft_wrap=True)
    passed, total = result.tests
    if total:
        console.print(f"{passed}/{total} tests passed.")
    if result.ok:
        secs = (result.ended_at - result.started_at).total_seconds()
        console.print(f"[green]✔ run {result.run_id} completed[/] in {secs:.2f}s")
        return
    from rich.console import Console
    from rich.markup import escape

    from dagsmith.project.masking import MaskedStream

    err = Console(stderr=True, highlight=False, file=MaskedStream(sys.stderr))
    for uid, b in result.blocks.items():
        if b.status != "failed":
            continue
        err.print(f"[bold red]✘ block {uid} failed:[/] {b.error}", soft_wrap=True)
        if b.traceback:
            err.print(b.traceback.rstrip(), markup=False, soft_wrap=True)
        if b.extra.get("hint"):
            err.print(f"[yellow]hint:[/] {escape(b.extra['hint'])}", soft_wrap=True)
        if replayable and result.partition and not b.parent:
            err.print(
                f"replay it here with its inputs:  dagsmith run {project} {pipeline} --from-run {result.partition} --block {uid} --pdb",
                markup=False, soft_wrap=True,
            )
    if getattr(result, "error", None):
        err.print(f"[bold red]✘ {escape(result.error)}[/]", soft_wrap=True)
    if result.status == "cancelled":
        err.print(f"[magenta]run {result.run_id} was cancelled[/]")
    else:
        err.print(f"[bold red]run {result.run_id} failed[/]")
    err.print(f"resume with:  dagsmith run {project} {pipeline} --resume {result.run_id}", markup=False, soft_wrap=True)


def exporter_free_blocks(spec: Any) -> tuple[list[str], list[str]]:
    """(blocks ``dagsmith test`` runs, blocks it skips): data exporters and every block downstream
    of one are skipped, so testing never writes to the pipeline's targets."""
    from dagsmith.dag.graph import downstream_of, known_upstream, reachable
    from dagsmith.project.layout import EXECUTABLE_TYPES

    executable = [b for b in spec.blocks if b.type in EXECUTABLE_TYPES]
    exporters = [b.uuid for b in executable if b.type == "data_exporter"]
    down = downstream_of(known_upstream({b.uuid: b.upstream_blocks for b in executable}))
    skipped = {*exporters, *reachable(down, exporters)}
    run = [b.uuid for b in executable if b.uuid not in skipped]
    return run, [b.uuid for b in executable if b.uuid in skipped]


def test_command(
    project: str, pipeline: Optional[str], *, as_json: bool, fail: Callable[..., None], with_exports: bool = False
) -> int:
    from dagsmith.engine.runner import run_pipeline
    from dagsmith.errors import DagsmithError
    from dagsmith.project.pipelines import list_pipelines, load_pipeline
    from rich.console import Console

    console = Console(highlight=False)
    try:
        names = [pipeline] if pipeline else list_pipelines(project)
    except DagsmithError as exc:
        fail(exc)
        return 2
    report, code = {}, 0
    cancel = threading.Event()
    with ctrl_c_cancels(cancel):
        for name in names:
            if cancel.is_set():
                break
            skipped: list[str] = []
            try:
                kw: dict[str, Any] = {}
                if not with_exports:
                    spec = load_pipeline(project, name)
                    selected, skipped = exporter_free_blocks(spec)
                    if skipped:
                        kw = {"block_uuids": selected, "spec": spec}
                result = run_pipeline(project, name, run_tests=True, persist=False, cancel_event=cancel, **kw)
            except DagsmithError as exc:
                report[name] = {"status": "invalid", "error": str(exc)}
                code = max(code, 2)
                if not as_json:
                    console.print(f"[bold red]{name}: invalid[/] {exc}", soft_wrap=True)
                continue
            passed, total = result.tests
            failures = {u: b.test_failures or ([b.error] if b.error else []) for u, b in result.blocks.items() if b.status == "failed"}
            report[name] = {
                "status": result.status, "tests_passed": passed, "tests_total": total, "failures": failures, "skipped": skipped,
            }
            if not result.ok:
                code = max(code, 1)
            if not as_json:
                colour = "green" if result.ok else "bold red"
                console.print(f"[{colour}]{name}: {passed}/{total} tests passed ({result.status})[/]")
                for uid, msgs in failures.items():
                    for m in msgs:
                        console.print(f"  [red]{uid}:[/] {m}", soft_wrap=True)
                if skipped:
                    console.print(
                        f"  [yellow]not run (exporters write to your targets):[/] {', '.join(skipped)} — add --with-exports to run them too",
                        soft_wrap=True,
                    )
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    if cancel.is_set():
        return 130
    return code


def validate_command(project: str, pipeline: Optional[str], *, as_json: bool, fail: Callable[..., None]) -> int:
    from dagsmith.engine.validation import pipeline_problems
    from dagsmith.errors import DagsmithError, ValidationError
    from dagsmith.project.pipelines import list_pipelines, load_pipeline, load_project
    from rich.console import Console

    console = Console(highlight=False)
    try:
        root = load_project(project).root
    except DagsmithError as exc:
        fail(exc)
        return 2
    from dagsmith.engine.config import executor_warnings

    names = [pipeline] if pipeline else list_pipelines(root)
    report: dict[str, list[str]] = {}
    warned: dict[str, list[str]] = {}
    for name in names:
        try:
            spec = load_pipeline(root, name)
            report[name] = pipeline_problems(root, spec)
            warned[name] = executor_warnings(spec)
        except ValidationError as exc:
            report[name] = exc.problems or [str(exc)]
        except DagsmithError as exc:
            report[name] = [str(exc)]
    bad = {k: v for k, v in report.items() if v}
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for name, problems in report.items():
            if problems:
                console.print(f"[bold red]✘ {name}[/]")
                for p in problems:
                    console.print(f"  - {p}", markup=False, soft_wrap=True)
            else:
                console.print(f"[green]✔ {name}[/]")
            for text in warned.get(name, ()):  # runs anyway: said, not counted as a problem
                console.print(f"  [yellow]warning:[/] {escape_markup(text)}", soft_wrap=True)
    return 2 if bad else 0  # like `dagsmith run`: invalid input is exit code 2


def list_command(project: str, *, as_json: bool, fail: Callable[..., None]) -> int:
    from dagsmith.errors import DagsmithError
    from dagsmith.project.pipelines import list_pipelines, load_project, read_pipeline_raw

    try:
        root = load_project(project).root
    except DagsmithError as exc:
        fail(exc)
        return 2
    rows = []
    for uid in list_pipelines(root):
        try:
            raw = read_pipeline_raw(root, uid)
            blocks = [b.get("uuid") for b in raw.get("blocks") or [] if isinstance(b, dict)]
            rows.append({"uuid": uid, "name": raw.get("name") or uid, "type": raw.get("type") or "python", "blocks": blocks})
        except DagsmithError as exc:
            rows.append({"uuid": uid, "error": str(exc)})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table()
    t.add_column("pipeline")
    t.add_column("type")
    t.add_column("blocks", justify="right")
    for r in rows:
        if "error" in r:
            t.add_row(r["uuid"], "[red]invalid[/]", "")
        else:
            t.add_row(r["uuid"], r["type"], str(len(r["blocks"])))
    Console().print(t)
    return 0
