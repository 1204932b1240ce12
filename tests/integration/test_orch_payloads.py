"""Hostile and repeated API calls, on SQLite and PostgreSQL alike: one rule, one answer.

- JSON nested 200,000 deep is 422 (it was a 500 ``RecursionError``);
- ``NaN``/``Infinity`` in variables are 422 naming the field on both databases (PostgreSQL
  used to answer 500, SQLite stored them);
- an ``Idempotency-Key`` (header or body) makes one run however often, or however
  concurrently, the call is repeated; the same key with another body is 409.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import create_pg_database, make_project  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def api(request, tmp_path, monkeypatch):
    project = make_project(tmp_path / "proj")
    drop = None
    if request.param == "postgres":
        url, drop = create_pg_database(request.getfixturevalue("pg_dsn"))
        monkeypatch.setenv("DAGSMITH_DATABASE_URL", url)
    else:
        monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    from dagsmith.orchestration.db import Database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.server.app import create_app

    settings = OrchestrationSettings.from_env(project)
    db = Database(settings)
    db.migrate()
    app = create_app(project, settings)
    app.state.db = db
    client = TestClient(app)
    trig = client.post("/api/pipelines/one/pipeline_schedules", json={"pipeline_schedule": {"name": "hook", "schedule_type": "api"}}).json()["pipeline_schedule"]
    yield client, db, f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}"
    db.dispose()
    if drop:
        drop()


def runs(db) -> int:
    from dagsmith.orchestration.store import repo

    with db.read() as s:
        return repo.list_runs(s)[1]


def test_json_nested_200000_deep_is_422_and_creates_nothing(api):
    client, db, url = api
    deep = b'{"pipeline_run": {"variables": {"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}}"
    response = client.post(url, content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    assert "nests deeper than 64 levels" in response.json()["error"]["message"]
    just_too_deep = {"pipeline_run": {"variables": {"x": [[[[]]]]}}}
    node = just_too_deep["pipeline_run"]["variables"]
    for _ in range(70):
        node["x"] = {"x": node.get("x")}
        node = node["x"]
    response = client.post(url, json=just_too_deep)
    assert response.status_code == 422 and "(at body.pipeline_run.variables.x.x" in response.json()["error"]["message"]
    assert runs(db) == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_variables_is_422_with_the_field_on_every_database(api, constant):
    client, db, url = api
    body = '{"pipeline_run": {"variables": {"ok": 1, "rate": %s}}}' % constant
    response = client.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["message"].startswith("body.pipeline_run.variables.rate is ") and "cannot be NaN or Infinity" in error["message"]
    queued = client.post("/api/pipelines/one/pipeline_runs", content='{"pipeline_run": {"variables": {"r": NaN}}}', headers={"content-type": "application/json"})
    assert queued.status_code == 422 and "pipeline_run.variables.r" in queued.json()["error"]["message"]
    trigger = client.post("/api/pipelines/one/pipeline_schedules", content='{"pipeline_schedule": {"name": "n", "schedule_type": "api", "variables": {"v": [1, NaN]}}}',
                          headers={"content-type": "application/json"})
    assert trigger.status_code == 422 and "pipeline_schedule.variables.v[1]" in trigger.json()["error"]["message"]
    assert runs(db) == 0


def test_an_idempotency_key_makes_one_run(api):
    client, db, url = api
    body = {"pipeline_run": {"variables": {"year": 2021}}}
    first = client.post(url, json=body, headers={"Idempotency-Key": "call-1"})
    again = client.post(url, json=body, headers={"Idempotency-Key": "call-1"})
    assert first.status_code == again.status_code == 200
    assert again.json()["pipeline_run"]["id"] == first.json()["pipeline_run"]["id"]
    in_body = client.post(url, json={**body, "idempotency_key": "call-2"})
    in_body_again = client.post(url, json={**body, "idempotency_key": "call-2"})
    assert in_body.json()["pipeline_run"]["id"] == in_body_again.json()["pipeline_run"]["id"] != first.json()["pipeline_run"]["id"]
    made = client.get(f"/api/pipeline_runs/{in_body.json()['pipeline_run']['id']}").json()["pipeline_run"]
    assert made["event_variables"] == {} and made["variables"] == {"year": 2021}  # the key is not part of the event
    other = client.post(url, json={"pipeline_run": {"variables": {"year": 2022}}}, headers={"Idempotency-Key": "call-1"})
    assert other.status_code == 409 and "different body" in other.json()["error"]["message"]
    assert client.post(url, json=body, headers={"Idempotency-Key": "x" * 300}).status_code == 422
    assert runs(db) == 2


def test_concurrent_calls_with_one_key_make_one_run(api):
    client, db, url = api
    ids: list[int] = []
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        response = client.post(url, json={"pipeline_run": {"variables": {"n": 1}}}, headers={"Idempotency-Key": "same"})
        statuses.append(response.status_code)
        if response.status_code == 200:
            ids.append(response.json()["pipeline_run"]["id"])

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8 and len(set(ids)) == 1
    assert runs(db) == 1


def test_events_with_one_key_make_one_run_per_trigger(api):
    client, db, _ = api
    made = client.post("/api/pipelines/one/pipeline_schedules", json={"pipeline_schedule": {
        "name": "ev", "schedule_type": "event", "status": "active", "settings": {"event_matchers": [{"pattern": {"source": ["s3"]}}]}}})
    assert made.status_code == 201, made.text
    event = {"event": {"source": "s3", "key": "a.csv"}}
    first = client.post("/api/events", json=event, headers={"Idempotency-Key": "obj-a"}).json()["pipeline_runs"]
    again = client.post("/api/events", json={**event, "idempotency_key": "obj-a"}).json()["pipeline_runs"]
    assert len(first) == 1 and [r["id"] for r in again] == [r["id"] for r in first]
    nan = client.post("/api/events", content='{"event": {"source": "s3", "size": NaN}}', headers={"content-type": "application/json"})
    assert nan.status_code == 422 and "body.event.size" in nan.json()["error"]["message"]
    assert runs(db) == 1
