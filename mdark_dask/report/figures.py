"""What each QC plot shows: the images of a master dark reduced to small frozen values.

The QC plots are made in two steps. This module reduces the whole-frame images to what
each figure shows (block-mean images, marked pixels, histogram counts, bounds, titles),
with the pure reductions of :mod:`mdark_dask.report.binning`;
:mod:`mdark_dask.report.draw` lays the values out as pictures. A value is a few hundred
kilobytes at most, and holds everything a plot shows, so the tests read it without
pixels.

Two pixel counts must never be mistaken for each other, and every figure, table and
header comment uses the same words for them (:data:`mdark_dask.numerics.qc.MASKED_LABEL`,
:data:`~mdark_dask.numerics.qc.HOT_LABEL`):
soxspipe's ``HOTPIX NUM`` counts every pixel of the master's QUAL mask (mostly the
3-sigma tail of the post-stack clip), the physical count only the pixels whose dark
current is above the hot-pixel threshold.

The values compare by identity (``eq=False``): a field-wise ``==`` of arrays has no single
truth value, and nothing needs figures as dictionary keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.hotpix import HOT, NOISY, HotPixels, hot_threshold
from mdark_dask.numerics.qc import HOT_LABEL, MASKED_LABEL, NOISY_LABEL
from mdark_dask.numerics.steps import Master
from mdark_dask.report.binning import (
    bin_counts,
    block_mean,
    display_block,
    finite_range,
    lattice_edges,
    mask_bytes,
    quantile_bound,
    reference_value,
    symlog_edges,
)

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Side of the full-resolution cut-out around the brightest hot pixel (odd: it is centred).
CUTOUT_SIDE: Final = 41
#: At most this many pixels of one kind are marked on a frame image (the brightest ones);
#: the legend says so when there are more.
MAX_MARKS: Final = 2000
#: Quantile of the noise images that the noise panel shows at least (its upper end).
NOISE_QUANTILE: Final = 0.9999
#: The stretch of the frame images (astropy.visualization's ``ZScaleInterval``), named on
#: the plots.
STRETCH: Final = "zscale"
#: The QC plots of a master, each ``<name>_<kind>.png``: the kind and what the pages and the
#: README call the plot.
PLOT_KINDS: Final = (
    ("image", "image"),
    ("hotpix_map", "hot pixels"),
    ("frames", "frames"),
    ("histogram", "histogram"),
    ("dark_current", "dark current"),
)


def plot_path(directory: Path, name: str, kind: str) -> str:
    """The file of the ``kind`` plot (one of :data:`PLOT_KINDS`) of the master ``name``."""
    if kind not in dict(PLOT_KINDS):
        raise ValueError(f"no QC plot of kind {kind!r}")
    return str(directory / f"{name}_{kind}.png")


def sig(value: float) -> str:
    """A number with three significant digits, the one precision of every label (whole
    numbers from 1000 to a million, rather than an exponent).

    >>> [sig(v) for v in (13.261, 42.4963, 0.0461, 2301.9, 7.0, -1.5e7)]
    ['13.3', '42.5', '0.0461', '2302', '7', '-1.5e+07']
    """
    return f"{value:.0f}" if 1e3 <= abs(value) < 1e6 else f"{value:.3g}"


class Context(NamedTuple):
    """What the figures say about a product beyond its pixels.

    Attributes
    ----------
    name : str
        The product's name (its file's stem).
    instrument, arm : str
        ``SOXS`` or ``XSH``; ``NIR``, ``VIS`` or ``UVB``.
    exptime : float
        Exposure time of every frame, s (dark current is shown per second when positive).
    date : str
        ``DATE-OBS`` of the earliest frame.
    frames : tuple of str
        The stacked frames' file names, in frame order.
    dropped : tuple of (str, str)
        Files of the set left out of the stack, with the reason.
    gain : float
        e-/ADU: raw values are whole ADU, so a mean of ``n`` frames steps by ``gain / n``
        electrons (the histograms' bins are whole multiples of it).
    hot_sigma : float
        Hot-pixel threshold in robust spreads (MAD-std) of the master.
    hot_rate : float or None
        Hot-pixel threshold in e-/s, when set.
    noise_sigma : float
        Noisy-pixel threshold in robust spreads of the noise image.
    """

    name: str
    instrument: str
    arm: str
    exptime: float
    date: str
    frames: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    gain: float
    hot_sigma: float
    hot_rate: float | None
    noise_sigma: float

    @property
    def n_frames(self) -> int:
        """Frames stacked."""
        return len(self.frames)

    @property
    def per_second(self) -> float:
        """What a dark current in e- is divided by for its unit: the exposure time, or 1
        when there is none (a zero-second dark is shown in e-)."""
        return self.exptime if self.exptime > 0 else 1.0

    @property
    def rate_unit(self) -> str:
        """``e-/s``, or ``e-`` for a zero-second dark."""
        return "e-/s" if self.exptime > 0 else "e-"

    @property
    def quantum(self) -> float:
        """The step of a mean of whole-ADU frames, e- (0 when unknown)."""
        return self.gain / self.n_frames if self.gain > 0 and self.n_frames else 0.0

    def title(self, what: str) -> str:
        """``SOXS NIR master dark, 20 x 5 s, 2026-01-11`` over ``what`` and the name.

        >>> Context("M", "soxs", "NIR", 5.0, "2026-01-11T08:29:24.123", ("a", "b"), (),
        ...         2.0, 5.0, None, 6.0).title("level per frame").splitlines()
        ['SOXS NIR master dark, 2 x 5 s, 2026-01-11', 'level per frame', 'M']
        """
        day = self.date.split("T")[0] if self.date else "date unknown"
        head = f"{self.instrument.upper()} {self.arm} master dark, "
        head += f"{self.n_frames} x {self.exptime:g} s, {day}"
        return f"{head}\n{what}\n{self.name}"


class Marks(NamedTuple):
    """Pixels marked on a frame image, at their pixel coordinates.

    Attributes
    ----------
    label : str
        Legend text, with the count.
    colour, marker : str
        How they are drawn: a colour (:func:`mdark_dask.report.canvas.colour`) and a
        marker (``o`` circle, ``x`` cross).
    x, y : ndarray of float64
        Column and row of each marked pixel (0 = the first, as numpy indexes them).
    """

    label: str
    colour: str
    marker: str
    x: F64
    y: F64


@dataclass(frozen=True, eq=False)
class ImageFigure:
    """A frame image on pixel axes: its values, stretched, with a colour bar and marks.

    Attributes
    ----------
    path, title : str
        The PNG file; the title (instrument, arm, frames, exposure, date, what, name).
    image : ndarray of float64, shape (rows, cols)
        Display pixels, row 0 the frame's first row (drawn at the bottom, as DS9 shows it);
        each the mean of a ``block x block`` square of the frame.
    shape : (int, int)
        The frame's (rows, cols): the axes span it, so a tall frame gives a tall image.
    block : int
        Frame pixels per display pixel side.
    unit : str
        The colour bar's unit.
    marks : tuple of Marks
        Pixels marked over the image.
    notes : tuple of str
        Lines under the image (what is not marked, and why).
    """

    path: str
    title: str
    image: F64
    shape: tuple[int, int]
    block: int
    unit: str
    marks: tuple[Marks, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Cutout:
    """A full-resolution square of the stacked master around one pixel.

    Attributes
    ----------
    image : ndarray of float64
        The pixels, row 0 at the bottom.
    x0, y0 : int
        Frame column and row of ``image[0, 0]``.
    hot, noisy, masked : ndarray of bool
        The cut-out's flags (same shape as ``image``); ``masked`` is soxspipe's QUAL.
    what : str
        What the square is centred on.
    """

    image: F64
    x0: int
    y0: int
    hot: npt.NDArray[np.bool_]
    noisy: npt.NDArray[np.bool_]
    masked: npt.NDArray[np.bool_]
    what: str


@dataclass(frozen=True, eq=False)
class FlagMapFigure:
    """Where the flagged pixels are: the physical ones marked over the share of soxspipe's
    QUAL mask per block (a light shade, so its tail does not bury them), and a cut-out at
    full resolution where each flag is drawn as its own pixel.

    Attributes
    ----------
    path, title : str
        The PNG file; the title.
    masked : ndarray of float64
        Fraction of each display block's pixels in QUAL, row 0 at the bottom.
    shape : (int, int)
        The frame's (rows, cols).
    block : int
        Frame pixels per display pixel side.
    marks : tuple of Marks
        Hot and noisy pixels.
    masked_label : str
        Legend text of the shade.
    cutout : Cutout
    unit : str
        The cut-out's colour bar unit.
    """

    path: str
    title: str
    masked: F64
    shape: tuple[int, int]
    block: int
    marks: tuple[Marks, ...]
    masked_label: str
    cutout: Cutout
    unit: str


@dataclass(frozen=True, eq=False)
class FramesFigure:
    """Each input frame's clipped level and scatter, named by file.

    Attributes
    ----------
    path, title : str
        The PNG file; the title.
    labels : tuple of str
        The frames' file names without the part they all share (:func:`short_names`), in
        frame order.
    xlabel : str
        Says what the labels are and the shared part of the names.
    level, scatter : ndarray of float64
        Per-frame clipped mean and standard deviation, e-, in frame order.
    level_limits, scatter_limits : (float, float)
        The axes' ranges, e-: the level's at least one read noise either side of the
        median level, the scatter's from zero, so a change reads at its true size.
    dropped : tuple of str
        Files left out of the stack, each with its reason (marked after the frames).
    """

    path: str
    title: str
    labels: tuple[str, ...]
    xlabel: str
    level: F64
    scatter: F64
    level_limits: tuple[float, float]
    scatter_limits: tuple[float, float]
    dropped: tuple[str, ...]


class Line(NamedTuple):
    """A vertical line of a histogram: a bound or threshold, with what it is.

    ``decides`` says whether this line is the one that flags pixels (drawn solid) or a
    candidate shown for comparison (dotted).
    """

    x: float
    label: str
    colour: str
    decides: bool


@dataclass(frozen=True, eq=False)
class HistogramFigure:
    """The stacked master's pixel histogram with the post-stack clip bounds.

    Attributes
    ----------
    path, title : str
        The PNG file; the title.
    edges : ndarray of float64
        Bin edges, electrons.
    counts : ndarray of int64
        Pixels per bin (``edges.size - 1`` of them).
    lines : tuple of Line
        The clip's lower and upper bound.
    xlabel : str
    """

    path: str
    title: str
    edges: F64
    counts: I64
    lines: tuple[Line, ...]
    xlabel: str


@dataclass(frozen=True, eq=False)
class DarkPanel:
    """The dark-current distribution: bins even in the symmetric-log coordinate.

    Attributes
    ----------
    edges : ndarray of float64
        Bin edges in the panel's unit (not yet in the symmetric-log coordinate).
    counts : ndarray of int64
        Pixels per bin.
    linthresh : float
        Half-width of the linear part of the symmetric-log coordinate.
    lines : tuple of Line
        The hot-pixel threshold, and the candidate that did not decide it.
    title, xlabel : str
    """

    edges: F64
    counts: I64
    linthresh: float
    lines: tuple[Line, ...]
    title: str
    xlabel: str


@dataclass(frozen=True, eq=False)
class NoiseCurve:
    """One noise image's distribution.

    Attributes
    ----------
    counts : ndarray of int64
        Pixels per bin of :attr:`NoisePanel.edges`.
    colour, label : str
        How it is drawn and named in the legend.
    """

    counts: I64
    colour: str
    label: str


@dataclass(frozen=True, eq=False)
class NoisePanel:
    """The two noise images' distributions on common bins, with their thresholds.

    Attributes
    ----------
    edges : ndarray of float64
        Bin edges from 0, electrons.
    curves : tuple of NoiseCurve
        The images that have any counted pixel, in drawing order.
    lines : tuple of Line
        Each image's noisy-pixel threshold (where defined), with which one decides.
    title, xlabel : str
    """

    edges: F64
    curves: tuple[NoiseCurve, ...]
    lines: tuple[Line, ...]
    title: str
    xlabel: str


@dataclass(frozen=True, eq=False)
class DistributionFigure:
    """Dark current above, temporal noise below.

    Attributes
    ----------
    path, title : str
        The PNG file; the title.
    dark : DarkPanel
    noise : NoisePanel
    """

    path: str
    title: str
    dark: DarkPanel
    noise: NoisePanel


#: Any of the QC figures; :func:`mdark_dask.report.draw.draw` draws each to its path.
Figure = ImageFigure | FlagMapFigure | FramesFigure | HistogramFigure | DistributionFigure


def master_figures(master: Master, directory: Path, ctx: Context) -> tuple[Figure, ...]:
    """``<name>_histogram.png``: the stacked pixels and the post-stack clip's bounds."""
    level = master.master_mean
    b_lo, b_hi = master.post_bounds.lo + level, master.post_bounds.hi + level
    span = max(b_hi - b_lo, 1e-3)
    edges = lattice_edges(
        b_lo - span, b_hi + span, 200, ctx.quantum, reference_value(master.combined) + level
    )
    counts = bin_counts(master.combined, level, edges, clip=False)
    lines = (
        Line(b_lo, f"lower bound {sig(b_lo)} e-", "red", True),
        Line(b_hi, f"upper bound {sig(b_hi)} e-", "red", True),
    )
    n_masked = int(np.count_nonzero(master.qual))
    what = (
        f"post-stack clip: pixels outside the bounds are {MASKED_LABEL} "
        f"({n_masked}, {_percent(n_masked, master.qual.size)})"
    )
    hist = HistogramFigure(
        plot_path(directory, ctx.name, "histogram"),
        ctx.title(what),
        edges,
        counts,
        lines,
        "stacked master before masked pixels are filled [e-]",
    )
    return (hist,)


def frames_figures(
    levels: npt.NDArray[np.float64], directory: Path, ctx: Context
) -> tuple[Figure, ...]:
    """``<name>_frames.png``: each input frame's level and scatter, named by file.

    ``levels`` holds the per-frame ``(lo, hi, mean, std)`` of the level clip; a drifting
    level or a jump in scatter points at a frame worth a look.
    """
    values = np.asarray(levels, dtype=np.float64)
    level, scatter = values[:, 2].copy(), values[:, 3].copy()
    head, tail, shorts = short_names(ctx.frames)
    # (the few files left out are named in full: they need not share the frames' names)
    dropped = tuple(f"{name} (left out: {reason})" for name, reason in ctx.dropped)
    named = f"{head}<frame>{tail}" if head or tail else "<frame>"
    return (
        FramesFigure(
            plot_path(directory, ctx.name, "frames"),
            ctx.title("level (clipped mean) and scatter (RAW RON) of each frame"),
            shorts,
            f"frame, in order of observation (file {named})",
            level,
            scatter,
            level_limits(level, scatter),
            scatter_limits(scatter),
            dropped,
        ),
    )


def short_names(names: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]]:
    """``(head, tail, shorts)``: the start and end that every name shares (when there are
    two names or more), cut at a separator (``.``, ``_``, ``-`` or the ``T`` of a date),
    and each name without them: a label of a few characters instead of a whole file name
    (glyphs are most of a figure's drawing time).

    >>> short_names(("SOXS.2026-01-11T08:29:24.123.fits", "SOXS.2026-01-11T08:39:24.123.fits"))
    ('SOXS.2026-01-11T', '.123.fits', ('08:29:24', '08:39:24'))
    >>> short_names(("a.fits",)), short_names(("b1.fits", "b12.fits"))
    (('', '', ('a.fits',)), ('', '.fits', ('b1', 'b12')))
    """
    if len(names) < 2:
        return "", "", tuple(names)
    n = _shared(names)
    while n and names[0][n - 1] not in "._-T":
        n -= 1
    rest = [name[n:] for name in names]
    m = _shared(tuple(r[::-1] for r in rest))
    while m and rest[0][len(rest[0]) - m] != ".":
        m -= 1
    shorts = tuple(r[: len(r) - m] for r in rest)
    if not all(shorts):  # (one name is the shared part itself: keep the names whole)
        return "", "", tuple(names)
    return names[0][:n], rest[0][len(rest[0]) - m :], shorts


