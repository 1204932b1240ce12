"""Issue 2 figures: start-up, a 1-block pipeline, a 100-block chain, a 50-block fan-out; issue 17: --help;
issue 13: the local executor's per-block overhead and the 1-block run, against their goals.

    python benchmarks/core_runs.py [--repeat 5] [--pairs 21] [--with-mage] [--callgrind]

Wall and CPU seconds are printed with the load average beside them (noisy on a shared
machine); ``--callgrind`` also counts instructions under ``valgrind --tool=callgrind``
(steady under load: the figure to compare between sessions, though it leaves out time in
the kernel — syscalls, thread switches — that the CPU seconds include).

Baseline: a minimal hand-written script doing the same work in one process.
Mage 0.9.80 reference figures on these machines (`mage run`, from the issue):
1-block 2.57 s; 100-block chain 3.11 s (~5 ms/block beyond start-up).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import WORK, dagsmith_cmd, mage_python, measure, report, run_process_rusage  # noqa: E402

TRIVIAL_LOADER = "@data_loader\ndef load(*args, **kwargs):\n    return 1\n"
TRIVIAL_STEP = "@transformer\ndef step(x, *args, **kwargs):\n    return x + 1\n"


def build(root: Path, name: str, blocks: list[tuple[str, str, list[str], str]]) -> None:
    import yaml

    entries = []
    for uuid, btype, ups, code in blocks:
        folder = {"data_loader": "data_loaders", "transformer": "transformers"}[btype]
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{uuid}.py").write_text(code)
        entries.append({"uuid": uuid, "name": uuid, "type": btype, "language": "python", "upstream_blocks": ups,
                        "downstream_blocks": [], "configuration": {}, "executor_type": "local_python"})
    for e in entries:
        e["downstream_blocks"] = [x["uuid"] for x in entries if e["uuid"] in x["upstream_blocks"]]
    p = root / "pipelines" / name
    p.mkdir(parents=True, exist_ok=True)
    (p / "__init__.py").write_text("")
    (p / "metadata.yaml").write_text(yaml.safe_dump({"name": name, "uuid": name, "type": "python", "blocks": entries}))


def make_project() -> Path:
    root = WORK / "bench_core"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "metadata.yaml").write_text("project_type: standalone\n")
    (root / "io_config.yaml").write_text("version: 0.1.1\ndefault: {}\n")
    build(root, "one", [("only", "data_loader", [], TRIVIAL_LOADER)])
    chain = [("c0", "data_loader", [], TRIVIAL_LOADER)]
    chain += [(f"c{i}", "transformer", [f"c{i-1}"], TRIVIAL_STEP) for i in range(1, 100)]
    build(root, "chain100", chain)
    fan = [("root", "data_loader", [], TRIVIAL_LOADER)]
    fan += [(f"f{i}", "transformer", ["root"], TRIVIAL_STEP) for i in range(50)]
    build(root, "fan50", fan)
    return root


BASELINE = """
def load():
    return 1
def step(x):
    return x + 1
x = load()
for _ in range({n}):
    x = step(x)
