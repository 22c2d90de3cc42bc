"""Hot-pixel map against the injected truth, per arm, beside soxspipe's QUAL mask.

Usage::

    .venv/bin/python benchmarks/bench_hotpix.py [--frames 10] [--arms soxs-nir xsh-uvb]
        [--cosmic-scale 5] [--telegraph 1e-4] [--keep DIR]

For every arm a full-size set is simulated with heavy-tailed hot pixels (Pareto II excess
dark currents, alpha = 1: from barely warm to saturated), telegraph pixels (two levels,
each frame independently at either with probability 1/2, amplitudes log-uniform in 8-80 x
RON) and cosmic rays (the simulator's
rate times ``--cosmic-scale``), reduced by ``mdark-dask`` in ``soxspipe-0.17.4`` numerics
(its QUAL is bit-identical to soxspipe's, see tests/test_parity.py), and both masks are
scored against the truth (:func:`mdark_dask.simulate.score_flags`):

* hot recall: flagged fraction of the injected hot pixels whose excess over the master
  level exceeds 5 sigma of the master's per-pixel uncertainty (its ERRS image);
* false flags: flagged pixels that are no injected defect (hot, cold or telegraph), as a
  fraction of all pixels;
* telegraph recall: flagged fraction of the telegraph pixels, and of those seen at each
  level in at least two frames (a single jump looks exactly like a cosmic-ray hit).

"map" is the hot-pixel map (any bit), "QUAL" soxspipe's mask (HOTPIX NUM).

With ``--time-final SOF`` it times instead the hot-pixel search and the QC plots of the
final task on one real set (warm: the minimum of ``--repeats`` calls in one process, after
one call that loads the compiled kernels and the fonts)::

    .venv/bin/python benchmarks/bench_hotpix.py \
        --time-final benchmarks/data/20260111T082924_NIR_3_MDARK_5_0S_SOXS.sof
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mdark_dask.plan.product import plan_product  # noqa: E402
from mdark_dask.scheduler import compute_products  # noqa: E402
from mdark_dask.simulate import (  # noqa: E402
    DarkSetSpec,
    FlagScore,
    injected_defects,
    score_flags,
    simulate_set,
    sof_name,
    write_sof,
)

#: arm -> (instrument, arm, exposure time in s, seed)
ARMS = {
    "soxs-nir": ("soxs", "NIR", 300.0, 71),
    "soxs-vis": ("soxs", "VIS", 600.0, 72),
    "xsh-uvb": ("xsh", "UVB", 600.0, 73),
    "xsh-vis": ("xsh", "VIS", 600.0, 74),
    "xsh-nir": ("xsh", "NIR", 300.0, 75),
}


def arm_spec(
    key: str,
    frames: int,
    cosmic_scale: float,
    telegraph: float,
    shape: tuple[int, int] | None = None,
) -> DarkSetSpec:
    """The benchmark's set of one arm."""
    instrument, arm, exptime, seed = ARMS[key]
    return DarkSetSpec(
        instrument,
        arm,
        n_frames=frames,
        exptime=exptime,
        seed=seed,
        shape=shape,
        hot_tail=1.0,
        telegraph_fraction=telegraph,
        cosmic_scale=cosmic_scale,
    )


def measure(
    spec: DarkSetSpec, root: Path, rows: int | None = None, scheduler: str = "sync"
) -> tuple[FlagScore, FlagScore, dict[str, float]]:
    """Simulate, reduce and score one set: (map score, QUAL score, facts)."""
    t0 = time.perf_counter()
    frames = simulate_set(spec, root / "raw")
    sof = write_sof(root / sof_name(spec), frames)
    t1 = time.perf_counter()
    plan = plan_product([str(sof)], root / "ws", numerics="soxspipe-0.17.4", rows=rows, plots=False)
    (result,) = compute_products([plan], scheduler)
    t2 = time.perf_counter()
    with fits.open(result.path) as hdul:
        qual = np.asarray(hdul["QUAL"].data) != 0
        errs = np.asarray(hdul["ERRS"].data, dtype=np.float64)
    bpm = np.asarray(fits.getdata(result.hotpix_path)) != 0
    truth = injected_defects(spec)
    facts = {
        "pixels": float(qual.size),
        "hot": float(truth.hot.sum()),
        "simulate s": t1 - t0,
        "reduce s": t2 - t1,
    }
    return score_flags(truth, bpm, errs), score_flags(truth, qual, errs), facts


def _pct(x: float) -> str:
    return "--" if x != x else f"{100 * x:.2f}%"


def table(key: str, spec: DarkSetSpec, ours: FlagScore, qual: FlagScore) -> str:
    """The per-arm table: rows are figures, columns the map and soxspipe's QUAL."""
    rows = [
        ["injected hot > 5 sigma (ERRS)", ours.hot_strong, qual.hot_strong],
        ["hot recall (> 5 sigma)", _pct(ours.hot_recall), _pct(qual.hot_recall)],
        ["hot recall (all injected)", _pct(ours.hot_recall_all), _pct(qual.hot_recall_all)],
        ["false flags", ours.false_flags, qual.false_flags],
        [
            "false flags / pixels",
            f"{100 * ours.false_fraction:.4f}%",
            f"{100 * qual.false_fraction:.4f}%",
        ],
        ["telegraph pixels", ours.telegraph, qual.telegraph],
        ["telegraph recall", _pct(ours.telegraph_recall), _pct(qual.telegraph_recall)],
        [
            "telegraph recall (>= 2 frames each level)",
            _pct(ours.telegraph_recall_detectable),
            _pct(qual.telegraph_recall_detectable),
        ],
    ]
    head = (
        f"## {key}: {spec.n_frames} x {spec.exptime:g} s, "
        f"{spec.arm_spec.trimmed_shape(spec.ybin, spec.xbin)} pixels"
    )
    return head + "\n" + tabulate(rows, headers=["", "hot-pixel map", "soxspipe QUAL"])


