"""Files (FileIO) and the HTTP API loader, on the real NYC taxi files served over 127.0.0.1."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from dagsmith.errors import TerminalConnectorError
from dagsmith.io import http
from dagsmith.io.files import FileIO

pytestmark = pytest.mark.integration

GREEN = "nyc-tlc-data/green/green_tripdata_2021-01.csv.gz"
TAXI_DTYPES = {
    "VendorID": pd.Int64Dtype(),
    "passenger_count": pd.Int64Dtype(),
    "trip_distance": float,
    "RatecodeID": pd.Int64Dtype(),
    "store_and_fwd_flag": str,
    "PULocationID": pd.Int64Dtype(),
    "DOLocationID": pd.Int64Dtype(),
    "payment_type": pd.Int64Dtype(),
    "fare_amount": float,
    "extra": float,
    "mta_tax": float,
    "tip_amount": float,
    "tolls_amount": float,
    "improvement_surcharge": float,
    "total_amount": float,
    "congestion_surcharge": float,
}
PARSE_DATES = ["lpep_pickup_datetime", "lpep_dropoff_datetime"]


def test_api_loader_reads_csv_gz_with_dtypes_like_pandas(http_data_server):
    url = http_data_server(GREEN)
    fast = http.read_csv(url, dtype=TAXI_DTYPES, parse_dates=PARSE_DATES)
    slow = pd.read_csv(url, sep=",", compression="gzip", dtype=TAXI_DTYPES, parse_dates=PARSE_DATES)
    assert fast.shape == slow.shape and list(fast.columns) == list(slow.columns)
    for column in TAXI_DTYPES:
        assert fast[column].dtype == slow[column].dtype, column
    assert str(fast["lpep_pickup_datetime"].dtype).startswith("datetime64")
    assert (fast["lpep_pickup_datetime"] == slow["lpep_pickup_datetime"]).all()
    pd.testing.assert_series_equal(fast["passenger_count"], slow["passenger_count"])
    pd.testing.assert_series_equal(fast["total_amount"], slow["total_amount"])


def test_api_loader_arrow_backend(http_data_server):
    df = http.read_csv(http_data_server(GREEN), dtype=TAXI_DTYPES, parse_dates=PARSE_DATES, backend="arrow")
    assert isinstance(df["VendorID"].dtype, pd.ArrowDtype)
    assert (df[df["passenger_count"] > 0]["passenger_count"] > 0).all()


def test_404_names_the_url_without_retrying(http_data_server):
    url = http_data_server("nyc-tlc-data/green/no_such_file.csv.gz")
    with pytest.raises(TerminalConnectorError) as err:
        http.download(url, retries=3, backoff=5)  # a retry would take > 5 s
    assert "404" in str(err.value) and url in str(err.value)


def test_5xx_is_retried_with_backoff(http_data_server):
    url = http_data_server("_flaky/2/nyc-tlc-data/misc/taxi_zone_lookup.csv")
    df = http.HTTP(retries=3).load(url)
    assert len(df) == 265


def test_5xx_gives_up_after_retries(http_data_server):
    from dagsmith.errors import TransientConnectorError

    url = http_data_server("_flaky/10/nyc-tlc-data/misc/taxi_zone_lookup.csv")
    with pytest.raises(TransientConnectorError) as err:
        http.download(url, retries=1, backoff=0.01)
    assert "503" in str(err.value) and "2 attempts" in str(err.value)


def test_connection_refused_is_transient_and_fast():
    from dagsmith.errors import TransientConnectorError
    from tests.fixtures.services import free_port

    with pytest.raises(TransientConnectorError) as err:
        http.download(f"http://127.0.0.1:{free_port()}/x.csv", retries=1, backoff=0.01)
    assert "127.0.0.1" in str(err.value)


def test_credentials_in_urls_are_not_printed():
    assert http.safe_url("https://bob:hunter2@example.com/f.csv?token=abc&x=1") == (
        "https://bob:******@example.com/f.csv?token=******&x=1"
    )


def test_gzip_content_encoding_is_decoded(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = gzip.compress(b"a,b\n1,2\n3,4\n")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        df = http.read_csv(f"http://127.0.0.1:{server.server_address[1]}/data.csv")
    finally:
        server.shutdown()
    assert df["b"].tolist() == [2, 4]


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "json", "xlsx"])
def test_fileio_roundtrip_each_format_relative_to_working_directory(tmp_path, monkeypatch, fmt):
    monkeypatch.chdir(tmp_path)
    df = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None], "x": [0.5, 1.5, 2.5]})
    path = FileIO().export(df, f"out/data.{fmt}", index=False)
    assert path == tmp_path / "out" / f"data.{fmt}"
    back = FileIO().load(f"out/data.{fmt}")
    assert back["id"].tolist() == [1, 2, 3]
    assert back["x"].tolist() == [0.5, 1.5, 2.5]
    assert back["name"].tolist()[:2] == ["a", "b"]


def test_fileio_reads_the_real_titanic_csv():
    from tests.fixtures.services import SHARED_DATA

    df = FileIO().load(SHARED_DATA / "datasciencedojo-datasets" / "titanic.csv")
    assert len(df) == 891 and "Survived" in df.columns


def test_ragged_csv_names_the_line(tmp_path):
    # a short row is padded with NaN (pandas, hence Mage); a long one is an error naming its line
    (tmp_path / "rag.csv").write_text("a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n9,10,11\n")
    with pytest.raises(TerminalConnectorError) as err:
        FileIO(root=tmp_path).load("rag.csv")
    assert "rag.csv, line 4" in str(err.value)


def test_non_utf8_csv_names_the_line(tmp_path):
    (tmp_path / "bad.csv.gz").write_bytes(gzip.compress(b"a,b\n1,x\n2,y\n3,caf\xe9\n"))
    with pytest.raises(TerminalConnectorError) as err:
        FileIO(root=tmp_path).load("bad.csv.gz")
    assert "line 4" in str(err.value) and "utf-8" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(TerminalConnectorError) as err:
        FileIO(root=tmp_path).load("nope.parquet")
    assert "nope.parquet" in str(err.value)
