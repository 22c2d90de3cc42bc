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
  Two noise images come out of the stack pass (:mod:`mdark_dask.stackclip`): the noise
  image proper, the temporal scatter of the frames kept by the stack clip (the primary
  image of the ``_NOISE.fits`` product), and the *peeled* noise image, the scatter of every
  finite frame once isolated extreme values are peeled off (defined from five frames; the
  product's ``NOISE_PEEL`` extension). Noisy pixels are the outliers of the peeled image
  where it is defined, else of the noise image.

Why the peeled image decides. The stack clip is a per-pixel median/MAD clip: for a pixel
that jumps between two levels (a telegraph pixel) the majority level sets the median and a
MAD near the read noise, so the frames at the other level are clipped like cosmic rays and
the survivors' scatter is normal (it finds about a third of the telegraph pixels of
ten-frame sets). Peeling removes a pixel's lowest or highest value only while a gap of
more than :data:`mdark_dask.kernels.PEEL_SIGMA` times its noise scale isolates it: each
cosmic-ray hit carries its own charge and is peeled, however many hit the pixel, while two
or more frames at the same jumped level hold each other in and keep the scatter high.
Conversely a weak cosmic-ray hit can survive the stack clip (X-shooter clips at 5 sigma)
and raise the survivors' scatter, but it is isolated, so not the peeled one. What remains:
two hits of nearly equal charge on one pixel (a few pixels per million at five times the
simulator's cosmic-ray rate), and weak hits within the gap. A jump seen in one frame only
is, in time, exactly a cosmic-ray hit and stays unflagged (unless it biases the master:
then it is hot).

The map follows soxspipe's static bad-pixel maps: one image, non-zero means bad. Bit
values: :data:`HOT` (1) and :data:`NOISY` (2); a pixel can carry both.

Nothing here knows about files, settings objects or dask.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

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
    dark : ndarray of float32
        Dark current in e- over the exposure: stacked master minus ``level.median``
        (NaN where the master is undefined).
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
    dark: F32
    level: Robust
    hot_threshold: float
    noise: NoiseClip
    noise_peel: NoiseClip

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

    >>> robust_level(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan]))
    Robust(median=3.0, std=1.482602218505602)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return Robust(math.nan, math.nan)
    med = _sorted_median(v)
    return Robust(med, _sorted_mad_std(v, v.size, med))


def dark_current(combined: F32, qual: npt.NDArray[np.integer | np.bool_]) -> tuple[F32, Robust]:
    """Dark current image and the robust level and spread it is measured from.

    Parameters
    ----------
    combined : ndarray of float32
        The stacked, level-subtracted master before masked pixels are filled
        (:attr:`mdark_dask.kernels.Master.combined`; NaN where every frame was clipped).
        Filling would hide the hot pixels: soxspipe's post-stack clip masks them.
    qual : ndarray
        The master's mask (non-zero = masked); the level and spread come from the unmasked
        finite pixels, or from every finite pixel when none is unmasked.

    Returns
    -------
    dark : ndarray of float32
        ``combined - level.median`` (computed in float64).
    level : Robust
    """
    comb = np.asarray(combined)
    good = ~np.asarray(qual, dtype=bool) & np.isfinite(comb)
    level = robust_level(comb[good] if good.any() else comb)
    dark = (comb.astype(np.float64) - level.median).astype(np.float32)
    return dark, level


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
    """
    v = np.asarray(image, dtype=np.float64).ravel()
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return NoiseClip(math.nan, math.nan, math.nan, 0)
    # sorted: the kept values are always a prefix v[:n]
    n = v.size
    med = std = threshold = math.nan
    done = 0
    while done < int(iterations):
        done += 1
        kept = v[:n]
        med = _sorted_median(kept)
        std = _sorted_mad_std(v, n, med)
        threshold = med + float(sigma) * std
        # values once rejected stay rejected, as in astropy's iterative clip
        new = min(n, int(np.searchsorted(v, threshold, side="right")))
        if new == n:
            break
        n = new
    return NoiseClip(med, std, threshold, done)


def _sorted_mad_std(v: F64, n: int, med: float) -> float:
    """``median(|v[:n] - med|) * 1.4826...`` of sorted values, by a walk outward from the
    median (the same order statistics, so the same number as :func:`numpy.median`)."""
    from mdark_dask.stackclip import _mad_std

    return float(_mad_std(v, 0, n, med))


def _sorted_median(v: F64) -> float:
    """Median of sorted values: a lookup, the same number as :func:`numpy.median`."""
    m = v.size // 2
    return float(v[m]) if v.size % 2 else float(0.5 * (v[m - 1] + v[m]))


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
        :data:`mdark_dask.kernels.STRIP_DTYPE`). A pixel is noisy when ``noise_peel`` is
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
    dark, level = dark_current(combined, qual)
    threshold = hot_threshold(level.std, hot_sigma, hot_rate, exptime)
    with np.errstate(invalid="ignore"):
        hot = dark.astype(np.float64) > threshold
    surv = np.asarray(noise, dtype=np.float64)
    peel = np.asarray(noise_peel, dtype=np.float64)
    defined = np.isfinite(peel)
    clip_surv = clip_high(surv, noise_sigma, noise_iterations)
    clip_peel = clip_high(peel, noise_sigma, noise_iterations)
    with np.errstate(invalid="ignore"):
        noisy = np.where(defined, peel > clip_peel.threshold, surv > clip_surv.threshold)
    bpm = (hot * np.uint8(HOT) | noisy * np.uint8(NOISY)).astype(np.uint8)
    return HotPixels(bpm, dark, level, threshold, clip_surv, clip_peel)
