"""Lay out the QC figures (:mod:`mdark_dask.report.figures`) as pictures and write them.

Frame images are drawn as the field draws them: pixel axes in the product's orientation
(row 0 at the bottom, as DS9 shows a FITS image), the axes box sized to the frame (a
tall frame gives a tall figure), a zscale stretch (astropy's ``ZScaleInterval``,
:func:`zscale`) and a colour bar with its unit. Histograms have logarithmic pixel counts
and say what each line is and which one decides.

:func:`render` lays a figure out as a :class:`~mdark_dask.report.canvas.Picture` (what
the tests read: titles, labels, limits, marks); :func:`draw` paints and writes it. Both
are cheap enough to run in the product's final task, beside the writes
(:mod:`mdark_dask.report.canvas` says why this is not matplotlib).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from mdark_dask.errors import OutputError
from mdark_dask.report.axes import (
    DPI,
    LABEL,
    AxesStyle,
    Entry,
    axes_items,
    colour_bar,
    image_raster,
    legend,
    log_ticks,
    nice_ticks,
    rows,
    steps,
    ticks,
    vline,
)
from mdark_dask.report.canvas import (
    F64,
    Item,
    Lines,
    Markers,
    Panel,
    Picture,
    Rect,
    Text,
    write_png,
)
from mdark_dask.report.figures import (
    STRETCH,
    Cutout,
    DistributionFigure,
    Figure,
    FlagMapFigure,
    FramesFigure,
    HistogramFigure,
    ImageFigure,
    Line,
    Marks,
)


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
    write_png(render(figure), path)
    return str(path)


def render(figure: Figure) -> Picture:
    """The picture of one QC figure."""
    # plots handle NaN and empty samples themselves
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
_LEFT, _TOP, _RIGHT = 0.75, 0.75, 0.15
#: Inches of one line of a legend or note under a frame image.
_LINE: Final = 0.16
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
    brings astropy's units and times, a quarter of a second or more of CPU for every
    command and worker that draws a plot.

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


def _size(width: float, height: float) -> tuple[int, int]:
    """Pixels of a figure of ``width`` x ``height`` inches."""
    return (round(width * DPI), round(height * DPI))


def _box(left: float, top: float, width: float, height: float) -> tuple[float, float, float, float]:
    """A pixel box from inches (left and top edges, width and height)."""
    return (left * DPI, top * DPI, (left + width) * DPI, (top + height) * DPI)


def _title(width_px: int, text: str) -> Text:
    """The figure's title, centred at its top."""
    return Text(width_px / 2, 6.0, text, LABEL, "ma")


def _frame_panel(
    name: str, box: tuple[float, float, float, float], x0: float, nx: float, y0: float, ny: float
) -> Panel:
    """A panel on pixel axes: frame columns ``x0..x0+nx`` and rows ``y0..y0+ny``, each
    pixel centred on its index, with a few round ticks."""
    xlim, ylim = (x0 - 0.5, x0 + nx - 0.5), (y0 - 0.5, y0 + ny - 0.5)
    return Panel(
        name,
        box,
        xlim,
        ylim,
        xlabel="x [pixel]",
        ylabel="y [pixel]",
        xticks=ticks(nice_ticks(*xlim, 3)),
        yticks=ticks(nice_ticks(*ylim, 3)),
    )


def _points(size: float) -> float:
    """Pixels of a size in points (as marker and font sizes are given)."""
    return size * DPI / 72


def _mark(p: Panel, marks: Marks) -> Markers:
    """Marks of a constant size on the page (so one pixel of a large frame is seen),
    smaller when there are many (so they do not cover the image)."""
    size = min(5.0, max(2.5, 6.5 - math.log10(max(marks.x.size, 1))))
    return Markers(
        p.px(marks.x), p.py(marks.y), marks.marker, _points(size), marks.colour, 0.9, clip=p.box
    )