def _shared(names: tuple[str, ...]) -> int:
    """Length of the start that every name shares."""
    n = min(len(name) for name in names)
    for i in range(n):
        if any(name[i] != names[0][i] for name in names):
            return i
    return n


def level_limits(level: F64, scatter: F64) -> tuple[float, float]:
    """The level axis: the median level, and at least one median scatter (the read noise)
    either side of it, or 1.2 times the largest departure when that is wider. A change of
    the level is then seen against the noise of one pixel of one frame, not zoomed to fill
    the axis.

    >>> level_limits(np.array([100.0, 100.1, 99.95]), np.array([7.2, 7.3, 7.2]))
    (92.8, 107.2)
    >>> level_limits(np.array([100.0, 130.0, 100.0]), np.array([7.0, 7.0, 7.0]))
    (64.0, 136.0)
    """
    good = np.isfinite(level)
    if not good.any():
        return (0.0, 1.0)
    centre = float(np.median(level[good]))
    ron = np.nanmedian(scatter) if np.isfinite(scatter).any() else 0.0
    half = max(1.2 * float(np.max(np.abs(level[good] - centre))), float(ron), 1e-3)
    return (round(centre - half, 12), round(centre + half, 12))


def scatter_limits(scatter: F64) -> tuple[float, float]:
    """The scatter axis: from zero to 1.25 times the largest scatter (a 0.2% change looks
    like one).

    >>> scatter_limits(np.array([7.224, 7.240]))
    (0.0, 9.05)
    """
    good = scatter[np.isfinite(scatter)]
    top = 1.25 * float(np.max(good)) if good.size else 1.0
    return (0.0, top if top > 0 else 1.0)


