"""Compiled per-pixel clip-and-stack: one pass over a row strip, GIL released.

This fuses soxspipe's stacking steps for every pixel of a strip: level subtraction, the
AND of the level-clip masks, the median / MAD-std stack clip, and the sequential float32
means of the data and of the per-frame uncertainties. In the same pass
it measures the temporal scatter of the frames that survived the clip (the noise image of
:mod:`mdark_dask.numerics.hotpix`), which takes no part in the soxspipe products.

The work is C (``_native/stackclip.c``), called through :mod:`mdark_dask.numerics.native`
(ctypes, which releases the GIL, so Dask threads clip strips in parallel); this module
checks the arrays and calls it.

The stack clip gives exactly astropy's ``_sigma_clip_fast`` results (its C code, in
double precision) at a fraction of the cost: each pixel's values are sorted once, after
which every clip iteration keeps a contiguous range of the sorted values, so the median
is a lookup and the MAD's median an order statistic of the deviations of a sorted range.
Order statistics and ``0.5 * (a + b)`` are computed on the same doubles as astropy's Wirth
selection, so bounds and masks are bit-identical (checked against astropy in the tests).
:func:`clip_bounds_sorted` is that clip for one pixel.

:func:`stack_strip_kernel` works through the strip in tiles of one row and a block of
columns, with the frames along the tile's first axis, and runs every step across the
columns of the tile, so the compiler makes SIMD code of it without branches on the
values: level subtraction, sorting (one comparator network for all columns), the clip
iterations and the sums over frames. A clip iteration needs the same count of values in
every column, so the columns still clipping after the first iteration are copied, each
from the start of its range, into a tile per count. Every lane does exactly the
operations of the one-pixel form, in the same order, so the bytes are the same. Only the
scans for the values outside the bounds (of the pixels that clip some, a minority in a
dark) and the peeling for ``noise_peel`` (rarer still) go pixel by pixel.

The private one-pixel forms and tile steps (:func:`_median_sorted`, :func:`_mad_std`,
:func:`_sort_columns`, :func:`_bounds_tile`, ...) are thin wrappers over the C functions
the kernel itself inlines, so the tests check the compiled steps one by one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.native import bind

#: Bytes of float32 in one tile (frames x block of columns) of :func:`stack_strip_kernel`:
#: its three tiles are about the size of an L1 data cache (smaller tiles are slower,
#: larger ones no faster).
TILE_BYTES = 16384

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def _doubles(s: npt.ArrayLike) -> F64:
    """``s`` as one contiguous float64 array (float32 values convert exactly, as the kernel
    widens them)."""
    out: F64 = np.ascontiguousarray(s, dtype=np.float64).reshape(-1)
    return out


def _check_range(size: int, a: int, b: int) -> None:
    if not 0 <= a < b <= size:
        raise ValueError(f"range [{a}, {b}) is empty or outside {size} values")


def _median_sorted(s: npt.ArrayLike, a: int, n: int) -> float:
    """Median of the sorted ``s[a:a + n]`` (``n >= 1``), as float64."""
    v = _doubles(s)
    _check_range(v.size, int(a), int(a) + int(n))
    return float(bind("stackclip_median_sorted")(v.ctypes.data, int(a), int(n)))


def _kth_deviation(s: npt.ArrayLike, a: int, b: int, med: float, k: int) -> float:
    """k-th smallest (0-based) of ``|s[i] - med|`` over the sorted range ``[a, b)``."""
    v = _doubles(s)
    _check_range(v.size, int(a), int(b))
    if not 0 <= k < b - a:
        raise ValueError(f"no {k}-th deviation of {b - a} values")
    fn = bind("stackclip_kth_deviation")
    return float(fn(v.ctypes.data, int(a), int(b), float(med), int(k)))


def _mad_std(s: npt.ArrayLike, a: int, b: int, med: float) -> float:
    """MAD-std (median absolute deviation from ``med`` times 1.4826, astropy's factor) of the
    sorted range ``s[a:b]`` (not empty), as float64."""
    v = _doubles(s)
    _check_range(v.size, int(a), int(b))
    return float(bind("stackclip_mad_std")(v.ctypes.data, int(a), int(b), float(med)))


def clip_bounds_sorted(
    s: npt.ArrayLike, n: int, sigma: float, maxiters: int
) -> tuple[float, float]:
    """astropy's median/MAD-std clip bounds of the first ``n`` sorted values of ``s``.

    The one-pixel form of the kernel's clip: every iteration keeps a contiguous range of
    the sorted values. ``(nan, nan)`` when ``n`` is 0.
    """
    v = _doubles(s)
    if not 0 <= n <= v.size:
        raise ValueError(f"n = {n} outside the {v.size} values")
    out = np.empty(2, dtype=np.float64)
    fn = bind("stackclip_clip_bounds_sorted")
    fn(v.ctypes.data, int(n), float(sigma), int(maxiters), out.ctypes.data)
    return float(out[0]), float(out[1])


def batcher_network(n: int) -> npt.NDArray[np.int64]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of ``n`` values.

    The network of the next power of two with the comparators that touch an index of
    ``n`` or more left out: padded with values above all others, those comparators never
    move anything. Applied in order (smaller value to ``i``) they sort any ``n`` values.
    """
    fn = bind("stackclip_batcher_network")
    count = int(fn(int(n), None))
    out = np.empty((count, 2), dtype=np.int64)
    if count:
        fn(int(n), out.ctypes.data)
    return out


def _tile(s: npt.NDArray[Any], n: int, w: int, writable: bool = False) -> None:
    """Check that ``s`` is a C-order float32 tile with ``n`` rows and ``w`` columns to use."""
    if s.dtype != np.float32 or s.ndim != 2 or not s.flags.c_contiguous:
        raise ValueError(f"tile is {s.dtype} with {s.ndim} axes, not C-order 2-D float32")
    if writable and not s.flags.writeable:
        raise ValueError("tile is read-only")
    if not (0 <= n <= s.shape[0] and 0 <= w <= s.shape[1]):
        raise ValueError(f"{n} x {w} values outside a tile of shape {s.shape}")


def _lanes(w: int, *arrays: npt.NDArray[Any]) -> None:
    """Check per-column float64 arrays: contiguous, writable, at least ``w`` long."""
    for a in arrays:
        if a.dtype != np.float64 or a.ndim != 1 or not a.flags.c_contiguous:
            raise ValueError(f"per-column array is {a.dtype} with {a.ndim} axes, not float64")
        if a.size < w or not a.flags.writeable:
            raise ValueError(f"per-column array of {a.size} values for {w} columns")


def _sort_columns(key: F32, net: npt.NDArray[np.int64], w: int) -> None:
    """Sort every column ``key[:, x]``, ``x < w``, in place by the comparator network ``net``.

    Each comparator exchanges the pair's values (it does not copy one of them when they
    compare equal, as ``min`` / ``max`` may with ``-0.0`` and ``+0.0``), so a column stays
    a permutation of its values. No NaN in ``key``.
    """
    _tile(key, key.shape[0] if key.ndim == 2 else 0, w, writable=True)
    pairs = np.ascontiguousarray(net, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"network of shape {pairs.shape}, not (comparators, 2)")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= key.shape[0]):
        raise ValueError("comparator index outside the tile's rows")
    fn = bind("stackclip_sort_columns")
    fn(key.ctypes.data, key.shape[1], pairs.ctypes.data, pairs.shape[0], int(w))


