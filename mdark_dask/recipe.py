"""One product plan -> one lazy graph: the only place the recipe's steps are composed.

:func:`master_graph` turns a :class:`~mdark_dask.plan.product.ProductPlan` into a dask
graph of plain delayed tasks over the set's :class:`~mdark_dask.io.fits.StackReader`:

* level tasks: a few whole frames each, read one at a time, each frame's level clipped
  (exact because the frame is whole and in C order, as soxspipe computes it);
* strip tasks: one full-width row strip of every frame, read and clipped per pixel, with
  the means over frames (exact for any strip height, since the clip is per pixel);
* one task that joins the strips into whole-frame arrays (then the strips are released);
* one final task: :func:`reduce_master` (post-stack clip, hot pixels, QC), then
  :func:`write_products` (the one product writer) with the QC plots drawn beside it.

The Python API builds its lazy dataset from the same :func:`stacked_graph` and
:func:`reduce_master`, and writes with the same :func:`write_products`. Nothing computes
here; :mod:`mdark_dask.scheduler` does.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import dask
import numpy as np
import numpy.typing as npt
from dask.base import tokenize
from dask.delayed import Delayed

from mdark_dask.io.fits import StackReader, read_header, write_atomic
from mdark_dask.numerics import steps
from mdark_dask.numerics.hotpix import HotPixels, find_hot_pixels
from mdark_dask.numerics.qc import HOTPIX_QC, QCRow, apply_ranges, qc_rows
from mdark_dask.plan import sizing
from mdark_dask.plan.product import ProductPlan, ProductResult
from mdark_dask.report.thumbnail import thumbnail_grey, write_thumbnail

if TYPE_CHECKING:
    from mdark_dask.report.figures import Context


class Reduced(NamedTuple):
    """Everything a product's files are written from: the master, its hot pixels, the
    noise images and the QC rows (with their pass/fail)."""

    master: steps.Master
    hot: HotPixels
    noise: npt.NDArray[np.float32]
    noise_peel: npt.NDArray[np.float32]
    qc: tuple[QCRow, ...]


#: The groups of QC figures :func:`reduce_master` hands over, in the order the product's
#: plots are listed (as the reader looks at them: the master, its pixels, its frames, its
#: hot pixels).
FIGURE_GROUPS = ("image", "master", "frames", "hotpix")

#: Called by :func:`reduce_master` as each figure's inputs become ready:
#: ``(key, build, args)``, where ``build(*args)`` gives the figures.
FigureHook = Callable[[str, Callable[..., Any], tuple[Any, ...]], None]


def _frame_levels(
    reader: StackReader,
    frames: tuple[int, int],
    sigma: float,
    maxiters: int,
    numerics: steps.Numerics,
) -> npt.NDArray[np.float64]:
    """Task: read whole prepared frames ``frames[0]`` to ``frames[1] - 1`` one at a time
    and clip each one's level; rows ``(lo, hi, mean, std)``.

    The frames are read into one buffer in turn, so a task holds one frame, however many
    it clips.
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
    time (:func:`mdark_dask.plan.sizing.block_rows`), into one array per field of
    :data:`~mdark_dask.numerics.steps.STRIP_DTYPE`.

    Reading and clipping are one task, so a strip's pixels never wait in memory for a
    free thread; the kernel is per pixel, so the blocks change no byte.
    """
    fields = steps.new_fields((rows[1] - rows[0], reader.shape[2]))
    lv = np.concatenate(levels)
    for y, block in reader.row_blocks(rows, sizing.block_rows(reader.shape, rows)):
        r = slice(y - rows[0], y - rows[0] + block.shape[1])
        steps.stack_fields(
            block, lv, ron, sigma, maxiters, {name: values[r] for name, values in fields.items()}
        )
    return fields


def join_strips(strips: Sequence[Mapping[str, npt.NDArray[Any]]]) -> dict[str, npt.NDArray[Any]]:
    """The whole stacked frame from its row strips (:func:`_stack_strip`), top to bottom,
    one contiguous array per field of :data:`~mdark_dask.numerics.steps.STRIP_DTYPE`."""
    names = steps.STRIP_DTYPE.names or ()
    return {name: np.concatenate([s[name] for s in strips], axis=0) for name in names}


def stacked_graph(plan: ProductPlan, token: str | None = None) -> tuple[list[Delayed], Delayed]:
    """Lazy per-frame levels (blocks of ``(lo, hi, mean, std)`` rows, in frame order) and
    the stacked frame before the post-stack clip (:func:`join_strips` of every strip).

    The set's reader is one graph key that every task refers to, so it is neither walked
    by dask for every task nor shipped with every task. Joining is a task of its own:
    once it is done the strips are released, so the final task never holds the strips
    and their joined copy at once.
    """
    token = token or tokenize(plan)
    s = plan.settings
    reader: Delayed = dask.delayed(plan.frameset.reader(), name=f"reader-{token}", traverse=False)
    level = dask.delayed(_frame_levels, pure=True)
    levels = [
        level(
            reader,
            frames,
            s.frame_sigma,
            s.frame_iterations,
            s.numerics,
            dask_key_name=(f"level-{token}", i),
        )
        for i, frames in enumerate(plan.level_groups())
    ]
    strip = dask.delayed(_stack_strip, pure=True)
    strips = [
        strip(
            reader,
            rows,
            levels,
            plan.frameset.ron,
            s.stacked_sigma,
            s.stacked_iterations,
            dask_key_name=(f"strip-{token}", j),
        )
        for j, rows in enumerate(plan.strip_bounds())
    ]
    joined: Delayed = dask.delayed(join_strips, pure=True)(strips, dask_key_name=f"join-{token}")
    return levels, joined


def reduce_master(
    strip: Mapping[str, npt.NDArray[Any]],
    frame_levels: Sequence[npt.NDArray[np.float64]],
    plan: ProductPlan,
    figures: FigureHook | None = None,
) -> Reduced:
    """The stacked frame to the product's contents: post-stack clip and fill, hot and
    noisy pixels, QC rows checked against the settings' ranges.

    ``figures``, when given, is handed each QC figure's inputs as soon as they exist (the
    frame levels, then the master, then the hot pixels), so the plots can be drawn while
    the rest is computed and written.
    """
    from mdark_dask.report import figures as qc_figures

    s = plan.settings
    fs = plan.frameset
    levels = np.concatenate(frame_levels)
    ctx = figure_context(plan)
    if figures is not None:
        figures("frames", qc_figures.frames_figures, (levels, plan.qc_dir, ctx))
    master = steps.finalize(strip, levels, s.frame_sigma, s.frame_iterations, s.numerics)
    if figures is not None:
        figures("image", qc_figures.image_figures, (master, plan.qc_dir, ctx))
        figures("master", qc_figures.master_figures, (master, plan.qc_dir, ctx))
    noise, noise_peel = strip["noise"], strip["noise_peel"]
    hot = find_hot_pixels(
        master.combined,
        master.qual,
        noise,
        noise_peel,
        fs.exptime,
        s.hot_sigma,
        s.hot_rate,
        s.noise_sigma,
        s.noise_iterations,
    )
    if figures is not None:
        figures(
            "hotpix",
            qc_figures.hotpix_figures,
            (master, hot, noise, noise_peel, plan.qc_dir, ctx),
        )
    rows = apply_ranges(qc_rows(master, hot, fs.temperatures()), s.qc_ranges)
    return Reduced(master, hot, noise, noise_peel, rows)


def figure_context(plan: ProductPlan) -> Context:
    """What the QC figures say about a product beyond its pixels: instrument, arm,
    exposure, date, the frames' names and the frames left out, the gain (the electron
    step of whole-ADU frames) and the hot- and noisy-pixel rules."""
    from mdark_dask.report.figures import Context

    fs, s = plan.frameset, plan.settings
    return Context(
        name=plan.name,
        instrument=fs.instrument,
        arm=fs.arm,
        exptime=float(fs.exptime),
        date=str(fs.first(fs.spec.keywords.date_obs) or ""),
        frames=tuple(f.name for f in fs.frames),
        dropped=tuple((os.path.basename(path), reason) for path, reason in fs.dropped),
        gain=float(fs.gain),
        hot_sigma=float(s.hot_sigma),
        hot_rate=None if s.hot_rate is None else float(s.hot_rate),
        noise_sigma=float(s.noise_sigma),
    )


def write_products(reduced: Reduced, plan: ProductPlan) -> ProductResult:
    """Write the hot-pixel map, the noise image and the master dark, each atomically.

    The one product writer, for the command line and the API alike. The maps are written
    first, so a master whose fingerprint is up to date always has its maps beside it.
    """
    from mdark_dask.io.product import (
        FINGERPRINT_KEY,
        build_hdul,
        build_hotpix_hdul,
        build_noise_hdul,
        hotpix_header,
        noise_header,
        primary_header,
        set_card,
    )

    start = time.perf_counter()
    s = plan.settings
    fs = plan.frameset
    rows, hot = reduced.qc, reduced.hot
    kw = fs.spec.keywords
    raws = [(f.name, f"{f.get(kw.dpr_type)}_{fs.arm}") for f in fs.frames]
    raw_header = read_header(fs.frames[0].path)
    header = primary_header(raw_header, fs.arm, raws, s.params, s.numerics, rows)
    set_card(header, FINGERPRINT_KEY, plan.fingerprint, "frames+settings digest")
    hot_rows = [r for r in rows if r.name in HOTPIX_QC]
    write_atomic(
        build_hotpix_hdul(hot, hotpix_header(header, fs.arm, hot, hot_rows, s.hotpix_params)),
        plan.hotpix_path,
    )
    noise = build_noise_hdul(
        reduced.noise,
        reduced.noise_peel,
        noise_header(header, fs.arm, hot, s.hotpix_params),
    )
    write_atomic(noise, plan.noise_path)
    write_atomic(build_hdul(reduced.master, header), plan.product_path)
    return ProductResult(
        name=plan.name,
        path=str(plan.product_path),
        arm=fs.arm,
        instrument=fs.instrument,
        n_frames=len(fs.frames),
        qc=rows,
        date_obs=str(fs.first(fs.spec.keywords.date_obs)),
        seconds=time.perf_counter() - start,
        hotpix_path=str(plan.hotpix_path),
        noise_path=str(plan.noise_path),
    )


def _draw(build: Callable[..., Any], *args: Any) -> tuple[str, ...]:
    """A plotting thread's step: reduce the images to figures and draw them; their paths."""
    from mdark_dask.report.draw import draw_all

    # plots handle NaN and empty samples themselves; floating-point flags must not turn
    # into numpy "invalid value" warnings that fail the product
    with np.errstate(all="ignore"):
        figures = build(*args)
    return draw_all(figures)


