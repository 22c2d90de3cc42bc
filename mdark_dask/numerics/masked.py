"""numpy 2.1's float summation, reproduced exactly and independent of the installed numpy.

soxspipe 0.17.4 pins numpy 2.1.0; the per-frame level ``m_i``, the scatter ``s_i`` and
MASTER RON are numpy masked-array ``mean``/``std`` of float32 frames. Their values depend
on numpy's summation order: pairwise sums of blocks of 8 accumulators up to 128 values
(``loops_utils.h.src``), applied to the 8192-element buffers of a reduction. Newer numpy
releases sum large float32 arrays differently, which changes the level by a few ulp and
so every FLUX pixel. The sums here replay the 2.1 order so the ``soxspipe-0.17.4``
numerics are bit-identical whatever numpy is installed.

The loops are C (``_native/masked.c``; the order itself is ``_native/pairwise.h``, shared
with ``_native/levelclip.c``, whose clip sums in the same order), called through
:mod:`mdark_dask.numerics.native` with the GIL released. The wrappers check dtypes,
contiguity and sizes before every call: a wrong pointer would crash the process, not raise.
"""

from __future__ import annotations

import ctypes
from typing import Final

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.native import bind

BUFFER: Final = 8192  # numpy's default ufunc buffer size: a reduction's inner-loop chunk


def pairwise_buffer(a: npt.NDArray[np.floating], n: int) -> np.floating:
    """numpy 2.1's pairwise sum of ``a[:n]`` (``1 <= n <= BUFFER``), in ``a``'s dtype.

    numpy's recursion (``pairwise_sum`` in ``loops_utils.h.src``: halves rounded down to a
    multiple of 8, leaves of at most 128 values summed in 8 accumulators) evaluated with an
    explicit stack in C: one buffer of a reduction, the building block of every sum here.

    Parameters
    ----------
    a : ndarray of float32 or float64
        One-dimensional and contiguous.
    n : int
        How many leading values to sum.

    Raises
    ------
    ValueError
        ``a`` is not a contiguous 1-D float32/float64 array or ``n`` is out of range.
    """
    if a.dtype not in (np.float32, np.float64) or not a.dtype.isnative:
        raise ValueError(f"cannot sum an array of {a.dtype}")
    if a.ndim != 1 or not a.flags.c_contiguous:
        raise ValueError("pairwise_buffer sums a one-dimensional contiguous array")
    n = int(n)
    if not 1 <= n <= min(BUFFER, a.size):
        raise ValueError(f"n = {n} is not within 1..min({BUFFER}, a.size = {a.size})")
    if a.dtype == np.float32:
        return np.float32(bind("md_pairwise_f32")(a.ctypes.data, n))
    return np.float64(bind("md_pairwise_f64")(a.ctypes.data, n))


def sum32(a: npt.NDArray[np.float32]) -> np.float32:
    """``numpy.sum`` of a float32 array in numpy 2.1's order (C order, float32 result)."""
    flat = np.ascontiguousarray(a, dtype=np.float32).ravel()
    return np.float32(bind("md_sum_f32")(flat.ctypes.data, flat.size))


def sum64(a: npt.NDArray[np.float64]) -> np.float64:
    """``numpy.sum`` of a float64 array in numpy 2.1's order."""
    flat = np.ascontiguousarray(a, dtype=np.float64).ravel()
    return np.float64(bind("md_sum_f64")(flat.ctypes.data, flat.size))


def masked_mean_std(
    values: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]
) -> tuple[float, float]:
    """``np.ma.mean`` and ``np.ma.std`` (ddof 0) of a float32 masked array, numpy 2.1 exact.

    The mean is ``float64(float32 sum of the filled array) / count``; the variance sums
    the float64 squared anomalies of the unmasked values, as ``MaskedArray.var`` does.
    Nothing of the frame's size is allocated (for C-contiguous float32 values and a bool
    mask). Returns NaN for both when every value is masked.

    Raises
    ------
    ValueError
        ``mask`` has not as many values as ``values``.
    """
    a = np.ascontiguousarray(values, dtype=np.float32).ravel()
    m = np.ascontiguousarray(mask, dtype=np.bool_).ravel()
    if m.size != a.size:
        raise ValueError(f"the mask has {m.size} values, the array {a.size}")
    out = (ctypes.c_double * 2)()  # cheaper to pass than an ndarray's .ctypes.data
    kernel = bind("md_masked_mean_std")
    if kernel(a.ctypes.data, m.ctypes.data, a.size, out) != 0:
        raise MemoryError("masked_mean_std: out of memory")
    return float(out[0]), float(out[1])
