"""The editor defects found in a browser, each fixed and checked in Chromium: editors sized to their
content, #block-x links and new blocks landing on their cell, unsaved edits marked and guarded,
invalid YAML kept with its error, Run using the SQL settings on screen, one save per Ctrl+S, new
loaders without an upstream, readable error text, and the 800 px layout."""

from __future__ import annotations

import pytest
import yaml

from tests.e2e.conftest import shot
from tests.e2e.uiproject import block_code, new_project, open_cell, run_cell, set_code, write_pipeline

pytestmark = pytest.mark.e2e


def _long(n_lines: int) -> str:
    body = "\n".join(f"x{i} = {i}" for i in range(n_lines)) + "\nreturn 1"
    return block_code("data_loader", body)


@pytest.fixture
def served(tmp_path, start_server):
    project = new_project(tmp_path)
    blocks = [{"uuid": "tiny", "type": "data_loader", "code": block_code("data_loader", "return 1")},
              {"uuid": "tall", "type": "data_loader", "code": _long(60)},
              {"uuid": "boom", "type": "data_loader", "code": block_code("data_loader", "data = {}\nreturn data['missing']")},
              {"uuid": "q", "type": "data_loader", "language": "sql", "code": "SELECT * FROM range(100)\n",
               "configuration": {"data_provider": "duckdb", "data_provider_profile": "default", "data_provider_schema": "main", "limit": 1000, "use_raw_sql": False}}]
    write_pipeline(project, "p", blocks)
    many = [{"uuid": f"b{i:02d}", "type": "data_loader", "code": _long(25)} for i in range(30)]
    write_pipeline(project, "many", many)
    return project, start_server(project)