def finalize_product(
    strip: Mapping[str, npt.NDArray[Any]],
    frame_levels: Sequence[npt.NDArray[np.float64]],
    plan: ProductPlan,
) -> ProductResult:
    """The final task: :func:`reduce_master`, then :func:`write_products`, with the QC
    plots reduced to figures and drawn by threads of their own meanwhile (one per group
    of figures, :data:`FIGURE_GROUPS`).

    numpy, the compiled kernels, Pillow's PNG encoder and file I/O release the GIL, so
    the plots are drawn while this thread computes and writes; the writes never touch
    the arrays the plots read (astropy is given read-only views, which it byte-swaps
    into copies). A plot that fails fails the product: no master stays behind that a
    rerun would take as up to date.
    """
    start = time.perf_counter()
    # a thread per group: each group starts as soon as its inputs exist
    with ThreadPoolExecutor(len(FIGURE_GROUPS), thread_name_prefix="mdark-plots") as pool:
        drawings: dict[str, Future[tuple[str, ...]]] = {}

        def draw(key: str, build: Callable[..., Any], args: tuple[Any, ...]) -> None:
            drawings[key] = pool.submit(_draw, build, *args)

        reduced = reduce_master(strip, frame_levels, plan, draw if plan.plots else None)
        result = write_products(reduced, plan)
        # the pages' picture: a few milliseconds, so made even without the QC plots
        write_thumbnail(
            plan.thumbnail_path, thumbnail_grey(reduced.master.flux, reduced.master.qual)
        )
        try:
            plots = tuple(
                path for key in FIGURE_GROUPS if key in drawings for path in drawings[key].result()
            )
        except BaseException:
            with contextlib.suppress(OSError):
                plan.product_path.unlink()
            raise
    return replace(result, plots=plots, seconds=time.perf_counter() - start)


def master_graph(plan: ProductPlan) -> Delayed:
    """The whole lazy graph of one product; computing it writes the product.

    Plain delayed tasks over the set's reader, so the command never pays for importing
    ``dask.array`` (and the xarray, pandas and SciPy it pulls in).
    """
    token = tokenize(plan)
    levels, joined = stacked_graph(plan, token)
    task = dask.delayed(finalize_product, pure=True)
    plan_key: Delayed = dask.delayed(plan, name=f"plan-{token}", traverse=False)
    result: Delayed = task(joined, levels, plan_key, dask_key_name=f"finalize-{plan.name}-{token}")
    return result
