"""Draw the QC figures (:mod:`mdark_dask.report.figures`) into PNG files with matplotlib.

Only matplotlib's object API and its Agg canvas are used, never pyplot's global state, so
figures drawn in threads side by side cannot mix. Frame images are drawn as the field
draws them: pixel axes in the product's orientation (row 0 at the bottom), the axes box
sized to the frame (a tall frame gives a tall figure), a zscale stretch (astropy's
``ZScaleInterval``, :func:`zscale`) and a colour bar with its unit. The figures are
drawn cheaply, as they are drawn for every product: a few round ticks and no minor ones
(every tick is several artists to make and draw), plain-text tick labels (no mathtext
parsing), fixed margins in inches (no ``tight_layout``), a symmetric-log coordinate drawn
on a linear axis (:func:`symlog`) and fast PNG compression.

:func:`render` builds a figure's matplotlib ``Figure`` (what the tests read: titles,
labels, limits, marks); :func:`draw` writes it. Imports matplotlib on first use;
:func:`preload` imports it ahead, in the drawing process or a thread of the command's own
while the frames are clipped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from mdark_dask.errors import OutputError
from mdark_dask.io.atomic import replacing
from mdark_dask.report.figures import (
    STRETCH,
    Cutout,
    DarkPanel,
    DistributionFigure,
    Figure,
    FlagMapFigure,
    FramesFigure,
    HistogramFigure,
    ImageFigure,
    Line,
    Marks,
    NoisePanel,
)

#: zlib level of the PNG files: level 1 writes these noisy images much faster than
#: matplotlib's default (6), for files a little larger.
PNG_OPTIONS: Final = {"compress_level": 1}


def preload() -> None:
    """Import matplotlib's Agg canvas and figure and Pillow's PNG writer (slow imports,
    all Python), so the first figure does not wait for them.

    astropy.visualization is not imported (:func:`zscale`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.backends.backend_agg
    import matplotlib.collections
    import matplotlib.figure
    import matplotlib.patches
    import matplotlib.ticker
    import PIL.PngImagePlugin  # noqa: F401


class Started(NamedTuple):
    """Figures handed to a drawer (:meth:`InThread.start`, :meth:`DrawingProcess.start`).

    Either drawn already (``paths``; ``future`` None, which is what a cluster's worker
    hands on, as it pickles), or being drawn by the drawing process (``future``, with the
    ``figures`` to draw here should that process be lost).
    """

    paths: tuple[str, ...]
    future: Future[tuple[str, ...]] | None = None
    figures: tuple[Figure, ...] = ()

    def result(self) -> tuple[str, ...]:
        """The figures' paths, once drawn; a figure that failed raises its error."""
        from concurrent.futures.process import BrokenProcessPool

        if self.future is None:
            return self.paths
        try:
            return self.future.result()
        except BrokenProcessPool:
            return draw_all(self.figures)


class InThread:
    """Draws QC figures in the calling thread (the default, and the only choice on a
    cluster's workers)."""

    def draw(self, figures: Sequence[Figure]) -> tuple[str, ...]:
        """:func:`draw_all` here."""
        return draw_all(figures)

    def start(self, figures: Sequence[Figure]) -> Started:
        """Draw the figures here, now."""
        return Started(draw_all(figures))


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
        return self.start(figures).result()

    def start(self, figures: Sequence[Figure]) -> Started:
        """Hand the figures to the drawing process, without waiting (drawn here, now,
        if it is gone)."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            future = self._pool.submit(draw_all, tuple(figures))
        except (BrokenProcessPool, RuntimeError):  # gone, or shut down
            return Started(draw_all(figures))
        return Started((), future, tuple(figures))

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
    write_figure(render(figure), path)
    return str(path)


def render(figure: Figure) -> Any:
    """The matplotlib ``Figure`` of one QC figure (Agg canvas, not yet drawn)."""
    # plots handle NaN and empty samples themselves; floating-point flags left set by a
    # C extension imported in this thread (seen: matplotlib's) must not turn into numpy
    # "invalid value" warnings that fail the product
    with np.errstate(all="ignore"):
        if isinstance(figure, ImageFigure):
            return _image(figure)
        if isinstance(figure, FlagMapFigure):
            return _flag_map(figure)
        if isinstance(figure, FramesFigure):
            return _frames(figure)
        if isinstance(figure, HistogramFigure):
            return _histogram(figure)
        return _distribution(figure)


#: Inches: the long side of a frame image's axes box, and the fixed margins around it.
FRAME_INCHES: Final = 4.6
DPI: Final = 80
_LEFT, _TOP, _RIGHT, _LINE = 0.75, 0.75, 0.15, 0.16
#: Inches of a colour bar beside an image: gap, bar, tick labels and unit.
_BAR = (0.12, 0.14, 0.75)
#: Inches of the cut-out's side.
CUTOUT_INCHES: Final = 2.3


def frame_box(shape: tuple[int, int], side: float = FRAME_INCHES) -> tuple[float, float]:
    """(width, height) in inches of the axes box of a frame of ``shape`` (rows, cols):
    ``side`` on the long side, the frame's aspect kept.

    >>> [round(x, 4) for x in frame_box((4096, 908), 4.6)]
    [1.0197, 4.6]
    """
    ny, nx = shape
    scale = side / max(ny, nx, 1)
    return (max(nx, 1) * scale, max(ny, 1) * scale)


def stretch_limits(values: npt.ArrayLike) -> tuple[float, float]:
    """The display range of an image: the zscale of its finite values (:func:`zscale`; a
    range of at least a millionth of the level around a flat image; (0, 1) for nothing
    finite)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return (0.0, 1.0)
    lo, hi = zscale(v)
    if not hi > lo:
        pad = max(abs(lo) * 1e-6, 1e-6)
        lo, hi = lo - pad, hi + pad
    return (lo, hi)


def zscale(
    values: npt.NDArray[np.float64],
    n_samples: int = 1000,
    contrast: float = 0.25,
    max_reject: float = 0.5,
    min_npixels: int = 5,
    krej: float = 2.5,
    max_iterations: int = 5,
) -> tuple[float, float]:
    """IRAF's zscale limits of finite ``values``, as astropy computes them
    (``astropy.visualization.ZScaleInterval().get_limits``, same parameters and defaults;
    the tests hold the two equal).

    A line is fitted to the sorted sample of about ``n_samples`` values with iterative
    ``krej``-sigma rejection (the rejected grown by 1% of the sample); its slope, divided
    by ``contrast``, spans the display range around the sample's median, within the
    sample's extremes. Written here rather than imported: importing astropy.visualization
    brings astropy's units and times, a quarter of a second or more of the drawing
    process, which is the end of every product's critical path.

    >>> zscale(np.arange(1000.0))
    (0.0, 999.0)
    """
    stride = int(max(1.0, values.size / n_samples))
    samples = np.sort(values[::stride][:n_samples])
    npix = samples.size
    vmin, vmax = float(samples[0]), float(samples[-1])
    minpix = max(min_npixels, int(npix * max_reject))
    x = np.arange(npix)
    ngoodpix, last_ngoodpix = npix, npix + 1
    badpix = np.zeros(npix, dtype=bool)
    kernel = np.ones(max(1, int(npix * 0.01)), dtype=bool)
    fit = np.zeros(2)
    for _ in range(max_iterations):
        if ngoodpix >= last_ngoodpix or ngoodpix < minpix:
            break
        fit = np.polyfit(x, samples, deg=1, w=(~badpix).astype(int))
        flat = samples - np.poly1d(fit)(x)
        threshold = krej * flat[~badpix].std()
        badpix[(flat < -threshold) | (flat > threshold)] = True
        badpix = np.convolve(badpix, kernel, mode="same")
        last_ngoodpix, ngoodpix = ngoodpix, int(np.sum(~badpix))
    if ngoodpix >= minpix:
        slope = float(fit[0]) / contrast if contrast > 0 else float(fit[0])
        center = (npix - 1) // 2
        median = float(np.median(samples))
        vmin = max(vmin, median - (center - 1) * slope)
        vmax = min(vmax, median + (npix - center) * slope)
    return vmin, vmax


def _title(fig: Any, text: str, height: float) -> None:
    fig.text(0.5, 1 - 0.08 / height, text, ha="center", va="top", fontsize=8)


def _image_axes(fig: Any, box: tuple[float, float, float, float], size: tuple[float, float]) -> Any:
    """Axes at ``box`` = (left, bottom, width, height) inches in a figure of ``size``."""
    w, h = size
    left, bottom, width, height = box
    ax = fig.add_axes((left / w, bottom / h, width / w, height / h))
    for axis in (ax.xaxis, ax.yaxis):
        _few_ticks(axis, 3)
        axis.set_tick_params(labelsize=7)
    ax.set_xlabel("x [pixel]", fontsize=8)
    ax.set_ylabel("y [pixel]", fontsize=8)
    return ax


def _show(ax: Any, image: npt.NDArray[np.float64], x0: float, y0: float, block: int) -> Any:
    """``image`` with its display pixel ``[0, 0]`` covering frame pixels from (x0, y0),
    ``block`` frame pixels a side each, row 0 at the bottom, in the zscale stretch."""
    lo, hi = stretch_limits(image)
    ny, nx = image.shape
    extent = (x0 - 0.5, x0 + nx * block - 0.5, y0 - 0.5, y0 + ny * block - 0.5)
    return ax.imshow(
        image,
        origin="lower",
        cmap="gray",
        vmin=lo,
        vmax=hi,
        extent=extent,
        interpolation="nearest",
        aspect="auto",
    )


def _colour_bar(fig: Any, image: Any, box: tuple[float, float, float, float], unit: str) -> None:
    w, h = fig.get_size_inches()
    left, bottom, width, height = box
    cax = fig.add_axes((left / w, bottom / h, width / w, height / h))
    bar = fig.colorbar(image, cax=cax)
    _few_ticks(bar.ax.yaxis)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(f"[{unit}] ({STRETCH})", fontsize=8)


def _mark(ax: Any, marks: Marks) -> Any:
    """Marks of a constant size on the page (so one pixel of a large frame is seen),
    smaller when there are many (so they do not cover the image)."""
    size = min(5.0, max(2.5, 6.5 - math.log10(max(marks.x.size, 1))))
    (line,) = ax.plot(
        marks.x,
        marks.y,
        ls="none",
        marker=marks.marker,
        ms=size,
        mew=0.8,
        mfc="none",
        mec=marks.colour,
        label=marks.label,
    )
    return line


def _notes(
    fig: Any, handles: Sequence[Any], notes: Sequence[str], size: tuple[float, float]
) -> None:
    """The legend's lines and the notes under the axes, left-aligned from the bottom up."""
    w, h = size
    y = 0.1
    for note in reversed(notes):
        fig.text(0.1 / w, y / h, note, fontsize=7, va="bottom")
        y += _LINE
    if handles:
        fig.legend(
            handles=list(handles),
            loc="lower left",
            bbox_to_anchor=(0.02 / w, (y - 0.04) / h),
            fontsize=7,
            frameon=False,
            handlelength=1.2,
            borderaxespad=0.0,
        )


def _image(f: ImageFigure) -> Any:
    box_w, box_h = frame_box(f.shape)
    bar = sum(_BAR)
    width = max(_LEFT + box_w + bar + _RIGHT, 5.0)
    n_lines = len(f.notes) + len(f.marks)
    bottom = 0.55 + _LINE * n_lines + 0.1
    height = bottom + box_h + _TOP
    left = max(_LEFT, (width - box_w - bar) / 2)
    fig = _figure_class()(figsize=(width, height), dpi=DPI)
    ax = _image_axes(fig, (left, bottom, box_w, box_h), (width, height))
    image = _show(ax, f.image, 0.0, 0.0, f.block)
    ax.set_xlim(-0.5, f.shape[1] - 0.5)
    ax.set_ylim(-0.5, f.shape[0] - 0.5)
    handles = [_mark(ax, m) for m in f.marks]
    _colour_bar(fig, image, (left + box_w + _BAR[0], bottom, _BAR[1], box_h), f.unit)
    _title(fig, f.title, height)
    _notes(fig, handles, f.notes, (width, height))
    return fig


def _flag_map(f: FlagMapFigure) -> Any:
    box_w, box_h = frame_box(f.shape)
    side = CUTOUT_INCHES
    gap = 0.75
    bar = sum(_BAR)
    width = _LEFT + box_w + gap + side + bar + _RIGHT
    bottom = 0.55 + _LINE * (len(f.marks) + 1) + 0.1
    height = bottom + max(box_h, side + 0.3) + _TOP
    fig = _figure_class()(figsize=(width, height), dpi=DPI)
    ax = _image_axes(fig, (_LEFT, bottom, box_w, box_h), (width, height))
    ny, nx = f.masked.shape
    extent = (-0.5, nx * f.block - 0.5, -0.5, ny * f.block - 0.5)
    ax.imshow(
        f.masked,
        origin="lower",
        cmap="Greys",
        vmin=0.0,
        vmax=1.0,
        extent=extent,
        interpolation="nearest",
        aspect="auto",
    )
    ax.set_xlim(-0.5, f.shape[1] - 0.5)
    ax.set_ylim(-0.5, f.shape[0] - 0.5)
    handles = [_mark(ax, m) for m in f.marks]
    from matplotlib.patches import Patch

    handles.append(Patch(facecolor="0.75", edgecolor="0.5", label=f.masked_label))
    c_left, c_bottom = _LEFT + box_w + gap, bottom + max(box_h, side + 0.3) - side - 0.3
    cut = _image_axes(fig, (c_left, c_bottom, side, side), (width, height))
    image = _cutout(cut, f.cutout)
    _colour_bar(fig, image, (c_left + side + _BAR[0], c_bottom, _BAR[1], side), f.unit)
    _title(fig, f.title, height)
    _notes(fig, handles, [], (width, height))
    return fig


def _cutout(ax: Any, c: Cutout) -> Any:
    """The cut-out at full resolution, each flag drawn as its own pixel: hot outlined in
    red, noisy in blue (inset), QUAL-only pixels with a grey dot."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    image = _show(ax, c.image, c.x0, c.y0, 1)
    ny, nx = c.image.shape
    ax.set_xlim(c.x0 - 0.5, c.x0 + nx - 0.5)
    ax.set_ylim(c.y0 - 0.5, c.y0 + ny - 0.5)
    for flags, colour, inset in ((c.hot, "red", 0.0), (c.noisy, "tab:blue", 0.18)):
        ys, xs = np.nonzero(flags)
        squares = [
            Rectangle(
                (x0 + c.x0 - 0.5 + inset, y0 + c.y0 - 0.5 + inset), 1 - 2 * inset, 1 - 2 * inset
            )
            for y0, x0 in zip(ys.tolist(), xs.tolist(), strict=True)
        ]
        if squares:
            ax.add_collection(
                PatchCollection(squares, facecolor="none", edgecolor=colour, linewidth=1.1)
            )
    ys, xs = np.nonzero(c.masked & ~c.hot & ~c.noisy)
    ax.plot(xs + c.x0, ys + c.y0, ls="none", marker=".", ms=2, color="0.6")
    ax.set_title(f"full resolution, around\n{c.what}", fontsize=7)
    return image


def _frames(f: FramesFigure) -> Any:
    n, m = len(f.labels), len(f.dropped)
    every = max(1, -(-(n + m) // 40))
    ticks = list(range(1, n + m + 1, every))
    names = [*f.labels, *f.dropped]
    longest = max((len(names[t - 1]) for t in ticks), default=0)
    bottom = 0.55 + 0.055 * longest
    width = max(6.0, 1.3 + 0.16 * (n + m))
    height = bottom + 2 * 1.7 + 0.15 + _TOP + 0.1
    fig = _figure_class()(figsize=(width, height), dpi=DPI)
    panel = 1.7 / height
    top_ax = fig.add_axes((0.9 / width, (bottom + 1.85) / height, 1 - 1.05 / width, panel))
    low_ax = fig.add_axes((0.9 / width, bottom / height, 1 - 1.05 / width, panel), sharex=top_ax)
    x = np.arange(1, n + 1, dtype=np.float64)
    top_ax.plot(x, f.level, "o-", color="tab:blue", ms=4)
    low_ax.plot(x, f.scatter, "o-", color="tab:orange", ms=4)
    top_ax.set_ylim(*f.level_limits)
    low_ax.set_ylim(*f.scatter_limits)
    top_ax.set_ylabel("level [e-]", fontsize=8)
    low_ax.set_ylabel("scatter [e-]", fontsize=8)
    for ax in (top_ax, low_ax):
        _few_ticks(ax.yaxis)
        ax.tick_params(labelsize=7)
    if m:
        xd = np.arange(n + 1, n + m + 1, dtype=np.float64)
        for ax in (top_ax, low_ax):
            lo = ax.get_ylim()[0]
            ax.plot(
                xd, np.full(m, lo), ls="none", marker="x", ms=7, mew=1.5, color="red", clip_on=False
            )
    low_ax.set_xlim(0.5, n + m + 0.5)
    low_ax.set_xticks(ticks, [names[t - 1] for t in ticks], rotation=90, fontsize=7)
    low_ax.set_xlabel(f.xlabel, fontsize=8)
    for label, t in zip(low_ax.get_xticklabels(), ticks, strict=True):
        if t > n:
            label.set_color("red")
    top_ax.tick_params(labelbottom=False)
    _title(fig, f.title, height)
    return fig


def _lines(ax: Any, lines: Sequence[Line], transform: Any = None) -> None:
    """Bounds and thresholds: solid where they decide, dotted where shown for comparison."""
    for line in lines:
        x = line.x if transform is None else float(transform(np.array([line.x]))[0])
        ax.axvline(x, color=line.colour, ls="--" if line.decides else ":", lw=1.2, label=line.label)


def _histogram(f: HistogramFigure) -> Any:
    height = 4.3
    fig = _figure_class()(figsize=(7, height), dpi=DPI)
    ax = fig.add_axes((0.11, 0.13, 0.86, 1 - 0.13 - (_TOP + 0.1) / height))
    _stairs(ax, f.counts, f.edges, fill=True, color="0.4")
    _log_counts(ax, f.counts)
    _few_ticks(ax.xaxis)
    ax.tick_params(labelsize=7)
    ax.set_xlim(f.edges[0], f.edges[-1])
    _lines(ax, f.lines)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel(f.xlabel, fontsize=8)
    ax.set_ylabel("pixels", fontsize=8)
    _title(fig, f.title, height)
    return fig


def _distribution(f: DistributionFigure) -> Any:
    height = 7.6
    fig = _figure_class()(figsize=(7, height), dpi=DPI)
    top = fig.add_axes((0.11, 0.56, 0.86, 0.30))
    bottom = fig.add_axes((0.11, 0.07, 0.86, 0.37))
    _dark_panel(top, f.dark)
    _noise_panel(bottom, f.noise)
    _title(fig, f.title, height)
    return fig


def _dark_panel(ax: Any, p: DarkPanel) -> None:
    """Dark current on a linear axis of the symmetric-log coordinate (:func:`symlog`)."""
    t = p.linthresh
    _stairs(ax, p.counts, symlog(p.edges, t), fill=True, color="0.4")
    _log_counts(ax, p.counts)
    ticks = symlog_ticks(float(p.edges[0]), float(p.edges[-1]), t)
    ax.set_xticks(symlog(ticks, t), [tick_label(v) for v in ticks])
    ax.tick_params(labelsize=7)
    ax.set_xlim(*symlog(np.array([p.edges[0], p.edges[-1]]), t))
    _lines(ax, p.lines, lambda v: symlog(v, t))
    ax.legend(fontsize=7, loc="upper right", title="hot-pixel threshold", title_fontsize=7)
    ax.set_xlabel(p.xlabel, fontsize=8)
    ax.set_ylabel("pixels", fontsize=8)
    ax.set_title(p.title, fontsize=8)


def _noise_panel(ax: Any, p: NoisePanel) -> None:
    """Both noise images' counts as outlines, each with its threshold."""
    shown = np.zeros(p.edges.size - 1, dtype=np.int64)
    for curve in p.curves:
        shown = np.maximum(shown, curve.counts)
        _stairs(ax, curve.counts, p.edges, fill=False, color=curve.colour, label=curve.label)
    _lines(ax, p.lines)
    n_hi = float(p.edges[-1])
    _log_counts(ax, shown)
    _few_ticks(ax.xaxis)
    ax.tick_params(labelsize=7)
    ax.set_xlim(-0.02 * n_hi, 1.02 * n_hi)
    if p.curves or p.lines:  # (a legend of nothing warns)
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel(p.xlabel, fontsize=8)
    ax.set_ylabel("pixels", fontsize=8)
    ax.set_title(p.title, fontsize=8)


def tick_label(value: float) -> str:
    """A symmetric-log tick: plain numbers, powers of ten from 1e4 as ``1e4``.

    >>> [tick_label(v) for v in (-1000.0, -0.05, 0.0, 4.0, 1e5)]
    ['-1000', '-0.05', '0', '4', '1e5']
    """
    if abs(value) < 1e4:
        return f"{value:g}"
    return ("-" if value < 0 else "") + count_label(abs(value))


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


def _few_ticks(axis: Any, bins: int = 4) -> None:
    """At most ``bins + 1`` round ticks on a linear axis: every tick is several artists
    to make and draw, the larger part of a small figure's cost."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(bins, steps=[1, 2, 5, 10]))


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


def write_figure(fig: Any, path: Path) -> None:
    """A figure at its own dpi, written via a temporary name."""
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", pil_kwargs=PNG_OPTIONS)
