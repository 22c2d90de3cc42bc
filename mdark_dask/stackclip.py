"""Compiled per-pixel clip-and-stack: one pass over a row strip, GIL released.

This fuses reference §4.2 step 4 and §4.3 B1-B4 for every pixel of a strip: level
subtraction, the AND of the level-clip masks, the median / MAD-std stack clip, and the
sequential float32 means of the data and of the per-frame uncertainties. In the same pass
it measures the temporal scatter of the frames that survived the clip (the noise image of
:mod:`mdark_dask.hotpix`), which takes no part in the soxspipe products.

The stack clip gives exactly astropy's ``_sigma_clip_fast`` results (its C code, in
double precision) at a fraction of the cost: each pixel's values are sorted once, after
which every clip iteration keeps a contiguous range of the sorted values, so the median
is a lookup and the MAD's median a two-pointer walk outward from the median. Order
statistics and ``0.5 * (a + b)`` are computed on the same doubles as astropy's Wirth
selection, so bounds and masks are bit-identical (checked against astropy in the tests).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

MAD_TO_STD = 1.482602218505602  # astropy's constant, 1 / Phi^-1(3/4)


@numba.njit(cache=True, nogil=True, inline="always")
def _insertion_sort(buf: npt.NDArray[np.float64], n: int) -> None:  # pragma: no cover
    for i in range(1, n):
        x = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > x:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = x


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


@numba.njit(cache=True, nogil=True)
def _peeled_std(s: npt.NDArray[np.float64], n: int, gap: float) -> np.float32:  # pragma: no cover
    """Population std of the sorted ``s[:n]`` after peeling isolated extreme values.

    An extreme value (the lowest or highest left) is isolated when more than ``gap``
    separates it from its neighbour; the more deviant end from the median is tried
    first, then the other; peeling stops when neither end is isolated or four values
    are left. NaN below five values.
    """
    if n < 5:
        return np.float32(np.nan)
    a = 0
    b = n
    while b - a > 4:
        med = _median_sorted(s, a, b - a)
        top_first = s[b - 1] - med >= med - s[a]
        top_isolated = s[b - 1] - s[b - 2] > gap
        bottom_isolated = s[a + 1] - s[a] > gap
        if top_isolated and (top_first or not bottom_isolated):
            b -= 1
        elif bottom_isolated:
            a += 1
        else:
            break
    total = 0.0
    for i in range(a, b):
        total += s[i]
    mean = total / (b - a)
    ss = 0.0
    for i in range(a, b):
        ss += (s[i] - mean) * (s[i] - mean)
    return np.float32(math.sqrt(ss / (b - a)))


@numba.njit(cache=True, nogil=True)
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
    the less frequent level like cosmic rays.

    Both read the values the mean reads, and write only their own arrays, so they never
    change ``flux``, ``errs`` or ``mask``.
    """
    nf, ny, nx = e.shape
    d = np.empty(nf, dtype=np.float32)
    sig = np.empty(nf, dtype=np.float32)
    buf = np.empty(nf, dtype=np.float64)
    for y in range(ny):
        for x in range(nx):
            all_level_masked = True
            n = 0
            for i in range(nf):
                v = e[i, y, x]
                v64 = np.float64(v)
                inside = v64 >= level_lo[i] and v64 <= level_hi[i]
                if inside:
                    all_level_masked = False
                d[i] = np.float32(v64 - level_mean[i])
                pos = v if v > np.float32(0.0) else np.float32(0.0)
                sig[i] = np.float32(math.sqrt(np.float64(pos + ron2)))
                dv = np.float64(d[i])
                if math.isfinite(dv):
                    buf[n] = dv
                    n += 1
            if n > 32:
                buf[:n] = np.sort(buf[:n])
            else:
                _insertion_sort(buf, n)
            lo, hi = clip_bounds_sorted(buf, n, sigma, maxiters)
            if n >= 5:
                scale = max(ron, _mad_std(buf, 0, n, _median_sorted(buf, 0, n)))
                noise_peel[y, x] = _peeled_std(buf, n, peel_sigma * scale)
            else:
                noise_peel[y, x] = np.float32(np.nan)
            acc = np.float32(0.0)
            acc_sig = np.float32(0.0)
            acc64 = 0.0
            kept = 0
            for i in range(nf):
                dv = np.float64(d[i])
                if dv >= lo and dv <= hi:
                    acc += d[i]
                    acc_sig += sig[i]
                    acc64 += dv
                    kept += 1
            if kept < 2:
                noise[y, x] = np.float32(np.nan)
            else:
                mean64 = acc64 / kept
                ss = 0.0
                for i in range(nf):
                    dv = np.float64(d[i])
                    if dv >= lo and dv <= hi:
                        ss += (dv - mean64) * (dv - mean64)
                noise[y, x] = np.float32(math.sqrt(ss / kept))
            if kept == 0:
                flux[y, x] = np.float32(np.nan)
                errs[y, x] = np.float32(np.nan)
            else:
                fk = np.float32(kept)
                flux[y, x] = acc / fk
                errs[y, x] = np.float32(np.float64(acc_sig / fk) / math.sqrt(np.float64(kept)))
            mask[y, x] = 1 if (kept == 0 or all_level_masked) else 0
