"""Fault injection: a partitioned Parquet export SIGKILLed mid-write never leaves a broken dataset.

A subprocess writes a new version of a dataset and is killed at a named point of the write
(``DAGSMITH_FAULT_POINT``, :mod:`dagsmith.io.faults`): while files are being written, once
they are all staged, while they are copied into place (object stores), after the commit, in
the middle of the fallback swap (local). Each time the dataset must read back — through
dagsmith's loaders, and locally through plain pyarrow too — as exactly the old version or
exactly the new one, never a mix; then an ordinary re-run must leave exactly the new version
and no staging leftovers or extra files beside it. Local folders, fake-gcs-server and moto.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def frame(days: range, version: int, rows_per_day: int = 500) -> pd.DataFrame:
    """Trips of some days of Jan 2021, each row tagged with the version of the dataset it belongs to."""
    return pd.DataFrame({
        "day": [f"2021-01-{d:02d}" for d in days for _ in range(rows_per_day)],
        "trip_id": [d * 100_000 + i for d in days for i in range(rows_per_day)],
        "version": version,
        "fare": [float(i % 97) for d in days for i in range(rows_per_day)],
    })


OLD = frame(range(1, 4), 1)  # days 1–3
NEW = frame(range(2, 5), 2)  # days 2–4, written with delete_matching: day 1 stays, days 2–3 are replaced


def rows(df: pd.DataFrame) -> list[tuple]:
    return sorted(zip(df["day"].astype(str), df["trip_id"], df["version"]))


EXPECTED_OLD = rows(OLD)
EXPECTED_NEW = rows(pd.concat([OLD[OLD.day == "2021-01-01"], NEW]))


class LocalStore:
    name = "local"

    def __init__(self, tmp_path: Path) -> None:
        self.base = tmp_path
        self.root = tmp_path / "lake" / "trips"

    def connector(self) -> str:
        return f"FileIO(root={str(self.base)!r})"

    def call(self) -> str:
        return "export_partitioned(df, 'lake/trips', ['day'], existing_data_behavior='delete_matching')"

    def read(self) -> list[tuple]:
        from dagsmith.io.files import FileIO

        return rows(FileIO(root=self.base).load_partitioned("lake/trips"))

    def read_plain(self) -> list[tuple]:
        """Any reader of the folder (pyarrow directly, no manifest): old or new too."""
        return rows(pq.read_table(self.root).to_pandas())

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.root.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)

    def data_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.parquet"))


class RemoteStore:
    def __init__(self, name: str, connector_src: str, connector, bucket: str) -> None:
        self.name, self._src, self.conn, self.bucket = name, connector_src, connector, bucket

    def connector(self) -> str:
        return self._src

    def call(self) -> str:
        return f"export_partitioned(df, {self.bucket!r}, 'lake/trips', ['day'], existing_data_behavior='delete_matching')"

    def read(self) -> list[tuple]:
        return rows(self.conn.load_partitioned(self.bucket, "lake/trips"))

    def read_plain(self) -> None:
        """Readers that ignore the manifest may see complete new files beside old ones, but never a
        truncated file: every object under the dataset is a whole Parquet file."""
        fs = self.conn.filesystem()
        for key in self.conn.list_objects(self.bucket, "lake/trips/"):
            if key.endswith(".parquet"):
                pq.read_metadata(f"{self.bucket}/{key}", filesystem=fs)
        return None

    def leftovers(self) -> list[str]:
        return [k for k in self.conn.list_objects(self.bucket, "lake/") if ".tmp-" in k]

    def data_files(self) -> list[str]:
        return sorted(k for k in self.conn.list_objects(self.bucket, "lake/trips/") if k.endswith(".parquet"))


@pytest.fixture
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path)
    if request.param == "gcs":
        from dagsmith.io.gcs import GoogleCloudStorage

        bucket = request.getfixturevalue("gcs_bucket")
        return RemoteStore("gcs", "GoogleCloudStorage()", GoogleCloudStorage(), bucket)
    from dagsmith.io.s3 import S3

    emulator = request.getfixturevalue("s3_emulator")
    bucket = emulator.create_bucket()
    profile = emulator.profile()
    return RemoteStore("s3", f"S3.with_config({profile!r})", S3.with_config(profile), bucket)


def write_in_subprocess(store, fault: str | None, prelude: str = "") -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        from dagsmith.io.files import FileIO
        from dagsmith.io.gcs import GoogleCloudStorage
        from dagsmith.io.s3 import S3
        from tests.integration.test_dataset_faults import NEW as df
        {prelude}
        {store.connector()}.{store.call()}
    """)
    env = dict(os.environ)
    env.pop("DAGSMITH_FAULT_POINT", None)
    if fault:
        env["DAGSMITH_FAULT_POINT"] = fault
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def write_in_process(store, df: pd.DataFrame) -> None:
    from dagsmith.io.files import FileIO

    conn = FileIO(root=store.base) if store.name == "local" else store.conn
    args = ("lake/trips",) if store.name == "local" else (store.bucket, "lake/trips")
    conn.export_partitioned(df, *args, ["day"], existing_data_behavior="delete_matching")


