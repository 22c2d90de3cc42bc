"""Pure numerical kernels of the master-dark recipe: arrays and scalars in, arrays out.

Each kernel reproduces one step of soxspipe 0.17.4 ``soxs_mdark`` (preparation, level
clip, stack clip and mean, post-stack clip, fill) with its exact floating-point semantics,
so that ``numerics="soxspipe-0.17.4"`` is bit-identical to soxspipe and
``numerics="accurate"`` differs only in summing the whole-frame clip statistics in float64
(astropy #17185) instead of bottleneck's sequential float32.

Nothing here knows about files, settings objects or dask: the recipe maps these kernels
over blocks. Two facts make tiling exact:

* every whole-frame statistic (level clip, post-stack clip, masked mean/std) is computed
  on the whole frame in one call, in C order, as soxspipe does;
* everything else is per pixel (the stack clip and the means over frames), so row strips
  of any height give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.masked import masked_mean_std, sum64

Numerics = Literal["accurate", "soxspipe-0.17.4"]
NUMERICS: Final[tuple[Numerics, ...]] = ("accurate", "soxspipe-0.17.4")

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

#: One row strip of the stacked master before the post-stack clip: the mean of the
#: unclipped frames, its uncertainty, the mask known so far (all-clipped or masked by the
#: level clip in every frame), the temporal scatter of the unclipped frames (the noise
#: image; population std, NaN with fewer than two frames kept) and the scatter of every
#: finite frame once isolated extremes are peeled (``noise_peel``,
#: :mod:`mdark_dask.numerics.stackclip`).
STRIP_DTYPE: Final = np.dtype(
    [("flux", "<f4"), ("errs", "<f4"), ("mask", "u1"), ("noise", "<f4"), ("noise_peel", "<f4")]
)


#: The whole stacked frame: a STRIP_DTYPE array, or its fields as separate (contiguous)
#: arrays by name; both index as ``strip["flux"]``.
Stacked = Mapping[str, npt.NDArray[Any]] | npt.NDArray[np.void]


#: An extreme value is peeled off a pixel's values for ``noise_peel`` when more than this
#: many times the pixel's noise scale (its MAD-std along the stack, at least the read
#: noise) separates it from its neighbour. Peeling a Gaussian extreme only lowers the
#: scatter a little; two frames at the same level of a telegraph pixel are split (and
#: then both peeled) only when they differ by more than that, 3% of such pairs.
PEEL_SIGMA: Final = 3.0


class Bounds(NamedTuple):
    """Final lower and upper clip bounds; values outside, or non-finite, are masked.

    Bounds are float64 numbers. In ``soxspipe-0.17.4`` numerics they are float32 values
    (soxspipe compares float32 pixels with a Python float, which numpy rounds to float32),
    so comparing in float64 gives the same answer as soxspipe's float32 comparison.
    """

    lo: float
    hi: float


class FrameLevel(NamedTuple):
    """Per-frame result of the level clip: the final bounds, and the mean and std of the
    pixels inside them (the frame's level and scatter)."""

    lo: float
    hi: float
    mean: float
    std: float


def electrons(raw: npt.NDArray[np.floating], gain: float, out: F32 | None = None) -> F32:
    """Convert raw counts to electrons: ``float32(float64(raw) * gain)``, as soxspipe does.

    The raw values must already be the physical values (BZERO/BSCALE applied), as ccdproc
    multiplies them by a float64 gain before the cast to float32. The product is computed
    in float64 and rounded once into ``out`` (allocated when None), with no frame-sized
    float64 temporary.
    """
    if out is None:
        out = np.empty(np.shape(raw), dtype=np.float32)
    np.multiply(raw, np.float64(gain), out=out, dtype=np.float64, casting="same_kind")
    return out


def global_clip_bounds(image: F32, sigma: float, maxiters: int, numerics: Numerics) -> Bounds:
    """Iterative mean/std sigma clip over a whole image: astropy ``sigma_clip(axis=None)``.

    Parameters
    ----------
    image : ndarray of float32
        The whole 2-D image. In ``soxspipe-0.17.4`` numerics the statistics are
        sequential float32 sums in C order, so the order is part of the result.
    sigma : float
        Lower and upper clip in units of the standard deviation.
    maxiters : int
        Maximum iterations; stops early when an iteration removes nothing.
    numerics : {"accurate", "soxspipe-0.17.4"}
        ``accurate`` accumulates in float64; ``soxspipe-0.17.4`` reproduces the float32
        accumulation of bottleneck 1.4 under astropy 6.1.2 (astropy #17185).

    Returns
    -------
    Bounds
        The bounds of the last iteration; :func:`clip_mask` applies them.

    Notes
    -----
    Non-finite values take no part in the statistics and are always masked. The
    compiled loops are in :mod:`mdark_dask.numerics.levelclip` (:func:`level_bounds`: the
    same bits as the step-by-step :func:`clip_bounds`).
    """
    from mdark_dask.numerics.levelclip import level_bounds

    flat = np.ascontiguousarray(image, dtype=np.float32).ravel()
    lo, hi = level_bounds(flat, float(sigma), int(maxiters), numerics == "soxspipe-0.17.4")
    return Bounds(float(lo), float(hi))


def clip_mask(image: F32, bounds: Bounds | FrameLevel) -> Bool:
    """Mask of the values outside ``[lo, hi]`` or non-finite (astropy's final mask)."""
    with np.errstate(invalid="ignore"):
        inside = (image >= np.float64(bounds.lo)) & (image <= np.float64(bounds.hi))
    return ~inside


def frame_level(e: F32, sigma: float, maxiters: int, numerics: Numerics) -> FrameLevel:
    """Level clip of one prepared frame: bounds, clipped mean and std.

    The mean and std of the unmasked pixels are numpy 2.1 masked-array statistics (pairwise
    float32 sum, float64 result; :mod:`mdark_dask.numerics.masked`), exactly as soxspipe computes
    them, in both numerics. One compiled call (:func:`mdark_dask.numerics.levelclip.level_stats`)
    with no mask in memory; the same bits as the step-by-step form the tests hold it to
    (``tests/oracle.py``).
    """
    from mdark_dask.numerics.levelclip import level_stats

    flat = np.ascontiguousarray(e, dtype=np.float32).ravel()
    lo, hi, mean, std = level_stats(
        flat, float(sigma), int(maxiters), numerics == "soxspipe-0.17.4"
    )
    return FrameLevel(float(lo), float(hi), float(mean), float(std))


def stack_strip(
    e: F32,
    levels: F64,
    ron: float,
    sigma: float,
    maxiters: int,
) -> npt.NDArray[np.void]:
    """Clip and mean-combine one row strip of the prepared stack: level subtraction, the
    level-clip masks, the per-pixel median/MAD clip and the means over frames.

    The compiled one-pass form of the step-by-step numpy version in ``tests/oracle.py``
    (same bytes); see :mod:`mdark_dask.numerics.stackclip`. Parameters and result as
    there; the fields of :func:`stack_fields` in one structured array.
    """
    fields = new_fields(e.shape[1:])
    stack_fields(e, levels, ron, sigma, maxiters, fields)
    out = np.empty(e.shape[1:], dtype=STRIP_DTYPE)
    for name, values in fields.items():
        out[name] = values
    return out


def new_fields(shape: tuple[int, ...]) -> dict[str, npt.NDArray[Any]]:
    """Uninitialised arrays, one per field of :data:`STRIP_DTYPE`, C-ordered, of ``shape``."""
    return {name: np.empty(shape, dtype=STRIP_DTYPE[name]) for name in STRIP_DTYPE.names or ()}


def stack_fields(
    e: F32,
    levels: F64,
    ron: float,
    sigma: float,
    maxiters: int,
    out: Mapping[str, npt.NDArray[Any]],
) -> None:
    """:func:`stack_strip` into separate arrays: ``out[name]`` for each field of
    :data:`STRIP_DTYPE`, each of shape ``e.shape[1:]`` (C-contiguous rows of a larger
    array are written in place, as a task fills its strip a few rows at a time)."""
    from mdark_dask.numerics.stackclip import stack_strip_kernel

    stack_strip_kernel(
        np.ascontiguousarray(e, dtype=np.float32),
        np.ascontiguousarray(levels[:, 0], dtype=np.float64),
        np.ascontiguousarray(levels[:, 1], dtype=np.float64),
        np.ascontiguousarray(levels[:, 2], dtype=np.float64),
        np.float32(float(ron) ** 2),
        float(sigma),
        int(maxiters),
        out["flux"],
        out["errs"],
        out["mask"],
        out["noise"],
        out["noise_peel"],
        float(ron),
        PEEL_SIGMA,
    )


class Master(NamedTuple):
    """The master dark's arrays and the numbers its QC needs.

    ``combined`` is the stacked, level-subtracted image before masked pixels are filled
    (the post-stack clip's input, NaN where every frame was clipped), for the QC plots.
    """

    flux: F32
    qual: npt.NDArray[np.uint8]
    errs: F32
    master_mean: float
    mdark_median: float
    raw_ron: float
    master_ron: float
    post_bounds: Bounds
    combined: F32


def finalize(
    strip: Stacked,
    levels: F64,
    sigma: float,
    maxiters: int,
    numerics: Numerics,
) -> Master:
    """Post-stack clip, master RON, fill and level restore, as soxspipe finishes a master.

    Parameters
    ----------
    strip : ndarray of STRIP_DTYPE, or a mapping of its field names to arrays
        The whole stacked frame (all strips of :func:`stack_strip` joined), shape
        ``(rows, cols)``.
    levels : ndarray of float64, shape (n_frames, 4)
        Per-frame level-clip results in frame order.
    sigma, maxiters : float, int
        Frame-clipping sigma and iterations (the post-stack clip uses them).
    numerics : {"accurate", "soxspipe-0.17.4"}
        How the post-stack clip accumulates its statistics.
    """
    comb = np.ascontiguousarray(strip["flux"])
    post = global_clip_bounds(comb, sigma, maxiters, numerics)
    mask = strip["mask"].astype(bool) | clip_mask(comb, post)
    means = np.ascontiguousarray(levels[:, 2], dtype=np.float64)
    master_mean = sum64(means) / len(means)
    raw_ron = float(sum64(np.ascontiguousarray(levels[:, 3])) / len(means))
    _, master_ron = masked_mean_std(comb, mask)
    # soxspipe: (masked.filled(0) + mean).astype(float32) with a float64 mean, i.e. a float64
    # sum rounded once; computed into one float32 array (no float64 or filled copies)
    flux = np.where(mask, np.float32(0.0), comb)
    np.add(flux, master_mean, out=flux, dtype=np.float64, casting="same_kind")
    errs = np.where(mask, np.float32(raw_ron), strip["errs"]).astype(np.float32, copy=False)
    median = float(np.median(means))
    if not median:
        # soxspipe recomputes the level from the master only when the median is exactly 0
        median = float(np.median(flux[~mask]))
    return Master(
        flux=flux,
        qual=mask.astype(np.uint8),
        errs=errs,
        master_mean=float(master_mean),
        mdark_median=median,
        raw_ron=raw_ron,
        master_ron=master_ron,
        post_bounds=post,
        combined=comb,
    )