def test_code_editors_are_sized_to_their_content(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/p/edit")
    open_cell(page, "tiny")
    open_cell(page, "tall")
    tiny = page.locator("#block-tiny .CodeMirror").bounding_box()["height"]
    tall = page.locator("#block-tall .CodeMirror").bounding_box()["height"]
    assert tiny < 200, tiny  # 6 lines, not 300 px
    assert tall > 400, tall  # 67 lines grow the editor …
    assert tall <= page.viewport_size["height"] * 0.66 + 4  # … up to about two thirds of the window, then it scrolls
    assert page.locator("#block-tall .CodeMirror-scroll").evaluate("e => e.scrollHeight > e.clientHeight")


def test_block_links_land_on_their_cell_while_cells_above_load(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/many/edit#block-b24")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    offset = page.evaluate("document.getElementById('block-b24').getBoundingClientRect().top - document.getElementById('cells').getBoundingClientRect().top")
    assert abs(offset) < 40, offset
    assert page.locator("#block-b24.current").count() == 1


def test_a_new_block_is_scrolled_into_view_and_loaders_start_without_upstream(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/many/edit")
    page.locator("#add-block > summary").click()
    page.select_option("#new-type", "data_loader")
    assert page.eval_on_selector("#new-upstream", "s => Array.from(s.selectedOptions).length") == 0
    page.select_option("#new-type", "transformer")
    assert page.eval_on_selector("#new-upstream", "s => Array.from(s.selectedOptions).map(o => o.value)") == ["b29"]
    page.select_option("#new-type", "data_loader")
    page.fill("#add-block-form input[name=name]", "another source")
    page.click("#add-block-submit")
    cell = page.locator("#block-another_source")
    cell.wait_for()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(400)
    box = cell.bounding_box()
    assert 0 <= box["y"] < page.viewport_size["height"] - 100, box
    meta = yaml.safe_load((project / "pipelines" / "many" / "metadata.yaml").read_text())
    assert next(b for b in meta["blocks"] if b["uuid"] == "another_source")["upstream_blocks"] == []


def test_unsaved_edits_are_marked_and_guarded(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/p/edit")
    open_cell(page, "tiny")
    page.locator("#block-tiny .CodeMirror").click()
    page.keyboard.press("End")
    page.keyboard.type("  # edited")
    mark = page.locator("#block-tiny .dirty-mark")
    assert mark.is_visible()
    assert page.title().startswith("●")
    shot(page, "ui-unsaved-marker")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.type), d.dismiss()))
    page.evaluate("location.reload()")
    page.wait_for_timeout(800)
    assert dialogs == ["beforeunload"]
    assert "# edited" in page.evaluate("document.getElementById('code-tiny').cmEditor.getValue()")  # still here
    # one Ctrl+S = one save, and the file is clean afterwards
    saves = []
    page.on("request", lambda r: saves.append(r.url) if r.url.endswith("/save") else None)
    page.locator("#block-tiny .CodeMirror").click()
    page.keyboard.press("Control+s")
    page.locator("#save-tiny .ok").wait_for()
    page.wait_for_timeout(500)
    assert len(saves) == 1, saves
    assert "# edited" in (project / "data_loaders" / "tiny.py").read_text()
    assert not mark.is_visible() and not page.title().startswith("●")


def test_invalid_variables_yaml_is_kept_with_its_error(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/p/edit")
    page.locator("#variables-panel > summary").click()
    page.fill("#variables-text", "year: 2021\nmonths: [1, 2")
    page.click("#variables-form .save-btn")
    err = page.locator("#variables-form .flash.error")
    err.wait_for()
    assert "variables" in err.inner_text().lower()
    assert page.input_value("#variables-text") == "year: 2021\nmonths: [1, 2"  # not thrown away
    page.fill("#variables-text", "year: 2021\nmonths: [1, 2]")
    page.click("#variables-form .save-btn")
    page.locator("#variables-form .ok").wait_for()
    assert yaml.safe_load((project / "pipelines" / "p" / "metadata.yaml").read_text())["variables"] == {"year": 2021, "months": [1, 2]}


def test_run_uses_the_sql_settings_on_screen(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/p/edit")
    open_cell(page, "q")
    limit = page.locator("#block-q .sql-config input[name=limit]")
    limit.fill("7")
    assert page.locator("#block-q .dirty-mark").is_visible()
    out = run_cell(page, "q")
    assert "7 rows" in out, out
    meta = yaml.safe_load((project / "pipelines" / "p" / "metadata.yaml").read_text())
    assert next(b for b in meta["blocks"] if b["uuid"] == "q")["configuration"]["limit"] == 7
    # a saved message disappears as soon as the settings change again
    page.click("#block-q .save-sql")
    status = page.locator("#block-q .sql-status .ok")
    status.wait_for()
    limit.fill("8")
    assert page.locator("#block-q .sql-status").inner_text() == ""


def test_error_text_is_readable(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/p/edit")
    out = run_cell(page, "boom")
    text = page.locator("#out-boom .err-box").inner_text()
    assert "KeyError: 'missing'" in text
    assert "missingat" not in out and "'missing'at" not in out
    location = f"{project.name}/data_loaders/boom.py:8"  # relative to the project's parent, as Mage shows paths
    assert page.locator("#out-boom .err-box").inner_text().count("boom.py") == 1, text  # once, not three times
    assert "dagsmith run" not in out and "dagsmith validate" not in out
    assert location in text
    shot(page, "ui-error-text")


@pytest.mark.parametrize("url", ["/pipelines/p/edit", "/pipelines/p/triggers", "/pipelines", "/pipeline-runs", "/pipelines/p/runs"])
def test_800px_wide_window_keeps_everything_inside(browser, served, url):
    project, server = served
    import httpx

    with httpx.Client(base_url=server.url) as client:  # an API trigger, whose URL box is the widest thing on the page
        client.get("/login")
        token = client.cookies.get("dagsmith_csrf")
        client.post("/pipelines/p/triggers", data={"csrf_token": token, "name": "api_with_a_long_name", "schedule_type": "api", "enabled": "1"})
        client.post("/pipelines/p/triggers", data={"csrf_token": token, "name": "nightly", "schedule_type": "time", "preset": "@daily", "timezone": "Europe/Amsterdam", "enabled": "1"})
    context = browser.new_context(viewport={"width": 800, "height": 900})
    page = context.new_page()
    page.goto(server.url + url)
    page.wait_for_load_state("networkidle")
    if url.endswith("/edit"):
        page.locator("#add-block > summary").click()
        right = page.locator("#add-block .menu-body").bounding_box()
        assert right["x"] >= 0 and right["x"] + right["width"] <= 800, right
        shot(page, "ui-800px-add-block")
    if url.endswith("/triggers"):
        page.locator("#triggers-table details summary").first.click()
        table = page.locator("#triggers-table").bounding_box()
        assert table["x"] + table["width"] <= 800, table
        shot(page, "ui-800px-triggers")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{url} is {overflow}px wider than 800 px"
    context.close()