# point: which version a reader must see after a kill there
BOTH = {
    "dataset.file_written:2": "old",  # two of the three partition files written (others may be half-written)
    "dataset.staged": "old",  # local: the next version complete beside the dataset; remote: pending files recorded
}
LOCAL = {**BOTH, "dataset.swapped": "new"}  # swapped in, the previous version not yet removed
REMOTE = {
    **BOTH,
    "dataset.copied:2": "old",  # two of three files copied into the dataset, no commit
    "dataset.committed": "new",  # manifest written, the replaced files and the staging prefix not yet deleted
}
KILL_POINTS = {"local": LOCAL, "gcs": REMOTE, "s3": REMOTE}


@pytest.mark.parametrize(
    "store, point", [(s, p) for s, points in KILL_POINTS.items() for p in points], indirect=["store"]
)
def test_writer_killed_at_a_hook_leaves_old_or_new_and_the_rerun_cleans_up(store, point):
    write_in_process(store, OLD)
    assert store.read() == EXPECTED_OLD

    killed = write_in_subprocess(store, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    expected = EXPECTED_OLD if KILL_POINTS[store.name][point] == "old" else EXPECTED_NEW
    assert store.read() == expected
    plain = store.read_plain()
    if plain is not None:
        assert plain == expected

    write_in_process(store, NEW)  # the next run
    assert store.read() == EXPECTED_NEW
    assert store.leftovers() == []
    # one file per partition (day 1 kept from the old version, days 2–4 new): nothing added beside them
    assert len(store.data_files()) == 4, store.data_files()


def test_local_fallback_swap_killed_between_its_two_renames(tmp_path):
    """Without renameat2 the swap is two renames; killed between them, readers get the previous version
    and the next write puts it back before writing."""
    store = LocalStore(tmp_path)
    write_in_process(store, OLD)
    no_renameat2 = "import dagsmith.io.datasets as d; d._renameat2_exchange = lambda a, b: False"
    killed = write_in_subprocess(store, "dataset.half_swapped", prelude=no_renameat2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not store.root.exists()
    assert store.read() == EXPECTED_OLD
    assert write_in_subprocess(store, None, prelude=no_renameat2).returncode == 0
    assert store.read() == store.read_plain() == EXPECTED_NEW
    assert store.leftovers() == []


def summary(rows_: list[tuple]) -> dict:
    """Rows per (day, version): a mix of versions or a lost partition shows here."""
    from collections import Counter

    return dict(Counter((day, version) for day, _, version in rows_))


@pytest.mark.parametrize("delay_s", [0.0, 0.15, 0.4])
def test_local_writer_killed_from_outside_at_any_moment(tmp_path, delay_s):
    """No hook: SIGKILL from outside at some moment while a larger version (1.2M rows) is written."""
    store = LocalStore(tmp_path)
    write_in_process(store, OLD)
    code = textwrap.dedent(f"""
        from dagsmith.io.files import FileIO
        from tests.integration.test_dataset_faults import frame
        FileIO(root={str(tmp_path)!r}).export_partitioned(
            frame(range(2, 5), 2, rows_per_day=400_000), 'lake/trips', ['day'], existing_data_behavior='delete_matching')
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(store.root.parent.glob(".trips.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    old = summary(EXPECTED_OLD)
    new = {("2021-01-01", 1): 500, **{(f"2021-01-0{d}", 2): 400_000 for d in (2, 3, 4)}}
    got = summary(store.read_plain())
    assert got in (old, new)
    assert got == new or proc.returncode == -signal.SIGKILL  # the new version only once the writer finished
    assert summary(store.read()) == got
    write_in_process(store, NEW)
    assert store.read() == EXPECTED_NEW and store.leftovers() == []
    assert len(store.data_files()) == 4


@pytest.mark.parametrize("store", ["local", "gcs", "s3"], indirect=True)
def test_concurrent_writers_of_one_dataset_take_turns(store):
    """A backfill with concurrency: runs of different days replace their partitions at the same time;
    every partition ends up there exactly once (writers wait for each other, none truncates another)."""
    from concurrent.futures import ThreadPoolExecutor

    from dagsmith.io.files import FileIO

    conn = FileIO(root=store.base) if store.name == "local" else store.conn
    where = ("lake/trips",) if store.name == "local" else (store.bucket, "lake/trips")
    days = range(1, 7)

    def write(day: int) -> None:
        df = frame(range(day, day + 1), 1, rows_per_day=50)
        conn.export_partitioned(df, *where, ["day"], if_exists="replace_partition", partition_value=f"2021-01-{day:02d}")

    for _ in range(2):  # twice, as a re-run of the backfill
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, days))
    assert store.read() == rows(frame(days, 1, rows_per_day=50))
    assert len(store.data_files()) == len(days) and store.leftovers() == []


# --------------------------------------------------------------------------- exact claims on object stores

MANY = 8  # writers at once: more than the machine's cores, so some are starved while others claim


def gate_of(store):
    """The manifest gate a write to the store's dataset uses (the emulator passed the precondition probe)."""
    from dagsmith.io.datasets import _ConditionalManifest, _manifest_gate

    gate = _manifest_gate(store.conn.filesystem(), store.conn, f"{store.bucket}/lake/trips")
    assert isinstance(gate, _ConditionalManifest), f"{store.name}: the emulator failed the conditional-write probe"
    return gate


def dead_claim(store) -> None:
    """A writer SIGKILLed after copying two of its three files: its claim stays in the manifest."""
    write_in_process(store, OLD)
    killed = write_in_subprocess(store, "dataset.copied:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]


@pytest.mark.parametrize("existing", ["none", "committed", "dead claim"])
@pytest.mark.parametrize("store", ["gcs", "s3"], indirect=True)
def test_writers_replacing_one_manifest_version_at_once_have_exactly_one_winner(store, existing):
    """The claim itself: MANY writers that read the same manifest version (none yet, a committed one, a
    dead writer's claim) replace it at the same instant; exactly one succeeds and the manifest is its."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    gate = gate_of(store)
    path = f"{store.bucket}/lake/.trips.manifest.json"
    if existing == "committed":
        write_in_process(store, OLD)
    elif existing == "dead claim":
        dead_claim(store)
    with ThreadPoolExecutor(MANY) as pool:
        for attempt in range(15):
            _, version = gate.read(path)
            assert (version is None) == (existing == "none")
            barrier = threading.Barrier(MANY)

            def claim(i: int):
                barrier.wait()
                return gate.write(path, {"pending": {"write_id": f"{attempt}-{i}"}}, version)

            results = list(pool.map(claim, range(MANY)))
            winners = [i for i, v in enumerate(results) if v is not None]
            assert len(winners) == 1, f"attempt {attempt}: writers {winners} all replaced version {version}"
            manifest, now = gate.read(path)
            assert manifest["pending"]["write_id"] == f"{attempt}-{winners[0]}" and now == results[winners[0]]
            if existing == "none":
                store.conn._delete_object(store.bucket, "lake/.trips.manifest.json")
            else:  # the next round replaces a version again
                gate.write(path, {"files": []} if existing == "committed" else manifest, now)


def claim_together(monkeypatch, parties: int) -> None:
    """Every writer's first claim waits until all have read the manifest and listed the dataset: they
    then replace the same version at once (the race the settle-and-read-back claim could lose)."""
    import threading

    import dagsmith.io.datasets as datasets

    barrier = threading.Barrier(parties, timeout=60)
    waited: set[int] = set()
    listing = datasets._remote_files

    def remote_files(fs, root):
        files = listing(fs, root)
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()
        return files

    monkeypatch.setattr(datasets, "_remote_files", remote_files)


def backfill_at_once(store, days: range) -> list[BaseException]:
    """One writer per day, all at once, each replacing its day's partition; the errors they raised."""
    from concurrent.futures import ThreadPoolExecutor

    def write(day: int) -> None:
        df = frame(range(day, day + 1), 1, rows_per_day=50)
        store.conn.export_partitioned(df, store.bucket, "lake/trips", ["day"], if_exists="replace_partition",
                                      partition_value=f"2021-01-{day:02d}")

    with ThreadPoolExecutor(len(days)) as pool:
        futures = [pool.submit(write, day) for day in days]
    return [f.exception() for f in futures if f.exception() is not None]


@pytest.mark.parametrize("store", ["gcs", "s3"], indirect=True)
def test_many_writers_claiming_at_once_never_both_win(store, monkeypatch):
    """MANY writers, SETTLE_S 0 (no grace for the slow): each claims the same manifest version at the same
    instant, one wins, the others wait their turn; no run fails and every partition is there once."""
    import dagsmith.io.datasets as datasets

    gate_of(store)
    monkeypatch.setattr(datasets, "SETTLE_S", 0.0)
    days = range(1, MANY + 1)
    claim_together(monkeypatch, MANY)
    assert backfill_at_once(store, days) == []
    monkeypatch.undo()
    monkeypatch.setattr(datasets, "SETTLE_S", 0.0)
    assert backfill_at_once(store, days) == []  # the re-run, claims not forced together
    assert store.read() == rows(frame(days, 1, rows_per_day=50))
    assert len(store.data_files()) == len(days) and store.leftovers() == []


@pytest.mark.parametrize("store", ["gcs", "s3"], indirect=True)
def test_writers_taking_over_a_dead_writers_claim_at_once(store, monkeypatch):
    """A writer died holding the claim (two of its files copied into the dataset); MANY writers find it
    abandoned at the same instant and take over with the same precondition: one does, the others wait
    for it. No run fails, the dead writer's copies and staging are gone, every partition is there once."""
    import dagsmith.io.datasets as datasets

    dead_claim(store)
    assert store.read() == EXPECTED_OLD
    monkeypatch.setattr(datasets, "SETTLE_S", 0.0)
    days = range(1, MANY + 1)
    claim_together(monkeypatch, MANY)
    assert backfill_at_once(store, days) == []
    assert store.read() == rows(frame(days, 1, rows_per_day=50))
    assert len(store.data_files()) == len(days) and store.leftovers() == []
    manifest = datasets._read_json(store.conn.filesystem(), f"{store.bucket}/lake/.trips.manifest.json")
    assert "pending" not in manifest


def test_an_s3_endpoint_ignoring_preconditions_gets_settle_and_read_back(s3_emulator, monkeypatch, capsys):
    """An S3-compatible server that drops If-None-Match / If-Match (as older ones do) fails the probe:
    dagsmith says so once and takes turns the old way, settle and read back; writes still publish."""
    from moto.s3.responses import S3Response
    from werkzeug.datastructures import Headers

    from dagsmith.io.s3 import S3

    put_object = S3Response.put_object

    def unconditional_put_object(self):
        headers = Headers(self.headers)
        headers.remove("If-Match")
        headers.remove("If-None-Match")
        self.headers = headers
        return put_object(self)

    monkeypatch.setattr(S3Response, "put_object", unconditional_put_object)
    conn = S3.with_config(s3_emulator.profile())
    store = RemoteStore("s3", "", conn, s3_emulator.create_bucket())
    write_in_process(store, OLD)
    assert "does not honour conditional writes" in capsys.readouterr().err
    write_in_process(store, NEW)
    assert store.read() == EXPECTED_NEW and store.leftovers() == []
    assert not conn.conditional_writes(store.bucket, "lake/.trips.manifest.json")
    assert capsys.readouterr().err == ""  # said once per bucket
