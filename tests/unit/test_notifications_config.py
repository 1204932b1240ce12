"""notification_config: project ⊕ pipeline merge, Mage's alert_on names, message contents and templates."""

from __future__ import annotations

from types import SimpleNamespace

from dagsmith.orchestration.notifications import NotificationObserver, alert_kinds, merged_config
from tests.projects import add_pipeline, make_project


def test_pipeline_config_overrides_project_and_alert_names_are_mages():
    merged = merged_config(
        {"alert_on": ["trigger_failure"], "slack_config": {"webhook_url": "a"}, "email_config": {"smtp_host": "h"}},
        {"alert_on": ["trigger_success", "trigger_passed_sla"], "slack_config": {"webhook_url": "b"}},
    )
    assert merged["slack_config"] == {"webhook_url": "b"} and merged["email_config"] == {"smtp_host": "h"}
    assert alert_kinds(merged) == {"success", "passed_sla"}
    assert alert_kinds({}) == {"failure"}


def test_message_names_pipeline_run_failed_block_error_and_link(tmp_path):
    root = make_project(tmp_path)
    add_pipeline(root, "etl", [{"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef l(*a, **k):\n    return 1\n"}],
                 extra={"notification_config": {"slack_config": {"webhook_url": "x"},
                                                "message_templates": {"success": {"title": "{pipeline_uuid} ok ({unknown})"}}}})
    obs = NotificationObserver(root, "etl", base_url="https://ds.example/")
    result = SimpleNamespace(execution_date=None, blocks={
        "load": SimpleNamespace(status="failed", error="KeyError: 'x'"),
        "grp": SimpleNamespace(status="failed", error="1 of 2 dynamic children failed: grp:1"),
        "grp:1": SimpleNamespace(status="failed", error="ValueError: bad month"),
    })
    fields = obs.fields("failure", run_id=17, status="failed", result=result)
    title, text = obs.message("failure", fields)
    assert title == "[dagsmith] pipeline etl run 17 failed"
    assert "Failed block: load" in text and "Error: KeyError: 'x'" in text and "Failed block: grp:1" in text
    assert "Failed block: grp\n" not in text  # the group's summary is not repeated
    assert "https://ds.example/pipelines/etl/runs/17" in text
    title, _ = obs.message("success", obs.fields("success", run_id=17, status="completed", result=None))
    assert title == "etl ok ({unknown})"


def test_config_values_come_from_env_vars_and_the_secrets_store(tmp_path, monkeypatch):
    from dagsmith.project.io_config import set_secret_resolver

    root = make_project(tmp_path)
    add_pipeline(root, "etl", [{"uuid": "load", "type": "data_loader", "code": "@data_loader\ndef l(*a, **k):\n    return 1\n"}])
    monkeypatch.setenv("SMTP_HOST_FOR_TEST", "mail.example.com")
    obs = NotificationObserver(root, "etl")
    set_secret_resolver({"smtp_pw": "from-the-store"}.__getitem__)
    try:
        rendered = obs._render({"smtp_host": "{{ env_var('SMTP_HOST_FOR_TEST') }}",
                                "smtp_password": "{{ mage_secret_var('smtp_pw') }}", "smtp_port": 587})
    finally:
        set_secret_resolver(None)
    assert rendered == {"smtp_host": "mail.example.com", "smtp_password": "from-the-store", "smtp_port": 587}
