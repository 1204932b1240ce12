"""``dagsmith start PROJECT``: the web server, the scheduler and a worker in one process.

``--role`` picks parts (repeat it, or give a comma list): ``server``, ``scheduler``,
``worker``; the default is all three. The metadata DB is migrated first. SIGTERM or
Ctrl-C stops cleanly: the scheduler stops ticking, the worker stops claiming, runs
still going after the grace period go back to the queue and resume on the next start.
Only Typer is imported at module load (``dagsmith --help`` stays fast).
"""

from __future__ import annotations

from typing import List, Optional

import typer

ROLES = ("server", "scheduler", "worker")


def _roles(values: Optional[List[str]]) -> tuple[str, ...]:
    if not values:
        return ROLES
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().lower()
            if part == "all":
                return ROLES
            if part not in ROLES:
                raise typer.BadParameter(f"unknown role {part!r}; use server, scheduler or worker", param_hint="--role")
            if part not in out:
                out.append(part)
    return tuple(out)


def bind_port(host: str, port: int):
    """A listening-ready socket bound to ``host:port`` with SO_REUSEADDR, as uvicorn binds.

    SO_REUSEADDR lets a restarted server take back its port while connections of the
    previous process (an open browser tab, a keep-alive client) sit in TIME_WAIT; a port
    that another process really listens on still fails, with a ``ConfigError`` saying so.
    """
    import errno
    import socket

    from dagsmith.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use by another program (another dagsmith start?)",
                hint=f"stop that program, or choose another port: dagsmith start --port {port + 1}",
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint="check --host and --port") from None
    sock.set_inheritable(True)
    return sock


