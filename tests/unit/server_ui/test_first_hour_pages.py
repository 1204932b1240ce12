"""Server pieces a new user meets first: offline API docs, triggers.yaml problems on the triggers page."""

from __future__ import annotations

import yaml


def test_api_docs_work_offline_from_vendored_swagger_ui(ui):
    page = ui.get("/api/docs")
    assert page.status_code == 200
    assert "/api/docs/assets/swagger-ui-bundle.js" in page.text and "/api/docs/assets/swagger-ui.css" in page.text
    assert "https://" not in page.text and "cdn" not in page.text.lower()
    js = ui.get("/api/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and "SwaggerUIBundle" in js.text
    css = ui.get("/api/docs/assets/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ui.get("/api/docs/assets/LICENSE").status_code == 404
    assert ui.get("/api/docs/assets/..%2F..%2Fapp.py").status_code == 404
    assert ui.get("/api/openapi.json").json()["info"]["title"] == "dagsmith"


def test_triggers_page_names_the_trigger_that_cannot_sync(ui, project):
    assert ui.post("/pipelines", {"name": "etl"}).status_code == 303
    (project / "pipelines" / "etl" / "triggers.yaml").write_text(yaml.safe_dump({"triggers": [
        {"name": "fine", "schedule_type": "time", "schedule_interval": "@daily", "status": "active"},
        {"name": "broken_cron", "schedule_type": "time", "schedule_interval": "0 25 * * *", "status": "active"},
    ]}))
    page = ui.get("/pipelines/etl/triggers").text
    assert 'id="trigger-file-problems"' in page
    assert "<strong>broken_cron</strong>" in page and "hour 25 is out of range 0-23" in page
    assert "1 trigger not synced" in page
