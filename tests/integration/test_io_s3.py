"""S3 connector on moto's server: objects, partitioned Parquet, AWS_ENDPOINT, errors."""

from __future__ import annotations

import pandas as pd
import pytest

from dagsmith.errors import TerminalConnectorError
from dagsmith.io.s3 import S3
from dagsmith.project.io_config import ConfigFileLoader

pytestmark = pytest.mark.integration

FRAME = pd.DataFrame({"zone": ["a", "b", "a"], "n": pd.array([1, None, 3], dtype="Int64")})


def _s3(s3_emulator):
    return S3.with_config(ConfigFileLoader("io_config.yaml", "default", config=s3_emulator.profile()))


def test_objects_roundtrip_through_aws_endpoint(s3_emulator, s3_bucket):
    s3 = _s3(s3_emulator)
    for key in ("x/data.parquet", "x/data.csv", "x/data.csv.gz", "x/data.json"):
        s3.export(FRAME, s3_bucket, key)
        back = s3.load(s3_bucket, key)
        assert back["zone"].tolist() == ["a", "b", "a"], key
    assert s3.exists(s3_bucket, "x/data.csv") and not s3.exists(s3_bucket, "x/none.csv")
    # the object really is on the emulator, seen by a plain boto3 client
    keys = {o["Key"] for o in s3_emulator.client().list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert "x/data.parquet" in keys


def test_partitioned_dataset(s3_emulator, s3_bucket):
    s3 = _s3(s3_emulator)
    assert s3.export_partitioned(FRAME, s3_bucket, "ds", ["zone"]) == f"s3://{s3_bucket}/ds"
    assert {k.split("/")[1] for k in s3.list_objects(s3_bucket, "ds/") if k.endswith(".parquet")} == {"zone=a", "zone=b"}
    back = s3.load_partitioned(s3_bucket, "ds")
    assert len(back) == 3 and sorted(back["zone"].astype(str)) == ["a", "a", "b"]


def test_missing_bucket_and_object(s3_emulator, s3_bucket):
    s3 = _s3(s3_emulator)
    with pytest.raises(TerminalConnectorError) as err:
        s3.load("no-such-bucket-dagsmith", "a.csv")
    assert "bucket 'no-such-bucket-dagsmith' not found" in str(err.value)
    with pytest.raises(TerminalConnectorError) as err:
        s3.load(s3_bucket, "nope.csv")
    assert f"s3://{s3_bucket}/nope.csv does not exist" in str(err.value)
    assert "testing-secret" not in repr(s3)
