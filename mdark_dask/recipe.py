"""One set of raw darks -> one lazy master-dark product: the only place steps are composed.

:func:`plan_product` scans headers and resolves settings (no pixels); :func:`master_graph`
turns a plan into a lazy dask graph:

* one task per frame: the whole-frame level clip (reference §4.2), exact because the frame
  is whole and in C order;
* one task per row strip: read the strip of every frame, per-pixel stack clip and means
  over all frames (§4.3 B1-B4);
* one task that joins the strips into whole-frame arrays (then the strips are released);
* one final task: post-stack clip, QC, product write and QC plots (§4.3 B5-§6).

Nothing computes here; :mod:`mdark_dask.scheduler` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import dask
import numpy as np
import numpy.typing as npt
from dask.base import tokenize
from dask.delayed import Delayed

from mdark_dask import painter
from mdark_dask._version import __version__
from mdark_dask.errors import InputError
from mdark_dask.io.fits import (
    RawFrame,
    StackReader,
    is_fits_name,
    read_header,
    write_atomic,
)
from mdark_dask.io.sof import read_sof
from mdark_dask.io.stack import BLOCK_BYTES, TARGET_STRIP_BYTES, stack_reader, strip_rows
from mdark_dask.numerics import steps
from mdark_dask.numerics.hotpix import find_hot_pixels
from mdark_dask.numerics.qc import HOTPIX_QC, QCRow, apply_ranges, qc_rows
from mdark_dask.plan.frameset import FrameSet, scan_frames, verify_frames
from mdark_dask.plan.names import organiser_sof_name, product_dir, qc_dir, rospeed_field
from mdark_dask.report.figures import Figure
from mdark_dask.settings import Settings, load_settings

FINGERPRINT_KEY = "MDARK FINGERPRINT"

#: Prepared bytes of whole frames per level task (frames are read one at a time, so this
#: sets the task's length, not its memory).
LEVEL_TASK_BYTES: Final = 32 * 2**20

#: Prepared bytes per level and strip task in a night: with the compiled kernels a
#: one-product-sized task is 20-60 ms, short against a distributed worker's per-task cost
#: (the performance report of an 8-set night showed 66 of 90 tasks under 100 ms); the
#: sets themselves keep every worker busy.
NIGHT_TASK_BYTES: Final = 96 * 2**20


@dataclass(frozen=True)
class ProductPlan:
    """Everything needed to produce one master dark; printable, picklable, no pixels.

    Attributes
    ----------
    name : str
        Product basename without ``.fits`` (the sof basename, or the organiser's name).
    frameset : FrameSet
        The verified raw frames.
    settings : Settings
        Resolved science settings.
    workspace : str
        Workspace root.
    rows : int or None
        Rows per strip (an execution setting: never changes a byte); None = automatic.
    plots : bool
        Whether the final task writes QC plots.
    task_bytes : int or None
        Prepared bytes per level and strip task (an execution setting); None = the
        one-product sizes (:data:`LEVEL_TASK_BYTES`, :data:`TARGET_STRIP_BYTES`), which
        give two threads enough tasks to share. A night, whose parallelism comes from
        its many sets, uses :data:`NIGHT_TASK_BYTES`.
    """

    name: str
    frameset: FrameSet
    settings: Settings
    workspace: str
    rows: int | None = None
    plots: bool = True
    task_bytes: int | None = None

    @property
    def product_path(self) -> Path:
        """``<workspace>/products/soxs_mdark/<name>.fits``."""
        return product_dir(Path(self.workspace)) / f"{self.name}.fits"

    @property
    def hotpix_path(self) -> Path:
        """The hot-pixel map beside the product: ``<name>_HOTPIX.fits``."""
        return self.product_path.with_name(f"{self.name}_HOTPIX.fits")

    @property
    def noise_path(self) -> Path:
        """The noise image beside the product: ``<name>_NOISE.fits``."""
        return self.product_path.with_name(f"{self.name}_NOISE.fits")

    @property
    def log_path(self) -> Path:
        """The recipe log beside the product."""
        return self.product_path.with_suffix(".log")

    @property
    def qc_dir(self) -> Path:
        """Directory of the QC plots."""
        return qc_dir(Path(self.workspace))

    @property
    def fingerprint(self) -> str:
        """Digest of everything that decides the product: frames, settings, version.

        Frames count by path, size and modification time; execution settings (rows,
        cluster) do not count. Written into the product header so a rerun can tell
        whether the product is up to date.
        """
        fs = self.frameset
        record = {
            "version": __version__,
            "settings": repr(self.settings),
            "gain": fs.gain,
            "ron": fs.ron,
            "frames": [(f.path, f.size, f.mtime_ns) for f in fs.frames],
        }
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]

    def up_to_date(self) -> bool:
        """Whether the product (and its hot-pixel map and noise image, written first)
        exists and was made from the same frames and settings."""
        companions = self.hotpix_path.is_file() and self.noise_path.is_file()
        return companions and product_fingerprint(self.product_path) == self.fingerprint


@dataclass(frozen=True)
class ProductResult:
    """What the final task reports back: small, no arrays.

    ``path`` is the master dark; ``hotpix_path`` and ``noise_path`` the hot-pixel map and
    the noise image beside it. ``qc`` holds soxspipe's rows and the physical hot/noisy
    counts (HOTPIX PHYS NUM/FRAC, NOISYPIX NUM/FRAC).
    """

    name: str
    path: str
    arm: str
    instrument: str
    n_frames: int
    qc: tuple[QCRow, ...]
    date_obs: str
    plots: tuple[str, ...] = ()
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    hotpix_path: str = ""
    noise_path: str = ""

    @property
    def paths(self) -> tuple[str, ...]:
        """Every product file written: master dark, hot-pixel map, noise image."""
        return tuple(p for p in (self.path, self.hotpix_path, self.noise_path) if p)


def product_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded in a complete product, or None.

    The product counts only if every HDU's DATASUM/CHECKSUM verifies, so a file cut short
    or damaged under its final name is never taken as up to date.
    """
    if not path.is_file():
        return None
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy warns on a failed checksum
            with fits.open(path, checksum=True) as hdul:
                for hdu in hdul:
                    _ = hdu.data  # reading the data verifies DATASUM
                return str(hdul[0].header[FINGERPRINT_KEY])
    except (OSError, KeyError, IndexError, ValueError, TypeError, Warning):
        return None


def resolve_inputs(inputs: Sequence[str]) -> tuple[list[str], str | None]:
    """Expand a sof, a directory or FITS paths into frame paths and the sof's name.

    Returns
    -------
    paths : list of str
        Frame paths in the order given.
    name : str or None
        The product name for a sof input; None for directory and list inputs (their name
        comes from the frames, see :func:`organiser_name`).
    """
    if not inputs:
        raise InputError("no input: give a .sof file, a directory or FITS frames")
    if len(inputs) == 1 and inputs[0].lower().endswith(".sof"):
        sof = Path(inputs[0])
        if not sof.exists():
            raise InputError(f"sof file {sof} does not exist")
        return [e.path for e in read_sof(sof)], sof.name[: -len(".sof")]
    paths: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if is_fits_name(f))
            if not found:
                raise InputError(f"directory {item} holds no FITS frames")
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(os.path.abspath(item))
        else:
            raise InputError(f"{item}: no such file or directory")
    return paths, None