def image_figures(master: Master, directory: Path, ctx: Context) -> tuple[Figure, ...]:
    """``<name>_image.png``: the master dark (its FLUX) per second of exposure.

    The pixels of soxspipe's QUAL mask, the hot ones among them, hold the master's mean
    level in FLUX: they are counted here and marked on the flag map
    (:func:`hotpix_figures`), beside which this figure needs nothing but the master, so
    it is drawn while the hot pixels are still being found.
    """
    block = display_block(master.flux.shape)
    image = block_mean(master.flux, block) / ctx.per_second
    n_masked = int(np.count_nonzero(master.qual))
    notes = (
        f"{MASKED_LABEL}: {n_masked} pixels ({_percent(n_masked, master.qual.size)}), "
        "filled with the mean level;",
        f"they and the {HOT_LABEL} are marked on the hot-pixel map (_hotpix_map.png)",
        f"{STRETCH} stretch" + (f", {block} x {block} block means" if block > 1 else ""),
    )
    what = "master dark (FLUX)" + (f" / {ctx.exptime:g} s" if ctx.exptime > 0 else "")
    return (
        ImageFigure(
            plot_path(directory, ctx.name, "image"),
            ctx.title(what),
            image,
            (int(master.flux.shape[0]), int(master.flux.shape[1])),
            block,
            ctx.rate_unit,
            (),
            notes,
        ),
    )


