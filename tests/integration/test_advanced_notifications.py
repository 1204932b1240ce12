"""Notifications reach a local webhook server and a local SMTP server (STARTTLS + auth)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from dagsmith.engine.runner import run_pipeline
from dagsmith.orchestration.notifications import NotificationObserver
from tests.fixtures.services import free_port
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def webhook_server():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Hook.received
    server.shutdown()
    server.server_close()


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def smtp_server(tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    messages, logins = [], []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                             "message": message_from_bytes(envelope.content), "tls": session.ssl is not None})
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts" and auth_data.password == b"s3cret-pw"
        logins.append(ok)
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    yield {"port": port, "ca": str(cert), "messages": messages, "logins": logins}
    controller.stop()


def _failing_project(tmp_path, config):
    root = make_project(tmp_path)
    add_pipeline(root, "green_etl", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef l(*a, **k):\n    return 1\n"},
        {"uuid": "export_bq", "type": "data_exporter", "upstream": ["load"], "code": """
            @data_exporter
            def e(x, **kwargs):
                raise ConnectionError('BigQuery said 403 Forbidden')
        """},
    ], extra={"notification_config": config})
    return root


def test_failure_reaches_slack_style_and_generic_webhooks(tmp_path, webhook_server, monkeypatch):
    url, received = webhook_server
    monkeypatch.setenv("TEST_SLACK_HOOK", f"{url}/slack/T000/B000/XXX")
    monkeypatch.setenv("TEST_HOOK_TOKEN", "tok-123")
    root = _failing_project(tmp_path, {
        "alert_on": ["trigger_failure"],
        "slack_config": {"webhook_url": "{{ env_var('TEST_SLACK_HOOK') }}"},
        "webhook_config": {"url": f"{url}/generic", "headers": {"Authorization": "Bearer {{ env_var('TEST_HOOK_TOKEN') }}"}},
    })
    obs = NotificationObserver(root, "green_etl", base_url="http://dagsmith.example:6789")
    result = run_pipeline(root, "green_etl", observer=obs, run_id="run-42", persist=False)
    assert result.status == "failed"
    assert [r["ok"] for r in obs.sent] == [True, True]
    slack = next(r for r in received if r["path"].startswith("/slack"))
    text = slack["json"]["text"]
    assert "green_etl" in text and "run-42" in text and "failed" in text
    assert "Failed block: export_bq" in text and "BigQuery said 403 Forbidden" in text
    assert "http://dagsmith.example:6789/pipelines/green_etl/runs/run-42" in text
    generic = next(r for r in received if r["path"] == "/generic")
    assert generic["headers"]["Authorization"] == "Bearer tok-123"
    body = generic["json"]
    assert body["event"] == "failure" and body["pipeline_uuid"] == "green_etl" and body["pipeline_run_id"] == "run-42"
    assert body["failed_blocks"] == [{"block_uuid": "export_bq", "error": result.blocks["export_bq"].error}]
    assert body["pipeline_run_url"].endswith("/pipelines/green_etl/runs/run-42")


def test_success_is_sent_only_when_asked(tmp_path, webhook_server):
    url, received = webhook_server
    root = make_project(tmp_path)
    add_pipeline(root, "ok", [{"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef l(*a, **k):\n    return 1\n"}],
                 extra={"notification_config": {"alert_on": ["trigger_failure"], "teams_config": {"webhook_url": url}}})
    run_pipeline(root, "ok", observer=NotificationObserver(root, "ok"), persist=False)
    assert received == []
    meta = root / "pipelines" / "ok" / "metadata.yaml"
    data = yaml.safe_load(meta.read_text())
    data["notification_config"]["alert_on"] = ["trigger_success"]
    meta.write_text(yaml.safe_dump(data))
    run_pipeline(root, "ok", observer=NotificationObserver(root, "ok"), run_id="r1", persist=False)
    assert len(received) == 1 and "run r1 completed" in received[0]["json"]["text"]


def test_sla_passed_alert_while_the_run_is_still_going(tmp_path, webhook_server):
    url, received = webhook_server
    root = make_project(tmp_path)
    add_pipeline(root, "slow", [{"uuid": "wait", "type": "data_loader",
                                 "code": "import time\n@data_loader\ndef l(*a, **k):\n    time.sleep(1.0)\n"}],
                 extra={"notification_config": {"alert_on": ["trigger_passed_sla"], "discord_config": {"webhook_url": url}}})
    obs = NotificationObserver(root, "slow", sla=0.3)
    result = run_pipeline(root, "slow", observer=obs, run_id="r-sla", persist=False)
    assert result.ok
    assert len(received) == 1
    assert "run r-sla passed its SLA" in received[0]["json"]["content"] and "SLA: 0.3 s" in received[0]["json"]["content"]


def test_failure_email_over_starttls_with_login(tmp_path, smtp_server, monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret-pw")
    root = _failing_project(tmp_path, {
        "alert_on": ["failure"],
        "email_config": {
            "smtp_host": "127.0.0.1", "smtp_port": smtp_server["port"], "smtp_user": "alerts",
            "smtp_password": "{{ env_var('TEST_SMTP_PASSWORD') }}", "smtp_mail_from": "alerts@example.com",
            "to_emails": ["oncall@example.com", "lead@example.com"], "smtp_ca_file": smtp_server["ca"],
        },
    })
    obs = NotificationObserver(root, "green_etl", base_url="http://127.0.0.1:6789")
    run_pipeline(root, "green_etl", observer=obs, run_id="run-7", persist=False)
    assert obs.sent == [{"kind": "failure", "channel": "email", "ok": True, "error": None}]
    assert smtp_server["logins"] == [True]
    (mail,) = smtp_server["messages"]
    assert mail["tls"] is True
    assert mail["from"] == "alerts@example.com" and mail["to"] == ["oncall@example.com", "lead@example.com"]
    msg = mail["message"]
    assert msg["Subject"] == "[dagsmith] pipeline green_etl run run-7 failed"
    body = msg.get_payload(decode=True).decode()
    assert "Failed block: export_bq" in body and "BigQuery said 403 Forbidden" in body
    assert "http://127.0.0.1:6789/pipelines/green_etl/runs/run-7" in body


def test_a_wrong_smtp_password_is_reported_without_the_password(tmp_path, smtp_server):
    root = _failing_project(tmp_path, {"email_config": {
        "smtp_host": "127.0.0.1", "smtp_port": smtp_server["port"], "smtp_user": "alerts",
        "smtp_password": "not-the-password", "to_emails": ["x@example.com"], "smtp_ca_file": smtp_server["ca"],
        "smtp_timeout": 3}})
    obs = NotificationObserver(root, "green_etl")
    result = run_pipeline(root, "green_etl", observer=obs, persist=False)
    assert result.status == "failed"  # the alert problem did not change the run
    (rec,) = obs.sent
    assert rec["ok"] is False and rec["error"].startswith("SMTP") and "not-the-password" not in rec["error"]
    assert "refused the login" in rec["error"] or "check smtp_user/smtp_password" in rec["error"]
    assert smtp_server["messages"] == []


def test_worker_runs_send_failure_alerts_with_the_db_run_link(tmp_path, webhook_server, monkeypatch):
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo
    from dagsmith.orchestration.worker import Worker

    url, received = webhook_server
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    root = _failing_project(tmp_path, {"alert_on": ["trigger_failure"], "webhook_config": {"url": f"{url}/hook"}})
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    with db.session() as s:
        run = repo.create_run(s, "green_etl", source="api")
    worker = Worker(settings, db)
    assert worker.step() == [run.id]
    worker.wait_idle(30)
    with db.read() as s:
        assert repo.get_run(s, run.id).status == "failed"
    body = next(r["json"] for r in received if r["path"] == "/hook")
    assert body["event"] == "failure" and body["failed_blocks"][0]["block_uuid"] == "export_bq"
    assert body["pipeline_run_url"].endswith(f"/pipelines/green_etl/runs/{run.id}")
    db.dispose()


LEAKING_EXPORT = """
    import os
    from mage_ai.data_preparation.shared.secrets import get_secret_value
    from mage_ai.io.config import ConfigFileLoader
    from mage_ai.settings.repo import get_repo_path

    @data_exporter
    def e(x, **kwargs):
        config = ConfigFileLoader(os.path.join(get_repo_path(), 'io_config.yaml'), 'default')
        raise ConnectionError('login refused for ' + config['POSTGRES_PASSWORD'] + ' and ' + get_secret_value('api_pw'))
