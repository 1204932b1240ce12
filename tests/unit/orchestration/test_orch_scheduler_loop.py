"""The scheduler loop with an injected clock: due runs, catch-up, skip-if-running, @once, triggers.yaml both ways."""

from __future__ import annotations

from datetime import timezone

import pytest
import yaml

from dagsmith.orchestration.scheduler.loop import Scheduler
from dagsmith.orchestration.store import repo
from tests.fixtures.clock import Clock, utc

UTC = timezone.utc


def _dates(db, trigger_id):
    with db.read() as s:
        runs, _ = repo.list_runs(s, trigger_id=trigger_id, limit=1000)
        return sorted((r.execution_date, r.status) for r in runs)


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("all", [utc(2024, 3, 7), utc(2024, 3, 8), utc(2024, 3, 9), utc(2024, 3, 10)]),
        ("latest", [utc(2024, 3, 7), utc(2024, 3, 10)]),
        ("none", [utc(2024, 3, 7)]),
    ],
)
def test_scheduler_down_three_days_with_each_catchup_policy(db, settings, policy, expected):
    clock = Clock(utc(2024, 3, 7, 0, 0, 5))
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "daily", schedule_interval="@daily", status="active", catchup=policy, now=utc(2024, 3, 6, 12))
    sched = Scheduler(settings, db, clock=clock)
    sched.tick()
    clock.now = utc(2024, 3, 10, 9, 30)  # down from the 7th to the 10th
    sched.tick()
    sched.tick()
    assert [d for d, _ in _dates(db, trig.id)] == expected
    clock.now = utc(2024, 3, 11, 0, 0, 1)
    sched.tick()
    assert _dates(db, trig.id)[-1][0] == utc(2024, 3, 11)  # back on schedule


def test_default_catchup_comes_from_settings(db, settings):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "h", schedule_interval="@hourly", status="active", now=utc(2024, 3, 1, 0, 30))
        trig.last_execution_date = utc(2024, 3, 1, 0)
    Scheduler(settings.with_(catchup="all"), db).tick(utc(2024, 3, 1, 5, 10))
    assert len(_dates(db, trig.id)) == 5


def test_two_schedulers_ticking_together_create_each_period_once(db, settings):
    with db.session() as s:
        ids = [repo.create_trigger(s, "one", f"t{i}", schedule_interval="*/5 * * * *", status="active", catchup="all", now=utc(2024, 1, 1)).id for i in range(20)]
    a, b = Scheduler(settings, db), Scheduler(settings, db)
    for minute in range(0, 60, 7):
        now = utc(2024, 1, 1, 1, minute)
        a.tick(now)
        b.tick(now)
    with db.read() as s:
        for tid in ids:
            runs, total = repo.list_runs(s, trigger_id=tid, limit=100)
            dates = [r.execution_date for r in runs]
            assert len(dates) == len(set(dates)) == total == 24  # 00:00 … 01:55 every 5 minutes


def test_skip_if_previous_running_records_a_cancelled_run(db, settings):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "h", schedule_interval="@hourly", status="active", settings={"skip_if_previous_running": True}, now=utc(2024, 2, 29, 23, 59))
    sched = Scheduler(settings, db)
    sched.tick(utc(2024, 3, 1, 0, 1))
    sched.tick(utc(2024, 3, 1, 1, 0, 1))  # the 00:00 run is still waiting
    assert _dates(db, trig.id) == [(utc(2024, 3, 1, 0), "initial"), (utc(2024, 3, 1, 1), "cancelled")]


def test_once_trigger_runs_once_then_switches_off(db, settings):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "once", schedule_interval="@once", status="active", now=utc(2024, 3, 1, 8))
    sched = Scheduler(settings, db)
    sched.tick(utc(2024, 3, 1, 8, 0, 1))
    sched.tick(utc(2024, 3, 1, 9))
    assert len(_dates(db, trig.id)) == 1
    with db.read() as s:
        assert repo.get_trigger(s, trig.id).status == "inactive"


def test_scheduled_runs_carry_interval_variables_and_timezone(db, settings):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "berlin", schedule_interval="0 5 * * *", timezone="Europe/Berlin", status="active", variables={"x": 1}, settings={"timeout": 60}, now=utc(2024, 7, 1, 2))
    Scheduler(settings, db).tick(utc(2024, 7, 1, 3, 0, 2))  # 05:00 CEST = 03:00 UTC
    with db.read() as s:
        (run,), _ = repo.list_runs(s, trigger_id=trig.id)
        assert run.execution_date == utc(2024, 7, 1, 3) and run.interval_end == utc(2024, 7, 2, 3)
        assert run.timezone == "Europe/Berlin" and run.variables == {"x": 1} and run.timeout == 60


