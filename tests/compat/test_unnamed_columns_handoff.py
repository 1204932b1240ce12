"""Issue 18: what a downstream block receives when its upstream frame has unnamed columns.

Mage 0.9.80 hands frames downstream through its store (polars → Parquet for a frame with the
default row index), so column labels arrive as strings: ``pd.DataFrame([[1, 2]])`` arrives with
columns ``'0', '1'`` and the 0x0 frame a missing GCS object loads as arrives with an empty
object ``Index``. Found by the corpus run: the course's GCS → BigQuery pipeline, run before
its object is uploaded, gets past ``data.columns.str.lower()`` under Mage.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.projects import add_pipeline, make_project

# the course's loader and transformer (zoomcamp week 2: GCS → BigQuery)
LOADER = """
from mage_ai.settings.repo import get_repo_path
from mage_ai.io.config import ConfigFileLoader
from mage_ai.io.google_cloud_storage import GoogleCloudStorage
from os import path
if 'data_loader' not in globals():
    from mage_ai.data_preparation.decorators import data_loader


@data_loader
def load_from_google_cloud_storage(*args, **kwargs):
    config_path = path.join(get_repo_path(), 'io_config.yaml')
    config_profile = 'default'
    bucket_name = '%s'
    object_key = 'green_taxi_clean.parquet'
    return GoogleCloudStorage.with_config(ConfigFileLoader(config_path, config_profile)).load(
        bucket_name,
        object_key,
    )
"""

TRANSFORMER = """
if 'transformer' not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def transform(data, *args, **kwargs):
    data.columns = (data.columns.str.replace(' ', '').str.lower())
    print('columns:', list(data.columns), 'shape:', data.shape)
    return data
"""


@pytest.mark.integration
def test_missing_gcs_object_frame_reaches_the_course_transformer(gcs_emulator, gcs_bucket, tmp_path):
    root = make_project(tmp_path, "magic-zoomcamp")
    (root / "io_config.yaml").write_text(
        "version: 0.1.1\ndefault:\n  GOOGLE_SERVICE_ACC_KEY_FILEPATH: \"{{ env_var('KEY_FILE') }}\"\n"
    )
    import json

    from tests.integration.test_io_gcs import _service_account_key, _stub_token_server

    token_server, _ = _stub_token_server()
    key = tmp_path / "creds.json"
    key.write_text(json.dumps(_service_account_key(f"http://127.0.0.1:{token_server.server_address[1]}/token")))
    add_pipeline(
        root,
        "gcs_to_bigquery",
        [
            {"uuid": "load_gcs_green_taxi", "type": "data_loader", "code": LOADER % gcs_bucket},
            {"uuid": "transform_green_taxi_data", "upstream": ["load_gcs_green_taxi"], "code": TRANSFORMER},
        ],
    )
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1", "KEY_FILE": str(key), "STORAGE_EMULATOR_HOST": gcs_emulator.url}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "dagsmith", "run", "magic-zoomcamp", "gcs_to_bigquery"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
        )
    finally:
        token_server.shutdown()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "green_taxi_clean.parquet" in out and "does not exist" in out  # the loader's warning
    assert "columns: [] shape: (0, 0)" in out


def test_unnamed_columns_arrive_as_strings_named_ones_unchanged():
    import pandas as pd

    from dagsmith.data.store import handoff

    original = pd.DataFrame([[1, 2]])
    given = handoff(original)
    assert list(given.columns) == ["0", "1"] and given["1"].tolist() == [2]
    assert list(original.columns) == [0, 1]  # the upstream's own frame is left alone
    assert list(handoff(pd.DataFrame({"a": [1], 3: [2]})).columns) == ["a", 3]  # named labels kept
    indexed = pd.DataFrame([[1, 2]], index=["r"])  # not Mage's polars path: left as it is
    assert list(handoff(indexed).columns) == [0, 1]
    assert handoff(pd.DataFrame()).columns.dtype == object
