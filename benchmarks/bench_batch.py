"""Batch benchmark: the 8-set night of ``bench_night.py`` on two one-core SLURM jobs against
the same night on ``--cluster local`` (two single-threaded workers), alternated in the
same run; the time to the first worker; and how long an interrupted SLURM night takes to
exit and to leave the queue empty.

Usage (a SLURM reachable through ``SLURM_CONF``, e.g. the test one)::

    bash scripts/slurm-test-cluster.sh start
    MDARK_SLURM_ENV=/tmp/mdark-slurm/env .venv/bin/python benchmarks/bench_batch.py

Reported: median wall times and their ratio; the seconds from the command's start to
``# REDUCING`` (the first worker has joined and passed the preflight); the seconds from
SIGINT to the command's exit and to an empty ``squeue``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_night import NIGHT, make_night  # noqa: E402
from tests.commands import reducing, slurm_env  # noqa: E402


def definition(folder: Path) -> Path:
    """Two one-core jobs of one worker each, on 127.0.0.1."""
    path = folder / "slurm.yaml"
    path.write_text(
        "type: slurm\ncores: 1\nprocesses: 1\nmemory: 4GB\ninterface: lo\n"
        f"walltime: '00:30:00'\nlocal_directory: {folder / 'workers'}\n"
        f"log_directory: {folder / 'logs'}\npython: {sys.executable}\njobs: 2\n",
        encoding="utf-8",
    )
    return path


def night(raw: Path, ws: Path, cluster: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds to ``# REDUCING``, seconds to the end) of one night."""
    start = time.perf_counter()
    proc, first = reducing(raw, ws, "--cluster", cluster, "-x", env=env)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"night on {cluster} failed: {err[-800:]}")
    return first, time.perf_counter() - start


def queue(env: dict[str, str]) -> list[str]:
    done = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def interrupted(raw: Path, ws: Path, cluster: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds from SIGINT to exit, to an empty queue) of a SLURM night stopped while it
    reduces."""
    proc, _ = reducing(raw, ws, "--cluster", cluster, "-x", env=env)
    time.sleep(1.0)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.communicate()
    exited = time.perf_counter() - sent
    while queue(env):
        time.sleep(0.05)
    return exited, time.perf_counter() - sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data" / "night")
    args = parser.parse_args()
    make_night(args.data)
    raw = args.data / "raw"
    env = slurm_env()
    if env is None:
        print("no SLURM reachable: start one and set MDARK_SLURM_ENV (see above)", file=sys.stderr)
        return 1
    if queue(env):
        print("the SLURM queue is not empty: stop the other jobs first", file=sys.stderr)
        return 1
    local_walls, slurm_walls, first_worker, cancel_exit, cancel_queue = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cluster = str(definition(folder))
        for i in range(args.repeats):
            local_walls.append(night(raw, folder / f"local{i}", "local", env)[1])
            reducing, wall = night(raw, folder / f"slurm{i}", cluster, env)
            first_worker.append(reducing)
            slurm_walls.append(wall)
            exited, emptied = interrupted(raw, folder / f"stop{i}", cluster, env)
            cancel_exit.append(exited)
            cancel_queue.append(emptied)
    local, slurm = statistics.median(local_walls), statistics.median(slurm_walls)
    frames = sum(s.n_frames for s in NIGHT)
    print(f"night: {len(NIGHT)} sets, {frames} frames; {os.cpu_count()} cores")
    print(f"--cluster local (2 workers):   {local:.1f} s  (runs {fmt(local_walls)})")
    print(f"SLURM, 2 one-core jobs:        {slurm:.1f} s  (runs {fmt(slurm_walls)})")
    print(f"SLURM / local: {slurm / local:.2f}")
    print(f"start to first worker + preflight (# REDUCING): {fmt(first_worker)} s")
    print(f"SIGINT to exit: {fmt(cancel_exit)} s; to an empty queue: {fmt(cancel_queue)} s")
    return 0


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