def hotpix_figures(
    master: Master,
    hot: HotPixels,
    noise: npt.NDArray[np.float32],
    noise_peel: npt.NDArray[np.float32],
    directory: Path,
    ctx: Context,
) -> tuple[Figure, ...]:
    """``<name>_hotpix_map.png`` and ``<name>_dark_current.png``.

    The map marks every hot and noisy pixel (the brightest :data:`MAX_MARKS` of each
    kind) over a light shade of the share of QUAL pixels per block, beside a cut-out at
    full resolution around the brightest hot pixel. The second figure holds the
    distributions of dark current and of the two noise images, each with its threshold.
    """
    qual = mask_bytes(master.qual)
    block = display_block(qual.shape)
    # (QUAL is 0 or 1: its bytes are the flags, without a boolean copy)
    masked = block_mean(qual if int(np.max(qual, initial=0)) <= 1 else qual != 0, block)
    marks = (
        pixel_marks(
            hot.bpm,
            HOT,
            hot.combined,
            f"{HOT_LABEL}: {hot.n_hot} ({_hot_rule(hot, ctx)})",
            "red",
            "o",
        ),
        pixel_marks(
            hot.bpm,
            NOISY,
            noise_peel,
            f"{NOISY_LABEL}: {hot.n_noisy} (temporal scatter above {ctx.noise_sigma:g} sigma)",
            "tab:blue",
            "x",
        ),
    )
    n_masked = int(np.count_nonzero(qual))
    shade = f"{MASKED_LABEL}: {n_masked} ({_percent(n_masked, qual.size)}); shade = share"
    shade += f" per {block} x {block} block" if block > 1 else ""
    hot_map = FlagMapFigure(
        plot_path(directory, ctx.name, "hotpix_map"),
        ctx.title(f"{HOT_LABEL}, {NOISY_LABEL} and {MASKED_LABEL}"),
        masked,
        (int(qual.shape[0]), int(qual.shape[1])),
        block,
        marks,
        shade,
        cutout(master, hot, ctx, marks[0]),
        ctx.rate_unit,
    )
    dist = DistributionFigure(
        plot_path(directory, ctx.name, "dark_current"),
        ctx.title(f"{HOT_LABEL} and {NOISY_LABEL}"),
        dark_panel(hot, ctx),
        noise_panel(hot, noise, noise_peel, ctx),
    )
    return hot_map, dist


