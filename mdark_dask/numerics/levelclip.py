"""Compiled whole-image mean/std sigma clip (astropy ``sigma_clip(axis=None)``).

The loops are C (``_native/levelclip.c``, which sums in numpy 2.1's order from
``_native/pairwise.h``, as :mod:`mdark_dask.numerics.masked` does), called through
:mod:`mdark_dask.numerics.native` with the GIL released, so Dask threads clip frames in
parallel. The wrappers check dtypes and contiguity before every call (a wrong pointer
would crash the process, not raise).

:func:`clip_bounds` is the step-by-step form: one pass per statistic over the image in C
order, with a byte of "still kept" state per pixel instead of astropy's shrinking copies
(one extra byte per pixel, not several copies of the frame).

* ``soxspipe`` mode reproduces astropy 6.1.2 with bottleneck 1.4.0, as soxspipe 0.17.4
  runs them: sequential float32 sums, ``mean = sum / n`` and
  ``std = sqrt(sum((x - mean)**2) / n)`` in float32, bounds computed in double and
  compared with float32 pixels after rounding to float32 (numpy's rule for a Python float).
* accurate mode sums in float64 as numpy does (``np.sum(..., dtype=np.float64)``: 8192-
  value buffers, each summed pairwise, the values not kept counting as 0), which
  vectorises where a sequential chain cannot, and compares in float64.

:func:`level_stats` is the per-frame level clip fused with the masked mean and std of
its final bounds (numpy 2.1's pairwise order, :mod:`mdark_dask.numerics.masked`):
the same bits as :func:`clip_bounds` followed by ``masked_mean_std``, with no per-pixel
state at all, two passes per iteration and two for the statistics. :func:`level_bounds`
is its clip alone.
"""

from __future__ import annotations

import ctypes

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.native import bind


