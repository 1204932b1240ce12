"""A dynamic loader over the 12 months of green-taxi 2022 Parquet, reduced to a row total;
`dagsmith run` shows the children, skipped blocks and callback outcomes, and records them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from dagsmith.engine.runner import run_pipeline
from tests.fixtures.services import SHARED_DATA, data_path
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration

TRIP_DATA = SHARED_DATA / "trip-data"
DAGSMITH = str(Path(sys.executable).with_name("dagsmith"))


def _months_project(tmp_path) -> Path:
    data_path("trip-data")  # fails naming DAGSMITH_TEST_DATA when the data is missing
    root = make_project(tmp_path)
    add_pipeline(root, "green_2022", [
        {"uuid": "list_months", "type": "data_loader", "configuration": {"dynamic": True}, "code": f"""
            @data_loader
            def months(*args, **kwargs):
                folder = {str(TRIP_DATA)!r}
                files = [f'{{folder}}/green_tripdata_2022-{{m:02d}}.parquet' for m in range(1, 13)]
                return [files, [{{'block_uuid': f'2022_{{m:02d}}', 'month': m}} for m in range(1, 13)]]
        """},
        {"uuid": "load_month", "upstream": ["list_months"], "configuration": {"reduce_output": True}, "code": """
            import pandas as pd

            @transformer
            def load(path, *args, **kwargs):
                df = pd.read_parquet(path)
                assert (df['lpep_pickup_datetime'].dt.month == kwargs['month']).mean() > 0.99
                return {'month': kwargs['month'], 'rows': len(df)}
        """},
        {"uuid": "sum_rows", "upstream": ["load_month"], "type": "data_exporter", "code": """
            @data_exporter
            def total(counts, *args, **kwargs):
                print('months', [c['month'] for c in counts])
                print('total', sum(c['rows'] for c in counts))
                return sum(c['rows'] for c in counts)
        """},
    ])
    return root


def test_dynamic_loader_over_12_months_reduces_to_the_sum_of_rows(tmp_path):
    expected = sum(pq.ParquetFile(TRIP_DATA / f"green_tripdata_2022-{m:02d}.parquet").metadata.num_rows for m in range(1, 13))
    root = _months_project(tmp_path)
    result = run_pipeline(root, "green_2022")
    assert result.ok, {u: b.error for u, b in result.blocks.items() if b.error}
    children = [u for u, b in result.blocks.items() if b.parent == "load_month"]
    assert children == [f"load_month:2022_{m:02d}" for m in range(1, 13)]
    lines = result.blocks["sum_rows"].stdout.splitlines()
    assert lines == [f"months {list(range(1, 13))}", f"total {expected}"]
    from dagsmith.data.store import VariableStore
    from dagsmith.project.layout import data_dir

    store = VariableStore(data_dir(root))
    assert store.read_block_value("green_2022", result.partition, "sum_rows") == expected
    assert store.read_block_value("green_2022", result.partition, "load_month:2022_07")["month"] == 7


def _showcase(tmp_path) -> Path:
    """Children, a weekday condition and a failure callback in one pipeline."""
    root = make_project(tmp_path)
    add_pipeline(root, "showcase", [
        {"uuid": "regions", "type": "data_loader", "configuration": {"dynamic": True},
         "code": "@data_loader\ndef l(*a, **k):\n    return ['north', 'south', 'east']\n"},
        {"uuid": "per_region", "upstream": ["regions"], "code": """
            @transformer
            def t(region, *args, **kwargs):
                if region == 'south':
                    raise ValueError('no data for south')
                return region.upper()
        """},
        {"uuid": "weekday_export", "type": "data_exporter", "code": "@data_exporter\ndef e(*a, **k):\n    print('exported')\n"},
    ])
    meta_path = root / "pipelines" / "showcase" / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    (root / "conditionals").mkdir(exist_ok=True)
    (root / "conditionals" / "weekdays.py").write_text(textwrap.dedent("""
        @condition
        def weekday(*args, **kwargs):
            return kwargs['execution_date'].weekday() < 5
    """))
    (root / "callbacks").mkdir(exist_ok=True)
    (root / "callbacks" / "alert.py").write_text(textwrap.dedent("""
        @callback('failure')
        def post_to_slack(region, *args, **kwargs):
            print(f"alert: {kwargs['parent_block_uuid']} failed on {region}: {kwargs['__error']}")
    """))
    meta["conditionals"] = [{"uuid": "weekdays", "type": "conditional", "language": "python",
                             "upstream_blocks": ["weekday_export"], "downstream_blocks": [], "configuration": {}}]
    meta["callbacks"] = [{"uuid": "alert", "type": "callback", "language": "python",
                          "upstream_blocks": ["per_region"], "downstream_blocks": [], "configuration": {}}]
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return root


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSMITH, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_dagsmith_run_shows_children_skips_and_callbacks_and_records_them(tmp_path):
    root = _showcase(tmp_path)
    data = tmp_path / "data"
    env = {"DAGSMITH_DATA_DIR": str(data)}
    r = _cli("run", str(root), "showcase", "--execution-date", "2024-01-06T08:00:00Z", env=env)  # a Saturday
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    for child in ("per_region:0", "per_region:1", "per_region:2"):
        assert child in out
    assert "3 dynamic children: 2 completed, 1 failed" in out
    assert "condition_failed" in out and "skipped: condition weekdays.weekday" in out
    assert "✘ callback alert.post_to_slack (failure)" not in out  # the callback itself worked
    assert "✔ callback alert.post_to_slack (failure)" in out
    assert "per_region:1 failed" in r.stdout

    j = _cli("run", str(root), "showcase", "--execution-date", "2024-01-06T08:00:00Z", "--json", env=env)
    report = json.loads(j.stdout)
    blocks = report["blocks"]
    assert blocks["per_region:1"]["parent"] == "per_region" and blocks["per_region:1"]["dynamic_index"] == 1
    assert blocks["per_region:1"]["callbacks"][0]["status"] == "completed"
    assert "alert: per_region:1 failed on south" in blocks["per_region:1"]["stdout"]
    assert blocks["weekday_export"]["status"] == "condition_failed"
    assert blocks["per_region"]["status"] == "failed"

    # the run record the CLI leaves for the metadata DB (its inbox) has every child and the skip
    records = [json.loads(p.read_text()) for p in (data / "inbox").glob("*.json") if not p.name.endswith(".start.json")]
    assert len(records) == 2
    blocks = records[0]["blocks"]
    assert blocks["per_region:0"]["status"] == "completed" and blocks["per_region:1"]["status"] == "failed"
    assert blocks["per_region:2"]["parent"] == "per_region"
    assert blocks["weekday_export"]["status"] == "condition_failed"
    assert "weekdays.weekday" in blocks["weekday_export"]["skip_reason"]