def cutout(master: Master, hot: HotPixels, ctx: Context, hot_marks: Marks) -> Cutout:
    """:data:`CUTOUT_SIDE` pixels square of the stacked master before filling (so the hot
    pixels show their dark current), per second, around the brightest hot pixel (the
    frame's centre when there is none), kept inside the frame. ``hot_marks`` are the hot
    pixels (:func:`pixel_marks`: the brightest among them when there are many)."""
    ny, nx = master.combined.shape
    ys, xs = hot_marks.y.astype(np.intp), hot_marks.x.astype(np.intp)
    if ys.size:
        brightest = int(np.argmax(np.nan_to_num(hot.combined[ys, xs], nan=-np.inf)))
        cy, cx = int(ys[brightest]), int(xs[brightest])
        what = f"the brightest hot pixel (x {cx}, y {cy})"
    else:
        cy, cx = ny // 2, nx // 2
        what = "the frame's centre (no hot pixel)"
    half = CUTOUT_SIDE // 2
    y0 = int(min(max(cy - half, 0), max(ny - CUTOUT_SIDE, 0)))
    x0 = int(min(max(cx - half, 0), max(nx - CUTOUT_SIDE, 0)))
    win = (slice(y0, y0 + CUTOUT_SIDE), slice(x0, x0 + CUTOUT_SIDE))
    image = (master.combined[win].astype(np.float64) + master.master_mean) / ctx.per_second
    bpm = hot.bpm[win]
    return Cutout(
        image,
        x0,
        y0,
        (bpm & HOT) != 0,
        (bpm & NOISY) != 0,
        mask_bytes(master.qual)[win] != 0,
        what,
    )


