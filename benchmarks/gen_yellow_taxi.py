"""Deterministic synthetic NYC yellow-taxi trips (2021-01 schema, 18 columns) as a csv.gz.

The course downloads yellow_tripdata_2021-01.csv.gz (1,369,765 rows); that file is not
available offline, so this writes one with the same columns, types, null pattern (the
last ~7% of rows have no VendorID/passenger_count/RatecodeID/store_and_fwd_flag/
payment_type, as in the real file) and about 2% zero-passenger trips. The same seed
always gives byte-identical output (gzip mtime fixed to 0).

    python benchmarks/gen_yellow_taxi.py OUT.csv.gz [--rows 1369765]
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path

ROWS = 1_369_765
SEED = 20210101
COLUMNS = [
    "VendorID", "tpep_pickup_datetime", "tpep_dropoff_datetime", "passenger_count", "trip_distance",
    "RatecodeID", "store_and_fwd_flag", "PULocationID", "DOLocationID", "payment_type", "fare_amount",
    "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge", "total_amount",
    "congestion_surcharge",
]


def generate(path: str | os.PathLike[str], rows: int = ROWS, seed: int = SEED) -> Path:
    """Write the file (atomically) unless it already exists with the expected row count marker."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out = Path(path)
    marker = out.with_name(out.name + f".{rows}.{seed}.ok")
    if out.exists() and marker.exists():
        return out
    rng = np.random.default_rng(seed)
    start = np.datetime64("2021-01-01T00:00:00", "s")
    pickup = start + np.sort(rng.integers(0, 31 * 86400, rows)).astype("timedelta64[s]")
    duration = rng.gamma(2.0, 420.0, rows).astype("int64") + 30
    dropoff = pickup + duration.astype("timedelta64[s]")
    distance = np.round(rng.gamma(1.6, 1.9, rows), 2)
    fare = np.round(2.5 + distance * 2.5 + duration / 60 * 0.5, 2)
    extra = rng.choice([0.0, 0.5, 1.0, 2.5, 3.0], rows)
    mta = np.full(rows, 0.5)
    tip = np.round(np.where(rng.random(rows) < 0.6, fare * rng.uniform(0.1, 0.3, rows), 0.0), 2)
    tolls = np.where(rng.random(rows) < 0.05, 6.12, 0.0)
    improvement = np.full(rows, 0.3)
    congestion = rng.choice([0.0, 2.5], rows, p=[0.3, 0.7])
    total = np.round(fare + extra + mta + tip + tolls + improvement + congestion, 2)

    missing = np.zeros(rows, dtype=bool)
    missing[int(rows * 0.93):] = True  # the tail of the real file has these columns empty

    def ints(values, mask=None):
        return pa.array(values, type=pa.int64(), mask=mask)

    passengers = rng.choice([0, 1, 2, 3, 4, 5, 6], rows, p=[0.02, 0.70, 0.14, 0.05, 0.03, 0.04, 0.02])
    table = pa.table(
        {
            "VendorID": ints(rng.choice([1, 2], rows, p=[0.3, 0.7]), missing),
            "tpep_pickup_datetime": pa.array(pickup),
            "tpep_dropoff_datetime": pa.array(dropoff),
            "passenger_count": ints(passengers, missing),
            "trip_distance": distance,
            "RatecodeID": ints(rng.choice([1, 2, 3, 4, 5], rows, p=[0.95, 0.02, 0.01, 0.01, 0.01]), missing),
            "store_and_fwd_flag": pa.array(np.where(rng.random(rows) < 0.99, "N", "Y"), mask=missing),
            "PULocationID": ints(rng.integers(1, 266, rows)),
            "DOLocationID": ints(rng.integers(1, 266, rows)),
            "payment_type": ints(rng.choice([1, 2, 3, 4], rows, p=[0.7, 0.27, 0.02, 0.01]), missing),
            "fare_amount": fare,
            "extra": extra,
            "mta_tax": mta,
            "tip_amount": tip,
            "tolls_amount": tolls,
            "improvement_surcharge": improvement,
            "total_amount": total,
            "congestion_surcharge": pa.array(congestion, mask=missing),
        }
    )
    assert table.column_names == COLUMNS
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0, filename="") as gz:
        gz.write((",".join(COLUMNS) + "\n").encode())
        options = pacsv.WriteOptions(quoting_style="none", include_header=False)
        pacsv.write_csv(table, pa.PythonFile(gz, mode="w"), write_options=options)
    os.replace(tmp, out)
    marker.touch()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args()
    print(generate(args.out, args.rows))