def _image(f: ImageFigure) -> Picture:
    box_w, box_h = frame_box(f.shape)
    bar = sum(_BAR)
    width = max(_LEFT + box_w + bar + _RIGHT, 5.0)
    n_lines = len(f.notes) + len(f.marks)
    bottom = 0.55 + _LINE * n_lines + 0.1
    height = bottom + box_h + _TOP
    left = max(_LEFT, (width - box_w - bar) / 2)
    size = _size(width, height)
    ny, nx = f.shape
    p = _frame_panel("image", _box(left, _TOP, box_w, box_h), 0.0, nx, 0.0, ny)
    lo, hi = stretch_limits(f.image)
    items: list[Item] = [image_raster(p, f.image, f.block, 0.0, 0.0, lo, hi)]
    items += [_mark(p, m) for m in f.marks]
    items += axes_items(p)
    bar_panel, bar_items = colour_bar(
        _box(left + box_w + _BAR[0], _TOP, _BAR[1], box_h), lo, hi, f"[{f.unit}] ({STRETCH})"
    )
    items += bar_items
    items.append(_title(size[0], f.title))
    entries = [Entry(m.marker, m.colour, m.label) for m in f.marks]
    items += rows(entries, f.notes, 0.1 * DPI, size[1] - 0.1 * DPI)
    return Picture(size, tuple(items), (p, bar_panel))


def _flag_map(f: FlagMapFigure) -> Picture:
    box_w, box_h = frame_box(f.shape)
    side = CUTOUT_INCHES
    gap = 0.75
    bar = sum(_BAR)
    width = _LEFT + box_w + gap + side + bar + _RIGHT
    bottom = 0.55 + _LINE * (len(f.marks) + 1) + 0.1
    height = bottom + max(box_h, side + 0.3) + _TOP
    size = _size(width, height)
    ny, nx = f.shape
    p = _frame_panel("frame", _box(_LEFT, _TOP, box_w, box_h), 0.0, nx, 0.0, ny)
    # the share of QUAL pixels per block: white (none) to black (all), a light shade
    items: list[Item] = [image_raster(p, 1.0 - f.masked, f.block, 0.0, 0.0, 0.0, 1.0)]
    items += [_mark(p, m) for m in f.marks]
    items += axes_items(p)
    c_left, c_top = _LEFT + box_w + gap, _TOP + 0.3
    cut, cut_items, lo, hi = _cutout(_box(c_left, c_top, side, side), f.cutout)
    items += cut_items
    bar_panel, bar_items = colour_bar(
        _box(c_left + side + _BAR[0], c_top, _BAR[1], side), lo, hi, f"[{f.unit}] ({STRETCH})"
    )
    items += bar_items
    items.append(_title(size[0], f.title))
    entries = [Entry(m.marker, m.colour, m.label) for m in f.marks]
    entries.append(Entry("patch", "0.75", f.masked_label, "0.5"))
    items += rows(entries, (), 0.1 * DPI, size[1] - 0.1 * DPI)
    return Picture(size, tuple(items), (p, cut, bar_panel))


def _cutout(
    box: tuple[float, float, float, float], c: Cutout
) -> tuple[Panel, list[Item], float, float]:
    """The cut-out at full resolution, each flag drawn as its own pixel: hot outlined in
    red, noisy in blue (inset), QUAL-only pixels with a grey dot; its panel, items and
    stretch."""
    ny, nx = c.image.shape
    p = _frame_panel("cut-out", box, c.x0, nx, c.y0, ny)
    p = Panel(
        p.name,
        p.box,
        p.xlim,
        p.ylim,
        xlabel=p.xlabel,
        ylabel=p.ylabel,
        title=f"full resolution, around\n{c.what}",
        xticks=p.xticks,
        yticks=p.yticks,
    )
    lo, hi = stretch_limits(c.image)
    items: list[Item] = [image_raster(p, c.image, 1, c.x0, c.y0, lo, hi)]
    for flags, colour, inset in ((c.hot, "red", 0.0), (c.noisy, "tab:blue", 0.18)):
        for y, x in zip(*np.nonzero(flags), strict=True):
            x_lo, x_hi = p.px([x + c.x0 - 0.5 + inset, x + c.x0 + 0.5 - inset])
            y_hi, y_lo = p.py([y + c.y0 - 0.5 + inset, y + c.y0 + 0.5 - inset])
            items.append(
                Rect((float(x_lo), float(y_lo), float(x_hi), float(y_hi)), colour, "", 1.1)
            )
    ys, xs = np.nonzero(c.masked & ~c.hot & ~c.noisy)
    if xs.size:
        items.append(Markers(p.px(xs + c.x0), p.py(ys + c.y0), ".", 2.5, "0.6", clip=p.box))
    items += axes_items(p)
    return p, items, lo, hi


