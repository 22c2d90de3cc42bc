"""Axes, ticks, legends and colour bars as picture items (:mod:`mdark_dask.report.canvas`).

Pure layout: a :class:`~mdark_dask.report.canvas.Panel` and its labels in, the items
that draw its frame, ticks, tick labels, axis labels and title out. Text widths come
from the font's metrics (no pixels are drawn here). Sizes are pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from mdark_dask.report.canvas import Box, Item, Lines, Markers, Panel, Polygon, Raster, Rect, Text
from mdark_dask.report.canvas import font as _font

F64 = npt.NDArray[np.float64]

#: Pixels per inch of the QC plots.
DPI: Final = 80
#: Font sizes (pixels): labels and titles, tick labels and legends.
LABEL: Final = 8 * DPI / 72
SMALL: Final = 7 * DPI / 72
#: Tick length and the gap between a tick and its label (pixels).
TICK: Final = 3.5
GAP: Final = 2.5


def text_width(text: str, size: float) -> float:
    """Pixels across ``text`` at ``size`` (its longest line)."""
    f = _font(max(1, round(size)))
    return max((float(f.getlength(line)) for line in text.splitlines() or [""]), default=0.0)


def nice_ticks(lo: float, hi: float, bins: int = 4) -> F64:
    """At most ``bins + 1`` round values (steps of 1, 2 or 5 times a power of ten) in
    ``[lo, hi]``, as closely spaced as that allows.

    >>> nice_ticks(-0.5, 2047.5).tolist()
    [0.0, 500.0, 1000.0, 1500.0, 2000.0]
    >>> nice_ticks(4.2, 7.7, 3).tolist()
    [5.0, 6.0, 7.0]
    >>> nice_ticks(-3.42, 3.42, 5).tolist()
    [-2.0, 0.0, 2.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or not hi > lo:
        return np.array([lo]) if math.isfinite(lo) else np.array([])
    mag = 10.0 ** math.floor(math.log10((hi - lo) / (bins + 1)))
    for step in (m * mag * k for k in (1.0, 10.0, 100.0) for m in (1.0, 2.0, 5.0)):
        first = math.ceil(lo / step - 1e-9)
        last = math.floor(hi / step + 1e-9)
        if last - first + 1 <= bins + 1:
            break
    values = np.arange(first, last + 1, dtype=np.float64) * step
    return np.where(np.abs(values) < step * 1e-9, 0.0, values)


def tick_labels(values: F64) -> list[str]:
    """Plain labels with the decimals their spacing needs.

    >>> tick_labels(np.array([0.0, 0.5, 1.0])), tick_labels(np.array([1000.0, 1500.0]))
    (['0.0', '0.5', '1.0'], ['1000', '1500'])
    >>> tick_labels(np.array([5.4, 5.6])), tick_labels(np.array([0.25, 0.5]))
    (['5.4', '5.6'], ['0.25', '0.50'])
    >>> tick_labels(np.array([0.9999995, 1.0, 1.0000005]))
    ['0.9999995', '1.0000000', '1.0000005']
    """
    if values.size < 2:
        return [f"{v:g}" for v in values.tolist()]
    step = float(np.min(np.abs(np.diff(values))))
    decimals = next((d for d in range(13) if _whole(step * 10.0**d)), 12)
    return [f"{v:.{decimals}f}" for v in values.tolist()]


def _whole(x: float) -> bool:
    """Whether ``x`` is a whole number of at least 1, to a millionth of itself."""
    return round(x) >= 1 and abs(x - round(x)) <= 1e-6 * x


def ticks(values: F64) -> tuple[tuple[float, str], ...]:
    """(value, label) pairs of :func:`tick_labels`."""
    return tuple(zip(values.tolist(), tick_labels(values), strict=True))


def log_ticks(lo: float, hi: float, label: Callable[[float], str]) -> tuple[tuple[float, str], ...]:
    """The powers of ten in ``[lo, hi]`` (every other when there are more than six),
    labelled by ``label(value)``."""
    first, last = math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9)
    powers = list(range(first, last + 1))
    every = 1 if len(powers) <= 6 else 2
    return tuple((10.0**k, label(10.0**k)) for k in powers[::every])


class AxesStyle(NamedTuple):
    """How a panel's ticks are labelled: x labels turned upright (reading upwards), in
    colours of their own, or left out; y tick labels on the right."""

    xlabel_angle: int = 0
    xlabel_colours: tuple[str, ...] = ()
    show_xlabels: bool = True
    yticks_right: bool = False