def _server_class(on_listening=None):
    import contextlib
    import signal

    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM after shutting down, which would kill us before runs are handed back.

        ``on_listening`` is called once the socket accepts connections (the lifespan has run).
        """

        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if on_listening is not None and not self.should_exit:
                on_listening()

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return _Server


def _escape(text: str) -> str:
    """``text`` with Rich markup escaped (errors only: Rich's markup module is not imported otherwise)."""
    from rich.markup import escape

    return escape(text)


class _FirstResponse:
    """ASGI wrapper that sets ``event`` once the first HTTP response has been sent in full.

    ``dagsmith start`` starts the scheduler and the worker after that (or after ``DEFER_S``),
    so the first page a person asks for does not share the interpreter with their start-up.
    """

    def __init__(self, app, event: "threading.Event") -> None:
        self.app = app
        self.event = event

    async def __call__(self, scope, receive, send):
        if self.event.is_set() or scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def sent(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.event.set()

        return await self.app(scope, receive, sent)


#: seconds after the server listens that the scheduler and worker start at the latest
DEFER_S = 1.0


class _DeferredStart:
    """Start ``runtime`` on a thread once the server has answered (or ``DEFER_S`` passed); never after ``stop``."""

    def __init__(self, runtime) -> None:
        import threading

        self.runtime = runtime
        self.answered = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        """Called when the server listens."""
        import threading

        self._thread = threading.Thread(target=self._run, name="dagsmith-start-runtime", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.answered.wait(DEFER_S)
        with self._lock:
            if self._stopped:
                return
            try:
                self.runtime.start()
            except Exception as exc:  # noqa: BLE001 - the DB went away between migrate and here
                import logging

                logging.getLogger("dagsmith.start").exception("the scheduler and worker could not start: %s", exc)

    def stop(self) -> None:
        """No start after this; waits for one already under way so ``runtime.stop`` sees it."""
        with self._lock:
            self._stopped = True


def _claim_singletons(settings, roles: tuple[str, ...], host: str, is_postgres: bool, console) -> object:
    """Refuse a second scheduler/server on the same SQLite project; on PostgreSQL say we join as a peer.

    Two schedulers on one SQLite file would both tick (and a second server would quietly take
    another port), so the second ``dagsmith start`` stops here with who is running. PostgreSQL
    claims runs with row locks, so there more processes are peers. Workers are never limited.
    """
    from dagsmith.cli.instance import SINGLETON_ROLES, Claim

    claim = Claim(settings.data_dir)
    db_kind = "postgresql" if is_postgres else "sqlite"
    for role in (r for r in roles if r in SINGLETON_ROLES):
        other = claim.take(role, {"host": host, "db": db_kind})
        if other is None:
            continue
        where = f" (pid {other['pid']})" if other.get("pid") else ""
        address = f" serving http://{other['host']}:{other['port']}" if other.get("port") else ""
        if is_postgres:
            console.print(f"dagsmith: another {role}{where}{address} runs this project; joining it as a peer on the shared PostgreSQL DB", soft_wrap=True)
            continue
        claim.release()
        console.print(
            f"[bold red]error:[/] a dagsmith {role} is already running this project{where}{address},"
            f" with the SQLite metadata DB {settings.data_dir / 'dagsmith.db'}", soft_wrap=True,
        )
        console.print(
            "[yellow]hint:[/] stop it first (Ctrl-C in its terminal), add workers with `--role worker`,"
            " or share a PostgreSQL DB (DAGSMITH_DATABASE_URL=postgresql+psycopg://…) to run more schedulers and servers",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    return claim


def command(
    project: str = typer.Argument(".", help="Project folder (default: the current folder)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 exposes the server to the network)."),
    port: int = typer.Option(6789, "--port", help="Port of the web server; dagsmith stops with an error if another program listens on it."),
    role: Optional[List[str]] = typer.Option(None, "--role", help="server, scheduler, worker (repeatable or comma list; default all)."),
    workers: Optional[int] = typer.Option(None, "--concurrency", help="Runs this process executes at the same time."),
    grace: float = typer.Option(10.0, "--grace", help="Seconds to let running runs finish on shutdown before handing them back."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Where this process's workers run blocks: local (threads) or dask (also DAGSMITH_EXECUTOR)."
    ),
    dask_scheduler: Optional[str] = typer.Option(
        None, "--dask-scheduler", help="tcp://HOST:PORT of the Dask scheduler (default: a local cluster of processes)."
    ),
    no_requirements: bool = typer.Option(
        False, "--no-requirements", help="Do not pip-install the project's requirements.txt (done when it changed, as Mage's container does)."
    ),
    allowed_host: Optional[List[str]] = typer.Option(
        None, "--allowed-host", help="A host name the browser may use besides localhost/127.0.0.1 (repeatable; DAGSMITH_ALLOWED_HOSTS)."
    ),
) -> None:
    """Start the server, the scheduler and a worker (migrates the metadata DB first)."""
    import logging
    import signal
    import sys
    import threading
    from pathlib import Path

    from dagsmith.cli.running import run_console
    from dagsmith.errors import DagsmithError

    console = run_console(sys.stderr)  # Rich on a terminal; plain lines to a pipe or log (Rich costs ~5% of start)
    roles = _roles(role)
    if executor is not None and executor not in ("local", "dask"):
        raise typer.BadParameter(f"unknown executor {executor!r}; use local or dask", param_hint="--executor")
    import os as _os

    # the engine reads these for every run this process executes (runs, editor runs)
    if executor:
        _os.environ["DAGSMITH_EXECUTOR"] = executor
    if dask_scheduler:
        _os.environ["DAGSMITH_DASK_SCHEDULER"] = dask_scheduler
        _os.environ.setdefault("DAGSMITH_EXECUTOR", "dask")
    root = Path(project).resolve()
    if not (root / "pipelines").is_dir():
        console.print(f"[bold red]error:[/] {root} is not a project (it has no pipelines/ folder)")
        console.print(f"[yellow]hint:[/] create one with:  dagsmith init {project}")
        raise typer.Exit(2)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dagsmith.project.masking import install_logging_filter, mask_process_streams

    install_logging_filter()  # secrets never reach the server log
    mask_process_streams()  # nor does what bypasses logging: a thread's uncaught traceback
    try:
        from dagsmith.orchestration.runtime import Runtime
        from dagsmith.orchestration.settings import OrchestrationSettings
        from dagsmith.project.env import load_project_env

        load_project_env(root)
        from dagsmith.settings import check as check_settings

        check_settings()  # every DAGSMITH_* variable, now: a bad one stops start-up, not a later request
        if "server" in roles:  # a network-facing server needs sign-in (dagsmith.server.ui.auth)
            from dagsmith.server.ui.auth import check_host_allowed

            check_host_allowed(host, root)
        overrides = {"shutdown_grace": grace}
        if workers:
            overrides["worker_concurrency"] = workers
        settings = OrchestrationSettings.from_env(root, **overrides)
        runtime = Runtime(settings, roles=roles)
    except DagsmithError as exc:
        console.print(f"[bold red]error:[/] {_escape(exc.message)}")
        if exc.hint:
            console.print(f"[yellow]hint:[/] {_escape(exc.hint)}")
        raise typer.Exit(2)
    claim = _claim_singletons(settings, roles, host, runtime.db.is_postgres, console)
    if not no_requirements:
        from dagsmith.cli.requirements import install_requirements

        try:
            install_requirements(root, settings.data_dir, say=lambda text: console.print(text, markup=False, soft_wrap=True))
        except DagsmithError as exc:
            claim.release()
            console.print(f"[bold red]error:[/] {_escape(exc.message)}", soft_wrap=True)
            console.print(f"[yellow]hint:[/] {_escape(exc.hint)}", soft_wrap=True)
            raise typer.Exit(2)
    where = "PostgreSQL" if runtime.db.is_postgres else f"SQLite {settings.data_dir / 'dagsmith.db'}"
    console.print(f"dagsmith: project {root.name} — roles {', '.join(roles)} — metadata DB {where}", soft_wrap=True)
    sock = None
    if "server" in roles:  # bind before any work starts: a taken port stops us before a worker claims runs
        try:
            sock = bind_port(host, port)
        except DagsmithError as exc:
            claim.release()
            console.print(f"[bold red]error:[/] {_escape(exc.message)}", soft_wrap=True)
            if exc.hint:
                console.print(f"[yellow]hint:[/] {_escape(exc.hint)}", soft_wrap=True)
            runtime.db.dispose()
            raise typer.Exit(2)
    stop = threading.Event()
    deferred = None
    if "server" not in roles:

        def _stop(signum, frame):  # noqa: ARG001
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        runtime.start()
    else:  # the scheduler and worker start once the first page is out (see _DeferredStart)
        deferred = _DeferredStart(runtime)
    try:
        if "server" in roles:
            import uvicorn

            from dagsmith.server.app import create_app

            _Server = _server_class(on_listening=deferred.begin)

            claim.note("server", {"host": host, "port": port, "db": "postgresql" if runtime.db.is_postgres else "sqlite"})
            hosts = [h for part in (allowed_host or []) for h in part.split(",") if h.strip()]
            if host not in ("", "0", "0.0.0.0", "::"):
                hosts.append(host)  # the name it was asked to bind is a name clients use
            app = _FirstResponse(create_app(root, settings, runtime=runtime, migrate=False, allowed_hosts=hosts), deferred.answered)
            console.print(f"dagsmith: serving http://{host}:{port}  (API docs: http://{host}:{port}/api/docs)", soft_wrap=True)
            config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), access_log=False, timeout_graceful_shutdown=5)
            server = _Server(config)  # uvicorn configures its loggers here; mask what they print
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
                install_logging_filter(logging.getLogger(name))
            server.run(sockets=[sock])  # returns on SIGTERM / Ctrl-C
        else:
            while not stop.wait(1.0):
                pass
    finally:
        console.print("dagsmith: stopping (in-flight runs finish or go back to the queue)…")
        if deferred is not None:
            deferred.stop()
        runtime.stop()
        console.print("dagsmith: stopped")
        # A block still inside a long C call (time.sleep, a socket read) cannot be interrupted and
        # the interpreter would wait for its thread at exit; its run is already back in the queue.
        import os
        import sys

        pending = sys.exc_info()[1]
        code = 0
        if pending is not None and not isinstance(pending, (KeyboardInterrupt, SystemExit)):
            import traceback

            traceback.print_exception(pending)
            code = 1
        dask_executor = sys.modules.get("dagsmith.engine.executors.dask")
        if dask_executor is not None:  # the local cluster this process started goes with it
            dask_executor.close_shared_clients()
        sys.stdout.flush()
        sys.stderr.flush()
        runtime.db.dispose()
        claim.release()
        os._exit(code)