def _flat32(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``x`` itself, checked to be what the C loops read: one contiguous float32 axis."""
    if x.dtype != np.float32 or not x.dtype.isnative:
        raise ValueError(f"the image is {x.dtype}, not float32")
    if x.ndim != 1 or not x.flags.c_contiguous:
        raise ValueError("the image must be flat and contiguous (ravel it in C order)")
    return x


def _clip(
    function: str,
    x: npt.NDArray[np.float32],
    sigma: float,
    maxiters: int,
    soxspipe: bool,
    size: int,
) -> list[float]:
    """Call one of the clips; its ``size`` float64 results. The results come back through
    a ctypes array rather than a numpy one: ``ndarray.ctypes.data`` costs more than the
    whole clip of a small image."""
    flat = _flat32(x)
    out = (ctypes.c_double * size)()
    status = bind(function)(
        flat.ctypes.data, flat.size, float(sigma), int(maxiters), int(bool(soxspipe)), out
    )
    if status != 0:
        raise MemoryError(f"{function}: out of memory")
    return out[:]


def clip_bounds(
    x: npt.NDArray[np.float32], sigma: float, maxiters: int, soxspipe: bool
) -> tuple[float, float]:
    """Final ``(lo, hi)`` of an iterative mean/std clip of the flat image ``x``.

    The step-by-step form, with a "kept" byte per pixel (allocated for the call): each
    iteration sums the kept values, then their squared anomalies, then clears the byte of
    every value outside the bounds; it stops after ``maxiters`` iterations or when one
    clears nothing. NaN bounds when ``maxiters`` is 0 (or nothing is finite).

    Raises
    ------
    ValueError
        ``x`` is not a flat contiguous float32 array.
    """
    lo, hi = _clip("md_clip_bounds", x, sigma, maxiters, soxspipe, 2)
    return float(lo), float(hi)


def level_bounds(
    x: npt.NDArray[np.float32], sigma: float, maxiters: int, soxspipe: bool
) -> tuple[float, float]:
    """The final ``(lo, hi)`` of :func:`clip_bounds` (the same bits), without its per-pixel
    state and with two passes per iteration (see :func:`level_stats`).

    Raises
    ------
    ValueError
        ``x`` is not a flat contiguous float32 array.
    """
    lo, hi = _clip("md_level_bounds", x, sigma, maxiters, soxspipe, 2)
    return float(lo), float(hi)


def level_stats(
    x: npt.NDArray[np.float32], sigma: float, maxiters: int, soxspipe: bool
) -> tuple[float, float, float, float]:
    """``(lo, hi, mean, std)`` of the level clip of the flat image ``x``.

    The bounds of :func:`clip_bounds`, then ``np.ma.mean`` and ``np.ma.std`` of the values
    inside the final bounds (:func:`mdark_dask.numerics.masked.masked_mean_std`), with the same
    bits, without a mask in memory and in fewer passes:

    * the "still kept" state is the intersection of every bound so far (a value left the
      kept set as soon as it fell outside one), so it needs no per-pixel byte, and the
      pass applying an iteration's bounds is the next iteration's sum (the values it
      removed are the drop in the count);
    * per iteration, a pass for the sum and one for the squares; then the masked sum and
      the masked anomalies of the final bounds, a pass each.

    NaN for all four when nothing is kept (or ``maxiters`` is 0), as with
    :func:`clip_bounds`.

    Raises
    ------
    ValueError
        ``x`` is not a flat contiguous float32 array.
    """
    lo, hi, mean, std = _clip("md_level_stats", x, sigma, maxiters, soxspipe, 4)
    return float(lo), float(hi), float(mean), float(std)


# ------------------------------------------------------------------------------------------
# the pieces of the fused clip, for the tests


def _float32_bounds(lo: float, hi: float) -> tuple[np.float32, np.float32]:
    """float32 ``(lo32, hi32)`` such that, for every float32 ``v``, ``lo32 <= v <= hi32``
    exactly when ``lo <= float64(v) <= hi`` (lo rounded up, hi down; NaN stays NaN), so
    the passes compare float32 values, eight to a vector register. The C function the
    fused clip uses."""
    out = (ctypes.c_float * 2)()
    bind("md_float32_bounds")(float(lo), float(hi), out)
    return np.float32(out[0]), np.float32(out[1])


def _kept_sum(
    x: npt.NDArray[np.float32], keep_lo: np.float32, keep_hi: np.float32, soxspipe: bool
) -> tuple[float, int]:
    """Sum and count of the kept values (finite and inside ``[keep_lo, keep_hi]``, float32
    bounds): a sequential float32 sum (``soxspipe``), else numpy's float64 sum
    (``np.sum(np.where(kept, x, 0), dtype=np.float64)``: 8192-value buffers summed
    pairwise).

    soxspipe: each stretch of values is first staged with the values not kept replaced by
    ``-0.0`` (``s + -0.0 == s`` bit for bit, whatever ``s``), then summed in order: the
    selection vectorises and the sum is a bare chain of additions.
    """
    flat = _flat32(x)
    total = ctypes.c_double()
    count = bind("md_kept_sum")(
        flat.ctypes.data,
        flat.size,
        float(keep_lo),
        float(keep_hi),
        int(bool(soxspipe)),
        ctypes.byref(total),
    )
    if count < 0:
        raise MemoryError("_kept_sum: out of memory")
    return float(total.value), int(count)


def _kept_squares(
    x: npt.NDArray[np.float32],
    keep_lo: np.float32,
    keep_hi: np.float32,
    mean: float,
    soxspipe: bool,
) -> float:
    """Sum of ``(x - mean) ** 2`` over the kept values: sequential in float32 with the
    float32 mean (``soxspipe``), else numpy's float64 sum; staged as in :func:`_kept_sum`."""
    flat = _flat32(x)
    out = ctypes.c_double()
    status = bind("md_kept_squares")(
        flat.ctypes.data,
        flat.size,
        float(keep_lo),
        float(keep_hi),
        float(mean),
        int(bool(soxspipe)),
        ctypes.byref(out),
    )
    if status != 0:
        raise MemoryError("_kept_squares: out of memory")
    return float(out.value)