def organiser_name(frameset: FrameSet) -> str:
    """The soxspipe organiser's name of a set (reference §7.4), without ``.sof``."""
    kw = frameset.spec.keywords
    dates = sorted(str(f.get(kw.date_obs)) for f in frameset.frames if f.get(kw.date_obs))
    if not dates:
        raise InputError("frames carry no DATE-OBS to name the product by")
    name = organiser_sof_name(
        date_obs=dates[0],
        arm=frameset.arm,
        binning=frameset.win_binning,
        rospeed=rospeed_field(frameset.instrument, frameset.first(kw.read_speed)),
        exptime=frameset.exptime,
        instrume=str(frameset.first(kw.instrume)),
    )
    return name[: -len(".sof")]


def plan_product(
    inputs: Sequence[str],
    workspace: str | Path,
    settings_path: Path | None = None,
    numerics: str | None = None,
    rows: int | None = None,
    plots: bool = True,
) -> ProductPlan:
    """Scan and verify the frames of one set and resolve its settings (no pixels read)."""
    paths, name = resolve_inputs(inputs)
    if not paths:
        raise InputError("No image frames were passed to the recipe")
    good, bad = scan_frames(paths)
    return plan_frames(good, bad, name, workspace, settings_path, numerics, rows, plots)


def plan_frames(
    good: Sequence[RawFrame],
    bad: Sequence[tuple[str, str]],
    name: str | None,
    workspace: str | Path,
    settings_path: Path | None = None,
    numerics: str | None = None,
    rows: int | None = None,
    plots: bool = True,
    task_bytes: int | None = None,
) -> ProductPlan:
    """Plan a product from already scanned frames (the night scheduler's entry)."""
    # the gain rule depends on numerics: resolve the settings (and their numerics) first
    probe = verify_frames(good, bad, "accurate")
    settings = load_settings(probe.instrument, probe.arm, settings_path, numerics)
    frameset = probe
    if settings.numerics != "accurate":
        frameset = verify_frames(good, bad, settings.numerics)
    return ProductPlan(
        name=name or organiser_name(frameset),
        frameset=frameset,
        settings=settings,
        workspace=str(Path(workspace).resolve()),
        rows=rows,
        plots=plots,
        task_bytes=task_bytes,
    )


