"""Whole-command speed and memory: mdark-dask vs soxspipe 0.17.4 vs ccdproc vs a read floor.

Usage::

    .venv/bin/python benchmarks/bench_mdark.py compare [--repeats 3] [--nir 20] [--vis 10]
    .venv/bin/python benchmarks/bench_mdark.py scaling [--counts 10 20 50 100]
    .venv/bin/python benchmarks/bench_mdark.py big [--frames 100]
    .venv/bin/python benchmarks/bench_mdark.py stage [--nir 20]

``compare`` runs, alternating and repeated, on the same simulated sofs:
``mdark-dask mdark`` (whole command, with its QC plots and with ``--no-plots``, so the
plots' cost shows), ``soxspipe mdark`` (the oracle venv of
``scripts/build_oracle.sh``), ``ccdproc.combine(method="average", sigma_clip=True, 3/3
sigma, median / mad_std)`` and a floor that only reads the frames into float32 arrays.
It prints medians, min-max, ratios and peak memory of each whole process tree (RSS summed
over the process and its children, sampled every 20 ms). ``scaling`` measures mdark-dask
for several frame counts of two frame sizes and fits seconds = a + b * (frames x pixels).
``big`` runs ``mdark-dask night`` on one large set (X-shooter VIS, 4000 x 2048 science
pixels per frame) on a LocalCluster with a 2 GiB memory limit per worker. Raw frames are
simulated once under ``benchmarks/data/``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof  # noqa: E402
from tests.oracle import oracle_venv  # noqa: E402

EXE = str(Path(sys.executable).with_name("mdark-dask"))

CCDPROC = textwrap.dedent(
    """
    import sys, warnings
    import numpy as np
    from astropy.stats import mad_std
    import ccdproc
    warnings.simplefilter("ignore")
    files = [l.split()[0] for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
    ccdproc.combine(files, method="average", sigma_clip=True, sigma_clip_low_thresh=3,
                    sigma_clip_high_thresh=3, sigma_clip_func=np.ma.median,
                    sigma_clip_dev_func=mad_std, unit="adu", dtype=np.float32)
    """
)
READ_FLOOR = textwrap.dedent(
    """
    import sys
    import numpy as np
    from astropy.io import fits
    files = [l.split()[0] for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
    total = 0.0
    for f in files:
        total += float(np.asarray(fits.getdata(f), dtype=np.float32)[0, 0])
    """
)


def measure(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS of its process tree in MB)."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            procs = [proc, *proc.children(recursive=True)]
            rss = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    rss += p.memory_info().rss
            peak = max(peak, rss)
        time.sleep(0.02)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {err[-800:]}")
    return wall, peak / 2**20


def make_set(spec: DarkSetSpec, data: Path) -> Path:
    """Simulate a set once; return its sof (one directory per frame count: the organiser
    name does not include the number of frames)."""
    where = data / f"n{spec.n_frames}"
    sof = where / sof_name(spec)
    if not sof.exists():
        write_sof(sof, simulate_set(spec, where / sof.stem))
    return sof


def tools(venv: Path | None, instrument: str) -> dict[str, object]:
    """The commands to compare, as functions of (sof, workdir)."""
    py = sys.executable

    def soxspipe(sof: Path, ws: Path) -> tuple[list[str], dict[str, str] | None]:
        assert venv is not None
        site = venv / "lib" / "python3.11" / "site-packages" / "soxspipe"
        shutil.copy(site / f"{instrument}_default_settings.yaml", ws / "soxspipe.yaml")
        cmd = [str(venv / "bin" / "soxspipe"), "mdark", str(sof), "-s", "./soxspipe.yaml"]
        return [*cmd, "-o", str(ws), "-x"], {**os.environ, "HOME": str(ws)}

    out: dict[str, object] = {
        "mdark-dask": lambda sof, ws: ([EXE, "mdark", str(sof), "-o", str(ws / "md"), "-x"], None),
        "  --no-plots": lambda sof, ws: (
            [EXE, "mdark", str(sof), "-o", str(ws / "md"), "-x", "--no-plots"],
            None,
        ),
        "ccdproc.combine": lambda sof, ws: ([py, "-c", CCDPROC, str(sof)], None),
        "read floor": lambda sof, ws: ([py, "-c", READ_FLOOR, str(sof)], None),
    }
    if venv is not None:
        out["soxspipe 0.17.4"] = soxspipe
    return out


def compare(args: argparse.Namespace) -> None:
    """Alternate every tool on the same sofs; print medians, ranges, ratios, peaks."""
    sets = {
        f"SOXS NIR {args.nir} x 2048^2": make_set(
            DarkSetSpec("soxs", "NIR", args.nir, 5.0), args.data
        ),
        f"SOXS VIS {args.vis} x 4096x908": make_set(
            DarkSetSpec("soxs", "VIS", args.vis, 600.0, start="2026-01-11T09:00:00.000"), args.data
        ),
    }
    venv = None if args.no_soxspipe else oracle_venv()
    print(platform_line())
    print(
        f"{'set':<24} {'tool':<16} {'median s':>9} {'min-max s':>13} {'peak MB':>8} {'/mdark':>7}"
    )
    for label, sof in sets.items():
        runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.repeats):
            for name, make in tools(venv, "soxs").items():
                with tempfile.TemporaryDirectory() as tmp:
                    cmd, env = make(Path(sof), Path(tmp))  # type: ignore[operator]
                    runs.setdefault(name, []).append(measure(cmd, Path(tmp), env))
        base = statistics.median(t for t, _ in runs["mdark-dask"])
        for name, values in runs.items():
            walls = [t for t, _ in values]
            med = statistics.median(walls)
            peak = max(m for _, m in values)
            print(
                f"{label:<24} {name:<16} {med:>9.2f} {min(walls):>6.2f}-{max(walls):<6.2f} "
                f"{peak:>8.0f} {med / base:>7.2f}"
            )


def scaling(args: argparse.Namespace) -> None:
    """mdark-dask time and memory against frames x pixels, with a linear fit."""
    print(platform_line())
    rows = []
    for arm, exptime, start in (
        ("NIR", 5.0, "2026-01-11T01:00:00.000"),
        ("VIS", 600.0, "2026-01-11T09:00:00.000"),
    ):
        for n in args.counts:
            sof = make_set(DarkSetSpec("soxs", arm, n, exptime, start=start), args.data)
            pixels = n * (2040 * 2040 if arm == "NIR" else 4096 * 808)
            walls, peaks = [], []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    t, m = measure(
                        [EXE, "mdark", str(sof), "-o", tmp, "-x", "--no-plots"], Path(tmp)
                    )
                walls.append(t)
                peaks.append(m)
            rows.append((arm, n, pixels, statistics.median(walls), max(peaks)))
            print(f"SOXS {arm} {n:>4} frames: {rows[-1][3]:6.2f} s, peak {rows[-1][4]:5.0f} MB")
    x = np.array([r[2] for r in rows], dtype=float)
    y = np.array([r[3] for r in rows], dtype=float)
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    print(
        f"fit: seconds = {a:.2f} + {b * 1e9:.2f} ns x frame-pixels "
        f"(R^2 {1 - resid.var() / y.var():.4f}; {1 / b / 1e6 * 4:.0f} MB/s of float32 stack)"
    )


def big(args: argparse.Namespace) -> None:
    """One large set on a LocalCluster with 2 GiB per worker; time per pixel vs 20 NIR."""
    print(platform_line())
    spec = DarkSetSpec("xsh", "VIS", args.frames, 60.0, start="2026-01-11T12:00:00.000")
    sof = make_set(spec, args.data)
    stack_gb = args.frames * 4000 * 2048 * 4 / 1e9
    ref = make_set(DarkSetSpec("soxs", "NIR", 20, 5.0), args.data)
    with tempfile.TemporaryDirectory() as tmp:
        definition = Path(tmp) / "local2g.yaml"
        definition.write_text(
            "type: local\nn_workers: 2\nthreads_per_worker: 1\nmemory_limit: 2GiB\n"
        )
        t_ref, _ = measure(
            [
                EXE,
                "night",
                str(ref),
                "-o",
                f"{tmp}/r",
                "-x",
                "--no-plots",
                "--cluster",
                str(definition),
            ],
            Path(tmp),
        )
        t_big, m_big = measure(
            [
                EXE,
                "night",
                str(sof),
                "-o",
                f"{tmp}/b",
                "-x",
                "--no-plots",
                "--cluster",
                str(definition),
            ],
            Path(tmp),
        )
        report = (Path(tmp) / "b" / "night_report.json").read_text()
    ns_ref = t_ref / (20 * 2040 * 2040) * 1e9
    ns_big = t_big / (args.frames * 4000 * 2048) * 1e9
    print(f"20 x SOXS NIR on LocalCluster(2 x 2 GiB): {t_ref:.1f} s, {ns_ref:.2f} ns/frame-pixel")
    print(
        f"{args.frames} x XSH VIS ({stack_gb:.1f} GB stack): {t_big:.1f} s, {ns_big:.2f} ns/frame-pixel, "
        f"ratio {ns_big / ns_ref:.2f} (target <= 1.3); peak RSS of the tree {m_big:.0f} MB"
    )
    print(
        "restarts/spill:",
        "spilled_bytes" in report and report.split('"spilled_bytes": ')[1].split(",")[0],
    )


def _clip_strip(
    block: np.ndarray, levels: np.ndarray, ron: float, sigma: float, maxiters: int
) -> np.ndarray:
    from mdark_dask.numerics import steps

    return steps.stack_strip(block, levels, ron, sigma, maxiters)


def stage(args: argparse.Namespace) -> None:
    """The stack clip-and-mean stage alone: strips already in memory, one and two threads."""
    from concurrent.futures import ThreadPoolExecutor

    from mdark_dask.numerics import steps
    from mdark_dask.plan.product import plan_product

    print(platform_line())
    sof = make_set(DarkSetSpec("soxs", "NIR", args.nir, 5.0), args.data)
    for numerics in ("accurate", "soxspipe-0.17.4"):
        plan = plan_product([str(sof)], tempfile.gettempdir(), numerics=numerics, plots=False)
        reader, s = plan.frameset.reader(), plan.settings
        levels = np.array(
            [
                steps.frame_level(reader[i], s.frame_sigma, s.frame_iterations, s.numerics)
                for i in range(reader.shape[0])
            ]
        )
        strips = [reader[:, a:b, :] for a, b in plan.strip_bounds()]
        mb = sum(x.nbytes for x in strips) / 1e6

        clip = functools.partial(
            _clip_strip,
            levels=levels,
            ron=plan.frameset.ron,
            sigma=s.stacked_sigma,
            maxiters=s.stacked_iterations,
        )

        clip(strips[0][:, :2])  # load the compiled kernel
        for threads in (1, 2):
            best = float("inf")
            with ThreadPoolExecutor(threads) as pool:
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    list(pool.map(clip, strips))
                    best = min(best, time.perf_counter() - start)
            print(
                f"stack stage, {args.nir} SOXS NIR frames ({mb:.0f} MB float32), {numerics}, "
                f"{threads} thread(s): {best:.3f} s, {mb / best:.0f} MB/s"
            )


def platform_line() -> str:
    """The machine the numbers were measured on."""
    mem = psutil.virtual_memory().total / 2**30
    return f"machine: {platform.node()}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "mode", nargs="?", default="compare", choices=("compare", "scaling", "big", "stage")
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nir", type=int, default=20, help="SOXS NIR frames (2048 x 2048)")
    parser.add_argument("--vis", type=int, default=10, help="SOXS VIS frames (4096 x 908)")
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--frames", type=int, default=100, help="frames of the big set")
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    parser.add_argument("--no-soxspipe", action="store_true")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    {"compare": compare, "scaling": scaling, "big": big, "stage": stage}[args.mode](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
