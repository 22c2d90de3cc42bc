"""Draw the QC figures (:mod:`mdark_dask.report.figures`) into PNG files with matplotlib.

Only matplotlib's object API and its Agg canvas are used, never pyplot's global state, so
figures drawn in threads side by side cannot mix. The figures are drawn cheaply, as they
are drawn for every product: plain images are written by Pillow as RGB arrays (no axes);
figures have a few round ticks and no minor ones (every tick is several artists to make
and draw), plain-text tick labels (no mathtext parsing), fixed margins (no
``tight_layout``), a symmetric-log coordinate drawn on a linear axis (:func:`symlog`) and
fast PNG compression.

Imports matplotlib and Pillow on first use; :func:`preload` imports them ahead, in a
thread of the command's own while the frames are clipped.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mdark_dask.errors import OutputError
from mdark_dask.report.figures import (
    DarkPanel,
    DistributionFigure,
    Figure,
    FramesFigure,
    HistogramFigure,
    NoisePanel,
    PlainImage,
)

#: zlib level of the PNG files: level 1 writes these noisy images much faster than
#: matplotlib's default (6), for files a little larger.
PNG_OPTIONS: Final = {"compress_level": 1}


def preload() -> None:
    """Import matplotlib's Agg canvas and figure and Pillow's PNG writer (a slow import,
    all Python), so the first figure does not wait for them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.backends.backend_agg
    import matplotlib.figure
    import matplotlib.patches
    import matplotlib.ticker
    import PIL.PngImagePlugin  # noqa: F401


class InThread:
    """Draws QC figures in the calling thread (the default, and the only choice on a
    cluster's workers)."""

    def draw(self, figures: Sequence[Figure]) -> tuple[str, ...]:
        """:func:`draw_all` here."""
        return draw_all(figures)


