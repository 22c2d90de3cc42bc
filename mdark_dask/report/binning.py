"""Pure reductions behind the QC figures: histogram edges and counts, and block means.

Numbers in, numbers out, no figure: the bin edges that follow the data's own quantum (so
integer ADU data gives no comb), symmetric-log edges, finite ranges, robust upper bounds,
and the counts of :func:`numpy.histogram` without its float64 copies and sorts (compiled
single passes in ``numerics/_native/figures.c``, called with the GIL released); block
means that shrink a frame to the display.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.native import bind, float_suffix

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

#: Display pixels of the long side of the frame images: a frame larger than this is shown
#: as block means of ``block x block`` pixels.
IMAGE_SIDE: Final = 512


def lattice_edges(lo: float, hi: float, bins: int, quantum: float, reference: float) -> F64:
    """About ``bins`` even bins from ``lo`` to ``hi`` whose width is a whole multiple of
    ``quantum``, their edges half a quantum off the lattice ``reference + k * quantum``.

    A mean of ``n`` frames of whole ADU steps by ``gain / n`` electrons: bins of any other
    width hold alternately more and fewer of these steps, and the histogram shows a comb.
    With ``quantum`` 0 (unknown) the bins are simply even.

    >>> lattice_edges(0.0, 10.0, 4, 1.0, 0.0).tolist()
    [-0.5, 2.5, 5.5, 8.5, 11.5]
    """
    width = (hi - lo) / bins
    if not (quantum > 0 and math.isfinite(reference)) or width <= 0:
        return np.linspace(lo, hi, bins + 1)
    width = math.ceil(width / quantum - 1e-9) * quantum
    start = reference + quantum * (math.floor((lo - reference) / quantum - 0.5) + 0.5)
    n = max(1, math.ceil((hi - start) / width - 1e-9))
    if start + width * n < hi:  # (rounding: the last edge must reach hi)
        n += 1
    return start + width * np.arange(n + 1, dtype=np.float64)


def reference_value(values: npt.NDArray[np.floating]) -> float:
    """A value on the data's lattice: the first finite one of the middle row (NaN when
    it has none)."""
    v = np.asarray(values)
    if v.ndim != 2 or not v.size:
        return math.nan
    row = v[v.shape[0] // 2]
    finite = np.flatnonzero(np.isfinite(row))
    return float(row[finite[0]]) if finite.size else math.nan


def symlog_edges(
    lo: float, hi: float, linthresh: float, quantum: float = 0.0, reference: float = 0.0
) -> npt.NDArray[np.float64]:
    """Histogram edges even in the symmetric-log coordinate (:func:`mdark_dask.report.draw.symlog`):
    about 60 linear bins within ``±linthresh`` (whole multiples of ``quantum`` wide when it
    is given, :func:`lattice_edges`) and 40 per side, logarithmic, beyond them (only on
    the sides the range reaches), so every bin is about as wide on the plot. Linear bins
    from a far negative outlier up would be hundreds of electrons wide at the level.

    >>> symlog_edges(-5.0, 1000.0, 10.0)[[0, 1, -1]].tolist()
    [-5.0, -4.75, 1000.0]
    >>> e = symlog_edges(-1000.0, 1000.0, 10.0); bool(np.all(np.diff(e) > 0)), e.size
    (True, 141)
    """
    a, b = max(lo, -linthresh), min(hi, linthresh)
    if quantum > 0 and b > a:
        inner = lattice_edges(a, b, round(60 * (b - a) / (2 * linthresh)) or 1, quantum, reference)
    else:
        inner = np.linspace(a, b, 61)
    parts = [inner]
    if lo < inner[0]:  # (then inner[0] <= -linthresh < 0)
        parts.insert(0, -np.geomspace(-lo, -inner[0], 41)[:-1])
    if hi > inner[-1]:  # (then inner[-1] >= linthresh > 0)
        parts.append(np.geomspace(inner[-1], hi, 41)[1:])
    return np.concatenate(parts)


def display_block(shape: tuple[int, ...]) -> int:
    """Frame pixels per display pixel side, for an image of at most :data:`IMAGE_SIDE`
    display pixels on its long side.

    >>> display_block((2048, 2048)), display_block((4096, 908)), display_block((61, 47))
    (4, 8, 1)
    """
    return max(1, -(-max(shape) // IMAGE_SIDE))


def block_mean(values: npt.NDArray[Any], block: int) -> F64:
    """Mean of every ``block x block`` square (the last row and column of squares may be
    smaller), float64; NaN where a square holds a NaN.

    Summed in float32 (exact for counts, and for a display a few dozen values are summed
    closely enough), first over the rows of each band, then over the columns: two
    contiguous passes, several times faster than ``numpy.add.reduceat``. Frames that are
    not whole blocks are padded with zeros, and each square divided by its own count.

    >>> block_mean(np.arange(12.0).reshape(3, 4), 2).tolist()
    [[2.5, 4.5], [8.5, 10.5]]
    """
    v = np.asarray(values)
    if v.dtype == np.bool_:
        v = v.view(np.uint8)
    ny, nx = v.shape
    by, bx = -(-ny // block), -(-nx // block)
    if not (ny and nx):
        return np.zeros((by, bx), dtype=np.float64)
    if (by * block, bx * block) != (ny, nx):
        v = np.pad(v, ((0, by * block - ny), (0, bx * block - nx)))
    band = v.reshape(by, block, bx * block).sum(axis=1, dtype=np.float32)
    sums = band.reshape(by, bx, block).sum(axis=2, dtype=np.float32)
    rows = np.minimum(block, ny - block * np.arange(by))
    cols = np.minimum(block, nx - block * np.arange(bx))
    out: F64 = sums.astype(np.float64) / np.outer(rows, cols)
    return out


def mask_bytes(mask: npt.NDArray[Any]) -> U8:
    """A 2-d mask as uint8 (a view when it already is one byte per pixel)."""
    m = np.asarray(mask)
    if m.dtype.itemsize != 1 or m.dtype.kind not in "biu":
        m = np.not_equal(m, 0)
    return np.ascontiguousarray(m).view(np.uint8)


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
