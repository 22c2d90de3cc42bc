"""What each QC plot shows: the images of a master dark reduced to small frozen values.

The QC plots are made in two steps. This module reduces the whole-frame images to what
each figure shows (thumbnails, histogram counts, bounds), by compiled single passes over
the float32 images (:func:`bin_counts`: the counts of :func:`numpy.histogram` without its
float64 copies and sorts; C in ``numerics/_native/figures.c``, called with the GIL released);
:mod:`mdark_dask.report.draw` draws the values with matplotlib. A value is a few hundred
kilobytes at most, so the drawing can run in another thread while the products are
written.

The values compare by identity (``eq=False``): a field-wise ``==`` of arrays has no single
truth value, and nothing needs figures as dictionary keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.hotpix import HOT, NOISY, HotPixels
from mdark_dask.numerics.native import bind, float_suffix
from mdark_dask.numerics.steps import Master

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Display pixels of the long side of the plain images.
IMAGE_SIDE: Final = 600
#: Quantile of the noise images that the noise panel shows at least (its upper end).
NOISE_QUANTILE: Final = 0.9999


@dataclass(frozen=True, eq=False)
class PlainImage:
    """An RGB image without axes, one display pixel per sampled block.

    Attributes
    ----------
    path : str
        The PNG file to write.
    rgb : ndarray of uint8, shape (rows, cols, 3)
        Row 0 is the image's first row, drawn at the bottom (as DS9 shows it).
    """

    path: str
    rgb: U8


@dataclass(frozen=True, eq=False)
class FramesFigure:
    """Each input frame's clipped level and scatter against time.

    Attributes
    ----------
    path, name : str
        The PNG file; the product's name (the title).
    minutes, level, scatter : ndarray of float64
        Minutes since the first frame's MJD-OBS; per-frame clipped mean and standard
        deviation, in frame order.
    """

    path: str
    name: str
    minutes: F64
    level: F64
    scatter: F64


@dataclass(frozen=True, eq=False)
class HistogramFigure:
    """The stacked master's pixel histogram with the post-stack clip bounds.

    Attributes
    ----------
    path, name : str
        The PNG file; the product's name.
    edges : ndarray of float64
        Bin edges, electrons.
    counts : ndarray of int64
        Pixels per bin (``edges.size - 1`` of them).
    bounds : tuple of float
        The post-stack clip's lower and upper bound, electrons.
    """

    path: str
    name: str
    edges: F64
    counts: I64
    bounds: tuple[float, float]


@dataclass(frozen=True, eq=False)
class DarkPanel:
    """The dark-current distribution: bins even in the symmetric-log coordinate.

    Attributes
    ----------
    edges : ndarray of float64
        Bin edges in electrons (not yet in the symmetric-log coordinate).
    counts : ndarray of int64
        Pixels per bin.
    linthresh : float
        Half-width of the linear part of the symmetric-log coordinate.
    hot_threshold : float
        Dark current above which a pixel is hot.
    n_hot : int
        Hot pixels found.
    """

    edges: F64
    counts: I64
    linthresh: float
    hot_threshold: float
    n_hot: int


@dataclass(frozen=True, eq=False)
class NoiseCurve:
    """One noise image's distribution.

    Attributes
    ----------
    counts : ndarray of int64
        Pixels per bin of :attr:`NoisePanel.edges`.
    threshold : float
        Its noisy-pixel threshold (NaN: none, not drawn).
    colour, label : str
        How it is drawn and named in the legend.
    """

    counts: I64
    threshold: float
    colour: str
    label: str


@dataclass(frozen=True, eq=False)
class NoisePanel:
    """The two noise images' distributions on common bins.

    Attributes
    ----------
    edges : ndarray of float64
        Bin edges from 0, electrons.
    curves : tuple of NoiseCurve
        The images that have any counted pixel, in drawing order.
    n_noisy : int
        Noisy pixels found.
    """

    edges: F64
    curves: tuple[NoiseCurve, ...]
    n_noisy: int


@dataclass(frozen=True, eq=False)
class DistributionFigure:
    """Dark current above, noise below.

    Attributes
    ----------
    path, name : str
        The PNG file; the product's name.
    dark : DarkPanel
    noise : NoisePanel
    """

    path: str
    name: str
    dark: DarkPanel
    noise: NoisePanel


#: Any of the QC figures; :func:`mdark_dask.report.draw.draw` draws each to its path.
Figure = PlainImage | FramesFigure | HistogramFigure | DistributionFigure


def master_figures(master: Master, directory: Path, name: str) -> tuple[Figure, ...]:
    """``<name>_image.png`` (the master, flagged pixels red) and ``<name>_histogram.png``."""
    flux = master.flux
    qual = _bytes(master.qual)
    # an image of ~600 pixels a side: every step-th pixel, and a display pixel red when any
    # pixel of its block is flagged, so no flagged pixel is hidden. Written as a plain
    # image (no axes): far cheaper than a figure, at the same information.
    step = _step(flux.shape)
    small = flux[::step, ::step].astype(np.float64)
    sample = small[qual[::step, ::step] == 0]
    lo, hi = np.percentile(sample, [1, 99]) if sample.size else (0.0, 1.0)
    rgb = _grey_rgb(small, float(lo), float(hi))
    rgb[block_or(qual, step) != 0] = (255, 0, 0)
    image = PlainImage(str(directory / f"{name}_image.png"), rgb)

    level = master.master_mean
    b_lo, b_hi = master.post_bounds.lo + level, master.post_bounds.hi + level
    span = max(b_hi - b_lo, 1e-3)
    edges = np.linspace(b_lo - span, b_hi + span, 201)
    counts = bin_counts(master.combined, level, edges, clip=False)
    hist = HistogramFigure(
        str(directory / f"{name}_histogram.png"), name, edges, counts, (float(b_lo), float(b_hi))
    )
    return image, hist


def frames_figures(
    mjd: npt.NDArray[np.float64], levels: npt.NDArray[np.float64], directory: Path, name: str
) -> tuple[Figure, ...]:
    """``<name>_frames.png``: each input frame's level and scatter against time.

    ``levels`` holds the per-frame ``(lo, hi, mean, std)`` of the level clip; a drifting
    level or a jump in scatter points at a frame worth a look.
    """
    minutes = (np.asarray(mjd, dtype=np.float64) - float(np.min(mjd))) * 24 * 60
    values = np.asarray(levels, dtype=np.float64)
    return (
        FramesFigure(
            str(directory / f"{name}_frames.png"),
            name,
            minutes,
            values[:, 2].copy(),
            values[:, 3].copy(),
        ),
    )


def hotpix_figures(
    hot: HotPixels,
    noise: npt.NDArray[np.float32],
    noise_peel: npt.NDArray[np.float32],
    directory: Path,
    name: str,
) -> tuple[Figure, ...]:
    """``<name>_hotpix_map.png`` and ``<name>_dark_current.png``.

    The map shows hot pixels red, noisy ones blue, both magenta (a display pixel takes the
    flags of every pixel of its block). The second figure holds the distribution of dark
    current and of the two noise images, each with its threshold.
    """
    flags = block_or(hot.bpm, _step(hot.bpm.shape))
    rgb = np.full((*flags.shape, 3), 255, dtype=np.uint8)
    rgb[(flags & HOT) != 0] = (216, 0, 0)
    rgb[(flags & NOISY) != 0] = (0, 51, 229)
    rgb[(flags & (HOT | NOISY)) == HOT | NOISY] = (204, 0, 204)
    # hot red, noisy blue, both magenta; a plain image (no axes), row 0 at the bottom
    hot_map = PlainImage(str(directory / f"{name}_hotpix_map.png"), rgb)
    dist = DistributionFigure(
        str(directory / f"{name}_dark_current.png"),
        name,
        dark_panel(hot),
        noise_panel(hot, noise, noise_peel),
    )
    return hot_map, dist


def dark_panel(hot: HotPixels) -> DarkPanel:
    """Dark current: linear bins around the level, logarithmic ones above ``10 * spread``
    (:func:`symlog_edges`)."""
    spread = hot.level.std if hot.level.std > 0 else 1.0
    # the dark current is float32(combined - median), binned as such from the master
    # (no dark image is made); rounding is monotonic, so its range is the master's, moved
    median = hot.level.median
    c_min, c_max = finite_range(hot.combined)
    d_min, d_max = (float(np.float32(c - median)) for c in (c_min, c_max))
    if not (math.isfinite(d_min) and math.isfinite(d_max)):  # overflowed: count it out
        d_min, d_max = finite_range(hot.dark)
    lo = min(d_min if math.isfinite(d_min) else 0.0, -5 * spread)
    hi = max(d_max if math.isfinite(d_max) else 1.0, 2 * hot.hot_threshold)
    linthresh = 10 * spread
    edges = symlog_edges(lo, max(hi, 20 * spread), linthresh)
    counts = bin_counts(hot.combined, -median, edges, clip=True, round32=True)
    return DarkPanel(edges, counts, float(linthresh), float(hot.hot_threshold), int(hot.n_hot))


def noise_panel(
    hot: HotPixels, noise: npt.NDArray[np.float32], noise_peel: npt.NDArray[np.float32]
) -> NoisePanel:
    """Both noise images on 200 bins from 0 to three times the larger threshold, or to the
    :data:`NOISE_QUANTILE` of the values (:func:`quantile_bound`) when that is higher;
    values beyond go to the last bin. An image with no finite value is left out."""
    images = (
        (noise, hot.noise, "0.55", "frames kept by the stack clip"),
        (noise_peel, hot.noise_peel, "tab:blue", "all frames, isolated extremes peeled"),
    )
    tops = [c.threshold * 3 for _, c, *_ in images if np.isfinite(c.threshold)]
    tops += [quantile_bound(im, NOISE_QUANTILE) for im, *_ in images]
    n_hi = max((t for t in tops if math.isfinite(t)), default=1.0)
    n_hi = n_hi if n_hi > 0 else 1.0
    edges = np.linspace(0.0, n_hi, 201)
    curves = []
    for image, clip, colour, label in images:
        counts = bin_counts(image, 0.0, edges, clip=True)
        if counts.any():
            curves.append(NoiseCurve(counts, float(clip.threshold), colour, label))
    return NoisePanel(edges, tuple(curves), int(hot.n_noisy))


def symlog_edges(lo: float, hi: float, linthresh: float) -> npt.NDArray[np.float64]:
    """Histogram edges even in the symmetric-log coordinate (:func:`mdark_dask.report.draw.symlog`):
    60 linear bins within ``±linthresh`` and 40 per side, logarithmic, beyond it (only on
    the sides the range reaches), so every bin is as wide on the plot. Linear bins from a
    far negative outlier up would be hundreds of electrons wide at the level.

    >>> symlog_edges(-5.0, 1000.0, 10.0)[[0, 1, -1]].tolist()
    [-5.0, -4.75, 1000.0]
    >>> e = symlog_edges(-1000.0, 1000.0, 10.0); bool(np.all(np.diff(e) > 0)), e.size
    (True, 141)
    """
    inner = np.linspace(max(lo, -linthresh), min(hi, linthresh), 61)
    parts = [inner]
    if lo < -linthresh:
        parts.insert(0, -np.geomspace(-lo, linthresh, 41)[:-1])
    if hi > linthresh:
        parts.append(np.geomspace(linthresh, hi, 41)[1:])
    return np.concatenate(parts)


def _step(shape: tuple[int, ...]) -> int:
    """Sampling step for an image of about :data:`IMAGE_SIDE` pixels on its long side."""
    return max(1, -(-max(shape) // IMAGE_SIDE))


def _bytes(mask: npt.NDArray[Any]) -> U8:
    """A 2-d mask as uint8 (a view when it already is one byte per pixel)."""
    m = np.asarray(mask)
    if m.dtype.itemsize != 1 or m.dtype.kind not in "biu":
        m = np.not_equal(m, 0)
    return np.ascontiguousarray(m).view(np.uint8)


def _grey_rgb(small: npt.NDArray[np.float64], lo: float, hi: float) -> U8:
    """Grey RGB bytes of ``small`` stretched from ``lo`` (black) to ``hi`` (white)."""
    grey = np.clip((small - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return np.repeat((grey * 255).astype(np.uint8)[:, :, None], 3, axis=2)


def block_or(mask: npt.NDArray[Any], step: int) -> U8:
    """Bitwise OR of every ``step`` x ``step`` block of a byte mask (no flag hidden).

    >>> block_or(np.array([[0, 1, 0], [2, 0, 0], [0, 0, 4]], dtype=np.uint8), 2).tolist()
    [[3, 0], [0, 4]]
    """
    m = _bytes(mask)
    ny, nx = m.shape
    out = np.zeros((-(-ny // step), -(-nx // step)), dtype=np.uint8)
    if out.size:  # (so step >= 1: a step below 1 leaves nothing, or fails above)
        bind("block_or")(m.ctypes.data, ny, nx, int(step), out.ctypes.data, out.shape[1])
    return out


def finite_range(values: npt.NDArray[np.floating]) -> tuple[float, float]:
    """Smallest and largest finite value (NaN, NaN when there is none).

    numpy's NaN-ignoring reductions (vectorised), and a compiled scan only when they meet
    an infinity.

    >>> finite_range(np.array([np.nan, 2.0, -np.inf, -1.0], dtype=np.float32))
    (-1.0, 2.0)
    """
    v = _flat(values)
    lo, hi = float(np.fmin.reduce(v, initial=np.inf)), float(np.fmax.reduce(v, initial=-np.inf))
    if math.isinf(lo) or math.isinf(hi):
        lo, hi = _finite_range(v)
    return float(lo), float(hi)


def _finite_range(v: npt.NDArray[np.float32 | np.float64]) -> tuple[float, float]:
    """The compiled scan of :func:`finite_range` over a flat contiguous ``v``: the finite
    values' extremes in float64, a value replacing the running one only when strictly beyond
    it (so of equal zeros the first one's sign is kept)."""
    out = np.empty(2, dtype=np.float64)
    bind(f"finite_range_{float_suffix(v)}")(v.ctypes.data, v.size, out.ctypes.data)
    return float(out[0]), float(out[1])


def bin_counts(
    values: npt.NDArray[np.floating],
    shift: float,
    edges: npt.NDArray[np.float64],
    clip: bool,
    round32: bool = False,
) -> npt.NDArray[np.int64]:
    """``numpy.histogram(v, edges)[0]`` of the finite ``v = float64(values) + shift``
    (rounded to float32 with ``round32``: the counts of a float32 image made so).

    With ``clip`` the values are first clipped to the edges (``numpy.clip``), so every
    finite value is counted; without, values outside them are not. Each bin holds
    ``edges[k] <= v < edges[k + 1]`` (the last bin its right edge too), as in numpy, but
    in one compiled pass over the image: no float64 copy, and no sort for uneven edges.

    >>> bin_counts(np.array([0.5, 1.0, 2.0, np.nan, 7.0]), 0.0, np.array([0.0, 1.0, 2.0]),
    ...            clip=False).tolist()
    [1, 2]
    """
    e = np.ascontiguousarray(edges, dtype=np.float64)
    if e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError("edges must be at least two increasing values")
    return _bin_counts(_flat(values), float(shift), e, *even_run(e), bool(clip), bool(round32))


def even_run(edges: npt.NDArray[np.float64]) -> tuple[int, int]:
    """``(first, m)``: the longest run of ``m`` evenly spaced bins, starting at bin
    ``first``, so closely even (1e-8 of a bin) that a value's bin in it can be computed
    from its offset rather than searched; ``(0, 0)`` if none.

    The dark-current panel's symmetric-log edges have their even bins in the middle
    (logarithmic ones on both sides), where nearly every pixel falls.

    >>> even_run(np.concatenate([[-40.0, -20.0], np.linspace(-10.0, 10.0, 21), [20.0]]))
    (2, 20)
    """
    steps = np.diff(edges)
    best = (0, 0)
    first = 0
    while first < steps.size:
        even = np.isclose(steps[first:], steps[first], rtol=1e-9, atol=0.0)
        m = int(np.argmin(even)) if not even.all() else even.size
        if m > best[1]:
            run = edges[first : first + m + 1]
            position = (run - run[0]) * (m / (run[-1] - run[0]))
            if np.max(np.abs(position - np.arange(m + 1))) <= 1e-8:
                best = (first, m)
        first += m
    return best


def _bin_counts(
    v: npt.NDArray[np.float32 | np.float64],
    shift: float,
    edges: npt.NDArray[np.float64],
    first: int,
    m: int,
    clip: bool,
    round32: bool,
) -> npt.NDArray[np.int64]:
    """Counts of :func:`bin_counts` over a flat contiguous ``v`` and contiguous increasing
    ``edges``, by the compiled pass. Within the ``m`` even bins from bin ``first`` the
    offset gives the bin, unless it lies within 1e-6 of a bin of an edge (the edges are
    within 1e-8 of their even positions, the offset within 1e-13): there, and outside the
    run, the edges decide."""
    nb = edges.size - 1
    if edges.ndim != 1 or not edges.flags.c_contiguous or not 0 <= first <= first + m <= nb:
        raise ValueError(f"no run of {m} bins from bin {first} in edges of shape {edges.shape}")
    counts = np.zeros(nb, dtype=np.int64)
    bind(f"bin_counts_{float_suffix(v)}")(
        v.ctypes.data,
        v.size,
        shift,
        edges.ctypes.data,
        edges.size,
        first,
        m,
        int(clip),
        int(round32),
        counts.ctypes.data,
    )
    return counts


def quantile_bound(values: npt.NDArray[np.floating], q: float) -> float:
    """An upper bound of the ``q`` quantile of the finite values, for an axis limit.

    The top of the 1/256-octave bucket that holds the value of rank ``ceil(q * (n - 1))``,
    which bounds :func:`numpy.percentile`'s interpolation: one counting pass over 2**16
    buckets of the float32 bit pattern (sign, exponent, 8 bits of mantissa), where numpy
    makes a float64 copy and partitions it. Values at or below zero share the first
    bucket; NaN when there is no finite value, inf past the largest float32.

    >>> quantile_bound(np.arange(1.0, 101.0), 0.5)  # numpy.percentile: 50.5
    51.125
    """
    v = np.asarray(values)
    flat = np.ascontiguousarray(v if v.dtype == np.float32 else v.astype(np.float32))
    bits = flat.reshape(-1).view(np.int32)
    counts = np.zeros(1 << 16, dtype=np.int64)
    # counts[b >> 15] of the finite values' bit patterns b, negative ones and zero in 0
    bind("octave_counts")(bits.ctypes.data, bits.size, counts.ctypes.data)
    n = int(counts.sum())
    if n == 0:
        return math.nan
    # the bucket of the value of rank ceil(q * (n - 1)), which bounds numpy's interpolation
    rank = math.ceil(q * (n - 1))
    bucket = int(np.searchsorted(np.cumsum(counts), rank, side="right"))
    upper = np.array([(bucket + 1) << 15], dtype=np.int64).astype(np.int32).view(np.float32)
    return float(upper[0])


def _flat(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float32 | np.float64]:
    v = np.asarray(values)
    if v.dtype != np.float32 and v.dtype != np.float64:
        v = v.astype(np.float64)
    return np.ascontiguousarray(v).reshape(-1)