def final_task_inputs(sof: Path, root: Path) -> tuple[Any, ...]:
    """What the final task starts from, built in this process as the recipe builds it: the
    plan, the per-frame levels, the joined strips and the master (before hot pixels)."""
    from mdark_dask.numerics import steps
    from mdark_dask.plan.sizing import strip_rows
    from mdark_dask.recipe import join_strips

    plan = plan_product([str(sof)], root / "ws", numerics=None, plots=True)
    s = plan.settings
    reader = plan.frameset.reader()
    n, ny, nx = reader.shape
    levels = np.array(
        [
            steps.frame_level(reader[i], s.frame_sigma, s.frame_iterations, s.numerics)
            for i in range(n)
        ]
    )
    rows = strip_rows(n, ny, nx)
    strips = [
        steps.stack_strip(
            reader[:, y : y + rows],
            levels,
            plan.frameset.ron,
            s.stacked_sigma,
            s.stacked_iterations,
        )
        for y in range(0, ny, rows)
    ]
    strip = join_strips(strips)
    master = steps.finalize(strip, levels, s.frame_sigma, s.frame_iterations, s.numerics)
    return plan, levels, strip, master


def time_final(sof: Path, repeats: int) -> list[list[object]]:
    """Warm seconds (min and median of ``repeats``) of each step of the final task that
    this module's subject owns: the hot-pixel search and the QC figures."""
    from mdark_dask.numerics.hotpix import find_hot_pixels
    from mdark_dask.recipe import figure_context
    from mdark_dask.report import figures
    from mdark_dask.report.draw import draw_all

    with tempfile.TemporaryDirectory() as tmp:
        plan, levels, strip, master = final_task_inputs(sof, Path(tmp))
        s, fs = plan.settings, plan.frameset

        def hot_pixels() -> Any:
            return find_hot_pixels(
                master.combined,
                master.qual,
                strip["noise"],
                strip["noise_peel"],
                fs.exptime,
                s.hot_sigma,
                s.hot_rate,
                s.noise_sigma,
                s.noise_iterations,
            )

        hot = hot_pixels()
        qc = Path(tmp) / "qc"
        ctx = figure_context(plan)
        noise, peel = strip["noise"], strip["noise_peel"]
        steps = {
            "find_hot_pixels": hot_pixels,
            "image plot": lambda: draw_all(figures.image_figures(master, qc, ctx)),
            "histogram plot": lambda: draw_all(figures.master_figures(master, qc, ctx)),
            "frames plot": lambda: draw_all(figures.frames_figures(levels, qc, ctx)),
            "hot-pixel plots": lambda: draw_all(
                figures.hotpix_figures(master, hot, noise, peel, qc, ctx)
            ),
        }
        rows: list[list[object]] = []
        for name, step in steps.items():
            step()  # untimed: loads the compiled kernels and the fonts
            seconds = []
            for _ in range(repeats):
                t = time.perf_counter()
                step()
                seconds.append(time.perf_counter() - t)
            rows.append([name, f"{min(seconds):.3f}", f"{float(np.median(seconds)):.3f}"])
        plot_rows = rows[1:]
        total = sum(float(str(r[1])) for r in plot_rows)
        rows.append(["all plots (sum of minima)", f"{total:.3f}", ""])
        rows.append(["hot / noisy pixels", hot.n_hot, hot.n_noisy])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print one table per arm."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--cosmic-scale", type=float, default=5.0)
    p.add_argument("--telegraph", type=float, default=1e-4, help="fraction of pixels")
    p.add_argument("--keep", type=Path, default=None, help="keep the data under this directory")
    p.add_argument(
        "--time-final",
        type=Path,
        default=None,
        metavar="SOF",
        help="time the hot-pixel search and QC plots on this set instead",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed calls per step (--time-final)")
    args = p.parse_args(argv)
    if args.time_final is not None:
        rows = time_final(args.time_final, args.repeats)
        print(f"final task steps on {args.time_final.name}, warm seconds\n")
        print(tabulate(rows, headers=["step", "min", "median"]))
        return 0
    print(
        f"frames {args.frames}, cosmic-ray rate x{args.cosmic_scale:g}, telegraph fraction "
        f"{args.telegraph:g}, hot excess dark currents Pareto II alpha=1, compat numerics\n"
    )
    for key in args.arms:
        spec = arm_spec(key, args.frames, args.cosmic_scale, args.telegraph)
        with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
            root = Path(tmp) if args.keep is None else args.keep / key
            ours, qual, facts = measure(spec, root)
        print(table(key, spec, ours, qual))
        print(f"(simulate {facts['simulate s']:.1f} s, reduce {facts['reduce s']:.1f} s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
