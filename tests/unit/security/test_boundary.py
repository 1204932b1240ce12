"""Host, Origin and CSRF checks for every state-changing route (from the route table), sessions, triggers, 500s."""

from __future__ import annotations

import re

import pytest

from .conftest import make_app, route_table, snapshot


def _url(path: str, route) -> str:
    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", lambda m: "1" if type(route.param_convertors.get(m.group(1))).__name__ == "IntegerConvertor" else "p", path)


def _runs(app) -> int:
    from dagsmith.orchestration.store import repo

    with app.state.db.read() as session:
        return repo.list_runs(session)[1]


@pytest.fixture
def served(project):
    app, client, _ = make_app(project, allowed_hosts=["dagsmith.internal"])
    with client:
        client.get("/pipelines")
        yield app, client


def test_foreign_host_is_refused_on_every_route(served, project):
    """DNS rebinding: the hostile page's own name resolves to 127.0.0.1; its Host header gives it away."""
    app, client = served
    token = client.cookies.get("dagsmith_csrf")
    before, runs = snapshot(project, project.parent / "outside"), _runs(app)
    count = 0
    for method, path, route in route_table(app):
        url = _url(path, route)
        r = client.request(method, url, headers={"Host": "evil.example:6789", "X-CSRF-Token": token}, json={} if method != "GET" else None)
        assert r.status_code == 400, f"{method} {url} with a foreign Host -> {r.status_code}"
        count += 1
    assert count > 60
    assert client.get("/api/pipeline_schedules", headers={"Host": "evil.example"}).status_code == 400
    assert snapshot(project, project.parent / "outside") == before and _runs(app) == runs