def _kth_deviation_tile(s: F32, n: int, w: int, med: F64, k: int, out: F64) -> None:
    """``out[x]``: the k-th smallest (0-based) of ``|s[i, x] - med[x]|``, ``i < n``, for
    the sorted columns ``x < w`` of ``s``; the same number as :func:`_kth_deviation`.

    ``fl(s - med)`` does not decrease with ``s``, so the values whose deviation is at most
    ``t`` are consecutive for every ``t``, and the largest deviation of consecutive values
    is at one end. Every run of k + 1 consecutive values then holds a deviation at least
    the k-th smallest, and the run of the k + 1 smallest deviations none larger: the k-th
    smallest deviation is the smallest over the runs of the larger end deviation.
    """
    _tile(s, n, w)
    _lanes(w, out)
    lanes = np.ascontiguousarray(med, dtype=np.float64)
    if lanes.ndim != 1 or lanes.size < w:
        raise ValueError(f"med of shape {lanes.shape} for {w} columns")
    if k < 0:
        raise ValueError(f"no {k}-th deviation")
    fn = bind("stackclip_kth_deviation_tile")
    fn(s.ctypes.data, s.shape[1], int(n), int(w), lanes.ctypes.data, int(k), out.ctypes.data)


def _bounds_tile(
    s: F32, n: int, w: int, sigma: float, med: F64, std: F64, lo: F64, hi: F64
) -> None:
    """One clip iteration over the ``n >= 1`` sorted values ``s[:n, x]`` of the columns
    ``x < w``: median, MAD-std and bounds, the same numbers as :func:`_median_sorted`,
    :func:`_mad_std` and :func:`clip_bounds_sorted` on the column (as float64)."""
    _tile(s, n, w)
    if n < 1:
        raise ValueError("a clip iteration needs at least one value")
    _lanes(w, med, std, lo, hi)
    fn = bind("stackclip_bounds_tile")
    fn(
        s.ctypes.data,
        s.shape[1],
        int(n),
        int(w),
        float(sigma),
        med.ctypes.data,
        std.ctypes.data,
        lo.ctypes.data,
        hi.ctypes.data,
    )


