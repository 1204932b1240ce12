"""End-to-end fixtures: Debian's Chromium through Playwright, and ``dagsmith start`` on a free port.

Chromium must be the system package (``apt-get install -y chromium`` → ``/usr/bin/chromium``);
Playwright cannot download its own browser here. A missing browser FAILS the suite with
the install command, it never skips. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    for candidate in (os.environ.get("DAGSMITH_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("chromium")
    if found:
        return found
    pytest.fail(
        "Chromium is not installed (looked for /usr/bin/chromium). The e2e suite drives Debian's chromium "
        "package through Playwright; install it with:  apt-get update && apt-get install -y chromium",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageErrors:
    """Collects console errors, page errors and failed responses of a page (each test asserts none)."""

    def __init__(self, page) -> None:
        self.items: list[str] = []
        page.on("console", lambda m: self.items.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.items.append(f"page error: {e}"))
        page.on("response", lambda r: self.items.append(f"HTTP {r.status} {r.url}") if r.status >= 400 and not r.url.endswith("favicon.ico") else None)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.errors = PageErrors(pg)
    try:
        yield pg
    finally:
        context.close()


def shot(page, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def shot_of(locator, name: str) -> Path:
    """A screenshot of one element (the pictures in docs/ui.md are cropped to what they show)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, project: Path, env: dict | None = None, port: int | None = None) -> None:
        self.project = project
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(project.parent / "server.log", "ab")
        full_env = dict(os.environ, DAGSMITH_SCHEDULER_INTERVAL="0.5", DAGSMITH_POLL_INTERVAL="0.1", **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dagsmith.cli.app", "start", str(project), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=full_env, cwd=str(project.parent),
        )
        self.started = time.monotonic()
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> float:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagsmith start exited with {self.proc.returncode}: {self.output()[-3000:]}")
            try:
                if httpx.get(self.url + "/pipelines", timeout=1).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"dagsmith start did not answer within {timeout}s: {self.output()[-3000:]}")

    def output(self) -> str:
        self.log.flush()
        return (self.project.parent / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def start_server():
    servers: list[Server] = []

    def start(project: Path, env: dict | None = None, port: int | None = None) -> Server:
        server = Server(project, env, port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
