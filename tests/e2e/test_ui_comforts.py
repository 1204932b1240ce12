"""Mage's editor comforts in Chromium: the file tree beside the cells (open, new, rename, drag a block
file in), per-block actions (duplicate, rename, disable, run downstream), markdown and scratchpad
cells, a one-off run with variables, and "Copy URL" beside "Copy curl"."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.e2e.conftest import shot
from tests.e2e.uiproject import block_code, new_project, open_cell, run_cell, write_pipeline

pytestmark = pytest.mark.e2e

LOAD = block_code("data_loader", "print('year is', kwargs.get('year'))\nreturn [1, 2, 3]")
DOUBLE = block_code("transformer", "print('doubling', len(data))\nreturn [x * 2 for x in data]", args="data")


@pytest.fixture
def served(tmp_path, start_server):
    project = new_project(tmp_path)
    write_pipeline(project, "a", [{"uuid": "load", "type": "data_loader", "code": LOAD},
                                  {"uuid": "double", "type": "transformer", "code": DOUBLE, "upstream": ["load"]}])
    write_pipeline(project, "b", [{"uuid": "double", "type": "transformer", "upstream": []}])
    (project / "utils" / "helpers.py").write_text("RATE = 1\n")
    return project, start_server(project)


def test_file_tree_open_new_rename_and_drag_a_block_in(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/b/edit")
    page.click("#tab-files")
    page.locator("#side-files ul.tree").first.wait_for()
    assert page.locator("#dag-scroll").is_hidden()
    # open a file above the cells, edit and save it
    page.locator('#side-files li[data-path="utils/helpers.py"] a.open-file').click()
    panel = page.locator("#file-panel .open-file-panel")
    panel.locator(".CodeMirror").wait_for()
    page.evaluate("document.getElementById('file-content').cmEditor.setValue('RATE = 2\\n')")
    panel.locator(".save-btn").click()
    panel.locator("#file-status .ok").wait_for()
    assert (project / "utils" / "helpers.py").read_text() == "RATE = 2\n"
    shot(page, "ui-editor-files")
    # rename it (not a block file)
    page.once("dialog", lambda d: d.accept("utils/rates.py"))
    page.locator('#side-files li[data-path="utils/helpers.py"] .rename-file').click()
    page.wait_for_url(re.compile(r"/pipelines/b/edit"))
    assert (project / "utils" / "rates.py").read_text() == "RATE = 2\n" and not (project / "utils" / "helpers.py").exists()
    # a new file opens in the panel
    page.click("#tab-files")
    page.fill("#side-files .new-file input[name=path]", "utils/new_helper.py")
    page.click("#side-files .new-file button")
    page.wait_for_url(re.compile(r"open=utils"))
    page.locator("#file-panel .open-file-panel .CodeMirror").wait_for()
    assert (project / "utils" / "new_helper.py").exists()
    # drag load.py (a block of pipeline a) into pipeline b's cells
    page.click("#tab-files")
    source = page.locator('#side-files li[data-block-file="data_loaders/load.py"]')
    source.wait_for()
    source.drag_to(page.locator("#cells"))
    page.locator("#block-load").wait_for()
    meta = yaml.safe_load((project / "pipelines" / "b" / "metadata.yaml").read_text())
    assert [b["uuid"] for b in meta["blocks"]] == ["double", "load"] and meta["blocks"][1]["upstream_blocks"] == []
    assert "shared with a" in page.locator("#block-load .shared-tag").inner_text()
    assert page.errors.items == [], page.errors.items


def test_block_actions_duplicate_rename_disable_and_run_downstream(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/a/edit")
    open_cell(page, "load")
    page.locator("#block-load .block-menu > summary").click()
    shot(page, "ui-block-menu")
    page.locator("#block-load .dup-btn").click()
    page.locator("#block-load_copy").wait_for()
    assert (project / "data_loaders" / "load_copy.py").read_text() == LOAD
    # rename the copy
    page.locator("#block-load_copy .block-menu > summary").click()
    page.fill("#block-load_copy .rename-form input[name=name]", "load again")
    page.locator("#block-load_copy .rename-form button").click()
    page.locator("#block-load_again").wait_for()
    assert (project / "data_loaders" / "load_again.py").exists() and not (project / "data_loaders" / "load_copy.py").exists()
    # disable it: marked in the cell and the graph
    page.locator("#block-load_again .block-menu > summary").click()
    page.locator("#block-load_again .disable-btn").click()
    page.locator("#block-load_again.disabled .disabled-tag").wait_for()
    assert "disabled" in page.locator('svg.dag a.node[data-block="load_again"]').get_attribute("class").split()
    # run downstream from load: load and double run, both shown live in the graph
    open_cell(page, "load")
    page.locator("#block-load .run-down-btn").click()
    page.locator("#out-load.done").wait_for(timeout=60_000)
    text = page.locator("#out-load").inner_text()
    assert "with downstream blocks" in text and "double" in text and "doubling 3" in text
    assert "st-completed" in page.locator('svg.dag a.node[data-block="double"]').get_attribute("class")
    assert page.errors.items == [], page.errors.items


def test_markdown_and_scratchpad_cells(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/a/edit")
    for kind, name in (("markdown", "about"), ("scratchpad", "try_things")):
        page.locator("#add-block > summary").click()
        page.select_option("#new-type", kind)
        page.fill("#add-block-form input[name=name]", name)
        page.click("#add-block-submit")
        page.locator(f"#block-{name}").wait_for()
    (project / "markdowns" / "about.md").write_text("# Taxi notes\n\n- loads **three** rows\n- see [docs](https://example.org)\n")
    page.reload()
    view = page.locator("#block-about .markdown-view")
    view.locator("h3").wait_for()
    assert view.locator("h3").inner_text() == "Taxi notes" and view.locator("strong").inner_text() == "three"
    assert view.locator("a").get_attribute("href") == "https://example.org"
    open_cell(page, "try_things")
    page.evaluate("document.getElementById('code-try_things').cmEditor.setValue('total = sum(range(10))\\nprint(\"total\", total)\\n')")
    out = run_cell(page, "try_things")
    assert "completed" in out and "total 45" in out
    shot(page, "ui-markdown-scratchpad")
    assert page.errors.items == [], page.errors.items


def test_one_off_run_with_variables_and_copy_url(browser, served):
    project, server = served
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    page.goto(server.url + "/pipelines/a/edit")
    page.locator("#run-once > summary").click()
    page.fill("#run-once-vars", "year: 2019")
    page.click("#run-once-submit")
    page.wait_for_url(re.compile(r"/pipeline-runs/\d+"))
    page.locator('.run-status[data-status="completed"]').wait_for(timeout=60_000)
    assert '"year": 2019' in page.locator("dl.facts").inner_text()
    assert "year is 2019" in page.locator("#logs").inner_text()
    assert "variables" not in (yaml.safe_load((project / "pipelines" / "a" / "metadata.yaml").read_text()) or {})  # saved ones untouched
    # an API trigger: Copy URL beside Copy curl
    page.goto(server.url + "/pipelines/a/triggers")
    page.fill("#trigger-name", "hook")
    page.check('input[name="schedule_type"][value="api"]')
    page.click("#create-trigger")
    row = page.locator('tr[data-trigger="hook"]')
    row.locator("details summary").click()
    url = row.locator("input.copy-src").input_value()
    row.locator(".copy-url").click()
    assert page.evaluate("navigator.clipboard.readText()") == url and "/api/pipeline_schedules/" in url
    row.locator(".copy-curl").click()
    assert page.evaluate("navigator.clipboard.readText()").startswith(f"curl -X POST '{url}'")
    context.close()
