"""What walking issue 15 in Chromium on a course-like project (NYC taxi loader → transformer) found broken.

- A histogram of the taxi pickup time (a nanosecond timestamp column, as pandas' ``parse_dates``
  gives) failed with pyarrow's "Integer value … not in range" instead of drawing.
- The graph showed a block as running only once it printed something (or ended): a loader that
  reads for a while before its first ``print`` stayed grey. A block's start now ends the page's
  long poll like a printed line does.
- "Run with variables…" with a YAML typo reloaded the editor with the error at the top and the box
  closed and emptied: what was typed was lost (defect 6 of the issue, in the one-off run's box).
  The box now opens again with the text and the error inside it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import shot_of
from tests.e2e.uiproject import block_code, new_project, open_cell, run_cell, write_pipeline

pytestmark = pytest.mark.e2e

TAXI_CSV = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nyc-tlc-data" / "yellow" / "yellow_tripdata_2021-01.head100.csv"

LOAD_TAXI = block_code("data_loader", f"""
import pandas as pd
taxi_dtypes = {{'VendorID': pd.Int64Dtype(), 'passenger_count': pd.Int64Dtype(), 'trip_distance': float,
               'payment_type': pd.Int64Dtype(), 'fare_amount': float, 'total_amount': float}}
return pd.read_csv({str(TAXI_CSV.resolve())!r}, dtype=taxi_dtypes, parse_dates=['tpep_pickup_datetime', 'tpep_dropoff_datetime'])
""")

CLEAN = block_code("transformer", """
data = data[data['passenger_count'] > 0]
return data
""", args="data")


def _waiting_loader(flag: Path) -> str:
    """A loader that says nothing until ``flag`` exists (the test decides when it may go on)."""
    return block_code("data_loader", f"""
import os, time
while not os.path.exists({str(flag)!r}):
    time.sleep(0.02)
print('flag seen')
return [1, 2, 3]
""")


@pytest.fixture
def taxi_project(tmp_path):
    assert TAXI_CSV.is_file(), f"the course's taxi sample is missing: {TAXI_CSV}"
    project = new_project(tmp_path)
    flag = tmp_path / "go"
    write_pipeline(project, "taxi_etl", [{"uuid": "load_taxi", "type": "data_loader", "code": LOAD_TAXI},
                                         {"uuid": "clean_taxi", "type": "transformer", "code": CLEAN, "upstream": ["load_taxi"]}])
    write_pipeline(project, "quiet", [{"uuid": "warm_up", "type": "data_loader", "code": block_code("data_loader", "return 1")},
                                      {"uuid": "wait_for_flag", "type": "data_loader", "code": _waiting_loader(flag)}])
    return project, flag


def test_histogram_of_a_pickup_time_column_draws(page, start_server, taxi_project):
    project, _flag = taxi_project
    server = start_server(project)
    page.goto(server.url + "/pipelines/taxi_etl/edit")
    out_text = run_cell(page, "load_taxi")
    assert "99 rows" in out_text
    out = page.locator("#out-load_taxi")
    out.locator(".out-tabs [role=tab]", has_text="Chart").click()
    form = out.locator("form.chart-form")
    form.locator("select[name=type]").select_option("histogram")
    form.locator("select[name=x]").select_option("tpep_pickup_datetime")
    form.locator("button.primary").click()
    page.wait_for_function("['drawn', 'error'].includes(document.querySelector('#out-load_taxi .chart-new').dataset.state)")
    panel = out.locator(".chart-panel")
    box = out.locator(".chart-new")
    assert box.get_attribute("data-state") == "drawn", panel.inner_text()  # was: ArrowInvalid: Integer value … not in range
    assert int(box.get_attribute("data-points")) == 20 and box.locator("canvas").count() == 1  # 20 bins over 99 pickup times
    shot_of(panel, "ui-output-chart-histogram-datetime")
    assert page.errors.items == [], page.errors.items


def test_the_graph_shows_a_block_running_before_it_prints(page, start_server, taxi_project):
    project, flag = taxi_project
    server = start_server(project)
    page.goto(server.url + "/pipelines/quiet/edit")
    run_cell(page, "warm_up")  # the editor kernel is up: what follows waits on the page, not on a process start
    open_cell(page, "wait_for_flag")
    page.locator("#block-wait_for_flag .run-btn").click()
    node = 'svg.dag a.node[data-block="wait_for_flag"]'
    # the block is inside its wait loop and has printed nothing: the graph says it runs all the same, well
    # before the page's long poll would have ended on its own (live.POLL_MAX_WAIT, 10 s: how long it stayed grey)
    page.wait_for_function(f"document.querySelector('{node}').getAttribute('class').includes('st-running')", timeout=5_000)
    assert "flag seen" not in page.locator("#out-wait_for_flag").inner_text()
    assert page.locator("#out-wait_for_flag").get_attribute("data-status") == "running"
    flag.write_text("go")
    page.locator("#out-wait_for_flag.done").wait_for(timeout=30_000)
    assert "flag seen" in page.locator("#out-wait_for_flag").inner_text()
    page.wait_for_function(f"document.querySelector('{node}').getAttribute('class').includes('st-completed')")
    assert page.errors.items == [], page.errors.items


def test_a_one_off_run_with_a_yaml_typo_keeps_the_text_and_says_why(page, start_server, taxi_project):
    project, _flag = taxi_project
    server = start_server(project)
    page.goto(server.url + "/pipelines/taxi_etl/edit")
    page.locator("#run-once > summary").click()
    typed = "year: 2021\nmonths: [1, 2"
    page.fill("#run-once-vars", typed)
    page.click("#run-once-submit")
    error = page.locator("#run-once #run-once-error")
    error.wait_for()
    assert "malformed YAML" in error.inner_text() and "variables:" in error.inner_text()
    assert page.locator("#run-once").get_attribute("open") is not None
    assert page.input_value("#run-once-vars") == typed  # not thrown away
    shot_of(page.locator("#run-once .menu-body"), "ui-run-once-yaml-error")
    page.fill("#run-once-vars", "year: 2021\nmonths: [1, 2]")
    page.click("#run-once-submit")
    page.wait_for_url(re.compile(r"/pipeline-runs/\d+"))
    page.locator('.run-status[data-status="completed"]').wait_for(timeout=90_000)
    assert '"months": [1, 2]' in page.locator("dl.facts").inner_text()
    assert page.errors.items == [], page.errors.items
