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


@numba.njit(cache=True, nogil=True, inline="always")
def _pairwise_leaf(
    a: npt.NDArray[np.floating], lo: int, n: int, r: npt.NDArray[np.floating]
) -> Any:  # pragma: no cover
    """numpy 2.1's sum of ``a[lo:lo + n]``, ``1 <= n <= 128`` (the leaves of its pairwise
    sum): in order below 8 values, else 8 accumulators (kept in the scratch ``r`` of 8,
    which LLVM turns into one vector register)."""
    if n < 8:
        res = a[lo]  # numpy starts from -0.0, and -0.0 + a[lo] is a[lo]
        for i in range(1, n):
            res += a[lo + i]
        return res
    for k in range(8):
        r[k] = a[lo + k]
    stop = n - n % 8
    for i in range(8, stop, 8):
        for k in range(8):
            r[k] += a[lo + i + k]
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for i in range(stop, n):
        res += a[lo + i]
    return res


@numba.njit(cache=True, nogil=True)
def pairwise_buffer(
    a: npt.NDArray[np.floating],
    n: int,
    tasks: npt.NDArray[np.int64],
    scratch: npt.NDArray[np.floating],
) -> Any:  # pragma: no cover
    """numpy 2.1's pairwise sum of ``a[:n]`` (``1 <= n <= BUFFER``), in ``a``'s dtype.

    numpy's recursion (``pairwise_sum`` in ``loops_utils.h.src``: halves rounded down to a
    multiple of 8, leaves of at most 128 values) evaluated without recursion, because
    numba cannot link a recursive function compiled in another module into a cached one
    (:mod:`mdark_dask.frameclip` calls this). A whole buffer is a balanced tree over 64
    leaves; other sizes walk an explicit stack.
    ``tasks`` (64 pairs) and ``scratch`` (72 of ``a``'s dtype: the stack of partial sums
    and a leaf's accumulators) are scratch space.
    """
    values = scratch[:64]
    r = scratch[64:72]
    if n == BUFFER:
        for k in range(64):
            values[k] = _pairwise_leaf(a, 128 * k, 128, r)
        width = 32
        while width >= 1:
            for k in range(width):
                values[k] = values[2 * k] + values[2 * k + 1]
            width //= 2
        return values[0]
    top = 0  # task stack: (lo, n), n == -1 to add the two partial sums on top
    tasks[0, 0] = 0
    tasks[0, 1] = n
    depth = 0
    while top >= 0:
        lo = tasks[top, 0]
        m = tasks[top, 1]
        top -= 1
        if m == -1:
            depth -= 1
            values[depth - 1] = values[depth - 1] + values[depth]
        elif m <= 128:
            values[depth] = _pairwise_leaf(a, lo, m, r)
            depth += 1
        else:
            half = m // 2
            half -= half % 8
            # popped in order: left half, right half, then their sum
            tasks[top + 1, 0] = 0
            tasks[top + 1, 1] = -1
            tasks[top + 2, 0] = lo + half
            tasks[top + 2, 1] = m - half
            tasks[top + 3, 0] = lo
            tasks[top + 3, 1] = half
            top += 3
    return values[0]


def scratch_space(dtype: type[np.floating]) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """The ``tasks`` and ``scratch`` arrays :func:`pairwise_buffer` works in."""
    return np.empty((64, 2), dtype=np.int64), np.empty(72, dtype=dtype)


@numba.njit(cache=True, nogil=True)
def _sum(
    a: npt.NDArray[np.floating],
    zero: Any,
    tasks: npt.NDArray[np.int64],
    scratch: npt.NDArray[Any],
) -> Any:  # pragma: no cover
    """numpy's sum of ``a`` (1-D, contiguous): pairwise within each buffer, buffers added
    in order to ``zero`` (+0.0 of ``a``'s dtype)."""
    acc = zero
    for start in range(0, a.size, BUFFER):
        acc += pairwise_buffer(a[start:], min(BUFFER, a.size - start), tasks, scratch)
    return acc


@numba.njit(cache=True, nogil=True)
def _masked_sums(
    a: npt.NDArray[np.float32],
    m: npt.NDArray[np.bool_],
    tasks: npt.NDArray[np.int64],
    buf: npt.NDArray[np.float32],
) -> tuple[np.float32, int]:  # pragma: no cover
    """Float32 sum of ``where(m, 0, a)`` in numpy's order, a buffer at a time (``buf``:
    ``BUFFER + 72``), and the count of unmasked values."""
    acc = np.float32(0.0)
    zero = np.float32(0.0)
    count = 0
    for start in range(0, a.size, BUFFER):
        n = min(BUFFER, a.size - start)
        for j in range(n):
            masked = m[start + j]
            buf[j] = zero if masked else a[start + j]
            count += 0 if masked else 1
        acc += pairwise_buffer(buf, n, tasks, buf[BUFFER:])
    return acc, count


@numba.njit(cache=True, nogil=True)
def _masked_anomaly(
    a: npt.NDArray[np.float32],
    m: npt.NDArray[np.bool_],
    mean: float,
    tasks: npt.NDArray[np.int64],
    buf: npt.NDArray[np.float64],
) -> np.float64:  # pragma: no cover
    """Float64 sum of ``where(m, 0, (float64(a) - mean) ** 2)`` in numpy's order."""
    acc = np.float64(0.0)
    zero = np.float64(0.0)
    for start in range(0, a.size, BUFFER):
        n = min(BUFFER, a.size - start)
        for j in range(n):
            d = np.float64(a[start + j]) - mean
            buf[j] = zero if m[start + j] else d * d
        acc += pairwise_buffer(buf, n, tasks, buf[BUFFER:])
    return acc


def sum32(a: npt.NDArray[np.float32]) -> np.float32:
    """``numpy.sum`` of a float32 array in numpy 2.1's order (C order, float32 result)."""
    tasks, scratch = scratch_space(np.float32)
    flat = np.ascontiguousarray(a, dtype=np.float32).ravel()
    total: np.float32 = np.float32(_sum(flat, np.float32(0.0), tasks, scratch))
    return total


def sum64(a: npt.NDArray[np.float64]) -> np.float64:
    """``numpy.sum`` of a float64 array in numpy 2.1's order."""
    tasks, scratch = scratch_space(np.float64)
    flat = np.ascontiguousarray(a, dtype=np.float64).ravel()
    total: np.float64 = np.float64(_sum(flat, np.float64(0.0), tasks, scratch))
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
    tasks = np.empty((64, 2), dtype=np.int64)
    total, count = _masked_sums(a, m, tasks, np.empty(BUFFER + 72, dtype=np.float32))
    if count == 0:
        return math.nan, math.nan
    mean = np.float64(np.float32(total)) / np.int64(count)
    buf = np.empty(BUFFER + 72, dtype=np.float64)
    var = np.float64(_masked_anomaly(a, m, float(mean), tasks, buf)) / np.int64(count)
    return float(mean), float(np.sqrt(var))
