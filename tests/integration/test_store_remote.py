"""The variables store on object stores (S3 via moto, GCS via fake-gcs-server): the same contract as on disk.

Outputs are published by a manifest: files under a fresh version prefix first, then
``_meta.json`` naming that version, so a reader never sees half a write.
"""

from __future__ import annotations

import pandas as pd
import pytest

from dagsmith.data.store import OutputsMissing, VariableStore
from dagsmith.engine import run_pipeline
from tests.projects import add_pipeline, make_project

pytestmark = pytest.mark.integration


@pytest.fixture(params=["s3", "gcs"])
def remote_url(request, env_patch):
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_emulator")
        bucket = s3.create_bucket()
        env_patch("AWS_ACCESS_KEY_ID", "testing")
        env_patch("AWS_SECRET_ACCESS_KEY", "testing-secret")
        env_patch("AWS_REGION", s3.region)
        env_patch("AWS_ENDPOINT_URL", s3.endpoint)
        return f"s3://{bucket}/dagsmith"
    gcs = request.getfixturevalue("gcs_emulator")
    return f"gs://{gcs.create_bucket()}/dagsmith"


def test_outputs_round_trip_and_the_manifest_is_the_publish(remote_url):
    store = VariableStore(remote_url)
    frame = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"), "when": pd.to_datetime(["2021-01-01"] * 3, utc=True)})
    v1 = store.write_outputs("p", "run1", "trips", [frame], multi=False, update_latest=False)
    back = store.read_block_value("p", "run1", "trips")
    pd.testing.assert_frame_equal(back, frame)
    store.write_outputs("p", "run1", "small", [{"a": 1}, [1, 2]], multi=True)
    assert store.read_block_value("p", "run1", "small") == [{"a": 1}, [1, 2]]
    assert store.latest_partition("p", "small") == "run1" and store.latest_partition("p", "trips") is None
    store.write_outputs("p", "run1", "many", [{"i": i, "pad": "x" * 100} for i in range(5000)], multi=True)
    assert len(store.read_block_value("p", "run1", "many")) == 5000

    # a second write of the same block publishes a new version and drops the old one
    v2 = store.write_outputs("p", "run1", "trips", [frame.head(1)], multi=False)
    assert v2 != v1 and len(store.read_block_value("p", "run1", "trips")) == 1
    versions = [n for n in store._list_dirs(store.block_dir("p", "run1", "trips")) if n.startswith("v-")]
    assert versions == [f"v-{v2}"]

    # files of a version whose manifest was never written are invisible
    orphan = store.block_dir("p", "run1", "crashed") / "v-deadbeef" / "output_0" / "type.json"
    with store.fs.open_output_stream(str(orphan)) as fh:
        fh.write(b'{"kind": "json"}')
    assert not store.has_outputs("p", "run1", "crashed")
    with pytest.raises(OutputsMissing):
        store.read_block_value("p", "run1", "crashed")
    assert store.stored_blocks("p", "run1") == ["many", "small", "trips"]

    store.write_manifest("p", "run1", {"status": "completed", "blocks": {"trips": {"status": "completed"}}})
    assert store.read_manifest("p", "run1")["status"] == "completed"
    assert store.partitions("p") == ["run1"]
    assert store.delete_partitions("p", ["run1"]) == 1 and store.partitions("p") == []


