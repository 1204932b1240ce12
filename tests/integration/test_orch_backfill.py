"""Backfills with the real engine: ``dagsmith backfill`` over 30 days writes one file per execution date."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import make_project  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    return make_project(tmp_path / "proj")


def test_cli_backfill_of_30_days_writes_each_execution_date(project):
    from dagsmith.cli.app import app

    result = CliRunner().invoke(app, ["backfill", str(project), "dated", "--start", "2024-01-01", "--end", "2024-01-30", "--interval", "day", "--concurrency", "4", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["progress"]["completed"] == 30 and summary["failed"] == []
    files = sorted(p.name for p in (project / "out").iterdir())
    assert files == [f"2024-01-{d:02d}.json" for d in range(1, 31)]
    jan7 = json.loads((project / "out" / "2024-01-07.json").read_text())
    assert jan7["data"]["when"].startswith("2024-01-07T00:00:00")
    assert jan7["interval_end"].startswith("2024-01-08 00:00:00")


def test_failed_dates_are_reported_and_rerun_alone(project):
    from dagsmith.cli.app import app

    exporter = project / "data_exporters" / "dated_export.py"
    good = exporter.read_text()
    exporter.write_text(good.replace("    name = kwargs", "    if kwargs['execution_date'].day % 2 == 0:\n        raise ValueError('even days are broken')\n    name = kwargs"))
    first = CliRunner().invoke(app, ["backfill", str(project), "dated", "--start", "2024-03-01", "--end", "2024-03-06"])
    assert first.exit_code == 1
    assert "3 failed" in first.output and "--rerun-failed" in first.output
    assert sorted(p.name for p in (project / "out").iterdir()) == ["2024-03-01.json", "2024-03-03.json", "2024-03-05.json"]
    exporter.write_text(good)
    backfill_id = first.output.split("--rerun-failed")[1].split()[0]
    second = CliRunner().invoke(app, ["backfill", str(project), "dated", "--rerun-failed", backfill_id, "--json"])
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["progress"] == {**summary["progress"], "total": 6, "completed": 6, "failed": 0}
    assert len(list((project / "out").iterdir())) == 6


def test_cli_backfill_explains_bad_input(project):
    from dagsmith.cli.app import app

    runner = CliRunner()
    missing = runner.invoke(app, ["backfill", str(project), "dated", "--start", "2024-01-01"])
    assert missing.exit_code == 2 and "--start and --end" in missing.output
    wrong = runner.invoke(app, ["backfill", str(project), "nope", "--start", "2024-01-01", "--end", "2024-01-02"])
    assert wrong.exit_code == 2 and "pipelines in this project" in wrong.output