def _hot_rule(hot: HotPixels, ctx: Context) -> str:
    """``dark current above 0.0461 e-/s``."""
    return f"dark current above {sig(hot.hot_threshold / ctx.per_second)} {ctx.rate_unit}"


def _percent(n: int, size: int) -> str:
    """``0.38%`` of the frame, three significant digits."""
    return f"{sig(100.0 * n / size) if size else '0'}%"


def pixel_marks(
    bpm: npt.NDArray[np.uint8],
    bit: int,
    values: npt.NDArray[np.floating],
    label: str,
    colour: str,
    marker: str,
    most: int = MAX_MARKS,
) -> Marks:
    """The pixels of ``bpm`` with ``bit``; the ``most`` of highest ``values`` when there
    are more (said in the label), so a frame full of flags still shows where the worst
    are."""
    ys, xs = flagged_pixels(bpm, bit)
    if ys.size > most:
        v = np.nan_to_num(np.asarray(values)[ys, xs].astype(np.float64), nan=-np.inf)
        keep = np.sort(np.argpartition(-v, most - 1)[:most])
        ys, xs = ys[keep], xs[keep]
        label += f"; the {most} brightest marked"
    return Marks(label, colour, marker, xs.astype(np.float64), ys.astype(np.float64))


def flagged_pixels(bpm: npt.NDArray[Any], bit: int) -> tuple[I64, I64]:
    """Rows and columns of the pixels of a byte map with ``bit`` set, in C order.

    Flags are rare: the map is scanned eight bytes at a time (as 64-bit words, several
    times faster than :func:`numpy.nonzero` of its bytes) and only the words holding a
    flag are looked at byte by byte.

    >>> flagged_pixels(np.array([[0, 1, 0], [3, 0, 2]], dtype=np.uint8), 1)
    (array([0, 1]), array([1, 0]))
    """
    m = mask_bytes(bpm)
    flat = m.reshape(-1)
    whole = flat.size // 8 * 8
    words = np.flatnonzero(flat[:whole].view(np.uint64))
    candidates = np.concatenate(
        [(words[:, None] * 8 + np.arange(8)).reshape(-1), np.arange(whole, flat.size)]
    )
    index = candidates[(flat[candidates] & bit) != 0].astype(np.int64)
    ys, xs = np.divmod(index, max(m.shape[1], 1))
    return ys, xs


