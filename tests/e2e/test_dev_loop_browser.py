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
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}
    dev = subprocess.Popen([sys.executable, "-m", "dagsmith", "dev", str(project), "dev"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