def _frame_levels(
    reader: StackReader,
    frames: tuple[int, int],
    sigma: float,
    maxiters: int,
    numerics: steps.Numerics,
) -> npt.NDArray[np.float64]:
    """Task: read whole prepared frames ``frames[0]`` to ``frames[1] - 1`` one at a time
    and clip each one's level; rows ``(lo, hi, mean, std)``.

    The frames are read into one buffer in turn: a fresh frame-sized array would be
    mapped, page-faulted and zeroed by the kernel for every frame (the console script
    unmaps large frees, :mod:`mdark_dask.malloc`).
    """
    levels = np.empty((frames[1] - frames[0], 4), dtype=np.float64)
    buffer = np.empty(reader.shape[1:], dtype=np.float32)
    for row, index in enumerate(range(*frames)):
        frame = reader.frames[index].read(slice(None), out=buffer)
        levels[row] = steps.frame_level(frame, sigma, maxiters, numerics)
    return levels


def _stack_strip(
    reader: StackReader,
    rows: tuple[int, int],
    levels: Sequence[npt.NDArray[np.float64]],
    ron: float,
    sigma: float,
    maxiters: int,
) -> dict[str, npt.NDArray[Any]]:
    """Task: read one row strip of every frame and clip-and-mean it, a block of rows at a
    time (:data:`BLOCK_BYTES`), into one array per field of :data:`steps.STRIP_DTYPE`
    (reads and clips in one task, so a strip's pixels never wait in memory for a free
    thread; the kernel is per pixel, so the blocks change no byte)."""
    n, _, nx = reader.shape
    fields = steps.new_fields((rows[1] - rows[0], nx))
    lv = np.concatenate(levels)
    for y, block in reader.row_blocks(rows, strip_rows(n, rows[1] - rows[0], nx, BLOCK_BYTES)):
        r = slice(y - rows[0], y - rows[0] + block.shape[1])
        steps.stack_fields(
            block, lv, ron, sigma, maxiters, {name: values[r] for name, values in fields.items()}
        )
    return fields


def strip_bounds(plan: ProductPlan) -> list[tuple[int, int]]:
    """The row strips of a plan: ``(first, stop)`` rows, :func:`strip_rows` high (or
    ``plan.rows``), covering every row once, top to bottom."""
    n, ny, nx = stack_reader(plan.frameset).shape
    step = plan.rows or strip_rows(n, ny, nx, plan.task_bytes or TARGET_STRIP_BYTES)
    return [(y0, min(y0 + step, ny)) for y0 in range(0, ny, step)]


def _reader_task(plan: ProductPlan, token: str) -> Delayed:
    """The set's stack reader as one graph key: tasks refer to it, so it is neither
    walked by dask for every task nor shipped with every task."""
    reader: Delayed = dask.delayed(
        stack_reader(plan.frameset), name=f"reader-{token}", traverse=False
    )
    return reader