def axes_items(p: Panel, style: AxesStyle | None = None) -> list[Item]:
    """The frame, ticks, tick labels, axis labels and title of panel ``p``."""
    style = style or AxesStyle()
    left, top, right, bottom = p.box
    out: list[Item] = [Rect(p.box, "black", width=0.8)]
    below = bottom + TICK + GAP
    deepest = 0.0
    for i, (value, label) in enumerate(p.xticks):
        x = float(p.px(value))
        if not left - 0.5 <= x <= right + 0.5:
            continue
        out.append(Lines(np.array([[x, bottom], [x, bottom + TICK]]), "black", 0.8))
        if not style.show_xlabels:
            continue
        tint = style.xlabel_colours[i] if i < len(style.xlabel_colours) else "black"
        if style.xlabel_angle:
            out.append(Text(x, below, label, SMALL, "mt", tint, style.xlabel_angle))
            deepest = max(deepest, text_width(label, SMALL))
        else:
            out.append(Text(x, below, label, SMALL, "mt", tint))
            deepest = max(deepest, SMALL * 1.15)
    widest = 0.0
    side = right if style.yticks_right else left
    sign = 1.0 if style.yticks_right else -1.0
    for value, label in p.yticks:
        y = float(p.py(value))
        if not top - 0.5 <= y <= bottom + 0.5:
            continue
        out.append(Lines(np.array([[side, y], [side + sign * TICK, y]]), "black", 0.8))
        anchor = "lm" if style.yticks_right else "rm"
        out.append(Text(side + sign * (TICK + GAP), y, label, SMALL, anchor))
        widest = max(widest, text_width(label, SMALL))
    if p.xlabel:
        out.append(Text((left + right) / 2, below + deepest + GAP, p.xlabel, LABEL, "mt"))
    if p.ylabel:
        x = side + sign * (TICK + GAP + widest + GAP)
        out.append(
            Text(x, (top + bottom) / 2, p.ylabel, LABEL, "lm" if sign > 0 else "rm", angle=90)
        )
    if p.title:
        out.append(Text((left + right) / 2, top - 4.0, p.title, LABEL, "md"))
    return out


def grey_levels(image: F64, lo: float, hi: float, nan: float = 1.0) -> npt.NDArray[np.uint8]:
    """``image`` on a linear grey scale from ``lo`` (black) to ``hi`` (white), clipped;
    NaN at ``nan`` (white by default, as matplotlib leaves a bad pixel unpainted)."""
    with np.errstate(invalid="ignore"):
        v = np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return np.round(np.nan_to_num(v, nan=nan) * 255.0).astype(np.uint8)


def image_raster(
    p: Panel, image: F64, block: int, x0: float, y0: float, lo: float, hi: float
) -> Raster:
    """``image`` in the grey stretch ``lo``..``hi``, display pixel ``[0, 0]`` covering frame
    pixels from ``(x0, y0)``, ``block`` a side each, row 0 at the bottom (the last blocks,
    which may reach past the frame's edge, clipped to the panel)."""
    ny, nx = image.shape
    box = (
        float(p.px(x0 - 0.5)),
        float(p.py(y0 + ny * block - 0.5)),
        float(p.px(x0 + nx * block - 0.5)),
        float(p.py(y0 - 0.5)),
    )
    return Raster(grey_levels(image, lo, hi)[::-1], box, clip=p.box)


def colour_bar(box: Box, lo: float, hi: float, label: str) -> tuple[Panel, list[Item]]:
    """A vertical grey bar from ``lo`` (bottom) to ``hi``, ticked on its right."""
    values = nice_ticks(lo, hi, 4)
    p = Panel("colour bar", box, (0.0, 1.0), (lo, hi), ylabel=label, yticks=ticks(values))
    ramp = np.linspace(255.0, 0.0, 256).round().astype(np.uint8)[:, None]
    return p, [Raster(ramp, box), *axes_items(p, AxesStyle(yticks_right=True))]


class Entry(NamedTuple):
    """A legend row: a handle (``line``, ``dash``, ``dot``, ``patch``, a marker shape
    ``o``/``x``/``s``) in ``colour``, then ``label``."""

    handle: str
    colour: str
    label: str
    edge: str = ""


#: Legend handle length and row height (pixels).
HANDLE: Final = 18.0
ROW: Final = SMALL * 1.45


def _handle(kind: str, colour: str, edge: str, x: float, y: float) -> list[Item]:
    mid = np.array([[x, y], [x + HANDLE, y]])
    if kind == "line":
        return [Lines(mid, colour, 1.2)]
    if kind == "dash":
        return [Lines(mid, colour, 1.2, (4.0, 2.0))]
    if kind == "dot":
        return [Lines(mid, colour, 1.2, (1.2, 2.0))]
    if kind == "patch":
        box = (x + 2, y - SMALL * 0.4, x + HANDLE - 2, y + SMALL * 0.4)
        return [Rect(box, edge or colour, colour)]
    c = np.array([x + HANDLE / 2])
    return [Markers(c, np.array([y]), kind, 6.0, colour, 1.0)]


def legend(
    entries: Sequence[Entry], x: float, y: float, anchor: str = "rt", title: str = ""
) -> list[Item]:
    """A framed legend with its ``anchor`` corner (``rt`` upper right, ``lb`` lower left,
    ...) at ``(x, y)``."""
    if not entries:
        return []
    rows = ([title] if title else []) + [e.label for e in entries]
    width = max(text_width(r, SMALL) for r in rows) + HANDLE + 12.0
    height = ROW * len(rows) + 6.0
    left = x - width if anchor[0] == "r" else x
    top = y if anchor[1] == "t" else y - height
    out: list[Item] = [Rect((left, top, left + width, top + height), "0.8", "white", 0.8)]
    row_y = top + 3.0 + ROW / 2
    if title:
        out.append(Text(left + width / 2, row_y, title, SMALL, "mm"))
        row_y += ROW
    for e in entries:
        out += _handle(e.handle, e.colour, e.edge, left + 4.0, row_y)
        out.append(Text(left + 8.0 + HANDLE, row_y, e.label, SMALL, "lm"))
        row_y += ROW
    return out


