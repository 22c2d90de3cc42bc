"""Compiled whole-image mean/std sigma clip (astropy ``sigma_clip(axis=None)``).

One pass per statistic over the image in C order, with a byte of "still kept" state per
pixel instead of astropy's shrinking copies: a frame-sized float32 image costs one extra
byte per pixel, not several copies.

* ``soxspipe`` mode reproduces astropy 6.1.2 with bottleneck 1.4.0 (reference §4.1,
  §4.9): sequential float32 sums, ``mean = sum / n`` and
  ``std = sqrt(sum((x - mean)**2) / n)`` in float32, bounds computed in double and
  compared with float32 pixels after rounding to float32 (numpy's rule for a Python float).
* accurate mode sums sequentially in float64 and compares in float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt


@numba.njit(cache=True, nogil=True, error_model="numpy")
def clip_bounds(
    x: npt.NDArray[np.float32], sigma: float, maxiters: int, soxspipe: bool
) -> tuple[float, float]:  # pragma: no cover
    """Final ``(lo, hi)`` of an iterative mean/std clip of the flat image ``x``."""
    keep = np.empty(x.size, dtype=np.bool_)
    for i in range(x.size):
        keep[i] = math.isfinite(x[i])
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
            s64 = 0.0
            n = 0
            for i in range(x.size):
                if keep[i]:
                    s64 += np.float64(x[i])
                    n += 1
            mean = s64 / n
            q64 = 0.0
            for i in range(x.size):
                if keep[i]:
                    d64 = np.float64(x[i]) - mean
                    q64 += d64 * d64
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
