"""Issue 18 items 1-3: files land where Mage writes them, with Mage's bytes; missing objects; key files.

Mage 0.9.80 facts (../shared/MAGE_BEHAVIOUR.md §1-2): FileIO resolves relative paths against
the working directory, which in Mage's layout is the folder above the project; pandas frames
are written with pandas' writers and their defaults (``to_csv`` keeps the index, ``22.0``);
GCS and S3 exports use the same writers; a missing GCS object loads as an empty frame, a
missing S3 key raises ``NoSuchKey``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from dagsmith.io.files import FileIO, file_format
from tests.fixtures.mage_example import MAGE_OUTPUT, TITANIC, add_example_pipeline, clean_frame
from tests.projects import make_project


def _dagsmith(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1"}
    return subprocess.run([sys.executable, "-m", "dagsmith", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


@pytest.mark.integration
def test_example_pipeline_writes_mages_bytes_beside_the_project(tmp_path, http_data_server):
    root = make_project(tmp_path, "demo")
    add_example_pipeline(root, http_data_server(TITANIC))
    r = _dagsmith("run", "demo", "example_pipeline", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    written = tmp_path / "titanic_clean.csv"
    assert written.read_bytes() == MAGE_OUTPUT.read_bytes()
    assert not (root / "titanic_clean.csv").exists()


@pytest.mark.integration
def test_example_pipeline_from_another_folder_still_writes_beside_the_project(tmp_path, http_data_server):
    root = make_project(tmp_path / "home_src", "demo")
    add_example_pipeline(root, http_data_server(TITANIC))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _dagsmith("run", str(root), "example_pipeline", cwd=elsewhere)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "home_src" / "titanic_clean.csv").read_bytes() == MAGE_OUTPUT.read_bytes()
    assert list(elsewhere.iterdir()) == []


def test_relative_paths_follow_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    FileIO().export(pd.DataFrame({"a": [1]}), "sub/out.csv")  # we create the folder (Mage would fail)
    assert (tmp_path / "sub" / "out.csv").read_text() == ",a\n0,1\n"
    assert FileIO().exists("sub/out.csv") and not FileIO().exists("nope.csv")


def test_writers_are_pandas_writers_with_their_defaults(tmp_path):
    df = pd.DataFrame(
        {"a": [1, 2], "x": [1 / 3, None], "t": pd.to_datetime(["2024-01-01 00:00:00.123456", "2024-01-02 00:00:00.000000"])},
        index=[10, 11],
    )
    io_ = FileIO(root=tmp_path)
    io_.export(df, "f.csv")
    assert (tmp_path / "f.csv").read_text() == (
        ",a,x,t\n10,1,0.3333333333333333,2024-01-01 00:00:00.123456\n11,2,,2024-01-02 00:00:00.000000\n"
    )
    io_.export(df, "f.json")
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["a"] == {"10": 1, "11": 2} and data["x"]["10"] == 0.3333333333 and data["t"]["10"] == 1704067200123
    io_.export(df, "f.parquet")
    back = pd.read_parquet(tmp_path / "f.parquet")
    assert list(back.index) == [10, 11] and str(back["t"].dtype) == "datetime64[ms]"
    assert io_.load("f.csv").columns.tolist() == ["Unnamed: 0", "a", "x", "t"]  # as Mage reloads it
    io_.export(df, "g.csv", index=False)  # caller's kwargs reach the writer
    assert (tmp_path / "g.csv").read_text().startswith("a,x,t\n1,")


def test_excel_writes_the_index_column(tmp_path):
    pytest.importorskip("openpyxl", reason="the [excel] extra is part of dagsmith[dev]")
    FileIO(root=tmp_path).export(pd.DataFrame({"a": [5, 6]}), "f.xlsx")
    back = pd.read_excel(tmp_path / "f.xlsx")
    assert back.columns.tolist() == ["Unnamed: 0", "a"] and back["a"].tolist() == [5, 6]


def test_format_names_and_errors(tmp_path):
    assert [file_format(n) for n in ("a.csv", "a.json", "a.parquet", "a.xlsx", "a.xls", "a.hdf5", "a.xml")] == [
        "csv", "json", "parquet", "excel", "excel", "hdf5", "xml",
    ]
    assert file_format("a.bin", "csv") == "csv" and file_format("a", "EXCEL") == "excel"
    with pytest.raises(ValueError) as err:  # Mage raises ValueError too
        FileIO(root=tmp_path).export(pd.DataFrame({"a": [1]}), "out.txt")
    assert "None file format found for this file extension: txt" in str(err.value)


def test_missing_file_is_a_file_not_found_error_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        FileIO(root=tmp_path).load("nope.csv")
    assert str(tmp_path / "nope.csv") in str(err.value) and "working directory" in str(err.value)


def test_file_directories_concatenates_every_file(tmp_path):
    (tmp_path / "d" / "deeper").mkdir(parents=True)
    (tmp_path / "d" / "1.csv").write_text("a\n1\n2\n")
    (tmp_path / "d" / "deeper" / "2.csv").write_text("a\n3\n")
    df = FileIO(root=tmp_path).load(file_directories=["d"])
    assert sorted(df["a"].tolist()) == [1, 2, 3] and list(df.index) == [0, 1, 2]


def test_limit_is_accepted_and_not_applied(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n2\n")
    assert len(FileIO(root=tmp_path).load("x.csv", limit=1)) == 2


# --------------------------------------------------------------------------- object stores


@pytest.mark.integration
def test_gcs_csv_export_has_mages_bytes(gcs_emulator, gcs_bucket):
    from dagsmith.io.gcs import GoogleCloudStorage

    GoogleCloudStorage().export(clean_frame(), gcs_bucket, "out/titanic_clean.csv")
    raw = gcs_emulator.client().bucket(gcs_bucket).blob("out/titanic_clean.csv").download_as_bytes()
    assert raw == MAGE_OUTPUT.read_bytes()


@pytest.mark.integration
def test_s3_csv_export_has_mages_bytes(s3_emulator, s3_bucket):
    from dagsmith.io.s3 import S3
    from dagsmith.project.io_config import ConfigFileLoader

    s3 = S3.with_config(ConfigFileLoader(config=s3_emulator.profile()))
    s3.export(clean_frame(), s3_bucket, "out/titanic_clean.csv")
    raw = s3_emulator.client().get_object(Bucket=s3_bucket, Key="out/titanic_clean.csv")["Body"].read()
    assert raw == MAGE_OUTPUT.read_bytes()
    back = s3.load(s3_bucket, "out/titanic_clean.csv")
    assert back.shape == (891, 7) and back.columns[0] == "Unnamed: 0"


@pytest.mark.integration
def test_gcs_missing_object_is_an_empty_frame_with_a_warning(gcs_emulator, gcs_bucket, capsys):
    from dagsmith.errors import TerminalConnectorError
    from dagsmith.io.gcs import GoogleCloudStorage

    df = GoogleCloudStorage().load(gcs_bucket, "missing/x.parquet")
    assert isinstance(df, pd.DataFrame) and df.shape == (0, 0)
    err = capsys.readouterr().err
    assert "'missing/x.parquet'" in err and repr(gcs_bucket) in err
    with pytest.raises(TerminalConnectorError) as exc:  # a missing bucket still fails (Mage: NotFound)
        GoogleCloudStorage().load("no-such-bucket-dagsmith", "x.csv")
    assert "bucket 'no-such-bucket-dagsmith' not found" in str(exc.value)


@pytest.mark.integration
def test_s3_missing_key_raises_no_such_key_with_our_message(s3_emulator, s3_bucket):
    from botocore.exceptions import ClientError

    from dagsmith.errors import TerminalConnectorError
    from dagsmith.io.s3 import S3
    from dagsmith.project.io_config import ConfigFileLoader

    s3 = S3.with_config(ConfigFileLoader(config=s3_emulator.profile()))
    with pytest.raises(ClientError) as err:
        s3.load(s3_bucket, "nope.csv")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
    assert isinstance(err.value, TerminalConnectorError)
    assert f"s3://{s3_bucket}/nope.csv" in str(err.value) and "NoSuchKey" in str(err.value)
    import pickle

    again = pickle.loads(pickle.dumps(err.value))  # errors cross process boundaries
    assert isinstance(again, ClientError) and again.response["Error"]["Code"] == "NoSuchKey"


# --------------------------------------------------------------------------- key files


@pytest.mark.integration
def test_placeholder_looking_key_path_is_used_when_a_file_is_there(gcs_emulator, tmp_path, monkeypatch):
    from dagsmith.errors import ConfigError
    from dagsmith.io.gcs import google_credentials

    # without a file there: the placeholder error
    with pytest.raises(ConfigError) as err:
        google_credentials(None, "/path/to/your/service/account/key.json")
    assert "placeholder" in str(err.value) and "no file exists there" in str(err.value)
    # a placeholder-looking relative path with a real key file at it: used
    from tests.integration.test_io_gcs import _service_account_key

    monkeypatch.chdir(tmp_path)
    (tmp_path / "path" / "to").mkdir(parents=True)
    (tmp_path / "path" / "to" / "key.json").write_text(json.dumps(_service_account_key("http://127.0.0.1:9/token")))
    creds, project = google_credentials(None, "path/to/key.json")
    assert project == "real-proj" and creds.service_account_email.startswith("etl@")


def test_arrow_tables_still_export(tmp_path):
    import pyarrow as pa

    FileIO(root=tmp_path).export(pa.table({"a": [1, 2]}), "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines() == ['"a"', "1", "2"]  # no index: not a pandas frame
