"""The UI pages: pipelines list and actions, editor, runs, triggers, backfills, files, settings."""

from __future__ import annotations

import re
import time
from pathlib import Path

import yaml


def _meta(project: Path, uuid: str) -> dict:
    return yaml.safe_load((project / "pipelines" / uuid / "metadata.yaml").read_text())


def _add_block(ui, pipeline: str, name: str, btype: str, *, template: str = "generic", upstream=(), language: str = "python"):
    data = {"type": btype, "language": language, "template": template, "name": name}
    if upstream:
        data["upstream"] = list(upstream)
    return ui.post(f"/pipelines/{pipeline}/edit/blocks", data)


def test_every_page_renders(ui, project):
    assert ui.post("/pipelines", {"name": "taxi etl"}).status_code == 303
    for url in ["/pipelines", "/pipelines/taxi_etl/edit", "/pipelines/taxi_etl/triggers", "/pipelines/taxi_etl/runs",
                "/pipelines/taxi_etl/backfills", "/pipeline-runs", "/files", "/files?path=io_config.yaml", "/settings"]:
        r = ui.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert "<title>" in r.text and "dagsmith" in r.text
    missing = ui.get("/pipelines/nope/edit")
    assert missing.status_code == 404 and "does not exist" in missing.text
    assert ui.get("/no-such-page").status_code == 404
    assert "text/html" in ui.get("/no-such-page", headers={"Accept": "text/html,*/*;q=0.8"}).headers["content-type"]
    # curl and HTMX swaps get the message alone, not the error page around it
    plain = ui.get("/pipelines/nope/triggers")
    assert plain.status_code == 404 and plain.headers["content-type"].startswith("text/plain")
    assert plain.text.startswith("404 Not found: pipeline 'nope' does not exist") and "<html" not in plain.text
    swap = ui.get("/pipelines/nope/edit", headers={"HX-Request": "true", "Accept": "text/html"})
    assert swap.status_code == 404 and 'class="flash error"' in swap.text and "<html" not in swap.text


def test_create_clone_rename_delete_keeps_shared_files(ui, project):
    r = ui.post("/pipelines", {"name": "first"})
    assert r.headers["location"] == "/pipelines/first/edit"
    _add_block(ui, "first", "load one", "data_loader")
    assert (project / "data_loaders" / "load_one.py").is_file()
    r = ui.post("/pipelines/first/clone", {"name": "second"})
    assert r.status_code == 303
    assert [b["uuid"] for b in _meta(project, "second")["blocks"]] == ["load_one"]
    ui.post("/pipelines/second/rename", {"name": "third"})
    assert not (project / "pipelines" / "second").exists() and _meta(project, "third")["name"] == "third"
    page = ui.get("/pipelines").text
    assert "first" in page and "third" in page and "never run" in page
    # a wrong confirmation deletes nothing
    r = ui.post("/pipelines/first/delete", {"confirm": "nope"}, follow_redirects=True)
    assert (project / "pipelines" / "first").is_dir() and "Not deleted" in r.text
    r = ui.post("/pipelines/first/delete", {"confirm": "first"}, follow_redirects=True)
    assert not (project / "pipelines" / "first").exists()
    assert (project / "data_loaders" / "load_one.py").is_file()  # still used by "third"
    assert "block files were kept" in r.text
    r = ui.post("/pipelines", {"name": "third"}, follow_redirects=True)
    assert "already exists" in r.text


