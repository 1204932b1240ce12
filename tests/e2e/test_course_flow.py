"""The course flow in a real browser: build a pipeline block by block, run it, schedule it, backfill it.

create pipeline → API loader (CSV from a local HTTP server) → transformer with a @test →
PostgreSQL exporter → run each block and read its preview → run the pipeline → daily
trigger → 3-day backfill → 3 completed runs. Every page is screenshotted into
test-artifacts/ and must load without console errors.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e

TRANSFORM = '''if 'transformer' not in globals():
    from mage_ai.data_preparation.decorators import transformer
if 'test' not in globals():
    from mage_ai.data_preparation.decorators import test


@transformer
def transform(data, *args, **kwargs):
    print(f"rows before: {len(data)}")
    data = data[data['borough'] != 'Unknown']
    data.columns = [c.lower() for c in data.columns]
    return data


@test
def test_no_unknown(output, *args) -> None:
    assert (output['borough'] != 'Unknown').all(), 'Unknown boroughs left'
'''


def _set_code(page, block: str, code: str) -> None:
    page.locator(f"#block-{block} .CodeMirror").wait_for()
    page.evaluate("([id, code]) => document.getElementById(id).cmEditor.setValue(code)", [f"code-{block}", code])


def _run_cell(page, block: str, *, timeout: float = 60_000) -> str:
    """Focus the cell's editor, press Ctrl+Enter and wait for the output; returns its text."""
    page.locator(f"#block-{block} .CodeMirror").click()
    page.keyboard.press("Control+Enter")
    out = page.locator(f"#out-{block}.done")
    out.wait_for(timeout=timeout)
    return out.inner_text()


def _add_block(page, *, btype: str, language: str, name: str, template: str | None = None) -> None:
    details = page.locator("#add-block")
    if details.get_attribute("open") is None:
        page.locator("#add-block > summary").click()
    page.select_option("#new-type", btype)
    page.select_option("#new-language", language)
    if template:
        page.select_option("#new-template", template)
    page.fill("#add-block-form input[name=name]", name)
    page.click("#add-block-submit")
    page.locator(f"#block-{name}").wait_for()


