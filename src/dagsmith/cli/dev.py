"""``dagsmith dev PROJECT PIPELINE``: the inner loop — save a file, see the block's result.

Watches the pipeline's block files, ``utils/`` and the pipeline's ``metadata.yaml``
(``watchfiles``, imported when the command runs). On a save it works out what changed:

- a block file → that block;
- a project module (``utils/…``) → the blocks whose code imports it (``blocks.imports``);
- the pipeline YAML → the blocks whose entry changed (all of them when blocks were added
  or removed);

and re-runs those blocks and everything downstream of them, in this process, on the
stored outputs of the unchanged upstream blocks (the variables store's ``latest.json``).
A syntax error in a saved file is shown as ``file:line`` at once and nothing runs.

For each block the terminal shows its status, time, rows, test results, what it printed
and a preview of its output (Rich). The project's own modules are dropped from
``sys.modules`` before each run, so an edit of ``utils/`` is seen without a restart.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dagsmith.cli.running import STYLE

#: rows and columns of the preview under each block
PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 8
WATCHED_SUFFIXES = (".py", ".sql", ".yaml", ".yml")


class DevSession:
    """The state of one ``dagsmith dev``: the pipeline as last loaded and what each block's code depends on."""

    def __init__(self, project: str | Path, pipeline: str, console: Console, *, run_tests: bool = True) -> None:
        from dagsmith.engine.storage import project_store
        from dagsmith.project.env import load_project_env
        from dagsmith.project.pipelines import load_pipeline, load_project

        self.project = load_project(project)
        self.root: Path = self.project.root
        load_project_env(self.root)
        self.pipeline = pipeline
        self.console = console
        self.run_tests = run_tests
        self.spec = load_pipeline(self.root, pipeline)
        self.yaml_path = (self.root / "pipelines" / pipeline / "metadata.yaml").resolve()
        self.store = project_store(self.root, self.project.metadata)
        self.entries = self._entries(self.spec)
        self.deps: dict[str, set[Path]] = {}
        self._refresh_deps()
        from dagsmith.engine.devfeed import DevFeed

        self.feed = DevFeed(self.root, pipeline)  # what the web editor shows of these runs

    # ------------------------------------------------------------ what to watch
    def watch_paths(self) -> list[Path]:
        """Folders to watch: those holding the block files, ``utils/`` and the pipeline's folder."""
        folders = {self.yaml_path.parent}
        for b in self.spec.blocks:
            folders.add(Path(b.path).resolve().parent)
        top = self.root.resolve()
        for files in self.deps.values():
            for f in files:
                if f.parent != top:  # the project's own __init__.py would make the whole project (and its store) watched
                    folders.add(f.parent)
        utils = self.root / "utils"
        if utils.is_dir():
            folders.add(utils.resolve())
        # a folder inside another watched one is covered by it (watches are recursive)
        return sorted(f for f in folders if f.is_dir() and not any(o != f and o in f.parents for o in folders))

    def relevant(self, path: str | Path) -> bool:
        p = Path(path)
        if p.suffix not in WATCHED_SUFFIXES or "__pycache__" in p.parts or p.name.startswith("."):
            return False
        return ".dagsmith" not in p.parts

    # ------------------------------------------------------------ what changed
    def blocks_for(self, changed: Iterable[str | Path]) -> set[str]:
        """The blocks a set of saved files asks to re-run (before adding their downstream)."""
        paths = {Path(p).resolve() for p in changed}
        chosen: set[str] = set()
        if self.yaml_path in paths:
            chosen |= self._reload_yaml()
        for b in self.spec.blocks:
            if Path(b.path).resolve() in paths or self.deps.get(b.uuid, set()) & paths:
                chosen.add(b.uuid)
        if paths - {self.yaml_path}:
            self._refresh_deps()  # a saved module may import new ones
        return chosen

    def _entries(self, spec: Any) -> dict[str, str]:
        import json

        return {b.uuid: json.dumps(dict(b.raw or {}), sort_keys=True, default=str) for b in spec.blocks}

    def _reload_yaml(self) -> set[str]:
        from dagsmith.project.pipelines import load_pipeline

        spec = load_pipeline(self.root, self.pipeline)
        entries = self._entries(spec)
        old = self.entries
        self.spec, self.entries = spec, entries
        if set(old) != set(entries):
            return set(entries)
        return {u for u, text in entries.items() if old.get(u) != text}

    def _refresh_deps(self) -> None:
        from dagsmith.blocks.imports import project_dependencies

        self.deps = {}
        for b in self.spec.blocks:
            if not b.is_sql:
                self.deps[b.uuid] = set(project_dependencies(Path(b.path), self.root))

    # ------------------------------------------------------------ running
    def closure(self, blocks: Iterable[str]) -> list[str]:
        """``blocks``, everything downstream of them, and any upstream block with no stored output yet."""
        by = self.spec.block_map()
        chosen = {u for u in blocks if u in by}
        todo = list(chosen)
        while todo:  # downstream
            u = todo.pop()
            for b in self.spec.blocks:
                if u in b.upstream_blocks and b.uuid not in chosen:
                    chosen.add(b.uuid)
                    todo.append(b.uuid)
        todo = list(chosen)
        while todo:  # upstream blocks never run before: run them too
            u = todo.pop()
            for up in by[u].upstream_blocks:
                if up in by and up not in chosen and self.store.latest_partition(self.pipeline, up) is None:
                    chosen.add(up)
                    todo.append(up)
        return [b.uuid for b in self.spec.blocks if b.uuid in chosen]

    def unstored(self) -> list[str]:
        """Blocks with no stored output yet (what the first run of a session runs)."""
        from dagsmith.project.layout import EXECUTABLE_TYPES

        return [
            b.uuid for b in self.spec.blocks
            if b.type in EXECUTABLE_TYPES and self.store.latest_partition(self.pipeline, b.uuid) is None
        ]

    def syntax_problems(self, changed: Iterable[str | Path]) -> list[str]:
        """``file:line: message`` for each saved Python file that does not parse."""
        from dagsmith.blocks.checks import analyze

        problems = []
        for p in sorted({Path(x).resolve() for x in changed}):
            if p.suffix != ".py" or not p.is_file():
                continue
            try:
                facts = analyze(p)
            except OSError:
                continue
            if facts.syntax_error:
                line, msg = facts.syntax_error
                problems.append(f"{self._rel(p)}:{line}: SyntaxError: {msg}")
        return problems

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def run(self, blocks: list[str], *, reason: str = "") -> Any:
        """Run ``blocks`` (in this order's closure) and draw the result; returns the ``RunResult`` (None if nothing ran)."""
        from dagsmith.engine.runner import run_pipeline
        from dagsmith.errors import DagsmithError, ValidationError

        started = time.perf_counter()
        if not blocks:
            return None
        self.console.print(
            f"[bold]▶ {escape(reason)}[/] → {', '.join(blocks)}" if reason else f"[bold]▶ running[/] {', '.join(blocks)}",
            highlight=False, soft_wrap=True,
        )
        _forget_project_modules(self.root)
        from dagsmith.engine.observer import Fanout

        view = DevView(self.console)
        self.feed.begin(reason or "run")
        try:
            result = run_pipeline(
                self.root, self.pipeline, block_uuids=blocks, spec=self.spec, observer=Fanout([view, self.feed]),
                run_tests=self.run_tests,
            )
        except ValidationError as exc:
            self.console.print("[bold red]✘ nothing ran:[/]", highlight=False)
            for p in exc.problems or [exc.message]:
                self.console.print(f"  {p}", markup=False, soft_wrap=True, highlight=False)
            self.feed.invalid(reason, list(exc.problems or [exc.message]))
            return None
        except DagsmithError as exc:
            self.console.print(f"[bold red]✘ nothing ran:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                self.console.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
            self.feed.invalid(reason, [exc.message + (f" (hint: {exc.hint})" if exc.hint else "")])
            return None
        self._previews(result)
        secs = time.perf_counter() - started
        colour = "green" if result.ok else "bold red"
        self.console.print(f"[{colour}]■ {result.status}[/] in {secs * 1000:.0f} ms (run {result.run_id})",
                           highlight=False)
        return result

    def on_save(self, changed: Iterable[str | Path]) -> Any:
        """What one batch of saved files does: check syntax, pick blocks, run them."""
        changed = [Path(p) for p in changed if self.relevant(p)]
        if not changed:
            return None
        names = ", ".join(sorted({self._rel(Path(p).resolve()) for p in changed}))
        problems = self.syntax_problems(changed)
        if problems:
            for p in problems:
                self.console.print(f"[bold red]✘ {escape(p)}[/]", highlight=False, soft_wrap=True)
            self.console.print("[red]nothing ran; fix the file and save again[/]", highlight=False)
            self.feed.invalid(f"saved {names}", problems)
            return None
        try:
            chosen = self.blocks_for(changed)
        except Exception as exc:  # noqa: BLE001 - a broken YAML: show it, keep watching
            self.console.print(f"[bold red]✘ {escape(getattr(exc, 'message', None) or str(exc))}[/]", highlight=False, soft_wrap=True)
            return None
        if not chosen:
            self.console.print(f"[dim]saved {escape(names)}: no block of {self.pipeline} uses it[/]", highlight=False)
            return None
        return self.run(self.closure(chosen), reason=f"saved {names}")

    def _previews(self, result: Any) -> None:
        from dagsmith.data.preview import preview

        shown: dict[str, dict[str, Any]] = {}
        for uid, b in result.blocks.items():
            if b.status not in ("completed", "cached") or b.parent:
                continue
            part = self.store.latest_partition(self.pipeline, uid) if b.status == "cached" else result.partition
            try:
                value = self.store.read_block_value(self.pipeline, part or result.partition, uid)
            except Exception:  # noqa: BLE001 - no stored output (a block returning None): nothing to preview
                continue
            if value is None or (isinstance(value, list) and not value):
                continue
            info = preview(value, rows=PREVIEW_ROWS)
            shown[uid] = info
            table = preview_table(info, title=f"{uid} output")
            if table is not None:
                self.console.print(table)
        if shown:
            self.feed.previews(shown)


class DevView:
    """A ``RunObserver`` printing one line per finished block, with its printed output and tests, as it happens."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.lock = threading.Lock()

    def on_block_end(self, *, block_uuid: str, status: str, result: Any, **kw: Any) -> None:
        if kw.get("parent"):
            return
        secs = result.seconds
        parts = [f"[{STYLE.get(status, '')}]{'✔' if status in ('completed', 'cached') else '✘'} {escape(block_uuid)} {status}[/]"]
        if secs is not None and status != "cached":
            parts.append(f"{secs * 1000:.0f} ms")
        if result.rows is not None:
            parts.append(f"{result.rows:,} rows")
        if result.tests_total:
            ok = result.tests_passed == result.tests_total
            parts.append(f"[{'green' if ok else 'red'}]{result.tests_passed}/{result.tests_total} tests passed[/]")
        with self.lock:
            self.console.print("  ".join(parts), highlight=False, soft_wrap=True)
            for line in (result.stdout or "").splitlines():
                self.console.print(f"  [dim]│[/] {escape(line)}", highlight=False, soft_wrap=True)
            if status == "failed":
                if result.error:
                    self.console.print(f"  [red]{escape(result.error)}[/]", highlight=False, soft_wrap=True)
                if result.traceback:
                    self.console.print(result.traceback.rstrip(), markup=False, highlight=False, soft_wrap=True)
                for f in result.test_failures or ():
                    self.console.print(f"  [red]FAIL {escape(f)}[/]", highlight=False, soft_wrap=True)
            if hasattr(self.console.file, "flush"):
                self.console.file.flush()


def preview_table(info: dict[str, Any], *, title: str) -> Table | None:
    """A preview (``data.preview.preview``) as a Rich table (None for outputs with no rows and columns)."""
    if "columns" not in info:
        text = info.get("text")
        if text is None:
            return None
        t = Table(title=title, title_justify="left", show_header=False, min_width=len(title) + 4)
        t.add_column("value")
        t.add_row(escape(text[:500]))
        return t
    columns = info["columns"][:PREVIEW_COLUMNS]
    more = len(info["columns"]) - len(columns)
    rows = info.get("rows")
    caption = f"{rows:,} rows" if isinstance(rows, int) else None
    if more > 0:
        caption = f"{caption}, {more} more columns" if caption else f"{more} more columns"
    t = Table(title=title, title_justify="left", caption=caption, caption_justify="left", min_width=len(title) + 4)
    for c in columns:
        t.add_column(f"{c['name']}\n[dim]{c['type']}[/]")
    for row in info.get("data") or []:
        t.add_row(*(escape(str(v)) for v in row[: len(columns)]))
    return t


def _forget_project_modules(root: Path) -> None:
    """Drop the project's own modules from ``sys.modules`` so the next import reads the saved files."""
    prefix = str(root.resolve())
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        if file and (file == prefix or file.startswith(prefix + "/")):
            sys.modules.pop(name, None)


def dev_command(project: str, pipeline: str, *, run_tests: bool, fail: Any, stop: threading.Event | None = None) -> int:
    """Run the dev loop until Ctrl-C (or ``stop`` is set)."""
    from dagsmith.errors import DagsmithError
    from dagsmith.project.masking import MaskedStream

    try:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # each result shows when printed, piped too
    except (AttributeError, ValueError):
        pass
    console = Console(highlight=False, file=MaskedStream(sys.stdout))
    try:
        try:
            from watchfiles import watch
        except ImportError:
            raise DagsmithError(
                "dagsmith dev needs the watchfiles package", hint="pip install 'watchfiles>=0.21'"
            ) from None
        session = DevSession(project, pipeline, console, run_tests=run_tests)
    except DagsmithError as exc:
        fail(exc)
        return 2
    first = session.unstored()
    if first:
        session.run(session.closure(first), reason="first run (blocks with no stored output)")
    paths = session.watch_paths()
    stop = stop or threading.Event()
    announced = False
    try:
        while not stop.is_set():
            # ``step``: how long a batch of events may stay quiet before it is handed over (the default
            # 50 ms is a sixth of the budget of a save); ``debounce`` caps a batch of many files. An empty
            # batch comes every ``rust_timeout`` ms: the first one says the watches are in place.
            for changes in watch(*paths, step=15, debounce=400, stop_event=stop, raise_interrupt=False,
                                 rust_timeout=200, yield_on_timeout=True,
                                 watch_filter=lambda _c, p: session.relevant(p)):
                if not announced:
                    console.print(
                        f"[bold]watching[/] {', '.join(session._rel(p) or '.' for p in paths)} — save a file to re-run "
                        "its block and everything downstream (Ctrl-C to stop)",
                        highlight=False, soft_wrap=True,
                    )
                    announced = True
                if not changes:
                    continue
                try:
                    session.on_save([p for _c, p in changes])
                except Exception as exc:  # noqa: BLE001 - the loop outlives any one save
                    console.print(f"[bold red]✘ {type(exc).__name__}: {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
                new_paths = session.watch_paths()
                if new_paths != paths:  # a block in a new folder (or a new utils module): watch it too
                    paths = new_paths
                    break
            else:
                break  # stopped
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    console.print("stopped")
    return 0