def test_add_blocks_run_them_and_see_output(ui, project):
    ui.post("/pipelines", {"name": "demo"})
    _add_block(ui, "demo", "load rows", "data_loader")
    loader = project / "data_loaders" / "load_rows.py"
    loader.write_text(
        "import pandas as pd\n"
        "if 'data_loader' not in globals():\n    from mage_ai.data_preparation.decorators import data_loader\n"
        "@data_loader\ndef load(*args, **kwargs):\n    print('loading 3 rows')\n"
        "    return pd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})\n"
    )
    _add_block(ui, "demo", "double", "transformer", upstream=["load_rows"])
    assert _meta(project, "demo")["blocks"][1]["upstream_blocks"] == ["load_rows"]
    cell = ui.get("/pipelines/demo/edit/blocks/double").text
    assert "@transformer" in cell and 'name="base_hash"' in cell
    base_hash = re.search(r'id="hash-double" value="([^"]+)"', cell).group(1)
    code = (
        "if 'transformer' not in globals():\n    from mage_ai.data_preparation.decorators import transformer, test\n"
        "@transformer\ndef t(df, *args, **kwargs):\n    return df.assign(a=df['a'] * 2)\n"
        "@test\ndef test_doubled(output, *args):\n    assert output['a'].tolist() == [2, 4, 6]\n"
    )
    # running a block whose upstream output was never stored says what to do
    r = ui.post("/pipelines/demo/edit/blocks/double/run", {"content": code, "base_hash": base_hash}, htmx=True)
    assert r.status_code == 200
    out = ui.wait_job(r.text, "demo")
    assert 'data-status="failed"' in out and "load_rows" in out
    # with all upstream blocks it works, and the preview shows rows, types and test results
    base_hash = re.search(r'id="hash-double" value="([^"]+)"', r.text).group(1)
    r = ui.post("/pipelines/demo/edit/blocks/double/run", {"content": code, "base_hash": base_hash, "with_upstream": "1"}, htmx=True)
    out = ui.wait_job(r.text, "demo")
    assert 'data-status="completed"' in out, out
    assert "1/1 tests passed" in out and "3 rows" in out and "int64" in out and "<td>6</td>" in out
    assert "test_doubled" not in out  # no failure lines
    # now the block runs alone with the cached upstream output
    r = ui.post("/pipelines/demo/edit/blocks/double/run", {}, htmx=True)
    out = ui.wait_job(r.text, "demo")
    assert 'data-status="completed"' in out
    # the stored output is shown when the cell is opened again later
    loader_run = ui.post("/pipelines/demo/edit/blocks/load_rows/run", {}, htmx=True)
    out = ui.wait_job(loader_run.text, "demo")
    assert "loading 3 rows" in out and "3 rows" in out


def test_failed_test_and_error_are_shown(ui, project):
    ui.post("/pipelines", {"name": "bad"})
    _add_block(ui, "bad", "boom", "data_loader")
    (project / "data_loaders" / "boom.py").write_text(
        "if 'data_loader' not in globals():\n    from mage_ai.data_preparation.decorators import data_loader, test\n"
        "@data_loader\ndef load(*args, **kwargs):\n    return 1\n"
        "@test\ndef test_two(output, *args):\n    assert output == 2, 'expected two'\n"
    )
    out = ui.wait_job(ui.post("/pipelines/bad/edit/blocks/boom/run", {}, htmx=True).text, "bad")
    assert 'data-status="failed"' in out and "0/1 tests passed" in out and "expected two" in out


def test_sql_block_has_connection_controls(ui, project):
    ui.post("/pipelines", {"name": "sqlp"})
    _add_block(ui, "sqlp", "load one", "data_loader")
    _add_block(ui, "sqlp", "write it", "data_exporter", language="sql", upstream=["load_one"])
    block = _meta(project, "sqlp")["blocks"][1]
    assert block["language"] == "sql" and (project / "data_exporters" / "write_it.sql").is_file()
    assert block["configuration"]["data_provider"] == "postgres"
    cell = ui.get("/pipelines/sqlp/edit/blocks/write_it").text
    for field in ("data_provider", "data_provider_profile", "data_provider_schema", "data_provider_table", "export_write_policy", "use_raw_sql"):
        assert f'name="{field}"' in cell
    r = ui.post("/pipelines/sqlp/edit/blocks/write_it/config", {
        "data_provider": "postgres", "data_provider_profile": "dev", "data_provider_schema": "ny_taxi",
        "data_provider_table": "trips", "export_write_policy": "replace", "use_raw_sql": "1", "limit": "0",
    }, htmx=True)
    assert "saved" in r.text
    config = _meta(project, "sqlp")["blocks"][1]["configuration"]
    assert config["data_provider_profile"] == "dev" and config["export_write_policy"] == "replace" and config["use_raw_sql"] is True


def test_edges_and_cycle_refused(ui, project):
    ui.post("/pipelines", {"name": "g"})
    _add_block(ui, "g", "a", "data_loader")
    _add_block(ui, "g", "b", "transformer", upstream=["a"])
    _add_block(ui, "g", "c", "transformer", upstream=["b"])
    r = ui.post("/pipelines/g/edit/blocks/a/upstream", {"upstream": ["c"]}, follow_redirects=True)
    assert "cycle" in r.text
    assert _meta(project, "g")["blocks"][0]["upstream_blocks"] == []
    ui.post("/pipelines/g/edit/blocks/c/upstream", {"upstream": ["a", "b"]})
    meta = _meta(project, "g")
    assert meta["blocks"][2]["upstream_blocks"] == ["a", "b"] and "c" in meta["blocks"][0]["downstream_blocks"]
    svg = ui.get("/pipelines/g/edit/dag").text
    assert svg.count('class="node t-') == 3 and svg.count("marker-end") == 3