def dark_panel(hot: HotPixels, ctx: Context) -> DarkPanel:
    """Dark current per second: linear bins around the level (whole multiples of the
    frames' electron step, :func:`lattice_edges`), logarithmic ones beyond ``10 * spread``
    (:func:`symlog_edges`), the ends out to a power of ten so the far bins have a label."""
    spread = hot.level.std if hot.level.std > 0 else 1.0
    # the dark current is float32(combined - median), binned as such from the master
    # (no dark image is made); rounding is monotonic, so its range is the master's, moved
    median = hot.level.median
    c_min, c_max = finite_range(hot.combined)
    d_min, d_max = (float(np.float32(c - median)) for c in (c_min, c_max))
    if not (math.isfinite(d_min) and math.isfinite(d_max)):  # overflowed: count it out
        d_min, d_max = finite_range(hot.dark)
    linthresh = 10 * spread
    lo = min(d_min if math.isfinite(d_min) else 0.0, -5 * spread)
    hi = max(d_max if math.isfinite(d_max) else 1.0, 2 * hot.hot_threshold, 20 * spread)
    per = ctx.per_second
    shown = (_decade(lo / per, linthresh / per), _decade(hi / per, linthresh / per))
    lo, hi = shown[0] * per, shown[1] * per
    reference = reference_value(hot.combined)
    edges = symlog_edges(
        lo,
        hi,
        linthresh,
        ctx.quantum,
        float(np.float32(reference - median)) if math.isfinite(reference) else 0.0,
    )
    counts = bin_counts(hot.combined, -median, edges, clip=True, round32=True)
    unit = ctx.rate_unit
    lines = _hot_lines(hot, ctx)
    edges = edges / per
    edges[0], edges[-1] = shown  # exactly the powers of ten, for their tick labels
    return DarkPanel(
        edges,
        counts,
        float(linthresh / per),
        lines,
        f"{HOT_LABEL}: {hot.n_hot} ({_hot_rule(hot, ctx)})",
        f"dark current: master - its robust level [{unit}] (linear within ±{sig(linthresh / per)})",
    )