print(x)
"""


def instructions(cmd: list[str], env: dict[str, str]) -> int:
    """Instructions one run of ``cmd`` executes (callgrind), or 0 when valgrind is not installed."""
    if shutil.which("valgrind") is None:
        return 0
    full = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    full.update(env, PYTHONHASHSEED="0")
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                         capture_output=True, text=True, env=full).stderr
    found = re.search(r"Collected : (\d+)", out)
    return int(found.group(1)) if found else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=21, help="back-to-back (1-block, chain) pairs for the per-block figure")
    ap.add_argument("--with-mage", action="store_true", help="also time Mage 0.9.80 in its own venv (opt-in)")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions with valgrind (slow, steady under load)")
    args = ap.parse_args()
    root = make_project()
    ds = dagsmith_cmd()
    env = {"DAGSMITH_DATA_DIR": str(WORK / "data")}
    base = measure("baseline: hand-written script (1 step)", [sys.executable, "-c", BASELINE.format(n=0)], repeat=args.repeat)
    empty = measure("python -c pass (interpreter start)", [sys.executable, "-c", "pass"], repeat=args.repeat)
    typer_only = measure("python -c 'import typer.main' (what --help avoids)", [sys.executable, "-c", "import typer.main"], repeat=args.repeat)
    help_m = measure("dagsmith --help", [*ds, "--help"], repeat=args.repeat, env=env)
    version_m = measure("dagsmith --version", [*ds, "--version"], repeat=args.repeat, env=env)
    run_help = measure("dagsmith run --help", [*ds, "run", "--help"], repeat=args.repeat, env=env)
    one = measure("dagsmith run: 1-block pipeline", [*ds, "run", str(root), "one"], repeat=args.repeat, env=env)
    chain = measure("dagsmith run: chain of 100 blocks", [*ds, "run", str(root), "chain100"], repeat=args.repeat, env=env)
    fan = measure("dagsmith run: fan-out of 50 blocks", [*ds, "run", str(root), "fan50"], repeat=args.repeat, env=env)
    # the per-block figure is a small difference of two ~0.15 s runs whose start-up alone varies by tens of ms
    # here: measured on pairs run back to back (1-block, then chain), so a slow spell of the machine hits both
    # sides of a pair; the figure is the median over the pairs, with its quartiles beside it
    pairs = [
        (run_process_rusage([*ds, "run", str(root), "one"], env=env), run_process_rusage([*ds, "run", str(root), "chain100"], env=env))
        for _ in range(args.pairs)
    ]
    walls = sorted((c[0] - o[0]) / 99 * 1000 for o, c in pairs)
    cpus = sorted(((c[1].ru_utime + c[1].ru_stime) - (o[1].ru_utime + o[1].ru_stime)) / 99 * 1000 for o, c in pairs)
    quart = lambda xs: (xs[len(xs) // 4], xs[(3 * len(xs)) // 4])  # noqa: E731
    per_block_ms, per_block_cpu_ms = statistics.median(walls), statistics.median(cpus)
    per_block_switches = round(statistics.median((c[1].ru_nvcsw - o[1].ru_nvcsw) / 99 for o, c in pairs), 1) + 0.0  # no "-0.0"
    load = "load average %.2f %.2f %.2f" % os.getloadavg()
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    rows = [empty, typer_only, help_m, version_m, run_help, one, chain, fan]
    notes = [
        f"dagsmith --help: {help_m.wall:.3f} s = {help_m.wall / empty.wall:.2f}× `python -c pass` ({empty.wall:.3f} s) (goal ≤ 0.1 s;"
        f" Typer + Click alone: {typer_only.wall - empty.wall:.3f} s above the interpreter)",
        f"local executor per block (100-block chain minus 1-block, whole process, median of {args.pairs} back-to-back"
        f" pairs): {per_block_ms:.2f} ms wall (quartiles {quart(walls)[0]:.2f}–{quart(walls)[1]:.2f}),"
        f" {per_block_cpu_ms:.2f} ms CPU (quartiles {quart(cpus)[0]:.2f}–{quart(cpus)[1]:.2f}),"
        f" {per_block_switches:.1f} voluntary context switches"
        f" (goal <= 0.5 ms: {met(per_block_ms <= 0.5)}; Mage 0.9.80 ≈ 40 ms) [{load}]",
        f"1-block pipeline: {one.wall:.3f} s wall, {one.cpu:.3f} s CPU (goal <= 0.2 s: {met(one.wall <= 0.2)};"
        f" Mage 0.9.80: 2.57 s → {2.57 / one.wall:.1f}× faster) [{load}]",
        f"100-block chain: {chain.wall:.3f} s (Mage 0.9.80: 3.11 s → {3.11 / chain.wall:.1f}× faster)",
    ]
    if args.callgrind:
        i_pass = instructions([sys.executable, "-c", "pass"], env)
        i_one = instructions([*ds, "run", str(root), "one"], env)
        i_chain = instructions([*ds, "run", str(root), "chain100"], env)
        if i_one:
            notes.append(
                f"callgrind: python -c pass {i_pass / 1e6:.0f}M, 1-block run {i_one / 1e6:.0f}M, 100-block chain"
                f" {i_chain / 1e6:.0f}M instructions → {(i_chain - i_one) / 99 / 1e3:.0f}k a block"
            )
        else:
            notes.append("callgrind: valgrind not found; no instruction counts")
    mpy = mage_python(create=args.with_mage)
    if mpy is not None:
        mage = str(mpy.with_name("mage"))
        for label, pipe in (("mage run: 1-block", "one"), ("mage run: chain 100", "chain100"), ("mage run: fan-out 50", "fan50")):
            m = measure(label, [mage, "run", str(root), pipe], repeat=max(1, args.repeat // 2), warmup=0)
            rows.append(m)
    report("core runs (issue 2)", rows, base, notes)


if __name__ == "__main__":
    main()
