"""Sign-in, sessions, CSRF and the network-exposure guard of the UI server."""

from __future__ import annotations

import pytest


def test_password_hash_uses_scrypt_and_verifies():
    from dagsmith.server.ui.auth import hash_password, verify_password

    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert hash_password("correct horse") != stored  # salted
    assert not verify_password("x", "garbage")


def test_listening_beyond_loopback_needs_auth(project, monkeypatch):
    from dagsmith.errors import ConfigError
    from dagsmith.project.layout import data_dir
    from dagsmith.server.ui.auth import check_host_allowed, write_auth

    check_host_allowed("127.0.0.1", project)
    check_host_allowed("localhost", project)
    with pytest.raises(ConfigError) as err:
        check_host_allowed("0.0.0.0", project)
    assert "python -m dagsmith.server.ui.auth" in err.value.hint
    path = write_auth(data_dir(project), "admin", "s3cret-pass")
    assert (path.stat().st_mode & 0o777) == 0o600 and "s3cret-pass" not in path.read_text()
    check_host_allowed("0.0.0.0", project)


def test_start_refuses_public_host_without_auth(project):
    from typer.testing import CliRunner

    from dagsmith.cli.app import app

    result = CliRunner().invoke(app, ["start", str(project), "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


@pytest.fixture
def secured(project, monkeypatch):
    from fastapi.testclient import TestClient

    from dagsmith.server.app import create_app

    monkeypatch.setenv("DAGSMITH_AUTH_USER", "admin")
    monkeypatch.setenv("DAGSMITH_AUTH_PASSWORD", "s3cret-pass")
    with TestClient(create_app(project)) as client:
        yield client


def test_pages_and_api_need_a_session(secured):
    r = secured.get("/pipelines", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert secured.get("/api/pipelines").status_code == 401
    assert secured.get("/api/health").status_code == 200
    assert secured.get("/static/app.css").status_code == 200
    # an API-trigger URL carries its own token: it is not behind the sign-in (a bad token is refused by the API)
    assert secured.post("/api/pipeline_schedules/1/pipeline_runs/badtoken", json={}).status_code in (401, 404)


def test_login_sets_httponly_samesite_cookie_and_csrf_protects_api(secured):
    page = secured.get("/login")
    csrf = secured.cookies.get("dagsmith_csrf")
    assert 'name="csrf_token"' in page.text and csrf
    bad = secured.post("/login", data={"user": "admin", "password": "nope", "csrf_token": csrf}, follow_redirects=False)
    assert bad.status_code == 401 and "Wrong user or password" in bad.text
    ok = secured.post("/login", data={"user": "admin", "password": "s3cret-pass", "csrf_token": csrf, "next": "/settings"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/settings"
    cookie = ok.headers["set-cookie"].lower()
    assert "dagsmith_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert secured.get("/pipelines").status_code == 200
    assert secured.get("/api/pipelines").status_code == 200
    # state-changing API calls with the session cookie need the CSRF header, and the token is the
    # session's own (handed out at sign-in): the pre-login token no longer works
    body = {"secret": {"name": "k", "value": "v"}}
    assert secured.post("/api/secrets", json=body).status_code == 403
    assert secured.post("/api/secrets", json=body, headers={"X-CSRF-Token": csrf}).status_code == 403
    csrf = secured.cookies.get("dagsmith_csrf")
    assert secured.post("/api/secrets", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
    # a forged session cookie is refused
    secured.cookies.set("dagsmith_session", "YWRtaW4=|9999999999|forged")
    assert secured.get("/pipelines", follow_redirects=False).status_code == 303


def test_without_auth_remote_clients_are_refused(project):

    from dagsmith.server.ui.auth import AuthMiddleware
    from dagsmith.project.layout import data_dir

    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])

    sent = []

    async def send(message):
        sent.append(message)

    mw = AuthMiddleware(app, data_dir(project))
    _run_async(mw({"type": "http", "path": "/pipelines", "method": "GET", "client": ("10.1.2.3", 5000), "headers": []}, None, send))
    assert sent[0]["status"] == 403 and not seen
    _run_async(mw({"type": "http", "path": "/pipelines", "method": "GET", "client": ("127.0.0.1", 5000), "headers": []}, None, send))
    assert seen == ["/pipelines"]


def _run_async(coro):
    """Run a coroutine on its own thread: a browser test may leave an event loop running in this one."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
