"""``mdark-dask demo``: simulate a small set of darks for every arm and reduce them all.

The main job on built-in example data: raw frames from :mod:`mdark_dask.simulate`, one sof
per set, one master dark per set (the same code path as ``mdark-dask mdark``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

from mdark_dask.numerics.qc import failed
from mdark_dask.recipe import plan_product
from mdark_dask.scheduler import compute_products
from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof

DEMO_SETS = (
    DarkSetSpec("soxs", "NIR", exptime=5.0, start="2026-01-11T08:29:24.123", seed=1),
    DarkSetSpec("soxs", "VIS", exptime=600.0, start="2026-01-11T09:00:00.000", seed=2),
    DarkSetSpec("xsh", "UVB", exptime=60.0, start="2026-01-11T10:00:00.000", seed=3),
    DarkSetSpec("xsh", "VIS", exptime=60.0, start="2026-01-11T10:30:00.000", seed=4),
    DarkSetSpec("xsh", "NIR", exptime=120.0, start="2026-01-11T11:00:00.000", seed=5),
)


def run_demo(directory: Path, n_frames: int, out: Callable[[str], None]) -> int:
    """Simulate, write sofs, reduce; print a summary. Returns the exit status."""
    started = time.perf_counter()
    sofs = []
    for spec in DEMO_SETS:
        spec = DarkSetSpec(**{**spec.__dict__, "n_frames": n_frames})
        name = sof_name(spec)
        frames = simulate_set(spec, directory / "raw" / name[: -len(".sof")])
        sofs.append(write_sof(directory / "sof" / name, frames))
        out(f"simulated {n_frames} {spec.instrument.upper()} {spec.arm} darks -> {sofs[-1]}")
    plans = [plan_product([str(sof)], directory) for sof in sofs]
    results = compute_products(plans, scheduler="threads")
    rows = [
        [
            r.name,
            r.instrument.upper(),
            r.arm,
            r.n_frames,
            next(q.value for q in r.qc if q.name == "HOTPIX NUM"),
            "fail: " + ", ".join(failed(r.qc)) if failed(r.qc) else "pass",
            r.path,
        ]
        for r in results
    ]
    out("")
    out(tabulate(rows, headers=["set", "inst", "arm", "frames", "hot px", "QC", "product"]))
    out(
        f"\n{len(results)} master darks in {time.perf_counter() - started:.1f}s; "
        f"QC plots in {directory / 'qc' / 'soxs_mdark'}"
    )
    return 0
