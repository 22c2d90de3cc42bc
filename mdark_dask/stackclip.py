"""Compiled per-pixel clip-and-stack: one pass over a row strip, GIL released.

This fuses reference §4.2 step 4 and §4.3 B1-B4 for every pixel of a strip: level
subtraction, the AND of the level-clip masks, the median / MAD-std stack clip, and the
sequential float32 means of the data and of the per-frame uncertainties. In the same pass
it measures the temporal scatter of the frames that survived the clip (the noise image of
:mod:`mdark_dask.hotpix`), which takes no part in the soxspipe products.

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
scans for the values outside the bounds (of the pixels that clip some: about one in five
in a 20-frame NIR dark) and the peeling for ``noise_peel`` (two pixels in ten thousand)
go pixel by pixel.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

MAD_TO_STD = 1.482602218505602  # astropy's constant, 1 / Phi^-1(3/4)

#: Bytes of float32 in one tile (frames x block of columns) of :func:`stack_strip_kernel`:
#: its three tiles are about the size of an L1 data cache (8 KiB is slower, 16-64 KiB
#: measure the same on 20 frames).
TILE_BYTES = 16384


@numba.njit(cache=True, nogil=True)
def _median_sorted(s: npt.NDArray[np.float64], a: int, n: int) -> float:  # pragma: no cover
    if n % 2 == 0:
        middle: float = 0.5 * (s[a + n // 2] + s[a + n // 2 - 1])
        return middle
    single: float = s[a + (n - 1) // 2]
    return single


@numba.njit(cache=True, nogil=True)
def _kth_deviation(
    s: npt.NDArray[np.float64], a: int, b: int, med: float, k: int
) -> float:  # pragma: no cover
    """k-th smallest (0-based) of |s[i] - med| over the sorted range [a, b)."""
    # first index whose value is >= med
    p = a
    while p < b and s[p] < med:
        p += 1
    left = p - 1
    right = p
    value = 0.0
    for _ in range(k + 1):
        if left >= a and (right >= b or abs(s[left] - med) <= abs(s[right] - med)):
            value = abs(s[left] - med)
            left -= 1
        else:
            value = abs(s[right] - med)
            right += 1
    return value


@numba.njit(cache=True, nogil=True)
def _mad_std(s: npt.NDArray[np.float64], a: int, b: int, med: float) -> float:  # pragma: no cover
    n = b - a
    if n % 2 == 0:
        hi = _kth_deviation(s, a, b, med, n // 2)
        lo = _kth_deviation(s, a, b, med, n // 2 - 1)
        return 0.5 * (hi + lo) * MAD_TO_STD
    return _kth_deviation(s, a, b, med, (n - 1) // 2) * MAD_TO_STD


@numba.njit(cache=True, nogil=True)
def clip_bounds_sorted(
    s: npt.NDArray[np.float64], n: int, sigma: float, maxiters: int
) -> tuple[float, float]:  # pragma: no cover
    """astropy's median/MAD-std clip bounds of the first ``n`` sorted values of ``s``."""
    a = 0
    b = n
    lo = math.nan
    hi = math.nan
    if n == 0:
        return lo, hi
    iteration = 0
    while True:
        count = b - a
        med = _median_sorted(s, a, count)
        std = _mad_std(s, a, b, med)
        lo = med - sigma * std
        hi = med + sigma * std
        na = a
        while na < b and s[na] < lo:
            na += 1
        nb = b
        while nb > na and s[nb - 1] > hi:
            nb -= 1
        if nb - na == count:
            return lo, hi
        a = na
        b = nb
        iteration += 1
        if iteration >= maxiters or a == b:
            return lo, hi


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _peel_range(
    s: npt.NDArray[np.float32], x: int, n: int, gap: float
) -> tuple[int, int]:  # pragma: no cover
    """The range ``[a, b)`` of the sorted ``s[:n, x]`` (``n >= 5``, as float64) left
    after peeling isolated extreme values.

    An extreme value (the lowest or highest left) is isolated when more than ``gap``
    separates it from its neighbour; the more deviant end from the median is tried
    first, then the other; peeling stops when neither end is isolated or four values
    are left.
    """
    a = 0
    b = n
    while b - a > 4:
        c = b - a
        if c % 2 == 0:
            med = 0.5 * (np.float64(s[a + c // 2, x]) + np.float64(s[a + c // 2 - 1, x]))
        else:
            med = np.float64(s[a + (c - 1) // 2, x])
        low = np.float64(s[a, x])
        high = np.float64(s[b - 1, x])
        top_first = high - med >= med - low
        top_isolated = high - np.float64(s[b - 2, x]) > gap
        bottom_isolated = np.float64(s[a + 1, x]) - low > gap
        if top_isolated and (top_first or not bottom_isolated):
            b -= 1
        elif bottom_isolated:
            a += 1
        else:
            break
    return a, b


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def batcher_network(n: int) -> npt.NDArray[np.int64]:  # pragma: no cover
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of ``n`` values.

    The network of the next power of two with the comparators that touch an index of
    ``n`` or more left out: padded with values above all others, those comparators never
    move anything. Applied in order (smaller value to ``i``) they sort any ``n`` values.
    """
    size = 1
    while size < n:
        size *= 2
    count = 0
    out = np.empty((64 * size, 2), dtype=np.int64)
    p = 1
    while p < size:
        k = p
        while k >= 1:
            j = k % p
            while j + k < size:
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        if count == out.shape[0]:
                            grown = np.empty((2 * count, 2), dtype=np.int64)
                            grown[:count] = out[:count]
                            out = grown
                        out[count, 0] = i + j
                        out[count, 1] = i + j + k
                        count += 1
                j += 2 * k
            k //= 2
        p *= 2
    return out[:count].copy()


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _sort_columns(
    key: npt.NDArray[np.float32], net: npt.NDArray[np.int64], w: int
) -> None:  # pragma: no cover
    """Sort every column ``key[:, x]``, ``x < w``, by the comparator network ``net``.

    Each comparator exchanges the pair's values (it does not copy one of them when they
    compare equal, as ``min`` / ``max`` may with ``-0.0`` and ``+0.0``), so a column stays
    a permutation of its values. No NaN in ``key``.
    """
    for c in range(net.shape[0]):
        row_i = key[net[c, 0]]
        row_j = key[net[c, 1]]
        for x in range(w):
            u = row_i[x]
            v = row_j[x]
            smaller = u <= v
            row_i[x] = u if smaller else v
            row_j[x] = v if smaller else u


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _kth_deviation_tile(
    s: npt.NDArray[np.float32],
    n: int,
    w: int,
    med: npt.NDArray[np.float64],
    k: int,
    out: npt.NDArray[np.float64],
) -> None:  # pragma: no cover
    """``out[x]``: the k-th smallest (0-based) of ``|s[i, x] - med[x]|``, ``i < n``, for
    the sorted columns ``x < w`` of ``s``; the same number as :func:`_kth_deviation`.

    ``fl(s - med)`` does not decrease with ``s``, so the values whose deviation is at most
    ``t`` are consecutive for every ``t``, and the largest deviation of consecutive values
    is at one end. Every run of k + 1 consecutive values then holds a deviation at least
    the k-th smallest, and the run of the k + 1 smallest deviations none larger: the k-th
    smallest deviation is the smallest over the runs of the larger end deviation.
    """
    for x in range(w):
        out[x] = math.inf
    for first in range(n - k):
        left = s[first]
        right = s[first + k]
        for x in range(w):
            dl = abs(np.float64(left[x]) - med[x])
            dr = abs(np.float64(right[x]) - med[x])
            worst = dl if dl > dr else dr
            out[x] = worst if worst < out[x] else out[x]


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _bounds_tile(
    s: npt.NDArray[np.float32],
    n: int,
    w: int,
    sigma: float,
    med: npt.NDArray[np.float64],
    std: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
) -> None:  # pragma: no cover
    """One clip iteration over the ``n >= 1`` sorted values ``s[:n, x]`` of the columns
    ``x < w``: median, MAD-std and bounds, the same numbers as :func:`_median_sorted`,
    :func:`_mad_std` and :func:`clip_bounds_sorted` on the column (as float64)."""
    m = n // 2
    if n % 2 == 0:
        upper = s[m]
        lower = s[m - 1]
        for x in range(w):
            med[x] = 0.5 * (np.float64(upper[x]) + np.float64(lower[x]))
        _kth_deviation_tile(s, n, w, med, m, hi)
        _kth_deviation_tile(s, n, w, med, m - 1, lo)
        for x in range(w):
            std[x] = 0.5 * (hi[x] + lo[x]) * MAD_TO_STD
    else:
        middle = s[m]
        for x in range(w):
            med[x] = np.float64(middle[x])
        _kth_deviation_tile(s, n, w, med, m, hi)
        for x in range(w):
            std[x] = hi[x] * MAD_TO_STD
    for x in range(w):
        lo[x] = med[x] - sigma * std[x]
        hi[x] = med[x] + sigma * std[x]


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _finish_clip(
    key: npt.NDArray[np.float32],
    count: npt.NDArray[np.int64],
    todo: npt.NDArray[np.uint8],
    nf: int,
    w: int,
    sigma: float,
    maxiters: int,
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
    first_std: npt.NDArray[np.float64],
    scratch: npt.NDArray[np.int64],
    tile: npt.NDArray[np.float32],
    fscratch: npt.NDArray[np.float64],
) -> None:  # pragma: no cover
    """The clip iterations left after the first one over the whole tile: the columns with
    all ``nf`` values finite and bit 0 of ``todo`` (a value outside ``lo``, ``hi``), and the
    columns with fewer finite values (``count``), which start from the first iteration.

    Updates ``lo``, ``hi`` and, for the columns with fewer values, ``first_std``. Each
    iteration copies every column still clipping, from the start of its range, into
    ``tile``, grouped by the count of values left, and runs :func:`_bounds_tile` on each
    group.
    """
    width = key.shape[1]
    col = scratch[0:width]  # pending columns
    start = scratch[width : 2 * width]  # their range [start, stop) of sorted values
    stop = scratch[2 * width : 3 * width]
    iters = scratch[3 * width : 4 * width]  # clip iterations (bounds) done
    due = scratch[4 * width : 5 * width]  # 1: next bounds due, 0: bounds of the range known
    order = scratch[5 * width : 6 * width]
    hist = scratch[6 * width : 6 * width + nf + 2]
    gmed = fscratch[0:width]
    gstd = fscratch[width : 2 * width]
    glo = fscratch[2 * width : 3 * width]
    ghi = fscratch[3 * width : 4 * width]
    pending = 0
    for x in range(w):
        n = count[x]
        if n == nf:
            if todo[x] & 1:
                col[pending] = x
                start[pending] = 0
                stop[pending] = nf
                iters[pending] = 1
                due[pending] = 0
                pending += 1
        elif n == 0:
            lo[x] = math.nan
            hi[x] = math.nan
            first_std[x] = math.nan
        else:
            col[pending] = x
            start[pending] = 0
            stop[pending] = n
            iters[pending] = 0
            due[pending] = 1
            pending += 1
    while pending > 0:
        # the bounds of the columns due, grouped by their count of values (counting sort)
        for c in range(nf + 2):
            hist[c] = 0
        for q in range(pending):
            if due[q]:
                hist[stop[q] - start[q] + 1] += 1
        for c in range(1, nf + 2):
            hist[c] += hist[c - 1]
        n_due = hist[nf + 1]
        for q in range(pending):
            if due[q]:
                c = stop[q] - start[q]
                order[hist[c]] = q
                hist[c] += 1
        first = 0
        while first < n_due:
            c = stop[order[first]] - start[order[first]]
            last = first + 1
            while last < n_due and stop[order[last]] - start[order[last]] == c:
                last += 1
            g = last - first
            for j in range(c):
                row = tile[j]
                for r in range(g):
                    q = order[first + r]
                    row[r] = key[start[q] + j, col[q]]
            _bounds_tile(tile, c, g, sigma, gmed, gstd, glo, ghi)
            for r in range(g):
                q = order[first + r]
                x = col[q]
                lo[x] = glo[r]
                hi[x] = ghi[r]
                if iters[q] == 0:
                    first_std[x] = gstd[r]
                iters[q] += 1
            first = last
        # the values outside the bounds (a prefix and a suffix of the range); the columns
        # that lose some and have iterations left go on with the range in between
        kept = 0
        for q in range(pending):
            x = col[q]
            a = start[q]
            b = stop[q]
            low = lo[x]
            high = hi[x]
            na = a
            while na < b and np.float64(key[na, x]) < low:
                na += 1
            nb = b
            while nb > na and np.float64(key[nb - 1, x]) > high:
                nb -= 1
            if nb - na == b - a or iters[q] >= maxiters or na == nb:
                continue
            col[kept] = x
            start[kept] = na
            stop[kept] = nb
            iters[kept] = iters[q]
            due[kept] = 1
            kept += 1
        pending = kept


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def stack_strip_kernel(
    e: npt.NDArray[np.float32],
    level_lo: npt.NDArray[np.float64],
    level_hi: npt.NDArray[np.float64],
    level_mean: npt.NDArray[np.float64],
    ron2: np.float32,
    sigma: float,
    maxiters: int,
    flux: npt.NDArray[np.float32],
    errs: npt.NDArray[np.float32],
    mask: npt.NDArray[np.uint8],
    noise: npt.NDArray[np.float32],
    noise_peel: npt.NDArray[np.float32],
    ron: float,
    peel_sigma: float,
    tile_bytes: int = TILE_BYTES,
) -> None:  # pragma: no cover
    """Fill ``flux``, ``errs``, ``mask``, ``noise`` and ``noise_peel`` (rows, cols) from a
    (frames, rows, cols) strip.

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
    """
    nf, ny, nx = e.shape
    if nf == 0:
        for y in range(ny):
            for x in range(nx):
                flux[y, x] = np.float32(np.nan)
                errs[y, x] = np.float32(np.nan)
                noise[y, x] = np.float32(np.nan)
                noise_peel[y, x] = np.float32(np.nan)
                mask[y, x] = 1
        return
    width = tile_bytes // (4 * nf)
    width = max(16, width - width % 16)
    net = batcher_network(nf)
    inf32 = np.float32(np.inf)
    zero32 = np.float32(0.0)
    d = np.empty((nf, width), dtype=np.float32)  # level-subtracted, frame order
    key = np.empty((nf, width), dtype=np.float32)  # finite values sorted, then +inf
    tile = np.empty((nf, width), dtype=np.float32)  # ranges still clipping
    count = np.empty(width, dtype=np.int64)  # finite values
    level_masked = np.empty(width, dtype=np.bool_)
    todo = np.empty(width, dtype=np.uint8)
    med = np.empty(width, dtype=np.float64)
    std = np.empty(width, dtype=np.float64)  # first iteration's MAD-std
    lo = np.empty(width, dtype=np.float64)
    hi = np.empty(width, dtype=np.float64)
    peel_a = np.empty(width, dtype=np.int64)
    peel_b = np.empty(width, dtype=np.int64)
    acc = np.empty(width, dtype=np.float32)
    acc_sig = np.empty(width, dtype=np.float32)
    acc64 = np.empty(width, dtype=np.float64)
    mean64 = np.empty(width, dtype=np.float64)
    ss = np.empty(width, dtype=np.float64)
    kept = np.empty(width, dtype=np.int64)
    scratch = np.empty(6 * width + nf + 2, dtype=np.int64)
    fscratch = np.empty(4 * width, dtype=np.float64)
    for y in range(ny):
        for x0 in range(0, nx, width):
            w = min(width, nx - x0)
            # level subtraction, level masks, the finite values as sort keys
            for x in range(w):
                count[x] = 0
                level_masked[x] = True
            for i in range(nf):
                src = e[i, y, x0 : x0 + w]
                m = level_mean[i]
                llo = level_lo[i]
                lhi = level_hi[i]
                d_i = d[i]
                key_i = key[i]
                for x in range(w):
                    v64 = np.float64(src[x])
                    inside = (v64 >= llo) & (v64 <= lhi)
                    level_masked[x] = level_masked[x] & (not inside)
                    dv = np.float32(v64 - m)
                    d_i[x] = dv
                    finite = np.isfinite(dv)
                    key_i[x] = dv if finite else inf32
                    count[x] += finite
            _sort_columns(key, net, w)
            # first clip iteration for all columns as if all values were finite; then
            # the columns that clip some value or have fewer finite values
            _bounds_tile(key, nf, w, sigma, med, std, lo, hi)
            bottom = key[0]
            top = key[nf - 1]
            for x in range(w):
                clip = (np.float64(bottom[x]) < lo[x]) | (np.float64(top[x]) > hi[x])
                todo[x] = 1 if clip else 0
            if nf >= 5:
                above = key[1]
                below = key[nf - 2]
                for x in range(w):
                    gap = peel_sigma * (std[x] if std[x] > ron else ron)
                    low = np.float64(bottom[x])
                    high = np.float64(top[x])
                    isolated = (high - np.float64(below[x]) > gap) | (
                        np.float64(above[x]) - low > gap
                    )
                    todo[x] |= 2 if isolated else 0
            _finish_clip(
                key, count, todo, nf, w, sigma, maxiters, lo, hi, std, scratch, tile, fscratch
            )
            # the peeled range of the sorted values, pixel by pixel where an end is isolated
            for x in range(w):
                n = count[x]
                if n < 5:
                    peel_a[x] = 0
                    peel_b[x] = 0
                elif n == nf and (todo[x] & 2) == 0:
                    peel_a[x] = 0
                    peel_b[x] = n
                else:
                    gap = peel_sigma * (std[x] if std[x] > ron else ron)
                    peel_a[x], peel_b[x] = _peel_range(key, x, n, gap)
            # frame-order sums over the kept values
            for x in range(w):
                acc[x] = zero32
                acc_sig[x] = zero32
                acc64[x] = 0.0
                kept[x] = 0
            for i in range(nf):
                src = e[i, y, x0 : x0 + w]
                d_i = d[i]
                for x in range(w):
                    dv = d_i[x]
                    v = src[x]
                    dv64 = np.float64(dv)
                    keep = (dv64 >= lo[x]) & (dv64 <= hi[x])
                    pos = v if v > zero32 else zero32
                    sig = np.float32(math.sqrt(np.float64(pos + ron2)))
                    acc[x] += dv if keep else zero32
                    acc_sig[x] += sig if keep else zero32
                    acc64[x] += dv64 if keep else 0.0
                    kept[x] += keep
            for x in range(w):
                mean64[x] = acc64[x] / max(kept[x], 1)
                ss[x] = 0.0
            for i in range(nf):
                d_i = d[i]
                for x in range(w):
                    dv64 = np.float64(d_i[x])
                    keep = (dv64 >= lo[x]) & (dv64 <= hi[x])
                    dd = dv64 - mean64[x]
                    ss[x] += dd * dd if keep else 0.0
            for x in range(w):
                k = kept[x]
                noise[y, x0 + x] = (
                    np.float32(math.sqrt(ss[x] / k)) if k >= 2 else np.float32(np.nan)
                )
                if k == 0:
                    flux[y, x0 + x] = np.float32(np.nan)
                    errs[y, x0 + x] = np.float32(np.nan)
                else:
                    fk = np.float32(k)
                    flux[y, x0 + x] = acc[x] / fk
                    errs[y, x0 + x] = np.float32(
                        np.float64(acc_sig[x] / fk) / math.sqrt(np.float64(k))
                    )
                mask[y, x0 + x] = 1 if (k == 0 or level_masked[x]) else 0
            # the peeled scatter: sorted-order sums over each pixel's peeled range
            for x in range(w):
                acc64[x] = 0.0
                ss[x] = 0.0
            for k in range(nf):
                key_k = key[k]
                for x in range(w):
                    peeled = (k >= peel_a[x]) & (k < peel_b[x])
                    acc64[x] += np.float64(key_k[x]) if peeled else 0.0
            for x in range(w):
                mean64[x] = acc64[x] / max(peel_b[x] - peel_a[x], 1)
            for k in range(nf):
                key_k = key[k]
                for x in range(w):
                    peeled = (k >= peel_a[x]) & (k < peel_b[x])
                    dd = np.float64(key_k[x]) - mean64[x]
                    ss[x] += dd * dd if peeled else 0.0
            for x in range(w):
                size = peel_b[x] - peel_a[x]
                noise_peel[y, x0 + x] = (
                    np.float32(math.sqrt(ss[x] / size)) if size > 0 else np.float32(np.nan)
                )
