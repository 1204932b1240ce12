"""The editor shows `dagsmith dev`'s runs live (issue 16 item 1): save a file in your own editor
while `dagsmith dev` watches, and the pipeline's page in Chromium shows the new result."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import shot
from tests.e2e.uiproject import block_code, new_project, write_pipeline

pytestmark = pytest.mark.e2e


def test_editor_follows_dev_loop_runs(page, start_server, tmp_path):
    project = new_project(tmp_path)
    write_pipeline(project, "dev", [
        {"uuid": "load", "type": "data_loader", "code": block_code("data_loader", "return [1, 2, 3]")},
        {"uuid": "total", "type": "transformer", "upstream": ["load"],
         "code": block_code("transformer", "print('total is', sum(data))\nreturn sum(data)", args="data")},
    ])
    server = start_server(project)
    dev = _start_dev(project)
    try:
        page.goto(server.url + "/pipelines/dev/edit")
        feed = page.locator("#dev-feed")
        feed.locator('.dev-block[data-block="total"][data-status="completed"]').wait_for(timeout=60_000)
        assert "total is 6" in feed.inner_text()
        path = project / "transformers" / "total.py"
        path.write_text(block_code("transformer", "print('total is', sum(data) * 10)\nreturn sum(data) * 10", args="data"))
        page.wait_for_function("document.querySelector('#dev-feed') && document.querySelector('#dev-feed').textContent.includes('total is 60')",
                               timeout=30_000)
        text = feed.inner_text()
        assert "saved transformers/total.py" in text and "load" not in [b.get_attribute("data-block") for b in feed.locator(".dev-block").all()]
        shot(page, "ui-dev-loop-feed")
        assert page.errors.items == [], page.errors.items
    finally:
        dev.terminate()
        dev.wait(timeout=20)


def test_dev_feed_keeps_a_scrolled_output_box_in_place(page, start_server, tmp_path):
    """The feed is re-rendered as the dev run moves on: a block's printed output the reader scrolled
    stays where they left it while later blocks start and end."""
    project = new_project(tmp_path)
    hold = tmp_path / "hold"
    hold.write_text("")
    write_pipeline(project, "dev", [
        {"uuid": "chatty", "type": "data_loader", "code": block_code("data_loader", "for i in range(80):\n    print(f'chatty line {i}')\nreturn 1")},
        {"uuid": "slow", "type": "transformer", "upstream": ["chatty"],
         "code": block_code("transformer", f"import os, time\nwhile os.path.exists({str(hold)!r}):\n    time.sleep(0.05)\nreturn data", args="data")},
    ])
    server = start_server(project)
    dev = _start_dev(project)
    try:
        page.goto(server.url + "/pipelines/dev/edit")
        feed = page.locator("#dev-feed")
        feed.locator('.dev-block[data-block="slow"][data-status="running"]').wait_for(timeout=60_000)
        out = feed.locator('.dev-block[data-block="chatty"] pre.stdout')
        out.evaluate("p => { p.scrollTop = 40; }")
        hold.unlink()  # slow ends: the feed is re-rendered (slow's end, then the run's)
        feed.locator('.dev-block[data-block="slow"][data-status="completed"]').wait_for(timeout=30_000)
        page.wait_for_function("document.querySelector('#dev-feed .dev-head') && !document.querySelector('#dev-feed .dev-head').textContent.includes('running')",
                               timeout=30_000)
        assert out.evaluate("p => p.scrollTop") == 40
        assert page.errors.items == [], page.errors.items
    finally:
        hold.unlink(missing_ok=True)
        dev.terminate()
        dev.wait(timeout=20)


def _start_dev(project) -> subprocess.Popen:
    """``dagsmith dev`` on the project's pipeline ``dev``, as a user would start it beside the server."""
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}
    return subprocess.Popen([sys.executable, "-m", "dagsmith", "dev", str(project), "dev"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
