"""Physical hot and noisy pixels of a master dark: pure functions, arrays in, arrays out.

soxspipe 0.17.4 calls every pixel of the master's QUAL mask a hot pixel (HOTPIX NUM): the
3-sigma tail of the post-stack clip, cold pixels and real hot pixels alike. Its
documentation promises a ``create_noise_map`` utility (a per-pixel standard deviation along
the stack, iteratively clipped with median/MAD, outliers into a noise bad-pixel map) that
0.17.4 never implemented. This module finds:

* **hot pixels**: dark current (the stacked master minus a robust image level, the median
  of the unmasked master) above ``sigma`` times the robust spread of the master (the
  MAD-std of the same pixels) and, when a rate is given, above ``rate * EXPTIME``;
* **noisy pixels**: high-side outliers of an iterative median/MAD clip of a noise image.
  Two noise images come out of the stack pass (:mod:`mdark_dask.numerics.stackclip`): the noise
  image proper, the temporal scatter of the frames kept by the stack clip (the primary
  image of the ``_NOISE.fits`` product), and the *peeled* noise image, the scatter of every
  finite frame once isolated extreme values are peeled off (defined from five frames; the
  product's ``NOISE_PEEL`` extension). Noisy pixels are the outliers of the peeled image
  where it is defined, else of the noise image.

Why the peeled image decides. The stack clip is a per-pixel median/MAD clip: for a pixel
that jumps between two levels (a telegraph pixel) the majority level sets the median and a
MAD near the read noise, so the frames at the other level are clipped like cosmic rays and
the survivors' scatter is normal (so the noise image alone misses many telegraph pixels;
``benchmarks/bench_hotpix.py`` measures how many). Peeling removes a pixel's lowest or
highest value only while a gap of more than :data:`mdark_dask.numerics.steps.PEEL_SIGMA`
times its noise scale isolates it: each cosmic-ray hit carries its own charge and is
peeled, however many hit the pixel, while two or more frames at the same jumped level hold
each other in and keep the scatter high. Conversely a weak cosmic-ray hit can survive the
stack clip (X-shooter clips at 5 sigma) and raise the survivors' scatter, but it is
isolated, so not the peeled one. What remains: two hits of nearly equal charge on one
pixel (rare even at high cosmic-ray rates), and weak hits within the gap. A jump seen in
one frame only is, in time, exactly a cosmic-ray hit and stays unflagged (unless it biases
the master: then it is hot).

The map follows soxspipe's static bad-pixel maps: one image, non-zero means bad. Bit
values: :data:`HOT` (1) and :data:`NOISY` (2); a pixel can carry both.

Nothing here knows about files, settings objects or dask. The passes over the images
(selection, dark image, map) are plain C (``_native/hotpix.c``) called through ctypes
(:mod:`mdark_dask.numerics.native`), which releases the GIL, so other threads keep working
while a pass runs.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.native import bind, float_suffix

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

#: Bit of a hot pixel in the map.
HOT: Final = 1
#: Bit of a noisy pixel in the map.
NOISY: Final = 2
MAD_TO_STD: Final = 1.482602218505602  # astropy's constant, 1 / Phi^-1(3/4)


class Robust(NamedTuple):
    """Median and MAD-std of a set of values (NaN when there are none)."""

    median: float
    std: float


class NoiseClip(NamedTuple):
    """Result of the high-side clip of one noise image."""

    median: float
    std: float
    threshold: float
    iterations: int


class HotPixels(NamedTuple):
    """Everything :func:`find_hot_pixels` decides, for the products, QC and plots.

    Attributes
    ----------
    bpm : ndarray of uint8
        The map: :data:`HOT` | :data:`NOISY` bits, 0 for good pixels.
    combined : ndarray of float32
        The stacked master the dark current is measured on (the caller's array, not a
        copy); :attr:`dark` is ``combined - level.median``, made only when asked for, so
        the final task does not hold a frame-sized image that only a plot would read.
    level : Robust
        Robust level and spread of the unmasked master (level-subtracted, e-).
    hot_threshold : float
        The dark current above which a pixel is hot, e-.
    noise : NoiseClip
        Clip of the noise image (survivors of the stack clip); it decides where the
        peeled image is undefined.
    noise_peel : NoiseClip
        Clip of the peeled noise image.
    """

    bpm: npt.NDArray[np.uint8]
    combined: F32
    level: Robust
    hot_threshold: float
    noise: NoiseClip
    noise_peel: NoiseClip

    @property
    def dark(self) -> F32:
        """Dark current in e- over the exposure: ``float32(combined - level.median)``
        (computed in float64; NaN where the master is undefined). A new array each time."""
        return dark_image(self.combined, self.level.median)

    @property
    def n_hot(self) -> int:
        """Hot pixels (noisy or not)."""
        return int(np.count_nonzero(self.bpm & HOT))

    @property
    def n_noisy(self) -> int:
        """Noisy pixels (hot or not)."""
        return int(np.count_nonzero(self.bpm & NOISY))

    @property
    def n_bad(self) -> int:
        """Pixels with any flag."""
        return int(np.count_nonzero(self.bpm))


def robust_level(values: npt.NDArray[np.floating]) -> Robust:
    """Median and MAD-std (``1.4826 * median(|x - median|)``) of the finite values, float64.

    Both medians are order statistics, found by selection (:func:`_middle_pair`) rather
    than by sorting: the same numbers as :func:`numpy.median` of the float64 values (a zero
    median is ``+0.0``), in four passes over the data and no float64 copy of it.

    >>> robust_level(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan]))
    Robust(median=3.0, std=1.482602218505602)
    """
    return _median_mad(_flat(values), _NO_MASK, math.inf)


def master_level(combined: F32, qual: npt.NDArray[np.integer | np.bool_]) -> Robust:
    """The robust level and spread the dark current is measured from.

    Parameters
    ----------
    combined : ndarray of float32
        The stacked, level-subtracted master before masked pixels are filled
        (:attr:`mdark_dask.numerics.steps.Master.combined`; NaN where every frame was clipped).
        Filling would hide the hot pixels: soxspipe's post-stack clip masks them.
    qual : ndarray
        The master's mask (non-zero = masked); the level and spread come from the unmasked
        finite pixels, or from every finite pixel when none is unmasked.
    """
    comb = np.asarray(combined)
    flat = _flat(comb)
    masked = _mask_bytes(qual, comb.shape)
    level = _median_mad(flat, masked, math.inf)
    if math.isnan(level.median):  # no unmasked finite pixel: every finite pixel
        level = _median_mad(flat, _NO_MASK, math.inf)
    return level


def dark_image(combined: F32, median: float) -> F32:
    """``float32(float64(combined) - median)``: the dark current image, e-."""
    comb = np.asarray(combined)
    dark = np.empty(comb.shape, dtype=np.float32)
    _subtract(_flat(comb), float(median), dark.reshape(-1))
    return dark


def dark_current(combined: F32, qual: npt.NDArray[np.integer | np.bool_]) -> tuple[F32, Robust]:
    """Dark current image (:func:`dark_image`) and its level (:func:`master_level`)."""
    level = master_level(combined, qual)
    return dark_image(combined, level.median), level


def hot_threshold(spread: float, sigma: float, rate: float | None, exptime: float) -> float:
    """The dark current (e-) above which a pixel is hot.

    ``sigma * spread``, raised to ``rate * exptime`` when a rate (e-/s) is given and the
    exposure time is positive: a hot pixel must be significant and physically hot.

    >>> hot_threshold(2.0, 5.0, None, 600.0)
    10.0
    >>> hot_threshold(2.0, 5.0, 0.05, 600.0)
    30.0
    """
    threshold = float(sigma) * float(spread)
    if rate is not None and rate > 0 and exptime > 0:
        threshold = max(threshold, float(rate) * float(exptime))
    return threshold


def clip_high(image: npt.NDArray[np.floating], sigma: float, iterations: int) -> NoiseClip:
    """Iterative median / MAD-std clip of an image's finite values, rejecting high values.

    Each iteration recomputes the median and MAD-std of the values kept so far and keeps
    those at or below ``median + sigma * std``; the clip stops when an iteration rejects
    nothing or after ``iterations`` iterations. The threshold is the last iteration's.
    Low values are never rejected: a quiet pixel is not a defect of a dark.

    Values once rejected stay rejected (as in astropy's iterative clip), so the kept values
    are always those at or below the lowest threshold so far, ``cap``: every iteration is
    two selections over the image (median, then MAD) restricted to ``value <= cap``, and
    the count of the next iteration's first pass says whether anything was rejected.
    """
    v = _flat(image)
    sigma = float(sigma)
    hist = _histogram()
    n, lo, hi = _middle_pair(v, _NO_MASK, math.inf, math.nan, -1, hist)
    if n == 0:
        return NoiseClip(math.nan, math.nan, math.nan, 0)
    cap = math.inf
    med = std = threshold = math.nan
    done = 0
    while done < int(iterations):
        done += 1
        med = _middle_value(n, lo, hi)
        _, dlo, dhi = _middle_pair(v, _NO_MASK, cap, med, -1, hist)
        std = _middle_value(n, dlo, dhi) * MAD_TO_STD
        threshold = med + sigma * std
        if done == int(iterations):
            break  # the last iteration's rejections change nothing returned
        cap = min(cap, threshold)
        new, lo, hi = _middle_pair(v, _NO_MASK, cap, math.nan, n, hist)
        if new == n:
            break
        n = new
    return NoiseClip(med, std, threshold, done)


# ------------------------------------------------------------------------------------------
# selection: order statistics of float32/float64 data without sorting it
#
# Every value is mapped to a signed 64-bit integer in the same order (its float64 bits,
# negatives reflected). A first pass counts the values in 2**20 buckets of the key's top
# bits; a second gathers the bucket of the wanted rank into a small buffer (a fraction of a
# percent of an image of noise), narrowed the same way on 16 more bits at a time, until a
# handful of values is left to sort. Keys are exact, so the k-th value found is the k-th
# value of the sorted float64 data, whatever the data: the same number as a sort gives.
#
# The passes are C (``_native/hotpix.c``) called through ctypes: the GIL is released for
# each pass. Each pass takes the image a block at a time, the keys computed by a vectorised
# loop and counted (or the bucket's values copied) by a scalar one; the clip's arithmetic
# between passes (medians, thresholds) stays here.

#: Buckets of the first pass: the key's top 20 bits (sign, exponent, 8 bits of mantissa),
#: so a bucket spans 1/256 of an octave, a fraction of a percent of an image of noise.
_BUCKETS: Final = 1 << 20
_SHIFT: Final = 44  # bits below the bucket (the C code's SHIFT)
_NO_MASK: Final = np.zeros(0, dtype=np.uint8)


def _flat(values: npt.ArrayLike) -> npt.NDArray[np.float32 | np.float64]:
    """A contiguous 1-d view (float32 and float64 as they are, anything else as float64)."""
    v = np.asarray(values)
    if v.dtype != np.float32 and v.dtype != np.float64:
        v = v.astype(np.float64)
    return np.ascontiguousarray(v).reshape(-1)


def _mask_bytes(
    qual: npt.NDArray[np.integer | np.bool_], shape: tuple[int, ...]
) -> npt.NDArray[np.uint8]:
    """The mask as contiguous bytes, non-zero = masked (a view when it already is bytes)."""
    q = np.ascontiguousarray(qual).reshape(-1)
    if q.size != math.prod(shape):
        raise ValueError(f"qual has shape {np.shape(qual)}, the master {shape}")
    if q.dtype.itemsize != 1 or q.dtype.kind not in "biu":
        q = np.not_equal(q, 0)
    return q.view(np.uint8)


def _histogram() -> npt.NDArray[np.int64]:
    """Scratch for :func:`_middle_pair`: :data:`_BUCKETS` counts and one for the values
    that take no part, all zero. The C selection leaves it all zero again, and only the
    pages of buckets it counted in are ever touched (``np.zeros`` maps zero pages lazily),
    so a clip's many passes neither clear nor scan 8 MB each."""
    return np.zeros(_BUCKETS + 1, dtype=np.int64)


def _middle_value(n: int, lo: float, hi: float) -> float:
    """The median from the two middle order statistics, as :func:`numpy.median` forms it."""
    return lo if n % 2 else 0.5 * (lo + hi)


def _median_mad(v: npt.NDArray[np.floating], masked: npt.NDArray[np.uint8], cap: float) -> Robust:
    """Median and MAD-std of the finite, unmasked ``v <= cap`` (NaN when there are none)."""
    hist = _histogram()
    n, lo, hi = _middle_pair(v, masked, cap, math.nan, -1, hist)
    if n == 0:
        return Robust(math.nan, math.nan)
    med = _middle_value(n, lo, hi)
    _, dlo, dhi = _middle_pair(v, masked, cap, med, -1, hist)
    return Robust(med, _middle_value(n, dlo, dhi) * MAD_TO_STD)


def _middle_pair(
    v: npt.NDArray[np.floating],
    masked: npt.NDArray[np.uint8],
    cap: float,
    center: float,
    stop: int,
    hist: npt.NDArray[np.int64],
) -> tuple[int, float, float]:
    """Count and the two middle order statistics of the ranked values.

    Ranked are the finite ``v[i] <= cap`` not masked (an empty ``masked`` masks nothing),
    or, when ``center`` is not NaN, their float64 deviations ``|v[i] - center|`` (the MAD's
    values). Returns ``(n, a, b)``, ``a`` and ``b`` the ``(n-1)//2``-th and ``n//2``-th
    smallest (0-based; the same value when ``n`` is odd, a zero as ``+0.0``); NaN, NaN when
    ``n`` is 0 or ``stop`` (one pass only: enough to see that a clip iteration rejected
    nothing). ``hist`` is scratch of :data:`_BUCKETS` int64, reused between calls so that
    its pages are touched once. The selection is C (``_native/hotpix.c``), GIL released.
    """
    suffix = float_suffix(v)
    if masked.size and (
        masked.size != v.size or masked.dtype != np.uint8 or not masked.flags.c_contiguous
    ):
        raise ValueError("the mask must be empty or one contiguous byte per value")
    if hist.dtype != np.int64 or hist.size != _BUCKETS + 1 or not hist.flags.c_contiguous:
        raise ValueError("the histogram must come from _histogram()")
    out = np.empty(2, dtype=np.float64)
    n = bind(f"middle_pair_{suffix}")(
        v.ctypes.data,
        v.size,
        masked.ctypes.data if masked.size else None,
        float(cap),
        float(center),
        int(stop),
        hist.ctypes.data,
        out.ctypes.data,
    )
    if n < 0:
        raise MemoryError("no memory for the selection's buffer")
    return int(n), float(out[0]), float(out[1])


def _subtract(v: npt.NDArray[np.floating], level: float, out: npt.NDArray[np.float32]) -> None:
    """``out = float32(float64(v) - level)``, without a float64 image in between (C)."""
    suffix = float_suffix(v)
    if out.dtype != np.float32 or out.size != v.size or not out.flags.c_contiguous:
        raise ValueError("out must be contiguous float32 of the values' size")
    bind(f"subtract_{suffix}")(v.ctypes.data, v.size, float(level), out.ctypes.data)


def _flags(
    combined: npt.NDArray[np.float32 | np.float64],
    median: float,
    noise: npt.NDArray[np.floating],
    noise_peel: npt.NDArray[np.floating],
    hot_above: float,
    noise_above: float,
    peel_above: float,
    bpm: npt.NDArray[np.uint8],
) -> None:
    """The map in one pass: HOT where the dark current ``float32(combined - median)`` is
    above ``hot_above``; NOISY where ``noise_peel > peel_above``, or, where ``noise_peel``
    is not finite, ``noise > noise_above`` (float64 comparisons; NaN is never above).

    The C loop (``_native/hotpix.c``) takes the three images in one dtype; mixed float32
    and float64 images are all widened to float64 first, which is exact (the loop widens
    every value to float64 anyway).
    """
    arrays: tuple[npt.NDArray[np.floating], ...] = (combined, noise, noise_peel)
    if len({a.dtype for a in arrays}) > 1:
        arrays = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in arrays)
    suffix = float_suffix(arrays[0])
    if any(float_suffix(a) != suffix or a.size != combined.size for a in arrays):
        raise ValueError("the images must be the same size")
    if bpm.dtype != np.uint8 or bpm.size != combined.size or not bpm.flags.c_contiguous:
        raise ValueError("bpm must be contiguous uint8 of the images' size")
    bind(f"flags_{suffix}")(
        arrays[0].ctypes.data,
        float(median),
        arrays[1].ctypes.data,
        arrays[2].ctypes.data,
        float(hot_above),
        float(noise_above),
        float(peel_above),
        bpm.ctypes.data,
        bpm.size,
    )