def _frames(f: FramesFigure) -> Picture:
    n, m = len(f.labels), len(f.dropped)
    every = max(1, -(-(n + m) // 40))
    tick_at = list(range(1, n + m + 1, every))
    names = [*f.labels, *f.dropped]
    longest = max((len(names[t - 1]) for t in tick_at), default=0)
    bottom = 0.55 + 0.055 * longest
    width = max(6.0, 1.3 + 0.16 * (n + m))
    height = bottom + 2 * 1.7 + 0.15 + _TOP + 0.1
    size = _size(width, height)
    xlim = (0.5, n + m + 0.5)
    inner = width - 1.05
    top = Panel(
        "level",
        _box(0.9, _TOP + 0.1, inner, 1.7),
        xlim,
        f.level_limits,
        ylabel="level [e-]",
        xticks=tuple((float(t), "") for t in tick_at),
        yticks=ticks(nice_ticks(*f.level_limits)),
    )
    low = Panel(
        "scatter",
        _box(0.9, _TOP + 0.1 + 1.85, inner, 1.7),
        xlim,
        f.scatter_limits,
        xlabel=f.xlabel,
        ylabel="scatter [e-]",
        xticks=tuple((float(t), names[t - 1]) for t in tick_at),
        yticks=ticks(nice_ticks(*f.scatter_limits)),
    )
    x = np.arange(1, n + 1, dtype=np.float64)
    items: list[Item] = []
    for p, values, colour in ((top, f.level, "tab:blue"), (low, f.scatter, "tab:orange")):
        points = np.column_stack([p.px(x), p.py(values)])
        items.append(Lines(points, colour, 1.3, clip=p.box))
        items.append(Markers(points[:, 0], points[:, 1], ".", _points(4.0), colour, clip=p.box))
        if m:
            xd = p.px(np.arange(n + 1, n + m + 1, dtype=np.float64))
            items.append(Markers(xd, np.full(m, p.box[3]), "x", _points(7.0), "red", 1.5))
    items += axes_items(top, AxesStyle(show_xlabels=False))
    tints = tuple("red" if t > n else "black" for t in tick_at)
    items += axes_items(low, AxesStyle(xlabel_angle=90, xlabel_colours=tints))
    items.append(_title(size[0], f.title))
    return Picture(size, tuple(items), (top, low))


def _line_items(
    p: Panel, lines: tuple[Line, ...], transform: Callable[[F64], F64] | None = None
) -> list[Item]:
    """Bounds and thresholds: dashed where they decide, dotted where shown for comparison."""
    out: list[Item] = []
    for line in lines:
        x = line.x if transform is None else float(transform(np.array([line.x]))[0])
        out.append(vline(p, x, line.colour, (5.0, 2.5) if line.decides else (1.2, 2.5)))
    return out


def _entries(lines: tuple[Line, ...]) -> list[Entry]:
    return [Entry("dash" if ln.decides else "dot", ln.colour, ln.label) for ln in lines]


def _count_axis(
    counts: npt.NDArray[np.int64],
) -> tuple[tuple[float, float], tuple[tuple[float, str], ...]]:
    """Logarithmic pixel counts from 1 to the largest count: limits and labelled decades."""
    ylim = (0.5, max(2.0 * float(np.max(counts, initial=1)), 10.0))
    return ylim, log_ticks(1.0, ylim[1], count_label)


def _histogram(f: HistogramFigure) -> Picture:
    width, height = 7.0, 4.3
    size = _size(width, height)
    ylim, yticks = _count_axis(f.counts)
    xlim = (float(f.edges[0]), float(f.edges[-1]))
    p = Panel(
        "histogram",
        _box(0.11 * width, _TOP + 0.1, 0.86 * width, 0.87 * height - _TOP - 0.1),
        xlim,
        ylim,
        ylog=True,
        xlabel=f.xlabel,
        ylabel="pixels",
        xticks=ticks(nice_ticks(*xlim)),
        yticks=yticks,
    )
    items: list[Item] = [steps(f.edges, f.counts, p, "0.4", fill=True)]
    items += _line_items(p, f.lines)
    items += axes_items(p)
    items += legend(_entries(f.lines), p.box[2] - 4.0, p.box[1] + 4.0)
    items.append(_title(size[0], f.title))
    return Picture(size, tuple(items), (p,))


def _distribution(f: DistributionFigure) -> Picture:
    width, height = 7.0, 7.6
    size = _size(width, height)
    d, n = f.dark, f.noise
    t = d.linthresh
    # dark current on a linear axis of the symmetric-log coordinate (:func:`symlog`)
    values = symlog_ticks(float(d.edges[0]), float(d.edges[-1]), t)
    x_edges = symlog(d.edges, t)
    ylim, yticks = _count_axis(d.counts)
    top = Panel(
        "dark current",
        _box(0.11 * width, 0.14 * height, 0.86 * width, 0.30 * height),
        (float(x_edges[0]), float(x_edges[-1])),
        ylim,
        ylog=True,
        xlabel=d.xlabel,
        ylabel="pixels",
        title=d.title,
        xticks=tuple(zip(symlog(values, t).tolist(), [tick_label(v) for v in values], strict=True)),
        yticks=yticks,
    )
    items: list[Item] = [steps(x_edges, d.counts, top, "0.4", fill=True)]
    items += _line_items(top, d.lines, lambda v: symlog(v, t))
    items += axes_items(top)
    items += legend(
        _entries(d.lines), top.box[2] - 4.0, top.box[1] + 4.0, title="hot-pixel threshold"
    )
    # both noise images' counts as outlines, each with its threshold
    shown = np.zeros(n.edges.size - 1, dtype=np.int64)
    for curve in n.curves:
        shown = np.maximum(shown, curve.counts)
    n_hi = float(n.edges[-1])
    xlim = (-0.02 * n_hi, 1.02 * n_hi) if n_hi > 0 else (-0.5, 0.5)
    ylim, yticks = _count_axis(shown)
    low = Panel(
        "noise",
        _box(0.11 * width, 0.56 * height, 0.86 * width, 0.37 * height),
        xlim,
        ylim,
        ylog=True,
        xlabel=n.xlabel,
        ylabel="pixels",
        title=n.title,
        xticks=ticks(nice_ticks(*xlim)),
        yticks=yticks,
    )
    items += [steps(n.edges, c.counts, low, c.colour, fill=False) for c in n.curves]
    items += _line_items(low, n.lines)
    items += axes_items(low)
    entries = [Entry("line", c.colour, c.label) for c in n.curves] + _entries(n.lines)
    items += legend(entries, low.box[2] - 4.0, low.box[1] + 4.0)
    items.append(_title(size[0], f.title))
    return Picture(size, tuple(items), (top, low))


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

    Drawing in this coordinate on a linear axis shows what a ``symlog`` axis shows, with
    plain tick labels at the powers of ten.

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
    [-10.0, -5.0, 0.0, 5.0, 10.0, 100.0, 1000.0]
    """
    inner = nice_ticks(max(lo, -linthresh), min(hi, linthresh), 5)
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


def preload() -> None:
    """Import Pillow's drawing and PNG code and open the plots' fonts, so the first
    figure of the final task does not wait for them."""
    from mdark_dask.report.axes import LABEL, SMALL
    from mdark_dask.report.canvas import preload as load

    load((LABEL, SMALL))
