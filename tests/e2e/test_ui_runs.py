"""Run pages in Chromium: logs that stay on the chosen block or the whole run during a run and follow
their tail only at the bottom; the timeline's time axis and retried attempts; the graph's block
statuses; a new @daily trigger that waits for its first tick; "Last run" = when it ran; backfill
runs named after their backfill and listed on their own; the runs pages' pictures."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from tests.e2e.conftest import shot, shot_of
from tests.e2e.uiproject import block_code, new_project, write_pipeline

pytestmark = pytest.mark.e2e

TALKER = block_code("data_loader", """
import time
for i in range(40):
    print(f"loader line {i}", flush=True)
    time.sleep(0.1)
return [1, 2, 3]
""")
SECOND = block_code("transformer", """
import time
for i in range(30):
    print(f"second line {i}", flush=True)
    time.sleep(0.1)
return data
""", args="data")
FLAKY = block_code("transformer", """
import time
time.sleep(0.3)
if kwargs['retry']['attempts'] == 1:
    raise ValueError('flaky the first time')
return data
""", args="data")


@pytest.fixture
def served(tmp_path, start_server):
    project = new_project(tmp_path)
    write_pipeline(project, "etl", [
        {"uuid": "talker", "type": "data_loader", "code": TALKER},
        {"uuid": "second", "type": "transformer", "code": SECOND, "upstream": ["talker"]},
        {"uuid": "flaky", "type": "transformer", "code": FLAKY, "upstream": ["talker"]},
    ])
    import yaml

    meta_path = project / "pipelines" / "etl" / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["blocks"][2]["retry_config"] = {"retries": 1, "delay": 0.2}
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return project, start_server(project)


def test_run_page_logs_timeline_attempts_and_graph(page, served):
    project, server = served
    page.goto(server.url + "/pipelines/etl/edit")
    page.click("#run-pipeline")
    page.wait_for_url(re.compile(r"/pipeline-runs/\d+"))
    run_url = page.url.split("?")[0]
    page.locator('.g-row[data-block="talker"][data-status="running"]').wait_for(timeout=30_000)
    # the whole run by default while it runs
    assert "(whole run)" in page.locator("#run-live h2", has_text="Logs").inner_text()
    # pick one block, then "show all": the page stays on the whole run through the live refreshes
    page.locator('.g-row[data-block="talker"] .g-label').click()
    page.wait_for_url(re.compile(r"block=talker"))
    assert "of talker" in page.locator("#run-live h2", has_text="Logs").inner_text()
    page.click("#logs-all")
    page.wait_for_url(re.compile(r"block=$"))
    page.wait_for_timeout(2500)  # two live refreshes
    heading = page.locator("#run-live h2", has_text="Logs").inner_text()
    assert "(whole run)" in heading, heading
    logs = page.locator("#logs")
    # the reader scrolls up: the refreshes leave the box where it is
    page.wait_for_function("document.getElementById('logs') && document.getElementById('logs').scrollHeight > document.getElementById('logs').clientHeight + 100", timeout=20_000)
    logs.evaluate("l => { l.scrollTop = 30; }")
    page.wait_for_timeout(2200)
    if page.locator('.run-status[data-status="running"]').count():
        assert logs.evaluate("l => l.scrollTop") == 30
    page.locator('.run-status[data-status="completed"]').wait_for(timeout=60_000)
    text = page.locator("#logs").inner_text()
    assert "[talker] loader line 3" in text and "[second] second line 3" in text
    # the timeline: a time axis, and the retried block shows both attempts
    assert page.locator(".g-axis .g-tick").count() >= 2
    flaky = page.locator('.g-row[data-block="flaky"]')
    assert flaky.get_attribute("data-attempts") == "2"
    assert flaky.locator('.g-bar[data-attempt="1"]').get_attribute("class").split()[1] == "st-failed"
    assert "st-completed" in flaky.locator('.g-bar[data-attempt="2"]').get_attribute("class")
    # the graph beside it carries each block's status
    for block in ("talker", "second", "flaky"):
        assert "st-completed" in page.locator(f'.run-dag a.node[data-block="{block}"]').get_attribute("class")
    shot(page, "ui-run-page")
    assert page.errors.items == [], page.errors.items
    assert run_url


def test_new_daily_trigger_waits_last_run_and_backfill_names(page, served):
    project, server = served
    base = server.url
    page.goto(base + "/pipelines/etl/triggers")
    page.fill("#trigger-name", "daily")
    page.select_option("#preset", "@daily")
    page.click("#create-trigger")
    row = page.locator('tr[data-trigger="daily"]')
    row.wait_for()
    page.wait_for_timeout(3000)  # six scheduler ticks
    page.reload()
    assert "0 runs" in page.locator('tr[data-trigger="daily"]').inner_text()
    # a backfill of two days in 2024
    page.goto(base + "/pipelines/etl/backfills")
    page.fill("input[name=name]", "january")
    page.fill("#bf-start", "2024-01-01")
    page.fill("#bf-end", "2024-01-02")
    page.locator("#bf-end").dispatch_event("change")
    page.wait_for_function("document.getElementById('backfill-count') && document.getElementById('backfill-count').textContent.startsWith('2 runs')")
    page.click("#create-backfill")
    page.wait_for_function("document.querySelector('.backfill-row .progress-text') && document.querySelector('.backfill-row .progress-text').textContent.startsWith('2/2 completed')", timeout=120_000)
    page.click(".backfill-row a.backfill-runs")
    page.wait_for_url(re.compile(r"backfill=\d+"))
    rows = page.locator("#runs-table tbody tr")
    assert rows.count() == 2
    assert all("backfill january" in rows.nth(i).inner_text() for i in range(2))
    # the trigger still created nothing (its first run is tomorrow at 00:00)
    page.goto(base + "/pipelines/etl/triggers")
    assert "0 runs" in page.locator('tr[data-trigger="daily"]').inner_text()
    # "Last run" is when it ran, not its 2024 execution date
    page.goto(base + "/pipelines")
    last = page.locator('tr[data-pipeline="etl"] td.last-run').inner_text()
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert today in last and "2024-01" not in last, last
    # the runs pages draw what happened
    page.goto(base + "/pipelines/etl/runs")
    assert page.locator("#durations circle.pt").count() == 2
    shot_of(page.locator(".charts-row"), "ui-pipeline-runs-charts")
    assert page.locator("#day-strip g.day").count() == 30
    page.goto(base + "/pipeline-runs")
    today_bar = page.locator(f'#day-strip g.day[data-day="{today}"]')
    assert today_bar.get_attribute("data-total") == "2"
    assert today_bar.locator("rect.st-completed").get_attribute("data-count") == "2"
    shot(page, "ui-runs-strip")
    assert page.errors.items == [], page.errors.items