class DrawingProcess:
    """Draws QC figures in a process of its own: a process pool of one worker.

    The final task of a product computes and writes on one core while the figures are
    drawn on the other; matplotlib's drawing is Python and holds the GIL, so drawn in a
    thread it would take turns with the final task and the strip tasks. The worker is
    forked when the pool is made, and only from a process with no other thread (a fork
    beside threads can copy a lock held by one of them), and imports matplotlib at once,
    while the command scans headers and clips frames. Figures are small frozen values,
    so handing them over costs little. If the worker dies the figures are drawn in the
    calling thread; a figure that fails raises its error either way.

    Pickled (for a cluster's workers) it becomes :class:`InThread`.
    """

    def __init__(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        self._pool.submit(preload)  # forks now, then imports matplotlib there

    @staticmethod
    def possible() -> bool:
        """Whether a drawing process may be made here: a POSIX process with one thread."""
        import threading

        return os.name == "posix" and threading.active_count() == 1

    def draw(self, figures: Sequence[Figure]) -> tuple[str, ...]:
        """Draw the figures in the drawing process (here if it is gone); their paths."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            future = self._pool.submit(draw_all, tuple(figures))
        except (BrokenProcessPool, RuntimeError):  # gone, or shut down
            return draw_all(figures)
        try:
            return future.result()
        except BrokenProcessPool:
            return draw_all(figures)

    def close(self) -> None:
        """Stop the drawing process (waiting for figures under way)."""
        self._pool.shutdown(wait=True)

    def __reduce__(self) -> tuple[type[InThread], tuple[()]]:
        return (InThread, ())


#: Something that draws QC figures: :class:`InThread` or :class:`DrawingProcess`.
Drawer = InThread | DrawingProcess


def draw_all(figures: Iterable[Figure]) -> tuple[str, ...]:
    """:func:`draw` each figure, in order; their paths.

    Raises
    ------
    OutputError
        A figure cannot be written (a full or read-only disk, a directory that is a file).
    """
    try:
        return tuple(draw(f) for f in figures)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise OutputError(f"cannot write the QC plots:{where}: {exc.strerror or exc}") from None


def draw(figure: Figure) -> str:
    """Write one figure to its path (through a temporary name, its directory made);
    return the path."""
    path = Path(figure.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # plots handle NaN and empty samples themselves; floating-point flags left set by a
    # C extension imported in this thread (seen: matplotlib's) must not turn into numpy
    # "invalid value" warnings that fail the product
    with np.errstate(all="ignore"):
        if isinstance(figure, PlainImage):
            _write_image(path, figure.rgb)
        elif isinstance(figure, FramesFigure):
            _write_figure(_frames(figure), path)
        elif isinstance(figure, HistogramFigure):
            _write_figure(_histogram(figure), path)
        else:
            _write_figure(_distribution(figure), path)
    return str(path)


def _frames(f: FramesFigure) -> Any:
    fig = _figure_class()(figsize=(7, 4.5), dpi=80)
    top, bottom = fig.subplots(2, 1, sharex=True)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.88, bottom=0.11, hspace=0.08)
    for ax in (top, bottom):
        _few_ticks(ax.yaxis)
    _few_ticks(bottom.xaxis)
    top.plot(f.minutes, f.level, "o-", color="tab:blue")
    top.set_ylabel("level [e-]")
    top.set_title(
        f"{f.name}\nper-frame level (clipped mean) and scatter (RAW RON)", fontsize=9, y=1.0
    )
    bottom.plot(f.minutes, f.scatter, "o-", color="tab:orange")
    bottom.set_ylabel("scatter [e-]")
    bottom.set_xlabel("minutes since the first frame (MJD-OBS)")
    return fig


def _histogram(f: HistogramFigure) -> Any:
    fig = _figure_class()(figsize=(7, 4), dpi=90)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.13, right=0.97, top=0.87, bottom=0.13)
    _stairs(ax, f.counts, f.edges, fill=True, color="0.4")
    _log_counts(ax, f.counts)
    _few_ticks(ax.xaxis)
    ax.set_xlim(f.edges[0], f.edges[-1])
    b_lo, b_hi = f.bounds
    for x in (b_lo, b_hi):
        ax.axvline(x, color="red", ls="--")
    ax.set_xlabel("master dark [e-]")
    ax.set_ylabel("pixels")
    # the bounds are named, with their values, in the title (no legend to lay out)
    ax.set_title(
        f"{f.name}: stacked pixels (before filling)\npost-stack clip bounds (red "
        f"dashed) {b_lo:.6g} and {b_hi:.6g} e-",
        fontsize=9,
        y=1.0,
    )
    return fig


def _distribution(f: DistributionFigure) -> Any:
    fig = _figure_class()(figsize=(7, 7), dpi=90)
    top, bottom = fig.subplots(2, 1)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.95, bottom=0.07, hspace=0.3)
    _dark_panel(top, f.dark, f.name)
    _noise_panel(bottom, f.noise)
    return fig


def _dark_panel(ax: Any, p: DarkPanel, name: str) -> None:
    """Dark current on a linear axis of the symmetric-log coordinate (:func:`symlog`)."""
    t = p.linthresh
    _stairs(ax, p.counts, symlog(p.edges, t), fill=True, color="0.4")
    _log_counts(ax, p.counts)
    ticks = symlog_ticks(float(p.edges[0]), float(p.edges[-1]), t)
    ax.set_xticks(symlog(ticks, t), [f"{v:g}" for v in ticks])
    ax.set_xlim(*symlog(np.array([p.edges[0], p.edges[-1]]), t))
    ax.axvline(float(symlog(np.array([p.hot_threshold]), t)[0]), color="red", ls="--")
    ax.set_xlabel(f"dark current: master - robust level [e-] (linear within ±{t:.3g})")
    ax.set_ylabel("pixels")
    ax.set_title(
        f"{name}: {p.n_hot} hot pixels, above {p.hot_threshold:.3g} e- (red dashed)",
        fontsize=9,
        y=1.0,
    )


def _noise_panel(ax: Any, p: NoisePanel) -> None:
    """Both noise images' counts as outlines, each with its threshold."""
    shown = np.zeros(p.edges.size - 1, dtype=np.int64)
    for curve in p.curves:
        shown = np.maximum(shown, curve.counts)
        _stairs(ax, curve.counts, p.edges, fill=False, color=curve.colour, label=curve.label)
        if np.isfinite(curve.threshold):
            ax.axvline(
                curve.threshold,
                color=curve.colour,
                ls="--",
                label=f"threshold {curve.threshold:.3g} e-",
            )
    n_hi = float(p.edges[-1])
    _log_counts(ax, shown)
    _few_ticks(ax.xaxis)
    ax.set_xlim(-0.02 * n_hi, 1.02 * n_hi)
    if p.curves:  # (a legend of nothing warns)
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel("temporal scatter along the stack [e-]")
    ax.set_ylabel("pixels")
    ax.set_title(
        f"{p.n_noisy} noisy pixels (peeled image; kept-frames image below 5 frames)",
        fontsize=9,
        y=1.0,
    )


def symlog(x: npt.ArrayLike, linthresh: float) -> npt.NDArray[np.float64]:
    """Symmetric-log coordinate: ``x`` within ``±linthresh``, each decade beyond as wide.

    Drawing in this coordinate on a linear axis shows what a ``symlog`` axis shows, at a
    fraction of its cost (no per-artist non-affine transforms, no mathtext tick labels).

    >>> symlog(np.array([-100.0, 0.0, 5.0, 10.0, 100.0]), 10.0).tolist()
    [-20.0, 0.0, 5.0, 10.0, 20.0]
    """
    v = np.asarray(x, dtype=np.float64)
    a = np.abs(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        far = np.sign(v) * linthresh * (1.0 + np.log10(a / linthresh))
    return np.where(a <= linthresh, v, far)


def symlog_ticks(lo: float, hi: float, linthresh: float) -> npt.NDArray[np.float64]:
    """Tick values for :func:`symlog` between ``lo`` and ``hi``: a few round values in the
    linear part, and the powers of ten (with their sign) beyond it.

    >>> symlog_ticks(-30.0, 5000.0, 10.0).tolist()
    [-10.0, -4.0, 0.0, 4.0, 10.0, 100.0, 1000.0]
    """
    from matplotlib.ticker import MaxNLocator

    inner = np.asarray(MaxNLocator(5).tick_values(max(lo, -linthresh), min(hi, linthresh)))
    first = math.ceil(math.log10(linthresh))
    decades = [10.0**k for k in range(first, first + 40) if 10.0**k <= max(hi, -lo)]
    inner = inner[np.abs(inner) < 0.8 * linthresh]  # not crowding the first decade's label
    values = np.concatenate([inner, decades, [-d for d in decades]])
    return np.unique(values[(values >= lo) & (values <= hi)]).astype(np.float64)


def count_label(value: float, _position: object = None) -> str:
    """Plain tick label of a pixel count: ``100``, ``1000``, then ``1e4``, ``1e5``...

    >>> [count_label(v) for v in (1.0, 1000.0, 1e4, 2e6)]
    ['1', '1000', '1e4', '2e6']
    """
    if value < 1e4:
        return f"{value:g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _stairs(ax: Any, counts: npt.NDArray[np.int64], edges: npt.ArrayLike, **style: Any) -> None:
    """A histogram as one step patch, added without :meth:`Axes.stairs`' data-limit update
    (a Python loop over the path's segments); the caller sets the limits."""
    from matplotlib.patches import StepPatch

    ax.add_artist(StepPatch(counts, np.asarray(edges, dtype=np.float64), **style))


def _few_ticks(axis: Any) -> None:
    """At most five round ticks on a linear axis: every tick is several artists to make
    and draw, the larger part of a small figure's cost."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(4, steps=[1, 2, 5, 10]))


def _log_counts(ax: Any, counts: npt.NDArray[np.int64]) -> None:
    """Logarithmic pixel counts from 1 to the largest count, with plain labels at the
    decades and no minor ticks: the default log axis writes its labels in mathtext, whose
    parser would dominate the figure's cost, and makes a tick object for every minor tick."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    ax.set_ylim(0.5, max(2.0 * float(np.max(counts, initial=1)), 10.0))
    ax.yaxis.set_major_locator(LogLocator(numticks=6))
    ax.yaxis.set_major_formatter(FuncFormatter(count_label))
    ax.yaxis.set_minor_locator(NullLocator())


def _figure_class() -> Any:
    """matplotlib's ``Figure``, with the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure as MplFigure

    return MplFigure


def _write_image(path: Path, rgb: npt.NDArray[np.uint8]) -> None:
    """A plain RGB image, row 0 at the bottom as in DS9, written via a temporary name
    (by Pillow directly: matplotlib's ``imsave`` would make it RGBA first)."""
    from PIL import Image

    with _replacing(path) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb[::-1])).save(tmp, format="PNG", **PNG_OPTIONS)


def _write_figure(fig: Any, path: Path) -> None:
    """A figure at its own dpi, written via a temporary name."""
    with _replacing(path) as tmp:
        fig.savefig(tmp, format="png", pil_kwargs=PNG_OPTIONS)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path``, renamed to it after the block, removed if the
    block fails."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
