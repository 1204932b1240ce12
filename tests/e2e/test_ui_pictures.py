"""Pictures of block outputs in Chromium: the column profile beside the 10-row table (computed on the
whole output), the chart tab (bar, line, histogram, scatter) with charts saved with the pipeline,
and shared blocks marked with the other pipelines that use them."""

from __future__ import annotations

import pytest
import yaml

from tests.e2e.conftest import shot, shot_of
from tests.e2e.uiproject import block_code, new_project, open_cell, run_cell, write_pipeline

pytestmark = pytest.mark.e2e

FRAME = block_code("data_loader", """
import numpy as np
import pandas as pd
n = 50_000
rng = np.random.default_rng(7)
fare = rng.gamma(2.0, 7.5, n).round(2)
fare[:500] = np.nan
return pd.DataFrame({
    'borough': rng.choice(['Manhattan', 'Queens', 'Brooklyn', 'Bronx'], n, p=[0.55, 0.2, 0.2, 0.05]),
    'passengers': rng.integers(1, 7, n),
    'fare': fare,
    'pickup': pd.Timestamp('2021-01-01') + pd.to_timedelta(rng.integers(0, 31 * 86400, n), unit='s'),
})
""")


@pytest.fixture
def served(tmp_path, start_server):
    project = new_project(tmp_path)
    write_pipeline(project, "taxi", [{"uuid": "trips", "type": "data_loader", "code": FRAME}])
    write_pipeline(project, "other", [{"uuid": "trips", "type": "data_loader"}])
    return project, start_server(project)


def test_profile_beside_the_table_describes_the_whole_output(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/taxi/edit")
    out = run_cell(page, "trips")
    assert "50,000 rows" in out
    assert page.locator("#out-trips .preview-table tbody tr").count() == 10
    profile = page.locator("#out-trips .profile")
    assert "Profile of all 50,000 rows" in profile.inner_text()
    fare = profile.locator('.pcol[data-column="fare"]')
    assert "nulls 500 (1.0%)" in fare.inner_text()
    assert fare.locator("svg.hist rect").count() == 12
    borough = profile.locator('.pcol[data-column="borough"]')
    assert "distinct 4" in borough.inner_text()
    assert borough.locator("ul.topv li").first.inner_text().startswith("Manhattan")
    passengers = profile.locator('.pcol[data-column="passengers"]').inner_text()
    assert "distinct 6" in passengers and "min 1" in passengers and "max 6" in passengers
    assert "2021-01-01" in profile.locator('.pcol[data-column="pickup"]').inner_text()
    # the profile sits beside the table, not below it
    table_box = page.locator("#out-trips .table-wrap").bounding_box()
    prof_box = profile.bounding_box()
    assert prof_box["x"] > table_box["x"] + table_box["width"] - 2 and abs(prof_box["y"] - table_box["y"]) < 40
    shot(page, "ui-output-profile")
    shot_of(page.locator("#out-trips"), "ui-output-profile-crop")
    assert page.errors.items == [], page.errors.items


def test_chart_tab_draws_and_saved_charts_render_again(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/taxi/edit")
    run_cell(page, "trips")
    out = page.locator("#out-trips")
    out.locator(".out-tabs [role=tab]", has_text="Chart").click()
    form = out.locator("form.chart-form")
    form.wait_for()
    drawn = {}
    for kind, x, y, agg, expected in [("bar", "borough", "fare", "count", 4), ("histogram", "fare", None, None, 20),
                                      ("line", "passengers", "fare", "mean", 6), ("scatter", "passengers", "fare", None, 2000)]:
        form.locator("select[name=type]").select_option(kind)
        form.locator("select[name=x]").select_option(x)
        if y:
            form.locator("select[name=y]").select_option(y)
        if agg:
            form.locator("select[name=agg]").select_option(agg)
        form.locator("button.primary").click()
        box = out.locator(".chart-new")
        page.wait_for_function("document.querySelector('#out-trips .chart-new').dataset.state === 'drawn' && document.querySelector('#out-trips .chart-new canvas') !== null")
        drawn[kind] = int(box.get_attribute("data-points"))
        box.evaluate("b => { b.dataset.state = 'old'; }")
        if kind in ("bar", "histogram"):
            shot_of(out.locator(".chart-panel"), f"ui-output-chart-{kind}")
    assert drawn == {"bar": 4, "histogram": 20, "line": 6, "scatter": 2000}, drawn
    # save a bar chart of fares by borough with the pipeline
    form.locator("select[name=type]").select_option("bar")
    form.locator("select[name=x]").select_option("borough")
    form.locator("select[name=y]").select_option("fare")
    form.locator("select[name=agg]").select_option("mean")
    form.locator(".chart-save").click()
    form.locator(".chart-status .ok").wait_for()
    meta = yaml.safe_load((project / "pipelines" / "taxi" / "metadata.yaml").read_text())
    assert meta["blocks"][0]["configuration"]["charts"] == [{"type": "bar", "x": "borough", "y": "fare", "agg": "mean"}]
    # a new page draws it again from the stored output, without running anything
    page.goto(server.url + "/pipelines/taxi/edit")
    open_cell(page, "trips")
    page.locator("#block-trips .out-tabs [role=tab]", has_text="Chart").click()
    saved = page.locator("#block-trips .chart-saved")
    page.wait_for_function("document.querySelector('#block-trips .chart-saved') && document.querySelector('#block-trips .chart-saved').dataset.state === 'drawn'")
    assert saved.get_attribute("data-points") == "4"
    shot_of(page.locator("#block-trips .chart-panel"), "ui-output-chart-saved")
    assert page.errors.items == [], page.errors.items


def test_shared_blocks_are_marked_with_the_other_pipelines(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/taxi/edit")
    tag = page.locator("#block-trips .shared-tag")
    assert tag.inner_text() == "shared with other"
    node = page.locator('svg.dag a.node[data-block="trips"]')
    assert "shared" in node.get_attribute("class").split()
    assert "also used by other" in node.locator("title").text_content()