"""


def test_alerts_never_carry_a_password_or_secret(tmp_path, webhook_server, smtp_server, monkeypatch):
    """A block error holding an ``.env``→``io_config`` password and a stored secret reaches the
    webhook, the Slack-style hook and the email masked (the worker's run, as the server runs it)."""
    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.secrets import SecretStore
    from dagsmith.orchestration.settings import OrchestrationSettings
    from dagsmith.orchestration.store import repo
    from dagsmith.orchestration.worker import Worker

    url, received = webhook_server
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret-pw")
    root = make_project(tmp_path)
    (root / ".env").write_text("POSTGRES_PASSWORD=pg-alert-pw-93e1\n")
    add_pipeline(root, "leaky", [
        {"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef l(*a, **k):\n    return 1\n"},
        {"uuid": "export", "type": "data_exporter", "upstream": ["load"], "code": LEAKING_EXPORT},
    ], extra={"notification_config": {
        "alert_on": ["trigger_failure"],
        "slack_config": {"webhook_url": f"{url}/slack"},
        "webhook_config": {"url": f"{url}/hook"},
        "email_config": {
            "smtp_host": "127.0.0.1", "smtp_port": smtp_server["port"], "smtp_user": "alerts",
            "smtp_password": "{{ env_var('TEST_SMTP_PASSWORD') }}", "to_emails": ["oncall@example.com"],
            "smtp_ca_file": smtp_server["ca"],
        },
    }})
    io = (root / "io_config.yaml").read_text()
    if "POSTGRES_PASSWORD" not in io:
        (root / "io_config.yaml").write_text(io + "  POSTGRES_PASSWORD: \"{{ env_var('POSTGRES_PASSWORD') }}\"\n")
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    SecretStore(db, settings.data_dir).set("api_pw", "stored-alert-secret-77")
    with db.session() as s:
        run = repo.create_run(s, "leaky", source="api")
    worker = Worker(settings, db)
    worker.register()  # as `dagsmith start` does: the worker's secrets resolver is in place
    assert worker.step() == [run.id]
    worker.wait_idle(60)
    worker.shutdown(5)
    with db.read() as s:
        assert repo.get_run(s, run.id).status == "failed"
    db.dispose()
    texts = [json.dumps(r["json"]) for r in received]
    texts += [m["message"]["Subject"] + "\n" + m["message"].get_payload(decode=True).decode() for m in smtp_server["messages"]]
    assert all("stored-alert-secret-77" not in m["message"].as_string() for m in smtp_server["messages"])
    assert len(texts) == 3, texts
    for text in texts:
        assert "pg-alert-pw-93e1" not in text and "stored-alert-secret-77" not in text
        assert "login refused for ****** and ******" in text