def stack_strip_kernel(
    e: F32,
    level_lo: F64,
    level_hi: F64,
    level_mean: F64,
    ron2: np.float32,
    sigma: float,
    maxiters: int,
    flux: F32,
    errs: F32,
    mask: npt.NDArray[np.uint8],
    noise: F32,
    noise_peel: F32,
    ron: float,
    peel_sigma: float,
    tile_bytes: int = TILE_BYTES,
) -> None:
    """Fill ``flux``, ``errs``, ``mask``, ``noise`` and ``noise_peel`` (rows, cols) from a
    (frames, rows, cols) strip.

    ``e`` is the prepared float32 strip (C order), ``level_*`` the per-frame level-clip
    bounds and mean (float64), ``ron2`` the squared read noise as ``np.float32`` (the
    per-frame uncertainty ``sqrt(max(E, 0) + ron2)`` adds in float32, so a float64 value
    would give other bytes: it is refused).

    ``noise`` is the population standard deviation (ddof 0) of the level-subtracted values
    of the frames kept by the stack clip, in float64 (two passes: mean, then squared
    deviations), rounded once to float32; NaN when fewer than two frames are kept.

    ``noise_peel`` is the same statistic over every finite value once isolated extreme
    values are peeled off, one at a time, while more than ``peel_sigma`` times the pixel's
    noise scale (the MAD-std of its finite values, at least ``ron``) separates the lowest or
    highest value left from its neighbour (at least four values stay; NaN with fewer than
    five finite values). Cosmic-ray hits, each with its own charge, are isolated and
    peeled however many there are; a pixel that jumps to the same level in two or more
    frames is not, so its scatter stays high, where the stack clip rejects the frames of
    the less frequent level like cosmic rays. Its sums run over the sorted values.

    Both read the values the mean reads, and write only their own arrays, so they never
    change ``flux``, ``errs`` or ``mask``.

    ``tile_bytes`` sets the block of columns (:data:`TILE_BYTES`; at least 16 columns);
    it changes no result.

    Every sum starts at ``+0.0`` and adds the values of its pixel in order (frame order,
    or sorted order for ``noise_peel``); a value left out is added as ``+0.0``, which
    changes no such sum (it is never ``-0.0``), so the bytes are those of adding the values
    kept only.

    Raises
    ------
    ValueError
        ``e`` is not a C-order 3-D float32 array, a level array has fewer values than
        frames, or an output is not of its dtype and of shape (rows, cols).
    TypeError
        ``ron2`` is not a ``np.float32``.
    MemoryError
        The kernel's scratch tiles cannot be allocated.
    """
    if e.dtype != np.float32 or e.ndim != 3 or not e.flags.c_contiguous:
        raise ValueError(f"strip is {e.dtype} with {e.ndim} axes, not C-order 3-D float32")
    if not isinstance(ron2, np.float32):
        raise TypeError(f"ron2 must be np.float32, not {type(ron2).__name__}")
    nf, ny, nx = e.shape
    if nf >= 2**31:
        raise ValueError(f"{nf} frames: the kernel counts frames in 32 bits")
    levels = [
        np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        for x in (level_lo, level_hi, level_mean)
    ]
    if any(x.size < nf for x in levels):
        raise ValueError(f"level arrays shorter than the {nf} frames")
    outputs: list[npt.NDArray[Any]] = [flux, errs, mask, noise, noise_peel]
    targets: list[npt.NDArray[Any]] = []
    for out, dtype in zip(
        outputs, (np.float32, np.float32, np.uint8, np.float32, np.float32), strict=True
    ):
        if out.dtype != dtype or out.shape != (ny, nx) or not out.flags.writeable:
            raise ValueError(f"output is {out.dtype} {out.shape}, not {np.dtype(dtype)} {(ny, nx)}")
        targets.append(out if out.flags.c_contiguous else np.empty((ny, nx), dtype=dtype))
    width = 0
    if nf > 0:
        width = int(tile_bytes) // (4 * nf)
        width = max(16, width - width % 16)
    fn = bind("stackclip_stack_strip")
    status = fn(
        e.ctypes.data,
        nf,
        ny,
        nx,
        levels[0].ctypes.data,
        levels[1].ctypes.data,
        levels[2].ctypes.data,
        float(ron2),
        float(sigma),
        int(maxiters),
        *(t.ctypes.data for t in targets),
        float(ron),
        float(peel_sigma),
        width,
    )
    if status != 0:
        raise MemoryError("no memory for the stack kernel's tiles")
    for out, target in zip(outputs, targets, strict=True):
        if target is not out:
            out[...] = target
