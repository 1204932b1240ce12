"""Benchmark: ``dagsmith dev`` — from a file save to its result on screen (goal: median ≤ 300 ms).

A small pipeline (a loader making 10,000 taxi-like rows, a transformer filtering them, with
a ``@test``) is watched by ``dagsmith dev`` in a child process. Twenty times the transformer
file is rewritten with a new marker in what it prints; the time is taken from just before
the write to the moment the dev loop's end-of-run line (``■ completed …``, printed after the
block's status, tests, printed output and preview) is read from its output, and the marker
is checked to be in that result. The baseline, measured in the same run, is what a user
does without the dev loop: ``dagsmith run PROJECT PIPELINE --block transform`` in a fresh
process after each save (start-up, imports, reading the stored upstream output).

    .venv/bin/python benchmarks/dev_loop.py [--saves 20] [--baseline-runs 5]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import run_process  # noqa: E402

LOADER = '''
import numpy as np
import pandas as pd

@data_loader
def load(*args, **kwargs):
    rng = np.random.default_rng(7)
    n = 10_000
    return pd.DataFrame({
        "passenger_count": rng.integers(0, 6, n),
        "trip_distance": rng.gamma(2.0, 1.5, n).round(2),
        "fare_amount": rng.gamma(3.0, 4.0, n).round(2),
    })
'''

TRANSFORM = '''
@transformer
def transform(df, *args, **kwargs):
    out = df[(df["passenger_count"] > 0) & (df["trip_distance"] > 0)]
    print("marker {marker}", len(out))
    return out


@test
def test_no_empty_trips(out, *args):
    assert (out["passenger_count"] > 0).all(), "trips without passengers"
'''

PIPELINE = """\
name: dev_bench
uuid: dev_bench
type: python
blocks:
- uuid: load
  type: data_loader
  language: python
  upstream_blocks: []
  downstream_blocks: [transform]
- uuid: transform
  type: transformer
  language: python
  upstream_blocks: [load]
  downstream_blocks: []
"""


def make_project(base: Path) -> Path:
    root = base / "devbench"
    for folder in ("data_loaders", "transformers", "utils", "pipelines/dev_bench"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "metadata.yaml").write_text("project_uuid: devbench\n")
    (root / "io_config.yaml").write_text("version: 0.1.1\ndefault: {}\n")
    (root / "data_loaders" / "load.py").write_text(LOADER)
    (root / "transformers" / "transform.py").write_text(TRANSFORM.format(marker="start"))
    (root / "pipelines" / "dev_bench" / "metadata.yaml").write_text(PIPELINE)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--saves", type=int, default=20)
    ap.add_argument("--baseline-runs", type=int, default=5)
    args = ap.parse_args()
    env = {**os.environ, "DAGSMITH_NO_HISTORY": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="dagsmith-devbench-") as tmp:
        root = make_project(Path(tmp))
        block = root / "transformers" / "transform.py"
        proc = subprocess.Popen([sys.executable, "-m", "dagsmith", "dev", str(root), "dev_bench"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        lines: queue.Queue = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put((time.perf_counter(), line))

        threading.Thread(target=pump, daemon=True).start()

        def until(text: str, timeout: float = 120.0) -> tuple[float, list[str]]:
            seen: list[str] = []
            end = time.perf_counter() + timeout
            while time.perf_counter() < end:
                try:
                    at, line = lines.get(timeout=0.5)
                except queue.Empty:
                    if proc.poll() is not None:
                        break
                    continue
                seen.append(line)
                if text in line:
                    return at, seen
            raise SystemExit(f"dagsmith dev never printed {text!r}:\n{''.join(seen)}")

        try:
            until("watching ")
            times = []
            for i in range(args.saves):
                time.sleep(0.3)  # let the machine settle; saves are seconds apart in real use
                text = TRANSFORM.format(marker=f"save-{i}")
                t0 = time.perf_counter()
                block.write_text(text)
                t1, seen = until("■ ")
                if not any(f"marker save-{i}" in line for line in seen) or "■ completed" not in seen[-1]:
                    raise SystemExit(f"save {i}: unexpected result:\n{''.join(seen)}")
                times.append(t1 - t0)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

        base = []
        cmd = [sys.executable, "-m", "dagsmith", "run", str(root), "dev_bench", "--block", "transform"]
        for i in range(args.baseline_runs):
            block.write_text(TRANSFORM.format(marker=f"base-{i}"))
            wall, _rss, out = run_process(cmd, env={"DAGSMITH_NO_HISTORY": "1"})
            if f"marker base-{i}" not in out:
                raise SystemExit(f"baseline run {i} did not run the edited block:\n{out}")
            base.append(wall)

    med = statistics.median(times)
    p90 = sorted(times)[max(0, int(len(times) * 0.9) - 1)]
    bmed = statistics.median(base)
    print(f"dagsmith dev: save → result on screen, {len(times)} saves")
    print(f"  median {med * 1000:.0f} ms   p90 {p90 * 1000:.0f} ms   min {min(times) * 1000:.0f} ms   max {max(times) * 1000:.0f} ms")
    print(f"  goal   ≤ 300 ms median: {'met' if med <= 0.300 else 'NOT met'}")
    print(f"baseline: `dagsmith run … --block transform` in a new process after each save, {len(base)} runs")
    print(f"  median {bmed * 1000:.0f} ms")
    print(f"ratio: the dev loop answers {bmed / med:.1f}x sooner than a fresh `dagsmith run --block`")


if __name__ == "__main__":
    main()
