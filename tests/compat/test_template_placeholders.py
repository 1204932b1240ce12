"""Issue 18: placeholders of Mage's project template are not configuration.

Older ``mage init`` wrote ``remote_variables_dir: s3://bucket/path_prefix`` into a project's
``metadata.yaml``; Mage 0.9.80 treats that exact value as unset (its pipeline model drops it),
so the project's runs keep their outputs locally. Found by the corpus run: Mage's own
``mage_demo_project`` example pipeline passed under Mage and failed under dagsmith, which tried
to store outputs in the bucket ``bucket``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dagsmith.engine.storage import variables_root
from tests.fixtures.mage_example import MAGE_OUTPUT, TITANIC, add_example_pipeline
from tests.projects import make_project


@pytest.mark.integration
def test_example_pipeline_of_a_project_with_the_template_remote_dir_runs_locally(tmp_path, http_data_server):
    root = make_project(tmp_path, "demo_project")
    meta = root / "metadata.yaml"
    meta.write_text(
        "project_type: standalone\n\nvariables_dir: ~/.mage_data\n"
        "remote_variables_dir: s3://bucket/path_prefix\n\nvariables_retention_period: '90d'\n"
    )
    add_example_pipeline(root, http_data_server(TITANIC))
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}
    env.pop("DAGSMITH_DATA_DIR", None)
    env.pop("DAGSMITH_VARIABLES_DIR", None)
    r = subprocess.run([sys.executable, "-m", "dagsmith", "run", "demo_project", "example_pipeline"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "titanic_clean.csv").read_bytes() == MAGE_OUTPUT.read_bytes()
    assert list((root / ".dagsmith").rglob("_run.json"))  # the outputs were kept locally


def test_only_the_exact_placeholder_is_ignored(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSMITH_VARIABLES_DIR", raising=False)
    monkeypatch.delenv("DAGSMITH_DATA_DIR", raising=False)
    local = variables_root(tmp_path, {"remote_variables_dir": "s3://bucket/path_prefix"})
    assert "://" not in local
    assert variables_root(tmp_path, {"remote_variables_dir": "s3://bucket/real_prefix"}) == "s3://bucket/real_prefix"


@pytest.mark.integration
def test_an_unreachable_remote_store_fails_the_run_with_a_message(tmp_path, http_data_server):
    root = make_project(tmp_path, "demo_project")
    (root / "metadata.yaml").write_text("project_type: standalone\nremote_variables_dir: s3://outputs/prefix\n")
    add_example_pipeline(root, http_data_server(TITANIC))
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_REGION": "us-east-1"}
    env.pop("DAGSMITH_DATA_DIR", None)
    env.pop("DAGSMITH_VARIABLES_DIR", None)
    r = subprocess.run([sys.executable, "-m", "dagsmith", "run", "demo_project", "example_pipeline"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Traceback" not in out, out
    assert "could not be stored" in out and "s3://outputs/prefix" in out, out
