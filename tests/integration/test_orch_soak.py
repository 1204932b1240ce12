"""Soak (small): API calls and a backfill while workers and the scheduler are SIGKILLed and restarted.

Server, scheduler and two worker processes share one SQLite DB (the PostgreSQL chaos run
with DB faults and a per-minute schedule is ``benchmarks/orchestration_soak.py``). The
killer waits until its victim is up before killing it. Every accepted API call and every
backfill date must end as exactly one completed run; no block that finished runs again
unless the process that ran it was killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.orch_projects import make_project  # noqa: E402
from tests.fixtures.orch_soak import chaos, summarise  # noqa: E402

pytestmark = pytest.mark.integration


def test_soak_api_calls_and_a_backfill_with_workers_and_scheduler_killed(tmp_path):
    project = make_project(tmp_path / "proj")
    # Runs of a SIGKILLed worker go back to the queue when the killer restarts it (its pid is gone),
    # not by heartbeat age. A heartbeat timeout of a few seconds would also take runs from live
    # workers starved of CPU on a busy machine and re-run their finished blocks by design (seen at
    # load 30: "run.recovered" without "process gone", then "completed twice"): that path is the
    # PostgreSQL chaos run's (benchmarks/orchestration_soak.py), not this test's.
    outcome = chaos(project, tmp_path, calls=120, backfill_days=10, kill_every=0.7, heartbeat_timeout=30.0)
    summary = summarise(outcome)
    assert summary["kills"] >= 2, summary
    assert summary["never_up"] == [], summary  # every victim was up (registered, heart-beating) when killed
    assert outcome["drained"], summary
    assert summary["lost"] == [], summary
    assert summary["completed_twice"] == [] and summary["finished_rerun"] == [], summary
    assert summary["completed"] == summary["runs"] == 130