def test_a_broken_trigger_does_not_stop_the_others(db, settings):
    with db.session() as s:
        bad = repo.create_trigger(s, "one", "bad", schedule_interval="not a cron", status="active")
        good = repo.create_trigger(s, "one", "good", schedule_interval="@hourly", status="active", now=utc(2024, 3, 1))
    report = Scheduler(settings, db).tick(utc(2024, 3, 1, 0, 0, 1))
    assert any(f"trigger {bad.id}" in e for e in report.errors)
    assert len(_dates(db, good.id)) == 1


def _write_triggers(project, pipeline, entries):
    path = project / "pipelines" / pipeline / "triggers.yaml"
    path.write_text(yaml.safe_dump({"triggers": entries}, sort_keys=False))
    return path


def test_triggers_yaml_is_read_updated_and_removed(db, settings, project):
    import os

    path = _write_triggers(project, "one", [
        {"name": "daily_5am", "schedule_type": "time", "schedule_interval": "0 5 * * *", "start_time": "2024-01-01 00:00:00",
         "status": "active", "variables": {"k": "v"}, "settings": {"skip_if_previous_running": True}, "timezone": "Europe/Berlin"},
        {"name": "hook", "schedule_type": "api", "status": "active"},
        {"name": "prod_only", "schedule_type": "time", "schedule_interval": "@daily", "status": "active", "envs": ["prod"]},
    ])
    sched = Scheduler(settings, db)
    sched.tick(utc(2024, 3, 1, 12))
    with db.read() as s:
        by_name = {t.name: t for t in repo.list_triggers(s, "one")}
    assert set(by_name) == {"daily_5am", "hook", "prod_only"}
    daily = by_name["daily_5am"]
    assert daily.in_code and daily.timezone == "Europe/Berlin" and daily.start_time == utc(2023, 12, 31, 23)
    assert daily.variables == {"k": "v"} and daily.settings == {"skip_if_previous_running": True}
    assert by_name["prod_only"].status == "inactive"  # ENV is not prod
    path.write_text(yaml.safe_dump({"triggers": [{"name": "hook", "schedule_type": "api", "status": "inactive"}]}))
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    sched.tick(utc(2024, 3, 1, 12, 1))
    with db.read() as s:
        by_name = {t.name: t for t in repo.list_triggers(s, "one")}
    assert by_name["hook"].status == "inactive" and by_name["daily_5am"].status == "inactive"


def test_bad_triggers_yaml_is_reported_not_fatal(db, settings, project):
    _write_triggers(project, "one", [{"name": "x", "schedule_type": "time", "schedule_interval": "@sometimes", "status": "active"}])
    with db.session() as s:
        ok = repo.create_trigger(s, "chain20", "fine", schedule_interval="@hourly", status="active", now=utc(2024, 3, 1))
    sched = Scheduler(settings, db)
    sched.tick(utc(2024, 3, 1, 0, 0, 1))
    assert "@sometimes" in sched.code_sync.errors["one"]
    assert len(_dates(db, ok.id)) == 1


def test_written_triggers_yaml_round_trips(db, settings, project):
    from dagsmith.orchestration.scheduler.code_triggers import CodeTriggerSync, write_triggers_yaml

    with db.session() as s:
        trig = repo.create_trigger(s, "one", "nightly", schedule_interval="30 2 * * *", timezone="America/New_York", catchup="none",
                                   start_time=utc(2024, 1, 1, 7, 30), status="active", in_code=True, variables={"a": 1})
        write_triggers_yaml(project, "one", [trig])
    data = yaml.safe_load((project / "pipelines" / "one" / "triggers.yaml").read_text())
    entry = data["triggers"][0]
    assert entry["schedule_interval"] == "30 2 * * *" and entry["timezone"] == "America/New_York"
    assert entry["settings"]["catchup"] == "none" and str(entry["start_time"]) == "2024-01-01 02:30:00"
    CodeTriggerSync(project).sync(db, now=utc(2024, 3, 1))
    with db.read() as s:
        again = repo.find_trigger(s, "one", "nightly")
        assert again.start_time == utc(2024, 1, 1, 7, 30) and again.catchup == "none" and again.id == trig.id


def test_runs_unfinished_past_their_sla_are_flagged(db, settings):
    with db.session() as s:
        trig = repo.create_trigger(s, "one", "h", schedule_interval="@hourly", status="active", sla=600, now=utc(2024, 2, 29, 23, 59))
    sched = Scheduler(settings, db)
    sched.tick(utc(2024, 3, 1, 0, 1))
    sched.tick(utc(2024, 3, 1, 0, 9))
    with db.read() as s:
        assert not repo.list_runs(s, trigger_id=trig.id)[0][0].passed_sla
    sched.tick(utc(2024, 3, 1, 0, 11))
    with db.read() as s:
        assert repo.list_runs(s, trigger_id=trig.id)[0][-1].passed_sla  # the 00:00 run, still waiting after 10 minutes