def test_save_detects_a_file_changed_on_disk(ui, project):
    ui.post("/pipelines", {"name": "c"})
    _add_block(ui, "c", "loader", "data_loader")
    cell = ui.get("/pipelines/c/edit/blocks/loader").text
    base_hash = re.search(r'id="hash-loader" value="([^"]+)"', cell).group(1)
    path = project / "data_loaders" / "loader.py"
    path.write_text("# edited elsewhere\n")
    r = ui.post("/pipelines/c/edit/blocks/loader/save", {"content": "# mine\n", "base_hash": base_hash}, htmx=True)
    assert r.status_code == 409 and "changed on disk" in r.text
    assert path.read_text() == "# edited elsewhere\n"
    r = ui.post("/pipelines/c/edit/blocks/loader/save", {"content": "# mine\n", "base_hash": base_hash, "force": "1"}, htmx=True)
    assert r.status_code == 200 and "Saved" in r.text and path.read_text() == "# mine\n"
    new_hash = re.search(r'value="([^"]+)" hx-swap-oob', r.text).group(1)
    r = ui.post("/pipelines/c/edit/blocks/loader/save", {"content": "# mine again\n", "base_hash": new_hash}, htmx=True)
    assert r.status_code == 200 and path.read_text() == "# mine again\n"


def test_reuse_existing_block_file_and_variables(ui, project):
    ui.post("/pipelines", {"name": "one"})
    _add_block(ui, "one", "shared loader", "data_loader")
    ui.post("/pipelines", {"name": "two"})
    page = ui.get("/pipelines/two/edit").text
    assert "data_loaders/shared_loader.py" in page
    ui.post("/pipelines/two/edit/blocks", {"existing": "data_loaders/shared_loader.py"})
    assert [b["uuid"] for b in _meta(project, "two")["blocks"]] == ["shared_loader"]
    r = ui.post("/pipelines/two/variables", {"variables": "year: 2021\nbucket: b1\n"}, follow_redirects=True)
    assert _meta(project, "two")["variables"] == {"year": 2021, "bucket": "b1"}
    r = ui.post("/pipelines/two/variables", {"variables": "- not a mapping"}, follow_redirects=True)
    assert "mapping" in r.text and _meta(project, "two")["variables"] == {"year": 2021, "bucket": "b1"}


def test_csrf_is_required_for_changes(ui, project):
    r = ui.client.post("/pipelines", data={"name": "sneaky"}, follow_redirects=False)
    assert r.status_code == 403 and not (project / "pipelines" / "sneaky").exists()
    r = ui.client.post("/pipelines", data={"name": "sneaky", "csrf_token": "wrong"}, follow_redirects=False)
    assert r.status_code == 403
    r = ui.client.post("/pipelines", data={"name": "fine"}, headers={"X-CSRF-Token": ui.csrf}, follow_redirects=False)
    assert r.status_code == 303 and (project / "pipelines" / "fine").is_dir()