def test_loopback_names_and_allowed_hosts_are_served(served):
    _, client = served
    for host in ("127.0.0.1:6789", "localhost:6789", "[::1]:6789", "127.0.0.2", "dagsmith.internal:443", "app.localhost:6789"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
    assert client.get("/api/health", headers={"Host": "dagsmith.internal.evil.example"}).status_code == 400


def test_cross_site_forms_and_plain_text_are_refused_on_every_state_changing_route(served, project):
    app, client = served
    before, runs = snapshot(project, project.parent / "outside"), _runs(app)
    count = 0
    for method, path, route in route_table(app):
        if method == "GET":
            continue
        url = _url(path, route)
        # a form on evil.example posting here (the browser adds Origin and Sec-Fetch-Site)
        r = client.request(method, url, content=b"", headers={"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 403, f"cross-site form {method} {url} -> {r.status_code}"
        r = client.request(method, url, content=b"name=x", headers={"Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 403, f"Sec-Fetch-Site cross-site {method} {url} -> {r.status_code}"
        if not getattr(route.endpoint, "token_authenticated", False):
            # no Origin (an old browser, a no-cors fetch) and no token: text/plain and forms are refused too
            r = client.request(method, url, content=b'{"event": {}}', headers={"Content-Type": "text/plain"})
            assert r.status_code == 403, f"text/plain {method} {url} -> {r.status_code}"
        count += 1
    assert count > 30
    assert snapshot(project, project.parent / "outside") == before and _runs(app) == runs


def test_same_origin_requests_still_work(served):
    _, client = served
    token = client.cookies.get("dagsmith_csrf")
    r = client.post("/api/pipelines/p/pipeline_runs", json={}, headers={"Origin": "http://127.0.0.1:6789", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 201
    r = client.post("/pipelines/p/run", data={"csrf_token": token}, headers={"Origin": "http://127.0.0.1:6789"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.post("/pipelines/p/run", data={"csrf_token": "forged-token-value-xx"}, follow_redirects=False).status_code == 403


def test_a_500_carries_an_error_id_and_no_exception_text(project, caplog):
    from dagsmith.project.masking import add_secret

    app, client, _ = make_app(project)
    add_secret("pg-password-for-500")

    def boom():
        raise RuntimeError("connection to db.internal:5432 failed for password pg-password-for-500")

    app.add_api_route("/api/boom", boom)
    with TestClientNoRaise(app) as raw:
        r = raw.get("/api/boom")
    assert r.status_code == 500
    error = r.json()["error"]
    assert re.fullmatch(r"internal error [0-9a-f]{12}", error["message"])
    assert "db.internal" not in r.text and "pg-password" not in r.text and "RuntimeError" not in r.text


def TestClientNoRaise(app):
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)


def test_disabled_trigger_url_is_403_and_unknown_ids_answer_like_wrong_tokens(served):
    app, client = served
    trig = client.post("/api/pipelines/p/pipeline_schedules", json={"pipeline_schedule": {"name": "hook", "schedule_type": "api", "variables": {"pw": "stored-var-secret"}}}).json()["pipeline_schedule"]
    url = f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{trig['token']}"
    ok = client.post(url, json={})
    assert ok.status_code == 200 and set(ok.json()["pipeline_run"]) == {"id", "status"} and "stored-var-secret" not in ok.text
    wrong = client.post(f"/api/pipeline_schedules/{trig['id']}/pipeline_runs/{'0' * 32}", json={})
    unknown = client.post(f"/api/pipeline_schedules/{trig['id'] + 1000}/pipeline_runs/{'0' * 32}", json={})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"].replace(str(trig["id"]), "N") == unknown.json()["error"]["message"].replace(str(trig["id"] + 1000), "N")
    client.put(f"/api/pipeline_schedules/{trig['id']}", json={"pipeline_schedule": {"status": "inactive"}})
    runs = _runs(app)
    assert client.post(url, json={}).status_code == 403
    assert client.post(f"/api/pipeline_schedules/{trig['id']}/api_trigger", headers={"Authorization": f"Bearer {trig['token']}"}).status_code == 403
    assert client.get(f"/api/pipeline_schedules/{trig['id']}").json()["pipeline_schedule"]["status"] == "inactive"
    assert _runs(app) == runs


# ---------------------------------------------------------------- sessions


@pytest.fixture
def secured(project, monkeypatch):
    monkeypatch.setenv("DAGSMITH_AUTH_USER", "admin")
    monkeypatch.setenv("DAGSMITH_AUTH_PASSWORD", "s3cret-pass")
    app, client, _ = make_app(project)
    with client:
        yield app, client


def _login(client) -> str:
    client.get("/login")
    r = client.post("/login", data={"user": "admin", "password": "s3cret-pass", "csrf_token": client.cookies.get("dagsmith_csrf")}, follow_redirects=False)
    assert r.status_code == 303
    return client.cookies.get("dagsmith_session")


def test_logout_revokes_the_cookie_even_when_someone_kept_a_copy(secured):
    from fastapi.testclient import TestClient

    app, client = secured
    cookie = _login(client)
    assert client.get("/api/pipelines").status_code == 200
    thief = TestClient(app, base_url="http://127.0.0.1:6789", cookies={"dagsmith_session": cookie})
    assert thief.get("/api/pipelines").status_code == 200
    r = client.post("/logout", data={"csrf_token": client.cookies.get("dagsmith_csrf")}, follow_redirects=False)
    assert r.status_code == 303
    assert thief.get("/api/pipelines").status_code == 401


def test_csrf_token_is_bound_to_the_session(secured):
    from fastapi.testclient import TestClient

    app, client = secured
    _login(client)
    mine = client.cookies.get("dagsmith_csrf")
    other = TestClient(app, base_url="http://127.0.0.1:6789")
    _login(other)
    theirs = other.cookies.get("dagsmith_csrf")
    assert mine != theirs
    body = {"secret": {"name": "k", "value": "value-1234"}}
    assert client.post("/api/secrets", json=body, headers={"X-CSRF-Token": theirs}).status_code == 403
    # a planted dagsmith_csrf cookie does not help either
    client.cookies.set("dagsmith_csrf", theirs)
    assert client.post("/api/secrets", json=body, headers={"X-CSRF-Token": theirs}).status_code == 403
    assert client.post("/api/secrets", json=body, headers={"X-CSRF-Token": mine}).status_code == 201


def test_sessions_expire_when_idle_and_absolutely(tmp_path):
    from dagsmith.server.ui.auth import IDLE_SECONDS, SESSION_SECONDS, Sessions

    sessions = Sessions(tmp_path)
    cookie = sessions.issue("admin", now=1_000_000)
    assert sessions.check(cookie, now=1_000_000 + 10) == "admin"
    assert sessions.check(cookie, now=1_000_000 + IDLE_SECONDS + 1) is None
    info = sessions.parse(cookie, now=1_000_000 + 120)
    renewed = sessions.renewed(info, now=1_000_000 + 120)
    assert sessions.check(renewed, now=1_000_000 + 120 + IDLE_SECONDS - 5) == "admin"
    # activity keeps a session alive only until its absolute end
    t, current = 1_000_000, cookie
    while t < 1_000_000 + SESSION_SECONDS + 3600:
        t += IDLE_SECONDS // 2
        info = sessions.parse(current, now=t)
        if info is None:
            break
        current = sessions.renewed(info, now=t) or current
    assert t <= 1_000_000 + SESSION_SECONDS + IDLE_SECONDS and sessions.check(current, now=t) is None
    forged = cookie.rsplit("|", 1)[0] + "|" + "0" * 64
    assert sessions.check(forged, now=1_000_000 + 10) is None


def test_login_attempts_slow_down_then_lock_out(secured):
    from dagsmith.server.ui.auth import LoginThrottle

    throttle = LoginThrottle()
    delays = [throttle.failed("1.2.3.4", now=100.0 + i) for i in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert throttle.retry_after("1.2.3.4", now=110) == 0
    for i in range(4):
        throttle.failed("1.2.3.4", now=110.0 + i)
    assert throttle.retry_after("1.2.3.4", now=120) > 0 and throttle.retry_after("5.6.7.8", now=120) == 0
    assert throttle.retry_after("1.2.3.4", now=120 + LoginThrottle.WINDOW + 20) == 0
    app, client = secured
    client.get("/login")
    for _ in range(LoginThrottle.LOCK_AFTER):
        app.state.ui_login_throttle.failed("testclient")
    r = client.post("/login", data={"user": "admin", "password": "s3cret-pass", "csrf_token": client.cookies.get("dagsmith_csrf")}, follow_redirects=False)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "dagsmith_session" not in client.cookies