def find_hot_pixels(
    combined: F32,
    qual: npt.NDArray[np.integer | np.bool_],
    noise: F32,
    noise_peel: F32,
    exptime: float,
    hot_sigma: float,
    hot_rate: float | None,
    noise_sigma: float,
    noise_iterations: int,
) -> HotPixels:
    """Hot and noisy pixels of a master dark.

    Parameters
    ----------
    combined, qual : ndarray
        The stacked master before filling and its mask (see :func:`dark_current`).
    noise, noise_peel : ndarray of float32
        The noise images of the stack pass (fields ``noise`` and ``noise_peel`` of
        :data:`mdark_dask.numerics.steps.STRIP_DTYPE`). A pixel is noisy when ``noise_peel`` is
        above its clip threshold, or, where ``noise_peel`` is NaN, when ``noise`` is above
        its own; NaN in both is never noisy.
    exptime : float
        Exposure time in seconds, for the rate threshold.
    hot_sigma, hot_rate : float, float or None
        Hot-pixel threshold in units of the master's robust spread, and optionally in e-/s.
    noise_sigma, noise_iterations : float, int
        The noise images' high-side clip.

    Returns
    -------
    HotPixels
    """
    shape = np.shape(combined)
    for name, arr in (("qual", qual), ("noise", noise), ("noise_peel", noise_peel)):
        if np.shape(arr) != shape:
            raise ValueError(f"{name} has shape {np.shape(arr)}, the master {shape}")
    comb = np.asarray(combined)
    level = master_level(comb, qual)
    threshold = hot_threshold(level.std, hot_sigma, hot_rate, exptime)
    surv, peel = _flat(noise), _flat(noise_peel)
    clip_surv = clip_high(surv, noise_sigma, noise_iterations)
    clip_peel = clip_high(peel, noise_sigma, noise_iterations)
    bpm = np.empty(shape, dtype=np.uint8)
    _flags(
        _flat(comb),
        level.median,
        surv,
        peel,
        threshold,
        clip_surv.threshold,
        clip_peel.threshold,
        bpm.reshape(-1),
    )
    return HotPixels(bpm, comb, level, threshold, clip_surv, clip_peel)