def _hot_lines(hot: HotPixels, ctx: Context) -> tuple[Line, ...]:
    """The hot-pixel threshold's candidates: ``hot_sigma`` robust spreads and, when set,
    the rate. Each is worked out by :func:`mdark_dask.numerics.hotpix.hot_threshold`,
    the rule that found the hot pixels, and the one equal to its result decides."""
    per, unit = ctx.per_second, ctx.rate_unit
    by_sigma = hot_threshold(hot.level.std, ctx.hot_sigma, None, ctx.exptime)
    by_rate = hot_threshold(0.0, 0.0, ctx.hot_rate, ctx.exptime)
    rate = by_rate if by_rate > 0 else None
    sigma_decides = hot.hot_threshold == by_sigma
    lines = [
        Line(
            by_sigma / per,
            f"{sig(by_sigma / per)} {unit}: {ctx.hot_sigma:g} x robust spread"
            + (" (decides)" if sigma_decides and rate is not None else ""),
            "red" if sigma_decides else "0.45",
            sigma_decides,
        )
    ]
    if rate is not None:
        lines.append(
            Line(
                rate / per,
                f"{sig(rate / per)} {unit}: hot-pixel rate"
                + ("" if sigma_decides else " (decides)"),
                "0.45" if sigma_decides else "red",
                not sigma_decides,
            )
        )
    return tuple(lines)


def _decade(x: float, linthresh: float) -> float:
    """``x`` out to the next power of ten beyond the linear part (itself within it).

    >>> _decade(-30.0, 10.0), _decade(4200.0, 10.0), _decade(5.0, 10.0)
    (-100.0, 10000.0, 5.0)
    """
    if abs(x) <= linthresh or not math.isfinite(x):
        return x
    return math.copysign(10.0 ** math.ceil(math.log10(abs(x)) - 1e-12), x)


def noise_panel(
    hot: HotPixels,
    noise: npt.NDArray[np.float32],
    noise_peel: npt.NDArray[np.float32],
    ctx: Context,
) -> NoisePanel:
    """Both noise images on 200 bins from 0 to three times the larger threshold, or to the
    :data:`NOISE_QUANTILE` of the values (:func:`quantile_bound`) when that is higher;
    values beyond go to the last bin. An image with no finite value is left out.

    The threshold of all frames with isolated extremes removed decides; the one of the
    frames kept by the stack clip decides only where the first is undefined (fewer than
    five frames)."""
    images = (
        (noise_peel, hot.noise_peel, "tab:blue", "all frames, isolated extremes removed", True),
        (noise, hot.noise, "0.45", "frames kept by the stack clip", False),
    )
    tops = [c.threshold * 3 for _, c, *_ in images if np.isfinite(c.threshold)]
    tops += [quantile_bound(im, NOISE_QUANTILE) for im, *_ in images]
    n_hi = max((t for t in tops if math.isfinite(t)), default=1.0)
    n_hi = n_hi if n_hi > 0 else 1.0
    edges = np.linspace(0.0, n_hi, 201)
    curves, lines = [], []
    for image, clip, colour, label, first in images:
        counts = bin_counts(image, 0.0, edges, clip=True)
        if counts.any():
            curves.append(NoiseCurve(counts, colour, label))
        if np.isfinite(clip.threshold):
            rule = "decides" if first else "decides where the other is undefined"
            lines.append(
                Line(
                    float(clip.threshold),
                    f"threshold {sig(clip.threshold)} e- ({rule})",
                    colour,
                    first,
                )
            )
    return NoisePanel(
        edges,
        tuple(curves),
        tuple(lines),
        f"{NOISY_LABEL}: {hot.n_noisy} (temporal scatter above {ctx.noise_sigma:g} sigma)",
        "temporal scatter of a pixel along the stack [e-]",
    )
