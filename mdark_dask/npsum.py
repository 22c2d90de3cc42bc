"""numpy 2.1's float summation, reproduced exactly and independent of the installed numpy.

soxspipe 0.17.4 pins numpy 2.1.0; the per-frame level ``m_i``, the scatter ``s_i`` and
MASTER RON are numpy masked-array ``mean``/``std`` of float32 frames. Their values depend
on numpy's summation order: pairwise sums of blocks of 8 accumulators up to 128 values
(``loops_utils.h.src``), applied to the 8192-element buffers of a reduction. Newer numpy
releases sum large float32 arrays differently, which changes the level by a few ulp and
so every FLUX pixel. These compiled kernels replay the 2.1 order so the
``soxspipe-0.17.4`` numerics are bit-identical whatever numpy is installed.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

BUFFER: Final = 8192  # numpy's default ufunc buffer size: a reduction's inner-loop chunk


@numba.njit(cache=True, nogil=True)
def _pairwise32(
    a: npt.NDArray[np.float32], lo: int, n: int
) -> np.floating[Any]:  # pragma: no cover
    if n < 8:
        res = np.float32(-0.0)
        for i in range(n):
            res += a[lo + i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        stop = n - n % 8
        while i < stop:
            r0 += a[lo + i]
            r1 += a[lo + i + 1]
            r2 += a[lo + i + 2]
            r3 += a[lo + i + 3]
            r4 += a[lo + i + 4]
            r5 += a[lo + i + 5]
            r6 += a[lo + i + 6]
            r7 += a[lo + i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        block: np.floating[Any] = res
        return block
    n2 = n // 2
    n2 -= n2 % 8
    total: np.floating[Any] = _pairwise32(a, lo, n2) + _pairwise32(a, lo + n2, n - n2)
    return total


@numba.njit(cache=True, nogil=True)
def _pairwise64(
    a: npt.NDArray[np.float64], lo: int, n: int
) -> np.floating[Any]:  # pragma: no cover
    if n < 8:
        res = np.float64(-0.0)
        for i in range(n):
            res += a[lo + i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        stop = n - n % 8
        while i < stop:
            r0 += a[lo + i]
            r1 += a[lo + i + 1]
            r2 += a[lo + i + 2]
            r3 += a[lo + i + 3]
            r4 += a[lo + i + 4]
            r5 += a[lo + i + 5]
            r6 += a[lo + i + 6]
            r7 += a[lo + i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        block: np.floating[Any] = res
        return block
    n2 = n // 2
    n2 -= n2 % 8
    total: np.floating[Any] = _pairwise64(a, lo, n2) + _pairwise64(a, lo + n2, n - n2)
    return total


@numba.njit(cache=True, nogil=True)
def _pairwise_filled32(
    a: npt.NDArray[np.float32], m: npt.NDArray[np.bool_], lo: int, n: int
) -> np.floating[Any]:  # pragma: no cover
    """:func:`_pairwise32` of ``where(m, 0, a)`` without building it."""
    zero = np.float32(0.0)
    if n < 8:
        res = np.float32(-0.0)
        for i in range(n):
            res += zero if m[lo + i] else a[lo + i]
        return res
    if n <= 128:
        r = np.empty(8, dtype=np.float32)
        for j in range(8):
            r[j] = zero if m[lo + j] else a[lo + j]
        i = 8
        stop = n - n % 8
        while i < stop:
            for j in range(8):
                r[j] += zero if m[lo + i + j] else a[lo + i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += zero if m[lo + i] else a[lo + i]
            i += 1
        block: np.floating[Any] = res
        return block
    n2 = n // 2
    n2 -= n2 % 8
    total: np.floating[Any] = _pairwise_filled32(a, m, lo, n2) + _pairwise_filled32(
        a, m, lo + n2, n - n2
    )
    return total


@numba.njit(cache=True, nogil=True)
def _pairwise_anomaly64(
    a: npt.NDArray[np.float32], m: npt.NDArray[np.bool_], mean: float, lo: int, n: int
) -> np.floating[Any]:  # pragma: no cover
    """:func:`_pairwise64` of ``where(m, 0, (float64(a) - mean) ** 2)`` without building it."""
    zero = np.float64(0.0)
    if n < 8:
        res = np.float64(-0.0)
        for i in range(n):
            d = np.float64(a[lo + i]) - mean
            res += zero if m[lo + i] else d * d
        return res
    if n <= 128:
        r = np.empty(8, dtype=np.float64)
        for j in range(8):
            d = np.float64(a[lo + j]) - mean
            r[j] = zero if m[lo + j] else d * d
        i = 8
        stop = n - n % 8
        while i < stop:
            for j in range(8):
                d = np.float64(a[lo + i + j]) - mean
                r[j] += zero if m[lo + i + j] else d * d
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            d = np.float64(a[lo + i]) - mean
            res += zero if m[lo + i] else d * d
            i += 1
        block: np.floating[Any] = res
        return block
    n2 = n // 2
    n2 -= n2 % 8
    total: np.floating[Any] = _pairwise_anomaly64(a, m, mean, lo, n2) + _pairwise_anomaly64(
        a, m, mean, lo + n2, n - n2
    )
    return total


@numba.njit(cache=True, nogil=True)
def _masked_sums(
    a: npt.NDArray[np.float32], m: npt.NDArray[np.bool_]
) -> tuple[np.float32, int]:  # pragma: no cover
    acc = np.float32(0.0)
    for start in range(0, a.size, BUFFER):
        acc += _pairwise_filled32(a, m, start, min(BUFFER, a.size - start))
    count = 0
    for i in range(a.size):
        if not m[i]:
            count += 1
    return acc, count


@numba.njit(cache=True, nogil=True)
def _masked_anomaly(
    a: npt.NDArray[np.float32], m: npt.NDArray[np.bool_], mean: float
) -> np.float64:  # pragma: no cover
    acc = np.float64(0.0)
    for start in range(0, a.size, BUFFER):
        acc += _pairwise_anomaly64(a, m, mean, start, min(BUFFER, a.size - start))
    return acc


@numba.njit(cache=True, nogil=True)
def _sum32(a: npt.NDArray[np.float32]) -> np.floating[Any]:  # pragma: no cover
    acc = np.float32(0.0)
    for start in range(0, a.size, BUFFER):
        acc += _pairwise32(a, start, min(BUFFER, a.size - start))
    return acc


@numba.njit(cache=True, nogil=True)
def _sum64(a: npt.NDArray[np.float64]) -> np.floating[Any]:  # pragma: no cover
    acc = np.float64(0.0)
    for start in range(0, a.size, BUFFER):
        acc += _pairwise64(a, start, min(BUFFER, a.size - start))
    return acc


def sum32(a: npt.NDArray[np.float32]) -> np.float32:
    """``numpy.sum`` of a float32 array in numpy 2.1's order (C order, float32 result)."""
    total: np.float32 = np.float32(_sum32(np.ascontiguousarray(a, dtype=np.float32).ravel()))
    return total


def sum64(a: npt.NDArray[np.float64]) -> np.float64:
    """``numpy.sum`` of a float64 array in numpy 2.1's order."""
    total: np.float64 = np.float64(_sum64(np.ascontiguousarray(a, dtype=np.float64).ravel()))
    return total


def masked_mean_std(
    values: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]
) -> tuple[float, float]:
    """``np.ma.mean`` and ``np.ma.std`` (ddof 0) of a float32 masked array, numpy 2.1 exact.

    The mean is ``float64(float32 sum of the filled array) / count``; the variance sums
    the float64 squared anomalies of the unmasked values, as ``MaskedArray.var`` does.
    Nothing of the frame's size is allocated. Returns NaN for both when every value is
    masked.
    """
    a = np.ascontiguousarray(values, dtype=np.float32).ravel()
    m = np.ascontiguousarray(mask, dtype=np.bool_).ravel()
    total, count = _masked_sums(a, m)
    if count == 0:
        return math.nan, math.nan
    mean = np.float64(np.float32(total)) / np.int64(count)
    var = np.float64(_masked_anomaly(a, m, float(mean))) / np.int64(count)
    return float(mean), float(np.sqrt(var))
