"""Issue 18 item 10: Mage's template notification settings (empty webhook URLs) send and log nothing."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.projects import add_pipeline, make_project

MAGE_TEMPLATE_CONFIG = """
notification_config:
  alert_on:
    - trigger_failure
    - trigger_passed_sla
  slack_config:
    webhook_url: "{{ env_var('MAGE_SLACK_WEBHOOK_URL') }}"
  teams_config:
    webhook_url: "{{ env_var('MAGE_TEAMS_WEBHOOK_URL') }}"
"""

FAILING = "@data_loader\ndef f(*a, **k):\n    raise ValueError('boom')\n"


def _project(tmp_path):
    root = make_project(tmp_path, "demo")
    meta = root / "metadata.yaml"
    meta.write_text(meta.read_text().replace("notification_config: {}\n", "") + MAGE_TEMPLATE_CONFIG)
    add_pipeline(root, "p", [{"uuid": "load", "type": "data_loader", "code": FAILING}])
    return root


def _receiver():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def _run(tmp_path, env_extra):
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1", **env_extra}
    for name in ("MAGE_SLACK_WEBHOOK_URL", "MAGE_TEAMS_WEBHOOK_URL"):
        if name not in env_extra:
            env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "dagsmith", "run", "demo", "p"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)


def test_template_settings_with_unset_urls_are_silent(tmp_path, monkeypatch, caplog):
    from dagsmith.orchestration.notifications import NotificationObserver, notification_observer

    monkeypatch.delenv("MAGE_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("MAGE_TEAMS_WEBHOOK_URL", raising=False)
    root = _project(tmp_path)
    assert notification_observer(root, "p") is None
    with caplog.at_level(logging.DEBUG, logger="dagsmith.notifications"):
        sent = NotificationObserver(root, "p").notify("failure", run_id=1, status="failed", result=None)
    assert sent == [] and caplog.records == []
    r = _run(tmp_path, {})
    assert r.returncode == 1  # the block failed
    output = (r.stdout + r.stderr).lower()
    assert "notification" not in output and "slack" not in output and "teams" not in output and "webhook" not in output


def test_the_same_settings_send_once_the_url_is_set(tmp_path):
    server, received = _receiver()
    try:
        _project(tmp_path)
        r = _run(tmp_path, {"MAGE_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/hook"})
    finally:
        server.shutdown()
    assert r.returncode == 1
    assert len(received) == 1 and "pipeline p" in received[0]["text"]
