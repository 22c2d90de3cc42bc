"""Compiled whole-image mean/std sigma clip (astropy ``sigma_clip(axis=None)``).

One pass per statistic over the image in C order, with a byte of "still kept" state per
pixel instead of astropy's shrinking copies: a frame-sized float32 image costs one extra
byte per pixel, not several copies.

* ``soxspipe`` mode reproduces astropy 6.1.2 with bottleneck 1.4.0 (reference §4.1,
  §4.9): sequential float32 sums, ``mean = sum / n`` and
  ``std = sqrt(sum((x - mean)**2) / n)`` in float32, bounds computed in double and
  compared with float32 pixels after rounding to float32 (numpy's rule for a Python float).
* accurate mode sums in float64 as numpy does (``np.sum(..., dtype=np.float64)``: 8192-
  value buffers, each summed pairwise, the values not kept counting as 0), which
  vectorises where a sequential chain cannot, and compares in float64.

:func:`level_stats` is the per-frame level clip (reference §4.2) fused with the masked
mean and std of its final bounds (numpy 2.1's pairwise order, :mod:`mdark_dask.npsum`):
the same bits as :func:`clip_bounds` followed by ``masked_mean_std``, with no per-pixel
state at all, two passes per iteration and two for the statistics.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from mdark_dask.npsum import BUFFER, pairwise_buffer

_FLT_MAX = np.float32(np.finfo(np.float32).max)
# values staged at a time for the sequential sums (their buffers stay in the L1 cache)
_STAGE = 2048


@numba.njit(cache=True, nogil=True, error_model="numpy")
def clip_bounds(
    x: npt.NDArray[np.float32], sigma: float, maxiters: int, soxspipe: bool
) -> tuple[float, float]:  # pragma: no cover
    """Final ``(lo, hi)`` of an iterative mean/std clip of the flat image ``x``."""
    keep = np.empty(x.size, dtype=np.bool_)
    for i in range(x.size):
        keep[i] = math.isfinite(x[i])
    buf64 = np.empty(BUFFER + 72, dtype=np.float64)
    tasks = np.empty((64, 2), dtype=np.int64)
    lo = math.nan
    hi = math.nan
    iteration = 0
    changed = 1
    while changed != 0 and iteration < maxiters:
        iteration += 1
        if soxspipe:
            s32 = np.float32(0.0)
            n = 0
            for i in range(x.size):
                if keep[i]:
                    s32 += x[i]
                    n += 1
            mean32 = s32 / np.float32(n)
            q32 = np.float32(0.0)
            for i in range(x.size):
                if keep[i]:
                    d = x[i] - mean32
                    q32 += d * d
            std32 = np.float32(math.sqrt(np.float64(q32 / np.float32(n))))
            mean = float(mean32)
            std = float(std32)
            lo = float(np.float32(mean - std * sigma))
            hi = float(np.float32(mean + std * sigma))
        else:
            # numpy's float64 sums (8192-value buffers, each summed pairwise) of the kept
            # values and of their squared anomalies, the others counting as 0
            s64 = 0.0
            n = 0
            for start in range(0, x.size, BUFFER):
                m = min(BUFFER, x.size - start)
                for j in range(m):
                    kept = keep[start + j]
                    buf64[j] = np.float64(x[start + j]) if kept else 0.0
                    n += 1 if kept else 0
                s64 += pairwise_buffer(buf64, m, tasks, buf64[BUFFER:])
            mean = s64 / n
            q64 = 0.0
            for start in range(0, x.size, BUFFER):
                m = min(BUFFER, x.size - start)
                for j in range(m):
                    d64 = np.float64(x[start + j]) - mean
                    buf64[j] = d64 * d64 if keep[start + j] else 0.0
                q64 += pairwise_buffer(buf64, m, tasks, buf64[BUFFER:])
            std = math.sqrt(q64 / n)
            lo = mean - std * sigma
            hi = mean + std * sigma
        changed = 0
        for i in range(x.size):
            if keep[i]:
                v = np.float64(x[i])
                if not (v >= lo and v <= hi):
                    keep[i] = False
                    changed += 1
    return lo, hi


# ------------------------------------------------------------------------------------------
# the level clip of one frame, fused with its masked mean and std (reference §4.2)


@numba.njit(cache=True, nogil=True)
def _float32_bounds(lo: float, hi: float) -> tuple[np.float32, np.float32]:  # pragma: no cover
    """float32 ``(lo32, hi32)`` such that, for every float32 ``v``, ``lo32 <= v <= hi32``
    exactly when ``lo <= float64(v) <= hi`` (lo rounded up, hi down; NaN stays NaN), so
    the passes compare float32 values, eight to a vector register."""
    lo32 = np.float32(lo)
    if np.float64(lo32) < lo:
        lo32 = np.nextafter(lo32, np.float32(math.inf))
    hi32 = np.float32(hi)
    if np.float64(hi32) > hi:
        hi32 = np.nextafter(hi32, np.float32(-math.inf))
    return lo32, hi32


@numba.njit(cache=True, nogil=True, inline="always")
def _stage_kept(
    xs: npt.NDArray[np.float32],
    keep_lo: np.float32,
    keep_hi: np.float32,
    out: npt.NDArray[np.floating],
    neutral: float,
) -> int:  # pragma: no cover
    """``out[j] = xs[j]`` where kept (finite and inside ``[keep_lo, keep_hi]``), else
    ``neutral`` (in ``out``'s dtype); the number kept. A branch-free loop that vectorises."""
    fill = out.dtype.type(neutral)
    c = 0
    for j in range(xs.size):
        v = xs[j]
        kept = abs(v) <= _FLT_MAX and v >= keep_lo and v <= keep_hi
        out[j] = v if kept else fill
        c += 1 if kept else 0
    return c


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _kept_sum(
    x: npt.NDArray[np.float32],
    keep_lo: np.float32,
    keep_hi: np.float32,
    soxspipe: bool,
    sel: npt.NDArray[np.float32],
    sel64: npt.NDArray[np.float64],
    tasks: npt.NDArray[np.int64],
) -> tuple[float, int]:  # pragma: no cover
    """Sum and count of the kept values (finite and inside ``[keep_lo, keep_hi]``): a
    sequential float32 sum (``soxspipe``), else numpy's float64 sum.

    soxspipe: each stretch of values is first staged in ``sel`` with the values not kept
    replaced by ``-0.0`` (``s + -0.0 == s`` bit for bit, whatever ``s``), then summed in
    order: the selection vectorises and the sum is a bare chain of additions.
    Accurate: each 8192-value buffer is staged in ``sel64`` as float64 with the values not
    kept as 0, and summed pairwise (``np.sum(np.where(kept, x, 0), dtype=np.float64)``).
    """
    if not soxspipe:
        s64 = 0.0
        n = 0
        for start in range(0, x.size, BUFFER):
            m = min(BUFFER, x.size - start)
            n += _stage_kept(x[start : start + m], keep_lo, keep_hi, sel64, 0.0)
            s64 += pairwise_buffer(sel64, m, tasks, sel64[BUFFER:])
        return s64, n
    s32 = np.float32(0.0)
    n = 0
    for start in range(0, x.size, _STAGE):
        m = min(_STAGE, x.size - start)
        n += _stage_kept(x[start : start + m], keep_lo, keep_hi, sel, -0.0)
        for j in range(m):
            s32 += sel[j]
    return float(s32), n


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _kept_squares(
    x: npt.NDArray[np.float32],
    keep_lo: np.float32,
    keep_hi: np.float32,
    mean: float,
    soxspipe: bool,
    sel: npt.NDArray[np.float32],
    sel64: npt.NDArray[np.float64],
    tasks: npt.NDArray[np.int64],
) -> float:  # pragma: no cover
    """Sum of ``(x - mean) ** 2`` over the kept values: sequential in float32 with the
    float32 mean (``soxspipe``), else numpy's float64 sum; staged as in :func:`_kept_sum`."""
    if not soxspipe:
        q64 = 0.0
        for start in range(0, x.size, BUFFER):
            m = min(BUFFER, x.size - start)
            xs = x[start : start + m]
            for j in range(m):
                v = xs[j]
                kept = abs(v) <= _FLT_MAX and v >= keep_lo and v <= keep_hi
                d64 = np.float64(v) - mean
                sel64[j] = d64 * d64 if kept else 0.0
            q64 += pairwise_buffer(sel64, m, tasks, sel64[BUFFER:])
        return q64
    q32 = np.float32(0.0)
    mean32 = np.float32(mean)
    for start in range(0, x.size, _STAGE):
        m = min(_STAGE, x.size - start)
        xs = x[start : start + m]
        for j in range(m):
            v = xs[j]
            kept = abs(v) <= _FLT_MAX and v >= keep_lo and v <= keep_hi
            d = v - mean32
            sel[j] = d * d if kept else np.float32(-0.0)
        for j in range(m):
            q32 += sel[j]
    return float(q32)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _inside_sum(
    x: npt.NDArray[np.float32],
    lo: np.float32,
    hi: np.float32,
    filled: npt.NDArray[np.float32],
    tasks: npt.NDArray[np.int64],
) -> tuple[np.float32, int]:  # pragma: no cover
    """numpy 2.1's float32 sum of the image with the values outside ``[lo, hi]`` filled
    with 0 (:func:`mdark_dask.npsum.masked_mean_std`'s order), and the count inside.

    Not :func:`_stage_kept`: with infinite bounds (a float32 std that overflowed) an
    infinite value is inside here, as in numpy's masked statistics, and must count
    (``test_infinite_bounds_count_infinite_values_as_the_reference_does``); the same
    holds for :func:`_inside_anomaly`."""
    total = np.float32(0.0)
    count = 0
    zero = np.float32(0.0)
    for start in range(0, x.size, BUFFER):
        m = min(BUFFER, x.size - start)
        xs = x[start : start + m]
        c = 0
        for j in range(m):
            v = xs[j]
            inside = v >= lo and v <= hi
            filled[j] = v if inside else zero
            c += 1 if inside else 0
        count += c
        total += pairwise_buffer(filled, m, tasks, filled[BUFFER:])
    return total, count


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _inside_anomaly(
    x: npt.NDArray[np.float32],
    lo: np.float32,
    hi: np.float32,
    mean: float,
    buf: npt.NDArray[np.float64],
    tasks: npt.NDArray[np.int64],
) -> float:  # pragma: no cover
    """numpy 2.1's float64 sum of ``(float64(x) - mean) ** 2`` over the values inside
    ``[lo, hi]`` (0 elsewhere): ``MaskedArray.var``'s numerator."""
    acc = np.float64(0.0)
    for start in range(0, x.size, BUFFER):
        m = min(BUFFER, x.size - start)
        xs = x[start : start + m]
        for j in range(m):
            v = xs[j]
            d = np.float64(v) - mean
            buf[j] = d * d if (v >= lo and v <= hi) else 0.0
        acc += pairwise_buffer(buf, m, tasks, buf[BUFFER:])
    return float(acc)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def level_bounds(
    x: npt.NDArray[np.float32], sigma: float, maxiters: int, soxspipe: bool
) -> tuple[float, float]:  # pragma: no cover
    """The final ``(lo, hi)`` of :func:`clip_bounds` (the same bits), without its per-pixel
    state and with two passes per iteration (see :func:`level_stats`)."""
    sel = np.empty(_STAGE, dtype=np.float32)
    # accurate mode's float64 buffer, then its pairwise sum's scratch
    sel64 = np.empty(BUFFER + 72, dtype=np.float64)
    tasks = np.empty((64, 2), dtype=np.int64)
    keep_lo, keep_hi = _float32_bounds(-math.inf, math.inf)
    s, n = _kept_sum(x, keep_lo, keep_hi, soxspipe, sel, sel64, tasks)
    lo = math.nan
    hi = math.nan
    iteration = 0
    changed = 1
    while changed != 0 and iteration < maxiters:
        iteration += 1
        if soxspipe:
            mean32 = np.float32(s) / np.float32(n)
            mean = float(mean32)
            q32 = np.float32(_kept_squares(x, keep_lo, keep_hi, mean, True, sel, sel64, tasks))
            std32 = np.float32(math.sqrt(np.float64(q32 / np.float32(n))))
            std = float(std32)
            lo = float(np.float32(mean - std * sigma))
            hi = float(np.float32(mean + std * sigma))
        else:
            mean = s / n
            std = math.sqrt(_kept_squares(x, keep_lo, keep_hi, mean, False, sel, sel64, tasks) / n)
            lo = mean - std * sigma
            hi = mean + std * sigma
        if iteration == maxiters:
            break  # the last iteration: what it would clip changes nothing returned
        # the values kept after this iteration: finite and inside every bound so far;
        # NaN sticks (once a bound is NaN nothing is kept, as with the reference's bytes)
        lo32, hi32 = _float32_bounds(lo, hi)
        keep_lo = lo32 if (math.isnan(lo32) or lo32 > keep_lo) else keep_lo
        keep_hi = hi32 if (math.isnan(hi32) or hi32 < keep_hi) else keep_hi
        before = n
        s, n = _kept_sum(x, keep_lo, keep_hi, soxspipe, sel, sel64, tasks)
        changed = before - n
    return lo, hi


@numba.njit(cache=True, nogil=True, error_model="numpy")
def level_stats(
    x: npt.NDArray[np.float32], sigma: float, maxiters: int, soxspipe: bool
) -> tuple[float, float, float, float]:  # pragma: no cover
    """``(lo, hi, mean, std)`` of the level clip of the flat image ``x``.

    The bounds of :func:`clip_bounds`, then ``np.ma.mean`` and ``np.ma.std`` of the values
    inside the final bounds (:func:`mdark_dask.npsum.masked_mean_std`), with the same
    bits, without a mask in memory and in fewer passes:

    * the "still kept" state is the intersection of every bound so far (a value left the
      kept set as soon as it fell outside one), so it needs no per-pixel byte, and the
      pass applying an iteration's bounds is the next iteration's sum (the values it
      removed are the drop in the count);
    * per iteration, a pass for the sum and one for the squares; then the masked sum and
      the masked anomalies of the final bounds, a pass each.

    NaN for all four when nothing is kept (or ``maxiters`` is 0), as the reference.
    """
    filled = np.empty(BUFFER + 72, dtype=np.float32)
    sel64 = np.empty(BUFFER + 72, dtype=np.float64)
    tasks = np.empty((64, 2), dtype=np.int64)
    lo, hi = level_bounds(x, sigma, maxiters, soxspipe)
    lo32, hi32 = _float32_bounds(lo, hi)
    total, count = _inside_sum(x, lo32, hi32, filled, tasks)
    if count == 0:
        return lo, hi, math.nan, math.nan
    level = np.float64(total) / count
    var = _inside_anomaly(x, lo32, hi32, level, sel64, tasks) / count
    return lo, hi, level, math.sqrt(var)
