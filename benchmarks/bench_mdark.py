"""Whole-command benchmark: mdark-dask vs soxspipe 0.17.4 on the same simulated sofs.

Usage::

    .venv/bin/python benchmarks/bench_mdark.py [--repeats 3] [--nir 20] [--vis 10]

Generates the raw frames with the package's simulator (reused between runs under
``benchmarks/data/``), then runs, alternating, ``mdark-dask mdark <sof>`` and
``soxspipe mdark <sof>`` (the oracle venv of ``scripts/build_oracle.sh``) and prints the
median and min-max wall time, the ratio, and the peak memory of the whole process tree
(RSS summed over the process and its children, sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof  # noqa: E402
from tests.oracle import oracle_venv  # noqa: E402


def measure(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS of its process tree in MB)."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err[-500:]}")
    return wall, peak / 2**20


def make_set(spec: DarkSetSpec, data: Path) -> Path:
    """Simulate a set once; return its sof."""
    sof = data / sof_name(spec)
    if not sof.exists():
        frames = simulate_set(spec, data / sof.stem)
        write_sof(sof, frames)
    return sof


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nir", type=int, default=20, help="SOXS NIR frames (2048x2048)")
    parser.add_argument("--vis", type=int, default=10, help="SOXS VIS frames (4096x908)")
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--no-soxspipe", action="store_true")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    sets = {
        f"SOXS NIR {args.nir}x2048^2": (make_set(DarkSetSpec("soxs", "NIR", args.nir, 5.0), args.data), "soxs"),
        f"SOXS VIS {args.vis}x4096x908": (make_set(DarkSetSpec("soxs", "VIS", args.vis, 600.0, start="2026-01-11T09:00:00.000"), args.data), "soxs"),
    }  # fmt: skip
    mdark = str(Path(sys.executable).with_name("mdark-dask"))
    venv = None if args.no_soxspipe else oracle_venv()
    rows = []
    for label, (sof, inst) in sets.items():
        times: dict[str, list[tuple[float, float]]] = {"mdark-dask": [], "soxspipe 0.17.4": []}
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                ws = Path(tmp)
                times["mdark-dask"].append(measure([mdark, "mdark", str(sof), "-o", str(ws / "md"), "-x"], ws))
                if venv is not None:
                    shutil.copy(venv / "lib" / "python3.11" / "site-packages" / "soxspipe" / f"{inst}_default_settings.yaml", ws / "soxspipe.yaml")
                    env = {**os.environ, "HOME": str(ws)}
                    times["soxspipe 0.17.4"].append(measure([str(venv / "bin" / "soxspipe"), "mdark", str(sof), "-s", "./soxspipe.yaml", "-o", str(ws), "-x"], ws, env))
        base = statistics.median(t for t, _ in times["mdark-dask"])
        for tool, runs in times.items():
            if not runs:
                continue
            walls = [t for t, _ in runs]
            med = statistics.median(walls)
            rows.append((label, tool, med, min(walls), max(walls), max(m for _, m in runs), med / base))
    print(f"machine: {platform.node()} {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}")
    print(f"{'set':<24} {'tool':<16} {'median s':>9} {'min-max s':>13} {'peak MB':>8} {'x mdark':>8}")
    for label, tool, med, lo, hi, peak, ratio in rows:
        print(f"{label:<24} {tool:<16} {med:>9.2f} {lo:>6.2f}-{hi:<6.2f} {peak:>8.0f} {ratio:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
