"""Run pages in Chromium: logs that stay on the chosen block or the whole run during a run, follow
their tail at the bottom and keep a reader's lines in place above it (with "new lines below"), also
when the run finishes; the timeline's time axis and retried attempts; the graph's block
statuses; a new @daily trigger that waits for its first tick; "Last run" = when it ran; backfill
runs named after their backfill and listed on their own; the runs pages' pictures."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from tests.e2e.conftest import shot, shot_of
from tests.e2e.uiproject import block_code, new_project, write_pipeline

pytestmark = pytest.mark.e2e

# 40 lines, or more while the test holds it talking (the file HOLD exists)
TALKER = block_code("data_loader", """
import os, time
i = 0
while i < 40 or (os.path.exists(HOLD) and i < 1200):
    print(f"loader line {i}", flush=True)
    time.sleep(0.1)
    i += 1
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
        {"uuid": "talker", "type": "data_loader", "code": TALKER.replace("HOLD", repr(str(tmp_path / "hold")))},
        {"uuid": "second", "type": "transformer", "code": SECOND, "upstream": ["talker"]},
        {"uuid": "flaky", "type": "transformer", "code": FLAKY, "upstream": ["talker"]},
    ])
    import yaml

    meta_path = project / "pipelines" / "etl" / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["blocks"][2]["retry_config"] = {"retries": 1, "delay": 0.2}
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return project, start_server(project)


# the first log line a reader sees in the box, and how far below the box's top edge it is
TOP_LINE = """l => { const top = l.getBoundingClientRect().top;
  for (const s of l.children) { const r = s.getBoundingClientRect(); if (r.bottom > top + 1) return [s.textContent, Math.round(r.top - top)]; }
  return null; }"""
RECORDS = "document.querySelectorAll('#logs > span:not(.log-empty)').length"


def test_run_page_logs_timeline_attempts_and_graph(page, served, tmp_path):
    project, server = served
    hold = tmp_path / "hold"
    hold.write_text("")  # talker talks until the test is done reading
    page.goto(server.url + "/pipelines/etl/edit")
    page.click("#run-pipeline")
    page.wait_for_url(re.compile(r"/pipeline-runs/\d+"))
    run_url = page.url.split("?")[0]
    page.locator('.g-row[data-block="talker"][data-status="running"]').wait_for(timeout=30_000)
    # the whole run by default while it runs
    assert "(whole run)" in page.locator("#run-logs h2").inner_text()
    # pick one block, then "show all": the page stays on the whole run through the live refreshes
    page.locator('.g-row[data-block="talker"] .g-label').click()
    page.wait_for_url(re.compile(r"block=talker"))
    assert "of talker" in page.locator("#run-logs h2").inner_text()
    page.click("#logs-all")
    page.wait_for_url(re.compile(r"block=$"))
    page.wait_for_function(f"{RECORDS} > 0 && document.querySelector('#logs').textContent.includes('[talker]')")
    page.evaluate("window.samePage = true")
    logs = page.locator("#logs")
    logs.evaluate("l => { l.dataset.mine = '1'; }")
    # the reader scrolls up: live refreshes append lines below, the lines they read stay where they are
    page.wait_for_function("(() => { const l = document.getElementById('logs'); return l.scrollHeight > l.clientHeight + 100; })()", timeout=20_000)
    logs.evaluate("l => { l.scrollTop = 30; }")
    seen = logs.evaluate(TOP_LINE)
    before = page.evaluate(RECORDS)
    page.wait_for_function(f"{RECORDS} >= {before + 25}", timeout=30_000)  # at least three refreshes with new lines
    assert logs.evaluate("l => [l.dataset.mine, l.scrollTop]") == ["1", 30]  # the same box, not scrolled
    assert logs.evaluate(TOP_LINE) == seen, (logs.evaluate(TOP_LINE), seen)
    latest = page.locator("#run-logs .log-latest")
    assert latest.is_visible() and "new lines below" in latest.inner_text(), latest.inner_text()
    assert "(whole run)" in page.locator("#run-logs h2").inner_text()
    # "jump to latest": at the bottom, the box follows new lines
    latest.click()
    assert logs.evaluate("l => l.scrollHeight - l.scrollTop - l.clientHeight") < 8
    assert not latest.is_visible()
    before = page.evaluate(RECORDS)
    page.wait_for_function(f"{RECORDS} >= {before + 15}", timeout=30_000)
    page.wait_for_timeout(50)
    assert logs.evaluate("l => l.scrollHeight - l.scrollTop - l.clientHeight") < 8
    assert not latest.is_visible()
    # scrolled up when the run finishes: the page updates in place (no reload) and the lines stay
    logs.evaluate("l => { l.scrollTop = 30; }")
    seen = logs.evaluate(TOP_LINE)
    hold.unlink()
    page.locator('.run-status[data-status="completed"]').wait_for(timeout=60_000)
    assert page.evaluate("window.samePage === true")
    assert logs.evaluate("l => [l.dataset.mine, l.scrollTop]") == ["1", 30]
    assert logs.evaluate(TOP_LINE) == seen
    assert page.locator("#cancel-run").count() == 0 and page.locator("#run-actions select[name=from_block]").count() == 1
    assert page.locator("#run-facts dt", has_text="Completed").locator("xpath=../dd").inner_text() not in ("", "—")
    text = page.locator("#logs").inner_text()
    assert "[talker] loader line 3" in text and "[second] second line 3" in text and "[second] second line 29" in text
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