def rows(entries: Sequence[Entry], notes: Sequence[str], x: float, bottom: float) -> list[Item]:
    """A legend without a frame, then plain notes, as lines upwards from ``bottom``."""
    out: list[Item] = []
    y = bottom - ROW / 2
    for note in reversed(notes):
        out.append(Text(x, y, note, SMALL, "lm"))
        y -= ROW
    for e in reversed(entries):
        out += _handle(e.handle, e.colour, e.edge, x, y)
        out.append(Text(x + HANDLE + 4.0, y, e.label, SMALL, "lm"))
        y -= ROW
    return out


def step_outline(edges: F64, counts: npt.NDArray[np.int64], p: Panel) -> F64:
    """The pixel points of a histogram's steps (from the axis floor at both ends)."""
    xs = np.repeat(p.px(edges), 2)[1:-1]
    ys = np.repeat(p.py(np.asarray(counts, dtype=np.float64)), 2)
    floor = float(p.box[3])
    return np.column_stack(
        [np.concatenate([[xs[0]], xs, [xs[-1]]]), np.concatenate([[floor], ys, [floor]])]
    )


def steps(edges: F64, counts: npt.NDArray[np.int64], p: Panel, colour: str, fill: bool) -> Item:
    """A histogram as a filled polygon or its outline, clipped to the panel."""
    points = step_outline(edges, counts, p)
    if fill:
        return Polygon(points, colour, clip=p.box)
    return Lines(points, colour, 1.0, clip=p.box)


def vline(p: Panel, x: float, colour: str, dash: tuple[float, float]) -> Lines:
    """A vertical line across the panel at data ``x``."""
    px = float(p.px(x))
    return Lines(np.array([[px, p.box[1]], [px, p.box[3]]]), colour, 1.2, dash, clip=p.box)


#: Steps of a date axis: (days, label format) for hours and days, then whole months. A
#: tick of hours at midnight names its day instead.
_DAY_STEPS: Final = (
    (1 / 24, "%H:%M"),
    (3 / 24, "%H:%M"),
    (6 / 24, "%H:%M"),
    (12 / 24, "%H:%M"),
    (1.0, "%m-%d"),
    (2.0, "%m-%d"),
    (7.0, "%m-%d"),
    (14.0, "%m-%d"),
)
_MONTH_STEPS: Final = (1, 2, 3, 6, 12, 24, 60, 120)


def date_ticks(lo: float, hi: float, bins: int = 4) -> tuple[tuple[float, str], ...]:
    """At most ``bins + 1`` round dates between ``lo`` and ``hi`` (days since 1970-01-01,
    UTC): hours, days, weeks, or the first days of months and years, labelled in the
    fewest words that tell them apart.

    >>> [label for _, label in date_ticks(20464.0, 20494.0)]
    ['01-12', '01-19', '01-26', '02-02', '02-09']
    >>> [label for _, label in date_ticks(20089.0, 20820.0)]
    ['2025-01', '2025-07', '2026-01', '2026-07', '2027-01']
    """
    import datetime

    def label(days: float, fmt: str) -> str:
        when = datetime.datetime(1970, 1, 1) + datetime.timedelta(days=days)
        return when.strftime(fmt)

    if not (math.isfinite(lo) and math.isfinite(hi)) or not hi > lo:
        return ((lo, label(lo, "%Y-%m-%d")),) if math.isfinite(lo) else ()
    for step, fmt in _DAY_STEPS:
        origin = 4.0 if step >= 7 else 0.0  # weeks start on Mondays (1970-01-05)
        first = math.ceil((lo - origin) / step - 1e-9)
        last = math.floor((hi - origin) / step + 1e-9)
        # (ticks of hours only within a day: beyond, a time of day would repeat)
        if last - first + 1 <= bins + 1 and (step >= 1 or (last - first) * step < 1):
            at = [origin + k * step for k in range(first, last + 1)]
            return tuple(
                (d, label(d, "%m-%d" if fmt == "%H:%M" and d % 1 == 0 else fmt)) for d in at
            )
    start = np.datetime64(math.floor(lo), "D").astype("datetime64[M]")
    end = np.datetime64(math.floor(hi), "D").astype("datetime64[M]")
    for months in _MONTH_STEPS:
        firsts = np.arange(start, end + 1, dtype="datetime64[M]")
        firsts = firsts[(firsts.astype(np.int64) % months) == 0]
        days = firsts.astype("datetime64[D]").astype(np.int64).astype(np.float64)
        days = days[(days >= lo - 1e-9) & (days <= hi + 1e-9)]
        if days.size <= bins + 1:
            fmt = "%Y" if months >= 12 else "%Y-%m"
            return tuple((float(d), label(float(d), fmt)) for d in days)
    return ()
