"""Timing whole processes: several runs, median wall time, peak RSS, ratios against a baseline.

Every case is measured beside its baseline in the same invocation, because these
machines are noisy: the printed ratios are what to compare, not absolute seconds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"


@dataclass
class Measure:
    label: str
    walls: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    """CPU seconds (user + system) of the process: steadier than wall time on a busy machine."""
    switches: list[int] = field(default_factory=list)
    """voluntary context switches of the process (thread hand-offs, waits): the same on a busy machine"""

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus) if self.cpus else 0.0

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def rss(self) -> float:
        return max(self.rss_mb) if self.rss_mb else 0.0


def run_process(cmd: Sequence[str], *, cwd: str | os.PathLike[str] | None = None, env: dict | None = None,
                check: bool = True) -> tuple[float, float, str]:
    """Run ``cmd`` once; returns (wall seconds, peak RSS in MB of that process, output)."""
    wall, rss, _cpu, text = run_process_usage(cmd, cwd=cwd, env=env, check=check)
    return wall, rss, text


def run_process_usage(cmd: Sequence[str], *, cwd: str | os.PathLike[str] | None = None, env: dict | None = None,
                      check: bool = True) -> tuple[float, float, float, str]:
    """Run ``cmd`` once; returns (wall seconds, peak RSS in MB, CPU seconds, output)."""
    wall, usage, text = run_process_rusage(cmd, cwd=cwd, env=env, check=check)
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime, text


def run_process_rusage(cmd: Sequence[str], *, cwd: str | os.PathLike[str] | None = None, env: dict | None = None,
                       check: bool = True) -> tuple[float, Any, str]:
    """Run ``cmd`` once; returns (wall seconds, its ``resource.struct_rusage``, output)."""
    # measure what users get: bytecode caches on (some shells set PYTHONDONTWRITEBYTECODE)
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    full_env.update(env or {})
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(65536), b""):
        out += chunk
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-3000:]}")
    return wall, usage, text


def measure(label: str, cmd: Sequence[str], *, repeat: int = 5, warmup: int = 1, **kw) -> Measure:
    m = Measure(label)
    for _ in range(warmup):
        run_process(cmd, **kw)
    for _ in range(repeat):
        wall, usage, _ = run_process_rusage(cmd, **kw)
        m.walls.append(wall)
        m.rss_mb.append(usage.ru_maxrss / 1024.0)
        m.cpus.append(usage.ru_utime + usage.ru_stime)
        m.switches.append(usage.ru_nvcsw)
    return m


def report(title: str, rows: list[Measure], baseline: Measure, notes: Sequence[str] = ()) -> None:
    print(f"\n## {title}")
    print(f"{'case':48} {'median s':>9} {'peak MB':>8} {'× baseline':>11}")
    for m in [baseline, *rows]:
        ratio = m.wall / baseline.wall if baseline.wall else float("nan")
        print(f"{m.label:48} {m.wall:9.3f} {m.rss:8.0f} {ratio:11.2f}")
    for n in notes:
        print(f"  {n}")


def dagsmith_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("dagsmith")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dagsmith"]


def mage_python(create: bool = False) -> Path | None:
    """The Python of the opt-in Mage 0.9.80 venv (created on request; 1.4 GB, never in CI)."""
    venv = HERE / ".mage-venv"
    py = venv / "bin" / "python"
    if py.exists():
        return py
    if not create:
        return None
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "mage-ai==0.9.80"], check=True)
    return py
