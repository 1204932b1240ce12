"""Google Cloud Storage connector on fake-gcs-server: objects, partitioned Parquet, credentials."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagsmith.errors import ConfigError, TerminalConnectorError
from dagsmith.io.gcs import GoogleCloudStorage
from dagsmith.project.io_config import ConfigFileLoader

pytestmark = pytest.mark.integration

FRAME = pd.DataFrame(
    {
        "vendor_id": pd.array([1, 2, None], dtype="Int64"),
        "lpep_pickup_date": pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-01"]).date,
        "fare": [1.5, 2.5, 3.5],
    }
)


def test_export_and_load_csv_and_parquet(gcs_emulator, gcs_bucket):
    gcs = GoogleCloudStorage.with_config(ConfigFileLoader(config={}))
    for key in ("taxi/data.parquet", "taxi/data.csv"):
        assert gcs.export(FRAME, gcs_bucket, key) == f"gs://{gcs_bucket}/{key}"
        back = gcs.load(gcs_bucket, key)
        assert back["fare"].tolist() == [1.5, 2.5, 3.5]
        assert back["vendor_id"].isna().sum() == 1
    assert gcs.exists(gcs_bucket, "taxi/data.csv") and not gcs.exists(gcs_bucket, "taxi/none.csv")


def test_partitioned_dataset_first_class_and_course_style(gcs_emulator, gcs_bucket):
    gcs = GoogleCloudStorage()
    url = gcs.export_partitioned(FRAME, gcs_bucket, "green_taxi", ["lpep_pickup_date"])
    assert url == f"gs://{gcs_bucket}/green_taxi"
    keys = gcs.list_objects(gcs_bucket, "green_taxi/")
    assert {k.split("/")[1] for k in keys} == {"lpep_pickup_date=2021-01-01", "lpep_pickup_date=2021-01-02"}
    back = gcs.load_partitioned(gcs_bucket, "green_taxi")
    assert sorted(back["fare"].tolist()) == [1.5, 2.5, 3.5]

    # the course's block: pyarrow directly with a GcsFileSystem
    pq.write_to_dataset(
        pa.Table.from_pandas(FRAME),
        root_path=f"{gcs_bucket}/course_style",
        partition_cols=["lpep_pickup_date"],
        filesystem=gcs.filesystem(),
    )
    assert len(gcs.load(gcs_bucket, "course_style")) == 3  # a folder of Parquet files loads as one table


def test_missing_bucket_and_missing_object(gcs_emulator, gcs_bucket):
    gcs = GoogleCloudStorage()
    with pytest.raises(TerminalConnectorError) as err:
        gcs.load("no-such-bucket-dagsmith", "x.csv")
    assert "bucket 'no-such-bucket-dagsmith' not found" in str(err.value)
    with pytest.raises(TerminalConnectorError) as err:
        gcs.export(FRAME, "no-such-bucket-dagsmith", "x.csv")
    assert "no-such-bucket-dagsmith" in str(err.value)
    assert gcs.load(gcs_bucket, "missing/x.parquet").empty  # Mage's behaviour (tests/compat)


PLACEHOLDER = {
    "type": "service_account",
    "project_id": "project-id",
    "private_key_id": "key-id",
    "private_key": "-----BEGIN PRIVATE KEY-----\nyour_private_key\n-----END_PRIVATE_KEY",
    "client_email": "your_service_account_email",
}


def test_placeholder_key_is_refused_with_a_clear_message(gcs_emulator, tmp_path):
    config = ConfigFileLoader(
        str(tmp_path / "io_config.yaml"), "default",
        config={"GOOGLE_SERVICE_ACC_KEY": PLACEHOLDER, "GOOGLE_SERVICE_ACC_KEY_FILEPATH": str(tmp_path / "k.json")},
    )
    with pytest.raises(ConfigError) as err:
        GoogleCloudStorage.with_config(config).load("b", "k.csv")
    message = str(err.value)
    assert "GOOGLE_SERVICE_ACC_KEY" in message and "placeholder" in message and "'default'" in message
    assert "delete" in message


def test_key_file_that_does_not_exist(gcs_emulator):
    config = ConfigFileLoader(config={"GOOGLE_SERVICE_ACC_KEY_FILEPATH": "/home/src/my-key.json"})
    with pytest.raises(ConfigError) as err:
        GoogleCloudStorage.with_config(config).load("b", "k.csv")
    assert "/home/src/my-key.json" in str(err.value) and "does not exist" in str(err.value)


def _stub_token_server():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            calls.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"access_token": "x", "expires_in": 3600, "token_type": "Bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, calls


def _service_account_key(token_uri: str) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "real-proj",
        "private_key_id": "abc123",
        "private_key": pem,
        "client_email": "etl@real-proj.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


def test_key_dict_wins_over_file_path_and_both_work(gcs_emulator, gcs_bucket, tmp_path, env_patch):
    server, calls = _stub_token_server()
    token_uri = f"http://127.0.0.1:{server.server_address[1]}/token"
    env_patch("GCE_METADATA_HOST", f"127.0.0.1:{server.server_address[1]}")
    env_patch("GCE_METADATA_IP", f"127.0.0.1:{server.server_address[1]}")
    env_patch("NO_GCE_CHECK", "true")
    try:
        key = _service_account_key(token_uri)
        key_file = tmp_path / "key.json"
        key_file.write_text(json.dumps(key))
        # dict present: used even though the file path is set (and the path is bogus)
        with_dict = GoogleCloudStorage.with_config(
            ConfigFileLoader(config={"GOOGLE_SERVICE_ACC_KEY": key, "GOOGLE_SERVICE_ACC_KEY_FILEPATH": "/nope.json"})
        )
        with_dict.export(FRAME, gcs_bucket, "sa/dict.parquet")
        assert with_dict.client.project == "real-proj"
        with_file = GoogleCloudStorage.with_config(
            ConfigFileLoader(config={"GOOGLE_SERVICE_ACC_KEY_FILEPATH": str(key_file)})
        )
        assert len(with_file.load(gcs_bucket, "sa/dict.parquet")) == 3
        assert calls, "the service-account key was exchanged for a token at its token_uri"
        assert "BEGIN PRIVATE KEY" not in repr(with_dict)
    finally:
        server.shutdown()


def test_mage_import_names(gcs_emulator, gcs_bucket):
    from dagsmith.blocks.mage_imports import aliasing

    with aliasing():
        from mage_ai.io.config import ConfigFileLoader as CFL
        from mage_ai.io.google_cloud_storage import GoogleCloudStorage as MageGCS

        MageGCS.with_config(CFL(config={})).export(FRAME, gcs_bucket, "m/x.parquet")
        assert len(MageGCS.with_config(CFL(config={})).load(gcs_bucket, "m/x.parquet")) == 3
