"""Content fingerprints of block outputs: equal data gives an equal fingerprint, whatever run made it.

Used by the block cache: a cached block's key holds the fingerprints of its inputs, so
an upstream block that ran again and returned the same rows still lets it hit, and one
that returned other rows makes it miss. pandas frames and series are hashed with
pandas' own row hashing (values and index) plus the column names and dtypes; Arrow
tables and polars frames through their Arrow IPC bytes; plain JSON values through their
canonical JSON; anything else through pickle (a value that cannot be pickled gets a
random fingerprint, i.e. never hits).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import uuid
from typing import Any


def fingerprint(value: Any) -> str:
    """A short hex digest of ``value``'s content."""
    h = hashlib.blake2b(digest_size=16)
    _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    mod = type(value).__module__.split(".", 1)[0]
    name = type(value).__name__
    if mod == "pandas" and name in ("DataFrame", "Series"):
        import pandas as pd

        h.update(f"pandas.{name}\0".encode())
        if name == "DataFrame":
            h.update(json.dumps([[str(c), str(t)] for c, t in value.dtypes.items()]).encode())
        else:
            h.update(f"{value.name}\0{value.dtype}".encode())
        try:
            h.update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
        except TypeError:  # unhashable cells (lists, dicts): fall back to pickling the frame
            h.update(pickle.dumps(value, protocol=5))
        return
    if mod in ("pyarrow", "polars"):
        import pyarrow as pa

        table = value.to_arrow() if mod == "polars" else value
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        h.update(f"{mod}\0".encode())
        h.update(sink.getvalue().to_pybytes())
        return
    if type(value) in (list, tuple):
        h.update(f"{type(value).__name__}[{len(value)}\0".encode())
        for item in value:
            _feed(h, item)
        return
    try:
        h.update(b"json\0" + json.dumps(value, sort_keys=True, allow_nan=True).encode())
        return
    except (TypeError, ValueError):
        pass
    try:
        h.update(b"pickle\0" + pickle.dumps(value, protocol=5))
    except Exception:  # noqa: BLE001 - an unpicklable value: no stable fingerprint, so never a hit
        h.update(uuid.uuid4().bytes)
