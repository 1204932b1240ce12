"""triggers.yaml with a broken entry: the others sync, the broken one is named with what is wrong."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
import yaml

from dagsmith.errors import ConfigError
from dagsmith.orchestration.scheduler.code_triggers import CodeTriggerSync
from dagsmith.orchestration.scheduler.triggers import cron_expression
from dagsmith.orchestration.store import repo

NOW = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("cron, words", [
    ("0 25 * * *", "hour 25 is out of range 0-23"),
    ("61 * * * *", "minute 61 is out of range 0-59"),
    ("0 5 32 * *", "day of month 32 is out of range 1-31"),
    ("0 5 * 13 *", "month 13 is out of range 1-12"),
    ("*/0 * * * *", "has step '0', which is not a positive number"),
    ("0 5 * * * *", "neither a preset nor a 5-field cron expression"),
])
def test_cron_errors_say_which_field_is_wrong(cron, words):
    with pytest.raises(ConfigError) as info:
        cron_expression(cron)
    assert words in info.value.message
    assert "'0 5 * * *'" in info.value.hint  # every hint shows a cron that works


def test_valid_entries_sync_and_the_bad_one_is_named(db, project, caplog):
    with db.session() as s:  # the bad entry was fine before: its trigger must not be switched off
        repo.create_trigger(s, "one", "nightly", schedule_interval="0 1 * * *", status="active", in_code=True, now=NOW)
    path = project / "pipelines" / "one" / "triggers.yaml"
    path.write_text(yaml.safe_dump({"triggers": [
        {"name": "hourly", "schedule_type": "time", "schedule_interval": "@hourly", "status": "active"},
        {"name": "nightly", "schedule_type": "time", "schedule_interval": "0 25 * * *", "status": "active"},
        {"name": "hook", "schedule_type": "api", "status": "active"},
        {"schedule_type": "time"},
    ]}, sort_keys=False))
    sync = CodeTriggerSync(project)
    with caplog.at_level(logging.WARNING, logger="dagsmith.triggers"):
        sync.sync(db, now=NOW)
    with db.read() as s:
        by_name = {t.name: t for t in repo.list_triggers(s, "one")}
    assert by_name["hourly"].status == "active" and by_name["hook"].status == "active"
    assert by_name["nightly"].status == "active" and by_name["nightly"].schedule_interval == "0 1 * * *"
    problems = sync.problems["one"]
    assert set(problems) == {"nightly", "entry 4 (no name)"}
    assert "trigger 'nightly'" in problems["nightly"] and "hour 25 is out of range 0-23" in problems["nightly"]
    assert "(trigger 2)" not in problems["nightly"]  # named, not counted
    assert "nightly" in sync.errors["one"]
    logged = [r.getMessage() for r in caplog.records if r.name == "dagsmith.triggers"]
    assert any("trigger 'nightly'" in m and "hour 25" in m for m in logged)
    # fixing the file clears the problem
    import os

    data = yaml.safe_load(path.read_text())
    data["triggers"][1]["schedule_interval"] = "0 2 * * *"
    data["triggers"].pop()
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    sync.sync(db, now=NOW)
    assert "one" not in sync.problems and "one" not in sync.errors
    with db.read() as s:
        assert repo.find_trigger(s, "one", "nightly").schedule_interval == "0 2 * * *"