def level_groups(plan: ProductPlan) -> list[tuple[int, int]]:
    """The frames of each level task: ``(first, stop)`` indices, about
    :data:`LEVEL_TASK_BYTES` of prepared pixels per task (two 2k x 2k frames), so a task
    is not much shorter than dask's ~100 ms sweet spot while every core still gets work."""
    n, ny, nx = stack_reader(plan.frameset).shape
    per_task = max(1, round((plan.task_bytes or LEVEL_TASK_BYTES) / (ny * nx * 4)))
    return [(i, min(i + per_task, n)) for i in range(0, n, per_task)]


def level_tasks(plan: ProductPlan, token: str | None = None) -> list[Delayed]:
    """Lazy per-frame level clips (reference §4.2), a few whole frames per task; each task
    gives one ``(lo, hi, mean, std)`` row per frame, in frame order."""
    s = plan.settings
    token = token or tokenize(plan)
    reader = _reader_task(plan, token)
    task = dask.delayed(_frame_levels, pure=True)
    return [
        task(
            reader,
            frames,
            s.frame_sigma,
            s.frame_iterations,
            s.numerics,
            dask_key_name=(f"level-{token}", i),
        )
        for i, frames in enumerate(level_groups(plan))
    ]


def strip_tasks(
    plan: ProductPlan, levels: Sequence[Delayed], token: str | None = None
) -> list[Delayed]:
    """One lazy task per row strip: the stacked master before the post clip (§4.3 B1-B4).

    Each returns a ``(rows, cols)`` array per field of :data:`steps.STRIP_DTYPE`; they depend on
    every frame's level (the per-frame level is subtracted before the stack clip).
    """
    s = plan.settings
    token = token or tokenize(plan)
    reader = _reader_task(plan, token)
    task = dask.delayed(_stack_strip, pure=True)
    return [
        task(
            reader,
            rows,
            list(levels),
            plan.frameset.ron,
            s.stacked_sigma,
            s.stacked_iterations,
            dask_key_name=(f"strip-{token}", j),
        )
        for j, rows in enumerate(strip_bounds(plan))
    ]


def join_strips(strips: Sequence[Mapping[str, npt.NDArray[Any]]]) -> dict[str, npt.NDArray[Any]]:
    """The whole stacked frame from its row strips (:func:`_stack_strip`), top to bottom,
    one contiguous array per field of :data:`steps.STRIP_DTYPE`."""
    names = steps.STRIP_DTYPE.names or ()
    return {name: np.concatenate([s[name] for s in strips], axis=0) for name in names}


def _draw(build: Callable[..., tuple[Figure, ...]], *args: Any) -> tuple[str, ...]:
    """A plotting thread's step: reduce the images to figures (:mod:`mdark_dask.report.figures`),
    then draw them (:func:`mdark_dask.painter.draw`); their paths."""
    # plots handle NaN and empty samples themselves; floating-point flags left set by a
    # C extension imported in this thread (seen: matplotlib's) must not turn into numpy
    # "invalid value" warnings that fail the product
    with np.errstate(all="ignore"):
        figures = build(*args)
    return painter.draw(figures)