def test_run_pipeline_page_shows_timeline_logs_and_retry(ui_worker, project):
    ui = ui_worker
    ui.post("/pipelines", {"name": "p"})
    _add_block(ui, "p", "first", "data_loader")
    _add_block(ui, "p", "second", "transformer", upstream=["first"])
    (project / "transformers" / "second.py").write_text(
        "if 'transformer' not in globals():\n    from mage_ai.data_preparation.decorators import transformer\n"
        "@transformer\ndef t(data, *args, **kwargs):\n    print('second says hi')\n    raise ValueError('broken on purpose')\n"
    )
    r = ui.post("/pipelines/p/run")
    run_url = r.headers["location"]
    assert run_url.startswith("/pipeline-runs/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = ui.get(run_url).text
        if 'class="run-status" data-status="failed"' in page:
            break
        time.sleep(0.2)
    assert 'data-status="failed"' in page
    assert 'data-block="first" data-status="completed"' in page and 'data-block="second" data-status="failed"' in page
    assert "broken on purpose" in page and "Retry from failed" in page
    runs = ui.get("/pipelines/p/runs").text
    assert "failed" in runs and run_url in runs
    assert run_url in ui.get("/pipeline-runs").text
    # fix the block and retry from the failed block
    (project / "transformers" / "second.py").write_text(
        "if 'transformer' not in globals():\n    from mage_ai.data_preparation.decorators import transformer\n"
        "@transformer\ndef t(data, *args, **kwargs):\n    return data\n"
    )
    r = ui.post(run_url + "/retry", {}, follow_redirects=True)
    assert "Retrying" in r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = ui.get(run_url).text
        if 'class="run-status" data-status="completed"' in page:
            break
        time.sleep(0.2)
    assert 'class="run-status" data-status="completed"' in page
    r = ui.post(run_url + "/cancel", {}, follow_redirects=True)
    assert "already finished" in r.text


def test_triggers_schedule_preview_api_curl_toggle(ui, project):
    ui.post("/pipelines", {"name": "t"})
    r = ui.get("/pipelines/t/triggers/preview?preset=custom&cron=0+5+*+*+*&timezone=Europe/Berlin")
    assert "every day at 05:00" in r.text
    times = re.findall(r"<li>(.*?)</li>", r.text)
    assert len(times) == 5 and all("05:00" in t and ("CET" in t or "CEST" in t) for t in times)
    r = ui.get("/pipelines/t/triggers/preview?preset=custom&cron=not+a+cron&timezone=UTC")
    assert "neither a preset nor" in r.text
    r = ui.post("/pipelines/t/triggers", {"name": "daily", "schedule_type": "time", "preset": "@daily", "timezone": "UTC", "enabled": "1"}, follow_redirects=True)
    assert "Trigger daily created" in r.text and "every day at 00:00" in r.text
    r = ui.post("/pipelines/t/triggers", {"name": "hook", "schedule_type": "api", "timezone": "UTC", "enabled": "1"}, follow_redirects=True)
    assert re.search(r"curl -X POST &#39;http://testserver/api/pipeline_schedules/\d+/pipeline_runs/[0-9a-f]{32}&#39;", r.text)
    trigger_id = re.search(r'/triggers/(\d+)/toggle', r.text).group(1)
    r = ui.post(f"/triggers/{trigger_id}/toggle", follow_redirects=True)
    assert "is now inactive" in r.text
    r = ui.post(f"/triggers/{trigger_id}/run")
    assert r.headers["location"].startswith("/pipeline-runs/")
    assert "t" in ui.get("/pipelines").text and "@daily" in ui.get("/pipelines").text
    r = ui.post("/pipelines/t/triggers", {"name": "daily", "schedule_type": "time", "preset": "@daily"}, follow_redirects=True)
    assert "already has a trigger" in r.text


def test_backfill_preview_create_cancel(ui, project):
    ui.post("/pipelines", {"name": "b"})
    r = ui.get("/pipelines/b/backfills/preview?start=2024-01-01&end=2024-01-03&interval_type=day&interval_units=1&timezone=UTC")
    assert 'id="backfill-count">3 runs' in r.text and "2024-01-02" in r.text
    r = ui.get("/pipelines/b/backfills/preview?start=2024-01-05&end=2024-01-03&interval_type=day")
    assert "before its start" in r.text
    r = ui.post("/pipelines/b/backfills", {"start": "2024-01-01", "end": "2024-01-03", "interval_type": "day", "interval_units": "1", "timezone": "UTC", "start_now": "1"}, follow_redirects=True)
    assert "Backfill created" in r.text and "0/3 completed" in r.text
    backfill_id = re.search(r'id="backfill-(\d+)"', r.text).group(1)
    progress = ui.get(f"/backfills/{backfill_id}/progress").text
    assert "0/3 completed" in progress
    assert ui.get("/pipeline-runs").text.count('class="run-row"') == 3
    r = ui.post(f"/backfills/{backfill_id}/cancel", follow_redirects=True)
    assert "cancelled" in r.text


def test_files_are_confined_to_the_project(ui, project, tmp_path):
    page = ui.get("/files").text
    assert "io_config.yaml" in page and "requirements.txt" in page
    page = ui.get("/files?path=io_config.yaml").text
    base_hash = re.search(r'id="file-hash" value="([^"]+)"', page).group(1)
    r = ui.post("/files/save", {"path": "io_config.yaml", "content": "version: 0.1.1\ndefault: {}\n", "base_hash": base_hash}, htmx=True)
    assert r.status_code == 200 and (project / "io_config.yaml").read_text() == "version: 0.1.1\ndefault: {}\n"
    r = ui.post("/files/save", {"path": "io_config.yaml", "content": "x: 1\n", "base_hash": base_hash}, htmx=True)
    assert r.status_code == 409
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    (project / "link.txt").symlink_to(outside)
    for bad in ["../secret.txt", str(outside), "utils/../../secret.txt", "link.txt"]:
        r = ui.get("/files", params={"path": bad})
        assert r.status_code == 403 and "top secret" not in r.text, bad
        r = ui.post("/files/save", {"path": bad, "content": "pwned", "base_hash": "missing"}, htmx=True)
        assert r.status_code == 403, bad
    assert outside.read_text() == "top secret"
    r = ui.post("/files/new", {"path": "utils/helpers.py"})
    assert r.headers["location"] == "/files?path=utils/helpers.py" and (project / "utils" / "helpers.py").is_file()
    r = ui.post("/files/new", {"path": "../evil.py"}, follow_redirects=True)
    assert "contains &#39;..&#39;" in r.text and not (project.parent / "evil.py").exists()


def test_secrets_are_write_only(ui, project):
    r = ui.post("/settings/secrets", {"name": "pg_password", "value": "hunter2-very-secret"}, follow_redirects=True)
    assert "pg_password" in r.text and "hunter2-very-secret" not in r.text
    assert "hunter2-very-secret" not in ui.get("/settings").text
    assert "hunter2-very-secret" not in ui.get("/api/secrets").text
    r = ui.post("/settings/secrets/pg_password/delete", follow_redirects=True)
    assert "deleted" in r.text and "pg_password</td>" not in r.text


def test_mage_style_run_links_lead_to_the_run_page(ui, project):
    r = ui.get("/pipelines/anything/runs/42", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/pipeline-runs/42"


def test_run_page_refresh_appends_log_records_and_ends_in_place(ui_worker, project):
    """The live part of a run page hands only the log records after the page's offset, for the
    page to append to its box; a finished run's last answer stops the polling (286) and brings the
    buttons and facts out of band instead of making the browser reload the page."""
    ui = ui_worker
    ui.post("/pipelines", {"name": "p"})
    _add_block(ui, "p", "first", "data_loader")
    (project / "data_loaders" / "first.py").write_text(
        "if 'data_loader' not in globals():\n    from mage_ai.data_preparation.decorators import data_loader\n"
        "@data_loader\ndef load(*args, **kwargs):\n    print('first says hi')\n    return 1\n"
    )
    run_url = ui.post("/pipelines/p/run").headers["location"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and 'class="run-status" data-status="completed"' not in ui.get(run_url).text:
        time.sleep(0.2)
    page = ui.get(run_url + "?block=").text
    next_offset = int(re.search(r'id="logs"[^>]* data-next="(\d+)"', page).group(1))
    assert next_offset > 0 and "first says hi" in page and 'id="cancel-run"' not in page
    live = ui.get(run_url + f"/live?block=&after={next_offset}", headers={"HX-Request": "true"})
    assert live.status_code == 286 and "HX-Refresh" not in live.headers
    assert live.headers["X-Log-Next"] == str(next_offset)
    assert "#logs" not in live.text  # nothing new to append
    assert 'id="run-actions" hx-swap-oob="true"' in live.text and "Retry from block" in live.text
    assert 'id="run-facts" hx-swap-oob="true"' in live.text
    # from the start (the box had none yet): every record, replacing the "no log records yet" line
    everything = ui.get(run_url + "/live?block=&after=0", headers={"HX-Request": "true"}).text
    assert 'hx-swap-oob="innerHTML:#logs"' in everything and "first says hi" in everything
    # an offset in the middle: only what came after it, appended
    (log_file,) = list(project.rglob("pipeline.jsonl"))
    lines = log_file.read_bytes().splitlines(keepends=True)
    middle = sum(len(line) for line in lines[:-1])
    tail = ui.get(run_url + f"/live?block=&after={middle}", headers={"HX-Request": "true"}).text
    appended = re.search(r'<div hx-swap-oob="beforeend:#logs">(.*?)</div>', tail, re.S).group(1)
    assert appended.count("<span") == 1
