"""The REST API in-process (TestClient): Mage URL shapes, API triggers, errors, runs, backfills, secrets."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from dagsmith.orchestration.store import repo


@pytest.fixture
def client(settings, db):
    from dagsmith.server.app import create_app

    app = create_app(settings.project_root, settings.with_(max_body_bytes=64 * 1024))
    app.state.db = db
    return TestClient(app)


def run_count(db) -> int:
    with db.read() as s:
        return repo.list_runs(s)[1]


def make_trigger(client, pipeline="one", **fields):
    body = {"pipeline_schedule": {"name": "api", "schedule_type": "api", **fields}}
    response = client.post(f"/api/pipelines/{pipeline}/pipeline_schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()["pipeline_schedule"]


def test_pipelines_and_blocks_are_listed(client):
    body = client.get("/api/pipelines").json()
    assert {p["uuid"] for p in body["pipelines"]} >= {"one", "chain20", "slow"} and body["metadata"]["count"] >= 3
    blocks = client.get("/api/pipelines/slow/blocks").json()["blocks"]
    assert [b["uuid"] for b in blocks] == ["first", "sleeper", "last"]
    missing = client.get("/api/pipelines/nope")
    assert missing.status_code == 404 and "pipelines in this project" in missing.json()["error"]["hint"]


def test_api_trigger_creates_a_run_with_variables_and_event(client, db):
    trig = make_trigger(client, variables={"from_trigger": 1})
    body = {"pipeline_run": {"variables": {"year": 2021}}, "source": "webhook"}
    response = client.post(f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}", json=body)
    assert response.status_code == 200
    answer = response.json()["pipeline_run"]
    assert set(answer) == {"id", "status"}  # the answer never echoes variables (they may hold secrets)
    run = client.get(f"/api/pipeline_runs/{answer['id']}").json()["pipeline_run"]
    assert run["variables"] == {"from_trigger": 1, "year": 2021} and run["event_variables"] == {"source": "webhook"}
    assert run["status"] == "initial" and run["pipeline_schedule_id"] == trig["id"]
    bearer = client.post(f"/api/pipeline_schedules/{trig['id']}/api_trigger", headers={"Authorization": f"Bearer {trig['token']}"})
    assert bearer.status_code == 200
    assert run_count(db) == 2
    assert client.get(f"/api/pipeline_schedules/{trig['id']}").json()["pipeline_schedule"]["status"] == "active"


@pytest.mark.parametrize(
    "token, content, status",
    [
        ("wrong-token", b'{"pipeline_run": {}}', 401),
        ("wrong-token", b'{"pipeline_run": {"variables": ', 401),  # the token is judged before the body
        (None, b'{"pipeline_run": {"variables": ', 422),
        (None, b'[1, 2]', 422),
        (None, b'{"pipeline_run": {"variables": [1]}}', 422),
        (None, b'{"pipeline_run": {"variables": {"x": "' + b"a" * 70_000 + b'"}}}', 413),
    ],
)
def test_bad_api_trigger_calls_create_nothing(client, db, token, content, status):
    trig = make_trigger(client)
    url = f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{token or trig['token']}"
    response = client.post(url, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == status and error["message"]
    assert run_count(db) == 0


def test_bearer_without_token_is_401(client, db):
    trig = make_trigger(client)
    assert client.post(f"/api/pipeline_schedules/{trig['id']}/api_trigger").status_code == 401
    # an unknown id answers exactly like a wrong token: ids cannot be enumerated
    unknown = client.post("/api/pipeline_schedules/999/pipeline_runs/x")
    wrong = client.post(f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/x")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["error"]["message"].replace("999", "N") == wrong.json()["error"]["message"].replace(str(trig["id"]), "N")
    assert run_count(db) == 0


def test_oversized_body_without_content_length_is_413(client, db):
    trig = make_trigger(client)

    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = client.post(f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}", content=chunks())
    assert response.status_code == 413
    assert run_count(db) == 0


def test_trigger_validation_errors_are_actionable(client):
    bad = client.post("/api/pipelines/one/pipeline_schedules", json={"pipeline_schedule": {"name": "x", "schedule_interval": "@dialy"}})
    assert bad.status_code == 422 and "cron" in bad.json()["error"]["hint"]
    typed = client.post("/api/pipelines/one/pipeline_schedules", json={"pipeline_schedule": {"name": "x", "schedule_type": "sometimes"}})
    assert typed.status_code == 422 and "schedule_type" in typed.json()["error"]["message"]
    make_trigger(client)
    dup = client.post("/api/pipelines/one/pipeline_schedules", json={"pipeline_schedule": {"name": "api", "schedule_type": "api"}})
    assert dup.status_code == 409


def test_schedule_trigger_update_and_next_run(client):
    trig = make_trigger(client, name="daily", schedule_type="time", schedule_interval="0 5 * * *", timezone="Europe/Berlin", status="active", catchup="none")
    assert trig["next_execution_date"] is not None
    updated = client.put(f"/api/pipeline_schedules/{trig['id']}", json={"pipeline_schedule": {"status": "inactive"}}).json()["pipeline_schedule"]
    assert updated["status"] == "inactive" and updated["next_execution_date"] is None
    assert client.delete(f"/api/pipeline_schedules/{trig['id']}", headers={"Content-Type": "application/json"}).status_code == 200
    assert client.get(f"/api/pipeline_schedules/{trig['id']}").status_code == 404


def test_in_code_trigger_changes_are_written_to_triggers_yaml(client, project):
    import yaml

    trig = make_trigger(client, name="nightly", schedule_type="time", schedule_interval="@daily", in_code=True)
    client.put(f"/api/pipeline_schedules/{trig['id']}", json={"pipeline_schedule": {"status": "active"}})
    data = yaml.safe_load((project / "pipelines" / "one" / "triggers.yaml").read_text())
    assert data["triggers"][0]["name"] == "nightly" and data["triggers"][0]["status"] == "active"


def test_runs_retry_cancel_and_block_runs(client, db, settings, fake_engine):
    from dagsmith.orchestration.worker import Worker

    fake_engine.fail = {"sleeper"}
    created = client.post("/api/pipelines/slow/pipeline_runs", json={"pipeline_run": {"variables": {"a": 1}}})
    assert created.status_code == 201
    run_id = created.json()["pipeline_run"]["id"]
    worker = Worker(settings, db, run_fn=fake_engine)
    worker.step()
    worker.wait_idle(10)
    run = client.get(f"/api/pipeline_runs/{run_id}").json()["pipeline_run"]
    assert run["status"] == "failed" and {b["block_uuid"]: b["status"] for b in run["block_runs"]}["sleeper"] == "failed"
    block_runs = client.get("/api/block_runs", params={"pipeline_run_id": run_id}).json()["block_runs"]
    sleeper = next(b for b in block_runs if b["block_uuid"] == "sleeper")
    logs = client.get(f"/api/block_runs/{sleeper['id']}/logs").json()["logs"]
    assert any("hello from sleeper" in r["message"] for r in logs)
    assert client.get(f"/api/pipeline_runs/{run_id}/logs", params={"level": "error"}).json()["logs"]
    fake_engine.fail = set()
    retried = client.put(f"/api/pipeline_runs/{run_id}", json={"pipeline_run": {"pipeline_run_action": "retry_blocks"}})
    assert retried.status_code == 200 and retried.json()["pipeline_run"]["status"] == "initial"
    again = client.put(f"/api/pipeline_runs/{run_id}", json={"pipeline_run": {"pipeline_run_action": "retry_blocks"}})
    assert again.status_code == 409 and "only a finished run" in again.json()["error"]["message"]
    cancelled = client.put(f"/api/pipeline_runs/{run_id}", json={"pipeline_run": {"status": "cancelled"}})
    assert cancelled.json()["pipeline_run"]["status"] == "cancelled"
    listing = client.get("/api/pipeline_runs", params={"pipeline_uuid": "slow", "status": "cancelled"}).json()
    assert listing["metadata"]["count"] == 1
    nothing = client.put(f"/api/pipeline_runs/{run_id}", json={"pipeline_run": {}})
    assert nothing.status_code == 422 and "retry_blocks" in nothing.json()["error"]["hint"]


def test_backfill_lifecycle(client, db, settings, fake_engine):
    from dagsmith.orchestration.worker import Worker

    body = {"backfill": {"name": "jan", "start_datetime": "2024-01-01", "end_datetime": "2024-01-10", "interval_type": "day", "interval_units": 1, "status": "initial", "concurrency": 3}}
    created = client.post("/api/pipelines/dated/backfills", json=body)
    assert created.status_code == 201, created.text
    backfill = created.json()["backfill"]
    assert backfill["progress"]["total"] == 10 and backfill["status"] == "running"
    fake_engine.fail = {"dated_export"}
    worker = Worker(settings, db, run_fn=fake_engine, concurrency=8)
    while worker.step() or worker.active_runs:
        worker.wait_idle(10)
    got = client.get(f"/api/backfills/{backfill['id']}").json()["backfill"]
    assert got["progress"]["failed"] == 10
    fake_engine.fail = set()
    rerun = client.put(f"/api/backfills/{backfill['id']}", json={"backfill": {"action": "rerun_failed"}}).json()["backfill"]
    assert rerun["progress"]["waiting"] == 10
    while worker.step() or worker.active_runs:
        worker.wait_idle(10)
    from dagsmith.orchestration.scheduler.loop import Scheduler

    Scheduler(settings, db).tick()
    got = client.get(f"/api/backfills/{backfill['id']}").json()["backfill"]
    assert got["status"] == "completed" and got["progress"]["completed"] == 10
    runs = client.get("/api/pipeline_runs", params={"backfill_id": backfill["id"], "limit": 100}).json()["pipeline_runs"]
    assert sorted(r["execution_date"][:10] for r in runs) == [f"2024-01-{d:02d}" for d in range(1, 11)]
    bad = client.post("/api/pipelines/dated/backfills", json={"backfill": {"start_datetime": "2024-02-01", "end_datetime": "2024-01-01", "status": "initial"}})
    assert bad.status_code == 422 and "before its start" in bad.json()["error"]["message"]


def test_backfill_cancel_stops_waiting_runs(client, db):
    body = {"backfill": {"start_datetime": "2024-01-01", "end_datetime": "2024-01-05", "interval_type": "day", "status": "initial"}}
    backfill = client.post("/api/pipelines/dated/backfills", json=body).json()["backfill"]
    cancelled = client.put(f"/api/backfills/{backfill['id']}", json={"backfill": {"status": "cancelled"}}).json()["backfill"]
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["cancelled"] == 5


def test_secrets_are_never_returned(client):
    assert client.post("/api/secrets", json={"secret": {"name": "pg_password", "value": "hunter2-hunter2"}}).status_code == 201
    listing = client.get("/api/secrets")
    assert listing.json()["secrets"][0]["name"] == "pg_password" and "hunter2" not in listing.text
    assert client.delete("/api/secrets/pg_password", headers={"Content-Type": "application/json"}).status_code == 200
    assert client.delete("/api/secrets/pg_password", headers={"Content-Type": "application/json"}).status_code == 404
    assert client.post("/api/secrets", json={"secret": {"name": "bad name!", "value": "x"}}).status_code == 422


def test_variables_are_written_to_the_pipeline(client, project):
    assert client.put("/api/pipelines/one/variables", json={"variables": {"year": 2021}}).status_code == 200
    assert client.get("/api/pipelines/one/variables").json() == {"variables": {"year": 2021}}


def test_openapi_schema_lists_the_resources(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in ("/api/pipelines", "/api/pipeline_runs", "/api/block_runs", "/api/pipeline_schedules/{trigger_id}/pipeline_runs/{token}",
                 "/api/pipelines/{pipeline_uuid}/backfills", "/api/secrets", "/api/pipeline_runs/{run_id}/logs", "/api/pipelines/{pipeline_uuid}/variables"):
        assert path in paths
    assert client.get("/api/nowhere").json()["error"]["code"] == 404


def test_concurrent_api_triggers_each_create_one_run(client, db):
    trig = make_trigger(client)
    url = f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}"
    codes = []

    def call(i):
        codes.append(client.post(url, json={"pipeline_run": {"variables": {"i": i}}}).status_code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes.count(200) == 40
    with db.read() as s:
        runs, total = repo.list_runs(s, limit=100)
    assert total == 40 and sorted(r.variables["i"] for r in runs) == list(range(40))


def test_statuses_show_whether_a_scheduler_is_alive(client, db, settings):
    from dagsmith.orchestration.scheduler.loop import Scheduler

    assert client.get("/api/statuses").json()["statuses"][0]["scheduler_status"] == "not running"
    Scheduler(settings, db).tick()
    status = client.get("/api/statuses").json()["statuses"][0]
    assert status["scheduler_status"] == "running" and status["schedulers"][0]["role"] == "scheduler"


def test_events_start_matching_event_triggers_only(client, db):
    pattern = {"source": ["aws.s3"], "detail": {"bucket": {"name": ["raw-data"]}}}
    make_trigger(client, name="on_upload", schedule_type="event", status="active", settings={"event_matchers": [{"name": "upload", "pattern": pattern}]})
    make_trigger(client, name="other", schedule_type="event", status="active", settings={"event_matchers": [{"pattern": {"source": ["aws.sqs"]}}]})
    hit = client.post("/api/events", json={"event": {"source": "aws.s3", "detail": {"bucket": {"name": "raw-data"}, "key": "a.csv"}}}).json()
    assert [r["pipeline_uuid"] for r in hit["pipeline_runs"]] == ["one"] and hit["pipeline_runs"][0]["event_variables"]["detail"]["key"] == "a.csv"
    miss = client.post("/api/events", json={"event": {"source": "aws.s3", "detail": {"bucket": {"name": "other"}}}}).json()
    assert miss["pipeline_runs"] == []
    assert run_count(db) == 1


def test_response_shapes_are_documented_and_keep_their_json(client):
    """Runs and triggers answer with every field (nulls included) and +00:00 date-times, as their response models say."""
    run = client.post("/api/pipelines/one/pipeline_runs", json={"pipeline_run": {"variables": {"a": 1}}}).json()["pipeline_run"]
    assert run["pipeline_schedule_id"] is None and run["variables"] == {"a": 1} and run["partition"] == str(run["id"])
    assert run["created_at"].endswith("+00:00") and run["started_at"] is None
    trigger = make_trigger(client, schedule_interval=None)
    assert trigger["api_url"] == f"/api/pipeline_schedules/{trigger['id']}/pipeline_runs/{trigger['token']}"
    assert trigger["next_execution_date"] is None and trigger["envs"] == [] and trigger["created_at"].endswith("+00:00")
    detail = client.get(f"/api/pipeline_runs/{run['id']}").json()["pipeline_run"]
    assert detail["block_runs"] == [] and {k: v for k, v in detail.items() if k != "block_runs"} == run | {"updated_at": detail["updated_at"]}

    spec = client.get("/api/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["PipelineRunOut"]["properties"]) == set(run)
    assert set(schemas["TriggerOut"]["properties"]) == set(trigger)
    created = spec["paths"]["/api/pipelines/{pipeline_uuid}/pipeline_schedules"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/TriggerEnvelope")
    listed = spec["paths"]["/api/pipeline_runs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["$ref"].endswith("/PipelineRunList")