def finalize_product(
    strip: dict[str, npt.NDArray[Any]],
    frame_levels: Sequence[npt.NDArray[np.float64]],
    plan: ProductPlan,
) -> ProductResult:
    """The final task: post-stack clip, hot pixels, QC, headers, atomic writes and QC plots.

    The hot-pixel map and the noise image are written before the master dark, so a master
    whose fingerprint is up to date always has its maps beside it.
    """
    from mdark_dask.io.product import (
        build_hdul,
        build_hotpix_hdul,
        build_noise_hdul,
        hotpix_header,
        noise_header,
        primary_header,
        set_card,
    )
    from mdark_dask.report.figures import frames_figures, hotpix_figures, master_figures

    start = time.perf_counter()
    s = plan.settings
    fs = plan.frameset
    levels = np.concatenate(frame_levels)
    # the plots need only the levels, then the master, then the hot pixels: other
    # threads reduce them to figures (compiled passes) and draw them, or hand them to the
    # drawing process (mdark_dask.painter), while this one finalises the master, finds
    # the hot pixels and writes the products (numpy, the compiled kernels and file I/O
    # release the GIL). Two threads, so the hot pixels' figures are reduced while the
    # master's are still being drawn. The writes never touch the arrays the plots read
    # (astropy is given read-only views, which it byte-swaps into copies:
    # product.read_only), so neither waits for the other.
    with ThreadPoolExecutor(max_workers=2) as pool:
        drawings: dict[str, Future[tuple[str, ...]]] = {}
        if plan.plots:
            mjd = np.array([float(f.get(fs.spec.keywords.mjd_obs)) for f in fs.frames])
            drawings["frames"] = pool.submit(
                _draw, frames_figures, mjd, levels, plan.qc_dir, plan.name
            )
        master = steps.finalize(strip, levels, s.frame_sigma, s.frame_iterations, s.numerics)
        if plan.plots:
            drawings["master"] = pool.submit(_draw, master_figures, master, plan.qc_dir, plan.name)
        hot = find_hot_pixels(
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
        if plan.plots:
            drawings["hotpix"] = pool.submit(
                _draw,
                hotpix_figures,
                hot,
                strip["noise"],
                strip["noise_peel"],
                plan.qc_dir,
                plan.name,
            )
        rows = apply_ranges(qc_rows(master, fs, hot), s.qc_ranges)
        raw_header = read_header(fs.frames[0].path)
        header = primary_header(raw_header, fs, s, rows)
        set_card(header, FINGERPRINT_KEY, plan.fingerprint, "frames+settings digest")
        hot_rows = [r for r in rows if r.name in HOTPIX_QC]
        # the maps first: a master whose fingerprint is up to date has its maps beside it
        write_atomic(
            build_hotpix_hdul(hot, hotpix_header(header, fs.arm, hot, hot_rows, s.hotpix_params)),
            plan.hotpix_path,
        )
        noise = build_noise_hdul(
            strip["noise"],
            strip["noise_peel"],
            noise_header(header, fs.arm, hot, s.hotpix_params),
        )
        write_atomic(noise, plan.noise_path)
        write_atomic(build_hdul(master, header), plan.product_path)
        try:
            # listed as the reader looks at them: the master, its frames, its hot pixels
            plots = tuple(
                path
                for key in ("master", "frames", "hotpix")
                if key in drawings
                for path in drawings[key].result()
            )
        except BaseException:
            # a QC plot failed, so the set fails: no master stays behind that a rerun
            # would take as up to date (its maps are rewritten with it)
            with contextlib.suppress(OSError):
                plan.product_path.unlink()
            raise
    return ProductResult(
        name=plan.name,
        path=str(plan.product_path),
        arm=fs.arm,
        instrument=fs.instrument,
        n_frames=len(fs.frames),
        qc=rows,
        date_obs=str(fs.first(fs.spec.keywords.date_obs)),
        plots=plots,
        seconds=time.perf_counter() - start,
        hotpix_path=str(plan.hotpix_path),
        noise_path=str(plan.noise_path),
    )


def stacked_graph(plan: ProductPlan, token: str | None = None) -> tuple[list[Delayed], Delayed]:
    """Lazy per-frame levels (blocks of ``(lo, hi, mean, std)`` rows, in frame order) and
    the stacked frame before the post-stack clip (:func:`join_strips` of every strip).

    Joining is a task of its own: once it is done the strips are released, so the final
    task's whole-frame work never holds the strips and their joined copy at once.
    """
    token = token or tokenize(plan)
    levels = level_tasks(plan, token)
    strips = strip_tasks(plan, levels, token)
    joined: Delayed = dask.delayed(join_strips, pure=True)(strips, dask_key_name=f"join-{token}")
    return levels, joined


def master_graph(plan: ProductPlan) -> Delayed:
    """The whole lazy graph of one product; computing it writes the product.

    One task per frame (level clip), one per row strip (read, stack clip and mean), one
    that joins the strips and one final task (post-stack clip, hot pixels, QC, writes,
    plots). Built from plain delayed tasks over :class:`mdark_dask.io.fits.StackReader`
    windows, so the command never pays for importing ``dask.array`` (and the xarray,
    pandas and scipy it pulls in).
    """
    token = tokenize(plan)
    levels, joined = stacked_graph(plan, token)
    task = dask.delayed(finalize_product, pure=True)
    plan_key: Delayed = dask.delayed(plan, name=f"plan-{token}", traverse=False)
    result: Delayed = task(joined, levels, plan_key, dask_key_name=f"finalize-{plan.name}-{token}")
    return result
