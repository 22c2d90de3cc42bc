"""Night benchmark: ``mdark-dask night`` on the default LocalCluster vs ``mdark-dask mdark``
on each set one after the other, in the same run.

Usage::

    .venv/bin/python benchmarks/bench_night.py [--repeats 2]

A simulated night of 8 sets (5-10 frames each, every SOXS and X-shooter arm, native raw
sizes) is generated once under ``benchmarks/data/night``. Reported: median wall times and
their ratio (scan and cluster start included in the night), the workers' busy fraction
(their CPU time over threads x wall, from the night's JSON report), the peak
RSS of every worker process against its memory limit, and bytes spilled to disk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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

NIGHT = (
    DarkSetSpec("soxs", "NIR", 8, 5.0, start="2026-01-11T01:00:00.000", seed=1),
    DarkSetSpec("soxs", "NIR", 6, 60.0, start="2026-01-11T01:30:00.000", seed=2),
    DarkSetSpec("soxs", "VIS", 5, 600.0, start="2026-01-11T02:00:00.000", seed=3),
    DarkSetSpec("soxs", "VIS", 6, 300.0, binning=(2, 2), start="2026-01-11T03:30:00.000", seed=4),
    DarkSetSpec("xsh", "UVB", 5, 60.0, start="2026-01-11T05:00:00.000", seed=5),
    DarkSetSpec("xsh", "VIS", 5, 60.0, start="2026-01-11T05:30:00.000", seed=6),
    DarkSetSpec("xsh", "NIR", 10, 120.0, start="2026-01-11T06:00:00.000", seed=7),
    DarkSetSpec("xsh", "NIR", 6, 300.0, start="2026-01-11T07:00:00.000", seed=8),
)


def make_night(data: Path) -> list[Path]:
    """Simulate the night once; return one sof per set (for the sequential runs)."""
    sofs = []
    for spec in NIGHT:
        sof = data / "sof" / sof_name(spec)
        if not sof.exists():
            frames = simulate_set(spec, data / "raw" / sof.stem)
            write_sof(sof, frames)
        sofs.append(sof)
    return sofs


def run(cmd: list[str]) -> tuple[float, dict[int, int]]:
    """Run a command; return its wall time and the peak RSS of each descendant process."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        try:
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    peaks[child.pid] = max(peaks.get(child.pid, 0), child.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {err[-800:]}")
    return wall, peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data" / "night")
    args = parser.parse_args()
    sofs = make_night(args.data)
    exe = str(Path(sys.executable).with_name("mdark-dask"))
    seq_walls, night_walls, busy, spilled, worker_peaks = [], [], [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            ws = Path(tmp)
            start = time.perf_counter()
            for sof in sofs:
                run([exe, "mdark", str(sof), "-o", str(ws / "seq"), "-x"])
            seq_walls.append(time.perf_counter() - start)
            wall, peaks = run([exe, "night", str(args.data / "raw"), "-o", str(ws / "night"), "-x"])
            night_walls.append(wall)
            report = json.loads((ws / "night" / "night_report.json").read_text())
            busy.append(report["compute"]["busy_fraction"])
            spilled.append(report["compute"]["spilled_bytes"])
            # the workers are the biggest descendants (nanny processes are small)
            worker_peaks.append(sorted(peaks.values())[-2:])
            assert all(s["status"] == "done" for s in report["sets"]), report["sets"]
    frames = sum(s.n_frames for s in NIGHT)
    limit = psutil.virtual_memory().total / (psutil.cpu_count() or 1)
    seq, night = statistics.median(seq_walls), statistics.median(night_walls)
    print(f"night: {len(NIGHT)} sets, {frames} frames; {psutil.cpu_count()} cores")
    print(f"sequential mdark (sum of {len(sofs)} commands): {seq:.1f} s  (runs {seq_walls})")
    print(f"night on default LocalCluster:               {night:.1f} s  (runs {night_walls})")
    print(f"night / sequential: {night / seq:.0%} (target <= 60%)")
    print(f"worker busy fraction (CPU / threads x wall): {busy} (target >= 80%)")
    peak = max(max(p) for p in worker_peaks) / 2**20
    print(
        f"peak worker RSS: {peak:.0f} MB of a {limit / 2**20:.0f} MB limit; spilled bytes {spilled}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