def test_course_flow(page, start_server, tmp_path, http_data_server, pg_server, pg_schema):
    from dagsmith.project.scaffold import init_project

    project = init_project(tmp_path / "zoomcamp", example=False)
    (project / "io_config.yaml").write_text(yaml.safe_dump({"version": "0.1.1", "default": pg_server.profile(pg_schema)}))
    server = start_server(project)
    base = server.url

    # 1. pipelines page → new pipeline
    page.goto(base + "/pipelines")
    shot(page, "01-pipelines-empty")
    page.fill("#new-name", "green taxi etl")
    page.click("#new-pipeline button")
    page.wait_for_url(re.compile(r"/pipelines/green_taxi_etl/edit"))

    # 2. API loader from the template, pointed at the local CSV
    _add_block(page, btype="data_loader", language="python", template="api", name="load_api_data")
    loader = project / "data_loaders" / "load_api_data.py"
    code = loader.read_text().replace("https://example.com/data.csv.gz", http_data_server("dtc-dbt-seed/taxi_zone_lookup.csv"))
    _set_code(page, "load_api_data", code)
    out = _run_cell(page, "load_api_data")
    assert "completed" in out and "1/1 tests passed" in out, out
    assert "265 rows" in out and "borough" in out
    assert "Newark Airport" in page.locator("#out-load_api_data .preview-table").inner_text()
    assert "http://127.0.0.1" in loader.read_text()  # running saved the file
    shot(page, "02-editor-loader")

    # 3. transformer with a test
    _add_block(page, btype="transformer", language="python", template="generic", name="transform_zones")
    _set_code(page, "transform_zones", TRANSFORM)
    page.locator("#block-transform_zones .CodeMirror").click()
    page.keyboard.press("Control+s")
    page.locator("#save-transform_zones .ok").wait_for()
    assert "Unknown boroughs left" in (project / "transformers" / "transform_zones.py").read_text()
    out = _run_cell(page, "transform_zones")
    assert "completed" in out and "1/1 tests passed" in out and "rows before: 265" in out, out
    rows = int(re.search(r"([\d,]+) rows", out).group(1).replace(",", ""))
    assert 0 < rows < 265

    # 4. PostgreSQL exporter
    _add_block(page, btype="data_exporter", language="python", template="postgres", name="export_to_postgres")
    exporter = project / "data_exporters" / "export_to_postgres.py"
    code = exporter.read_text().replace("your_schema_name", pg_schema).replace("your_table_name", "zones")
    _set_code(page, "export_to_postgres", code)
    out = _run_cell(page, "export_to_postgres")
    assert "completed" in out, out
    import psycopg

    with psycopg.connect(pg_server.dsn) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{pg_schema}".zones').fetchone()[0] == rows
    meta = yaml.safe_load((project / "pipelines" / "green_taxi_etl" / "metadata.yaml").read_text())
    assert [b["upstream_blocks"] for b in meta["blocks"]] == [[], ["load_api_data"], ["transform_zones"]]
    assert page.locator("svg.dag a.node").count() == 3 and page.locator("svg.dag .edges path").count() == 2
    shot(page, "03-editor-three-blocks", full_page=False)

    # 5. run the whole pipeline
    page.click("#run-pipeline")
    page.wait_for_url(re.compile(r"/pipeline-runs/\d+"))
    page.locator('.run-status[data-status="completed"]').wait_for(timeout=60_000)
    assert page.locator(".g-row").count() == 3
    assert page.locator('.g-row[data-status="completed"]').count() == 3
    shot(page, "04-run-completed")

    # 6. a daily trigger
    page.goto(base + "/pipelines/green_taxi_etl/triggers")
    page.fill("#trigger-name", "daily")
    page.select_option("#preset", "@daily")
    page.locator("#schedule-preview li").first.wait_for()
    assert page.locator("#schedule-preview li").count() == 5
    page.click("#create-trigger")
    page.locator('tr[data-trigger="daily"]').wait_for()
    assert "every day at 00:00" in page.locator('tr[data-trigger="daily"]').inner_text()
    shot(page, "05-triggers")

    # 7. a 3-day backfill
    page.goto(base + "/pipelines/green_taxi_etl/backfills")
    page.fill("#bf-start", "2024-01-01")
    page.fill("#bf-end", "2024-01-03")
    page.locator("#bf-end").dispatch_event("change")
    page.locator("#backfill-count").wait_for()
    page.wait_for_function("document.getElementById('backfill-count').textContent.startsWith('3 runs')")
    page.click("#create-backfill")
    page.locator(".backfill-row").first.wait_for()
    page.wait_for_function("document.querySelector('.backfill-row .progress-text') && document.querySelector('.backfill-row .progress-text').textContent.startsWith('3/3 completed')", timeout=90_000)
    shot(page, "06-backfill-done")

    # 8. three completed backfill runs in the run list
    page.goto(base + "/pipelines/green_taxi_etl/runs")
    rows = page.locator("#runs-table tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    backfill_runs = [t for t in texts if "backfill" in t]
    assert len(backfill_runs) == 3 and all("completed" in t for t in backfill_runs), texts
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        assert any(day in t for t in backfill_runs), day
    shot(page, "07-pipeline-runs")

    # 9. the other pages
    for name, url in [("08-all-runs", "/pipeline-runs"), ("09-files", "/files?path=io_config.yaml"), ("10-settings", "/settings"),
                      ("11-pipelines", "/pipelines")]:
        page.goto(base + url)
        page.locator("main").wait_for()
        shot(page, name)
    assert page.locator('tr[data-pipeline="green_taxi_etl"]').inner_text().count("completed") >= 1
    assert page.errors.items == [], page.errors.items
