"""Soak (small): API calls from several threads while workers are SIGKILLed and restarted.

A server process (server + scheduler) and two worker processes share one SQLite DB.
Every accepted API call must end as exactly one completed run; a run's block runs again
only if its worker was killed while running it (``claims`` > 1). ``benchmarks/
orchestration_soak.py`` runs the same with 1,000 calls.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import make_project  # noqa: E402
from tests.fixtures.orch_soak import check_exactly_once, soak  # noqa: E402

pytestmark = pytest.mark.integration


def test_soak_api_calls_with_workers_killed(tmp_path):
    project = make_project(tmp_path / "proj")
    calls = 150
    outcome = soak(project, tmp_path, calls=calls)
    assert outcome["kills"] >= 2
    check_exactly_once(project, outcome, calls)