def test_a_run_and_its_resume_use_the_project_variables_dir(remote_url, tmp_path):
    root = make_project(tmp_path)
    meta = root / "metadata.yaml"
    meta.write_text(meta.read_text() + f"\nvariables_dir: {remote_url}\n")
    flag = tmp_path / "fixed"
    add_pipeline(root, "p", [
        {"uuid": "load", "type": "data_loader",
         "code": "import pandas as pd\n@data_loader\ndef f(**kw):\n    return pd.DataFrame({'v': [1, 2, 3]})\n"},
        {"uuid": "total", "upstream": ["load"], "code": f"""
            import os
            @transformer
            def f(df, **kw):
                if not os.path.exists({str(flag)!r}):
                    raise RuntimeError('not yet')
                return int(df['v'].sum())
        """},
    ])
    first = run_pipeline(root, "p")
    assert first.status == "failed"
    assert not (root / ".dagsmith" / "pipelines").exists()  # nothing went to the local data folder
    store = VariableStore(remote_url)
    assert store.read_block_value("p", first.partition, "load")["v"].tolist() == [1, 2, 3]
    flag.write_text("1")
    from dagsmith.cli.running import _resume_state

    completed = _resume_state(str(root), "p", first.partition)
    assert completed == {"load": first.partition}
    second = run_pipeline(root, "p", completed=completed)
    assert second.ok and store.read_block_value("p", second.partition, "total") == 6


def _finished(db, store, pipeline: str, *, status: str, ended, value: int) -> tuple[int, str]:
    from datetime import timedelta

    from dagsmith.orchestration.store import repo

    with db.session() as s:
        run = repo.create_run(s, pipeline, source="ui", now=ended - timedelta(minutes=1))
        run.status = status
        run.completed_at = ended if status in ("completed", "failed", "cancelled") else None
        run_id, partition = run.id, run.partition or str(run.id)
    store.write_outputs(pipeline, partition, "load", [{"n": value}], multi=False, update_latest=False)
    return run_id, partition


def test_retention_cleans_a_remote_variables_dir(remote_url, tmp_path, monkeypatch):
    """Run retention and ``variables_retention_period`` delete old partitions in an s3:// or gs://
    ``variables_dir`` — never the pinned (latest.json), running or recent ones."""
    from datetime import datetime, timedelta, timezone

    from dagsmith.orchestration.db import get_database
    from dagsmith.orchestration.retention import purge
    from dagsmith.orchestration.settings import OrchestrationSettings

    monkeypatch.delenv("DAGSMITH_DATABASE_URL", raising=False)
    root = make_project(tmp_path)
    meta = root / "metadata.yaml"
    meta.write_text(meta.read_text() + f"\nvariables_dir: {remote_url}\n")
    settings = OrchestrationSettings.from_env(root)
    db = get_database(settings)
    store = VariableStore(remote_url)
    now = datetime.now(timezone.utc)
    _old, old_part = _finished(db, store, "p", status="completed", ended=now - timedelta(days=40), value=1)
    _failed, failed_part = _finished(db, store, "p", status="failed", ended=now - timedelta(days=35), value=2)
    _pinned, pinned_part = _finished(db, store, "p", status="completed", ended=now - timedelta(days=45), value=3)
    _running, running_part = _finished(db, store, "p", status="running", ended=now - timedelta(days=50), value=4)
    _recent, recent_part = _finished(db, store, "p", status="completed", ended=now - timedelta(days=2), value=5)
    store.set_latest("p", {"load": pinned_part})

    report = purge(db, settings.with_(run_retention_days=30), now=now)
    assert report.runs == 3 and report.partitions == 2
    assert set(store.partitions("p")) == {pinned_part, running_part, recent_part}
    assert not (root / ".dagsmith" / "pipelines").exists()  # it cleaned the remote store, not a local folder
    assert store.read_block_value("p", pinned_part, "load") == {"n": 3}

    # outputs older than variables_retention_period (no DB row needed: a CLI run's partition)
    store.write_outputs("q", "cli-run", "load", [1], multi=False, update_latest=False)
    meta.write_text(meta.read_text() + "variables_retention_period: 30d\n")
    later = now + timedelta(days=31)  # object stores keep their own write times: move the clock instead
    report = purge(db, settings, now=later)
    assert "cli-run" not in store.partitions("q") and running_part in store.partitions("p")
    assert pinned_part in store.partitions("p")  # latest.json still points at it
    assert report.partitions == 2  # recent_part (now 33 days old) and cli-run
    db.dispose()
