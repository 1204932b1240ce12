"""Live editor output in Chromium: output and timer stream while a block runs, output boxes follow
their tail only when the reader is at the bottom (scrolled up, they stay put, also when the block
ends, and offer "new lines below"), and a run cut off by a server restart says so,
offers to run again, with a "connection lost" banner while the server is away."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import shot
from tests.e2e.uiproject import block_code, new_project, open_cell, write_pipeline

pytestmark = pytest.mark.e2e

SLOW = block_code("data_loader", """
import time
for i in range(N):
    print(f"tick {i}", flush=True)
    time.sleep(DELAY)
return {"ticks": N}
""")


def _slow(n: int, delay: float) -> str:
    return SLOW.replace("range(N)", f"range({n})").replace("DELAY", str(delay)).replace('"ticks": N', f'"ticks": {n}')


@pytest.fixture
def live_project(tmp_path):
    project = new_project(tmp_path)
    write_pipeline(project, "live", [{"uuid": "slow", "type": "data_loader", "code": _slow(12, 0.4)},
                                     {"uuid": "chatty", "type": "data_loader", "code": _slow(300, 0.02)}])
    return project


def test_output_and_timer_stream_while_the_block_runs(page, start_server, live_project):
    server = start_server(live_project)
    page.goto(server.url + "/pipelines/live/edit")
    open_cell(page, "slow")
    page.locator("#block-slow .run-btn").click()
    running = page.locator("#out-slow.running")
    running.wait_for()
    # the first lines are on screen long before the block ends (12 × 0.4 s)
    page.wait_for_function("document.querySelector('#out-slow.running pre.stdout') && document.querySelector('#out-slow.running pre.stdout').textContent.includes('tick 1')", timeout=4000)
    assert page.locator("#out-slow").get_attribute("data-status") == "running"
    first = page.locator("#out-slow .elapsed").inner_text()
    page.wait_for_timeout(700)
    second = page.locator("#out-slow .elapsed").inner_text()
    assert first != second, (first, second)  # the timer ticks
    # the DAG shows the block running
    assert "st-running" in page.locator('svg.dag a.node[data-block="slow"]').get_attribute("class")
    shot(page, "ui-live-output-running")
    page.locator("#out-slow.done").wait_for(timeout=30_000)
    text = page.locator("#out-slow").inner_text()
    assert "completed" in text and "tick 11" in text
    assert "st-completed" in page.locator('svg.dag a.node[data-block="slow"]').get_attribute("class")
    assert page.errors.items == [], page.errors.items


def test_output_box_follows_its_tail_only_at_the_bottom(page, start_server, live_project):
    server = start_server(live_project)
    page.goto(server.url + "/pipelines/live/edit")
    open_cell(page, "chatty")
    page.locator("#block-chatty .run-btn").click()
    pre = page.locator("#out-chatty.running pre.stdout")
    pre.wait_for()
    page.wait_for_function("(() => { const p = document.querySelector('#out-chatty.running pre.stdout'); return p && p.scrollHeight > p.clientHeight + 200; })()", timeout=15_000)
    # at the bottom: it follows new lines
    page.wait_for_timeout(300)
    at_bottom = pre.evaluate("p => p.scrollHeight - p.scrollTop - p.clientHeight")
    assert at_bottom < 10
    # scrolled up: it stays where the reader is while lines keep coming, and says new lines came below
    pre.evaluate("p => { p.scrollTop = 40; p.dataset.mine = '1'; }")
    lines_before = pre.evaluate("p => p.textContent.split('\\n').length")
    page.wait_for_function(f"document.querySelector('#out-chatty pre.stdout').textContent.split('\\n').length >= {lines_before + 20}", timeout=15_000)
    assert pre.evaluate("p => p.scrollTop") == 40
    latest = page.locator("#out-chatty .log-latest")
    assert latest.is_visible() and "new lines below" in latest.inner_text(), latest.inner_text()
    # the block ends: the finished output keeps the reader's box where it was
    page.locator("#out-chatty.done").wait_for(timeout=30_000)
    done = page.locator("#out-chatty.done pre.stdout")
    assert done.evaluate("p => [p.dataset.mine, p.scrollTop]") == ["1", 40]
    assert "tick 299" in done.inner_text()
    # "jump to latest" goes to the last line
    page.locator("#out-chatty .log-latest").click()
    assert done.evaluate("p => p.scrollHeight - p.scrollTop - p.clientHeight") < 8
    assert not page.locator("#out-chatty .log-latest").is_visible()
    assert page.errors.items == [], page.errors.items


def test_run_cut_off_by_a_restart_says_so_and_runs_again(page, start_server, live_project):
    server = start_server(live_project)
    page.goto(server.url + "/pipelines/live/edit")
    open_cell(page, "slow")
    page.locator("#block-slow .run-btn").click()
    page.wait_for_function("document.querySelector('#out-slow.running pre.stdout') && document.querySelector('#out-slow.running pre.stdout').textContent.includes('tick 0')")
    server.stop()
    banner = page.locator("#conn-banner")
    banner.wait_for(state="visible", timeout=10_000)
    assert "Connection to the server lost" in banner.inner_text()
    shot(page, "ui-connection-lost")
    again = start_server(live_project, port=server.port)
    # the page reconnects by itself: the banner goes, the cell tells what happened
    banner.wait_for(state="hidden", timeout=15_000)
    out = page.locator('#out-slow[data-status="interrupted"]')
    out.wait_for(timeout=15_000)
    assert "server stopped" in out.inner_text() or "server restarted" in out.inner_text()
    assert "Internal Server Error" not in page.content()
    shot(page, "ui-run-interrupted")
    # a fresh page load shows the same, and "Run again" runs it
    page.goto(again.url + "/pipelines/live/edit")
    open_cell(page, "slow")
    out = page.locator('#out-slow[data-status="interrupted"]')
    out.wait_for()
    out.locator(".run-again").click()
    page.locator("#out-slow.running").wait_for()
    page.locator("#out-slow.done").wait_for(timeout=30_000)
    assert page.locator("#out-slow").get_attribute("data-status") == "completed"
    real_errors = [e for e in page.errors.items if "ERR_CONNECTION_REFUSED" not in e and "Failed to fetch" not in e and "net::" not in e]
    assert real_errors == [], real_errors
