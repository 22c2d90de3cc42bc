"""Hot and noisy pixels: the noise images of the stack pass, the pure detection functions,
the settings, the two products beside the master, their invariance, and the measurement
against the simulator's injected truth on every arm.

Arrays are small and odd-shaped (37x53, 5x7, 1xN, Nx1) so a swapped axis shows.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdark_dask.errors import SettingsError
from mdark_dask.numerics import hotpix, steps
from mdark_dask.numerics.hotpix import HOT, NOISY, clip_high, find_hot_pixels, robust_level
from mdark_dask.numerics.qc import HOTPIX_QC
from mdark_dask.plan.product import ProductResult, plan_product
from mdark_dask.scheduler import compute_products
from mdark_dask.settings import HOTPIX_KEYS, load_settings
from mdark_dask.simulate import (
    DarkSetSpec,
    injected_defects,
    score_flags,
    simulate_set,
    sof_name,
    write_sof,
)
from tests import oracle

F32 = npt.NDArray[np.float32]
HYP = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SHAPES = [(37, 53), (5, 7), (1, 61), (61, 1)]


def strip_inputs(
    n: int, shape: tuple[int, int], seed: int, sigma: float = 7.0
) -> tuple[F32, npt.NDArray[np.float64]]:
    """Prepared frames (e-) around a level, with per-frame levels that fit them."""
    rng = np.random.default_rng(seed)
    means = 2000.0 + rng.normal(0.0, 0.5, n)
    e = (rng.normal(0.0, sigma, (n, *shape)) + means[:, None, None]).astype(np.float32)
    levels = np.stack([means - 300.0, means + 300.0, means, np.full(n, sigma)], axis=1)
    return e, levels


def kept_values(
    e: F32, levels: npt.NDArray[np.float64], sigma: float, maxiters: int
) -> npt.NDArray[np.float64]:
    """Level-subtracted values with the stack-clipped ones NaN (astropy's clip)."""
    sub = np.empty_like(e)
    for i in range(e.shape[0]):
        np.subtract(e[i], np.float64(levels[i, 2]), out=sub[i], casting="same_kind")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns about the NaN pixels
        clipped = oracle.stack_clip_mask(sub, sigma, maxiters)
    return np.where(clipped, np.nan, sub.astype(np.float64))


# ------------------------------------------------------------------------------------------
# the noise images of the stack pass


@pytest.mark.parametrize("n", [2, 3, 5, 8])
@pytest.mark.parametrize("shape", SHAPES)
def test_noise_is_the_std_of_the_frames_kept_by_the_clip(n: int, shape: tuple[int, int]) -> None:
    e, levels = strip_inputs(n, shape, seed=n * 31 + shape[0])
    flat = e.reshape(n, -1)
    flat[0, 0] += np.float32(5000.0)  # a cosmic ray in one frame: clipped, not in the noise
    flat[:, -1] = np.nan  # no finite frame: NaN noise
    out = steps.stack_strip(e, levels, 3.8, 3.0, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kept = kept_values(e, levels, 3.0, 3)
        count = np.isfinite(kept).sum(axis=0)
        expected = np.where(count >= 2, np.nanstd(kept, axis=0), np.nan)
    np.testing.assert_allclose(out["noise"], expected.astype(np.float32), rtol=2e-6, atol=1e-6)
    assert np.isnan(out["noise"].reshape(-1)[-1])
    assert out["noise"].dtype == np.float32


@pytest.mark.parametrize("n", [3, 4, 5, 6, 9])
def test_noise_peel_matches_its_reference(n: int) -> None:
    e, levels = strip_inputs(n, (37, 53), seed=n)
    e[0, 3, 4] += np.float32(900.0)
    e[1, 3, 4] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        ref = oracle.stack_strip_reference(e, levels, 3.8, 3.0, 3)
    out = steps.stack_strip(e, levels, 3.8, 3.0, 3)
    np.testing.assert_allclose(out["noise_peel"], ref["noise_peel"], rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(out["noise"], ref["noise"], rtol=2e-6, atol=1e-6)
    # defined from five finite values on (four remain after dropping one)
    assert np.isnan(out["noise_peel"]).all() == (n < 5)
    if n >= 6:
        assert np.isfinite(out["noise_peel"][3, 4])  # one NaN frame, still five left


def test_noise_fields_leave_the_soxspipe_fields_alone() -> None:
    """flux, errs and mask are the reference's, field by field (the noise is extra)."""
    assert steps.STRIP_DTYPE.names == ("flux", "errs", "mask", "noise", "noise_peel")
    e, levels = strip_inputs(5, (37, 53), seed=4)
    e[2, 10, 10] += np.float32(3000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        ref = oracle.stack_strip_reference(e, levels, 3.8, 3.0, 3)
    out = steps.stack_strip(e, levels, 3.8, 3.0, 3)
    for name in ("flux", "errs", "mask"):
        assert out[name].tobytes() == ref[name].tobytes(), name


def test_noise_images_tile_by_rows() -> None:
    e, levels = strip_inputs(6, (37, 53), seed=12)
    whole = steps.stack_strip(e, levels, 3.8, 3.0, 3)
    for rows in (1, 5, 36):
        parts = [
            steps.stack_strip(np.ascontiguousarray(e[:, r : r + rows]), levels, 3.8, 3.0, 3)
            for r in range(0, 37, rows)
        ]
        assert np.concatenate(parts).tobytes() == whole.tobytes()


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(5, 9),
    hits=st.integers(1, 3),
    shape=st.sampled_from([(1, 1), (3, 5), (1, 7), (6, 1)]),
    data=st.data(),
)
def test_cosmic_ray_hits_never_raise_noise_peel(
    seed: int, n: int, hits: int, shape: tuple[int, int], data: st.DataObject
) -> None:
    """Hits of different charges in up to three frames are peeled: the scatter is at most
    the other frames'."""
    e, levels = strip_inputs(n, shape, seed % 2**31)
    y = data.draw(st.integers(0, shape[0] - 1))
    x = data.draw(st.integers(0, shape[1] - 1))
    frames = data.draw(st.permutations(range(n)))[: min(hits, n - 4)]
    hit = e.copy()
    for k, f in enumerate(frames):
        hit[f, y, x] += np.float32(500.0 * 3**k)  # each its own charge
    out = steps.stack_strip(hit, levels, 3.8, 3.0, 3)
    # the kernel's values: float32(float64(E) - m), then float64
    d = (e[:, y, x].astype(np.float64) - levels[:, 2]).astype(np.float32).astype(np.float64)
    others = np.std(np.delete(d, list(frames)))
    assert 0.0 <= out["noise_peel"][y, x] <= others * (1 + 1e-6) + 1e-6
    # and the clipped noise image ignores them too (pixel values far below the hits)
    assert out["noise"][y, x] < 100.0


def test_two_frames_at_one_level_keep_noise_peel_high() -> None:
    """A telegraph pixel jumping by the same amount in two of ten frames: the stack clip
    rejects both frames, the peeled scatter keeps them."""
    e, levels = strip_inputs(10, (1, 2), seed=3)
    e[[2, 7], 0, 0] += np.float32(200.0)  # same level twice: telegraph
    e[2, 0, 1] += np.float32(200.0)  # two hits of different charge: cosmic rays
    e[7, 0, 1] += np.float32(900.0)
    out = steps.stack_strip(e, levels, 3.8, 3.0, 3)
    assert out["noise"][0, 0] < 15.0 and out["noise"][0, 1] < 15.0
    assert out["noise_peel"][0, 0] > 70.0
    assert out["noise_peel"][0, 1] < 15.0


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 8),
    c=st.integers(-64, 64),
    data=st.data(),
)
def test_noise_ignores_frame_order_and_levels(
    seed: int, n: int, c: int, data: st.DataObject
) -> None:
    e, levels = strip_inputs(n, (3, 5), seed % 2**31)
    e = np.round(e).astype(np.float32)  # integer values and levels: shifts are exact
    levels = np.round(levels)
    perm = np.asarray(data.draw(st.permutations(range(n))), dtype=np.int64)
    a = steps.stack_strip(e, levels, 3.8, 3.0, 3)
    b = steps.stack_strip(
        np.ascontiguousarray(e[perm]), np.ascontiguousarray(levels[perm]), 3.8, 3.0, 3
    )
    for name in ("noise", "noise_peel"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-5)
    shifted = (e + np.float32(c)).astype(np.float32)
    s = steps.stack_strip(shifted, levels + np.asarray([c, c, c, 0.0]), 3.8, 3.0, 3)
    np.testing.assert_array_equal(a["noise"], s["noise"])
    np.testing.assert_array_equal(a["noise_peel"], s["noise_peel"])


# ------------------------------------------------------------------------------------------
# pure detection functions


def test_robust_level_ignores_non_finite_and_outliers() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 1e9, np.nan, np.inf], dtype=np.float32)
    level = robust_level(values)
    assert level.median == 3.0
    assert level.std == pytest.approx(1.482602218505602)
    assert all(math.isnan(v) for v in robust_level(np.array([np.nan])))


@pytest.mark.parametrize("shape", SHAPES)
def test_dark_current_is_relative_to_the_unmasked_median(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    comb = rng.normal(5.0, 2.0, shape).astype(np.float32)
    qual = np.zeros(shape, dtype=np.uint8)
    flat_c, flat_q = comb.reshape(-1), qual.reshape(-1)
    flat_c[:3] = np.float32(1e4)  # masked hot pixels: not part of the level
    flat_q[:3] = 1
    flat_c[-1] = np.nan
    dark, level = hotpix.dark_current(comb, qual)
    good = (qual == 0) & np.isfinite(comb)
    assert level.median == float(np.median(comb[good].astype(np.float64)))
    np.testing.assert_array_equal(dark, (comb.astype(np.float64) - level.median).astype(np.float32))
    assert np.isnan(dark.reshape(-1)[-1])


def test_hot_threshold_rate_only_raises_it() -> None:
    assert hotpix.hot_threshold(2.0, 5.0, None, 600.0) == 10.0
    assert hotpix.hot_threshold(2.0, 5.0, 0.0, 600.0) == 10.0
    assert hotpix.hot_threshold(2.0, 5.0, 0.001, 600.0) == 10.0  # 0.6 e- is below 10
    assert hotpix.hot_threshold(2.0, 5.0, 0.05, 600.0) == 30.0
    assert hotpix.hot_threshold(2.0, 5.0, 0.05, 0.0) == 10.0  # no exposure: sigma only


def test_clip_high_rejects_high_values_only() -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(10.0, 1.0, 5001)
    v[:5] = 100.0  # high outliers
    v[5:10] = -100.0  # low ones are never rejected, and barely move median or MAD
    clip = clip_high(v, 5.0, 5)
    assert 14.0 < clip.threshold < 16.0
    assert (v[:5] > clip.threshold).all()
    assert clip.iterations >= 2  # the first iteration rejected, the next confirmed
    assert clip_high(v, 5.0, 1).iterations == 1
    assert all(math.isnan(x) for x in clip_high(np.array([np.nan]), 5.0, 5)[:3])


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 300),
    sigma=st.sampled_from([2.0, 3.0, 6.0]),
    iterations=st.integers(1, 6),
)
def test_clip_high_threshold_is_its_kept_values_median_plus_sigma_std(
    seed: int, size: int, sigma: float, iterations: int
) -> None:
    v = np.random.default_rng(seed).standard_exponential(size)
    clip = clip_high(v, sigma, iterations)
    kept = np.sort(v)
    # replay: every iteration keeps a prefix of the sorted values
    for _ in range(clip.iterations - 1):
        med = np.median(kept)
        thr = med + sigma * hotpix.MAD_TO_STD * np.median(np.abs(kept - med))
        kept = kept[kept <= thr]
    assert clip.median == np.median(kept)
    assert clip.threshold == pytest.approx(clip.median + sigma * clip.std)
    assert 1 <= clip.iterations <= iterations


@pytest.mark.parametrize("shape", SHAPES)
def test_find_hot_pixels_bits(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(7 + shape[1])
    comb = rng.normal(0.0, 2.0, shape).astype(np.float32)
    noise = rng.normal(7.0, 0.5, shape).astype(np.float32)
    peel = rng.normal(7.0, 0.5, shape).astype(np.float32)
    qual = np.zeros(shape, dtype=np.uint8)
    c, nz, lo = comb.reshape(-1), noise.reshape(-1), peel.reshape(-1)
    c[0] = np.float32(500.0)  # hot
    lo[1] = np.float32(90.0)  # noisy (peeled image)
    c[2], lo[2] = np.float32(800.0), np.float32(200.0)  # both
    lo[3], nz[3] = np.nan, np.float32(60.0)  # noisy where the peeled image is undefined
    nz[4] = np.float32(60.0)  # survivors alone do not decide where peel is defined
    c[5] = np.nan  # undefined master: not hot
    hot = find_hot_pixels(comb, qual, noise, peel, 600.0, 5.0, None, 6.0, 5)
    bpm = hot.bpm.reshape(-1)
    assert hot.bpm.dtype == np.uint8 and hot.bpm.shape == shape
    expected = np.zeros(c.size, dtype=np.uint8)
    expected[: min(6, c.size)] = [HOT, NOISY, HOT | NOISY, NOISY, 0, 0][: min(6, c.size)]
    if c.size >= 6:
        np.testing.assert_array_equal(bpm, expected)
        assert (hot.n_hot, hot.n_noisy, hot.n_bad) == (2, 3, 4)
    # a rate threshold above the excess turns the hot pixels off
    cold = find_hot_pixels(comb, qual, noise, peel, 600.0, 5.0, 10.0, 6.0, 5)
    assert not (cold.bpm & HOT).any()
    with pytest.raises(ValueError, match="noise"):
        find_hot_pixels(comb, qual, noise.reshape(-1), peel, 600.0, 5.0, None, 6.0, 5)


# ------------------------------------------------------------------------------------------
# the selection-based statistics against the sort-based ones they replaced (same numbers)


def sorted_median(v: npt.NDArray[np.float64]) -> float:
    """The replaced lookup: median of sorted values."""
    m = v.size // 2
    if v.size % 2:
        return float(v[m])
    with np.errstate(over="ignore"):  # two values near the largest double: inf, as the kernel
        return float(0.5 * (v[m - 1] + v[m]))


def sorted_mad_std(v: npt.NDArray[np.float64], n: int, med: float) -> float:
    """The replaced MAD-std of sorted values (walk outward from the median)."""
    from mdark_dask.numerics.stackclip import _mad_std

    return float(_mad_std(v, 0, n, med))


def sort_robust_level(values: npt.NDArray[np.floating]) -> hotpix.Robust:
    """The replaced :func:`hotpix.robust_level`: a float64 copy, sorted."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return hotpix.Robust(math.nan, math.nan)
    med = sorted_median(v)
    return hotpix.Robust(med, sorted_mad_std(v, v.size, med))


def sort_clip_high(
    image: npt.NDArray[np.floating], sigma: float, iterations: int
) -> hotpix.NoiseClip:
    """The replaced :func:`hotpix.clip_high`: kept values are a prefix of the sorted ones."""
    v = np.asarray(image, dtype=np.float64).ravel()
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return hotpix.NoiseClip(math.nan, math.nan, math.nan, 0)
    n = v.size
    med = std = threshold = math.nan
    done = 0
    while done < int(iterations):
        done += 1
        med = sorted_median(v[:n])
        std = sorted_mad_std(v, n, med)
        threshold = med + float(sigma) * std
        new = min(n, int(np.searchsorted(v, threshold, side="right")))
        if new == n:
            break
        n = new
    return hotpix.NoiseClip(med, std, threshold, done)


def sort_find_hot_pixels(
    combined: F32, qual: npt.NDArray[np.uint8], noise: F32, peel: F32, *args: float | None
) -> tuple[npt.NDArray[np.uint8], F32, hotpix.Robust, float, hotpix.NoiseClip, hotpix.NoiseClip]:
    """The replaced :func:`hotpix.find_hot_pixels` (float64 copies, sorts, numpy masks)."""
    exptime, hot_sigma, hot_rate, noise_sigma, noise_iterations = args
    comb = np.asarray(combined)
    good = ~np.asarray(qual, dtype=bool) & np.isfinite(comb)
    level = sort_robust_level(comb[good] if good.any() else comb)
    dark = (comb.astype(np.float64) - level.median).astype(np.float32)
    threshold = hotpix.hot_threshold(
        level.std, float(hot_sigma or 0), hot_rate, float(exptime or 0)
    )
    with np.errstate(invalid="ignore"):
        hot = dark.astype(np.float64) > threshold
    surv = np.asarray(noise, dtype=np.float64)
    peel64 = np.asarray(peel, dtype=np.float64)
    clip_surv = sort_clip_high(surv, float(noise_sigma or 0), int(noise_iterations or 0))
    clip_peel = sort_clip_high(peel64, float(noise_sigma or 0), int(noise_iterations or 0))
    with np.errstate(invalid="ignore"):
        noisy = np.where(
            np.isfinite(peel64), peel64 > clip_peel.threshold, surv > clip_surv.threshold
        )
    bpm = (hot * np.uint8(HOT) | noisy * np.uint8(NOISY)).astype(np.uint8)
    return bpm, dark, level, threshold, clip_surv, clip_peel


def same(a: tuple[float | int, ...], b: tuple[float | int, ...]) -> bool:
    """Field by field equal, NaN equal to NaN."""
    return len(a) == len(b) and all(
        x == y or (x != x and y != y) for x, y in zip(a, b, strict=True)
    )


def awkward_values(kind: str, size: int, seed: int, dtype: type[np.floating]) -> npt.NDArray:
    """Values that exercise every path of the selection: wide and narrow spreads (a bucket of
    the first pass holding most values, to narrow further), ties, two clusters (the middle
    ranks in different buckets), signed zeros, huge and tiny magnitudes, NaN and inf."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        v = rng.normal(7.0, 1.3, size)
    elif kind == "narrow":  # within one 1/256-octave bucket of the first pass
        v = 1.0 + rng.random(size) * 2.0**-9
    elif kind == "ties":
        v = rng.integers(-3, 4, size).astype(np.float64)
    elif kind == "constant":
        v = np.full(size, 3.0)
    elif kind == "clusters":
        v = np.where(rng.random(size) < 0.5, -2.0, 5e3) + rng.normal(0.0, 1e-3, size)
    elif kind == "zeros":
        v = rng.choice(np.array([-0.0, 0.0, 1e-300, -1e-300, 2.0]), size)
    else:  # "wild"
        v = rng.choice(np.array([-1.0, 1.0]), size) * 10.0 ** rng.uniform(-40, 38, size)
    v = v.astype(dtype)
    flat = v.reshape(-1)
    bad = rng.random(size) < 0.1
    flat[bad] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=dtype), int(bad.sum()))
    return v


KINDS = ["normal", "narrow", "ties", "constant", "clusters", "zeros", "wild"]


@HYP
@given(
    kind=st.sampled_from(KINDS),
    shape=st.sampled_from([(1, 1), (1, 2), (5, 7), (37, 53), (61, 1), (1, 61), (33, 34)]),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_robust_level_is_the_sorted_median_and_mad(
    kind: str, shape: tuple[int, int], seed: int, dtype: type[np.floating]
) -> None:
    v = awkward_values(kind, math.prod(shape), seed, dtype).reshape(shape)
    assert same(robust_level(v), sort_robust_level(v))
    assert same(robust_level(v.T), sort_robust_level(v))  # non-contiguous: the same values


@HYP
@given(
    kind=st.sampled_from(KINDS),
    shape=st.sampled_from([(1, 1), (2, 3), (5, 7), (37, 53), (61, 1), (120, 121)]),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    sigma=st.sampled_from([0.5, 2.0, 3.0, 6.0]),
    iterations=st.integers(1, 6),
)
def test_clip_high_is_the_sort_based_clip(
    kind: str,
    shape: tuple[int, int],
    seed: int,
    dtype: type[np.floating],
    sigma: float,
    iterations: int,
) -> None:
    v = awkward_values(kind, math.prod(shape), seed, dtype).reshape(shape)
    assert same(clip_high(v, sigma, iterations), sort_clip_high(v, sigma, iterations))


@HYP
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_selection_on_arbitrary_floats(data: st.DataObject, dtype: type[np.floating]) -> None:
    """Any float values, subnormals, signed zeros, NaN and inf included."""
    from hypothesis.extra.numpy import arrays

    width = 32 if dtype == np.float32 else 64
    v = data.draw(arrays(dtype, st.integers(1, 80), elements=st.floats(width=width)))
    iterations = data.draw(st.integers(1, 4))
    assert same(robust_level(v), sort_robust_level(v))
    assert same(clip_high(v, 3.0, iterations), sort_clip_high(v, 3.0, iterations))


def test_selection_of_many_ties_and_integers() -> None:
    """Buckets past every bit of the key (one value), and integer input."""
    v = np.repeat(np.array([1.0, 2.0, 2.0, 9.0]), 1000)
    assert same(robust_level(v), sort_robust_level(v))
    assert same(clip_high(v, 2.0, 5), sort_clip_high(v, 2.0, 5))
    ints = np.arange(-50, 1001)
    assert same(robust_level(ints), sort_robust_level(ints))
    assert robust_level(np.array([], dtype=np.float32)) == sort_robust_level(np.array([]))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_middle_pair_is_the_sorted_pair_and_leaves_its_scratch_zero(
    kind: str, dtype: type[np.floating]
) -> None:
    """The compiled selection, with a mask, caps and centres: the two middle order
    statistics of the sorted float64 ranked values (a zero as +0.0); its histogram scratch,
    shared by a clip's passes, is all zero again after every call."""
    rng = np.random.default_rng(len(kind))
    v = awkward_values(kind, 5001, 3, dtype)
    masked = (rng.random(v.size) < 0.3).astype(np.uint8)
    hist = hotpix._histogram()
    x = v.astype(np.float64)
    for mask in (hotpix._NO_MASK, masked):
        for cap in (math.inf, 2.0, -1.0):
            for center in (math.nan, 0.0, 5.0):
                n, lo, hi = hotpix._middle_pair(v, mask, cap, center, -1, hist)
                assert not hist.any()
                keep = np.isfinite(x) & (x <= cap) & (mask == 0 if mask.size else True)
                t = x[keep] if math.isnan(center) else np.abs(x[keep] - center)
                t = np.sort(t)
                assert n == t.size
                if n == 0:
                    assert math.isnan(lo) and math.isnan(hi)
                    continue
                want = (t[(n - 1) // 2] + 0.0, t[n // 2] + 0.0)
                assert np.float64(lo).tobytes() == np.float64(want[0]).tobytes()
                assert np.float64(hi).tobytes() == np.float64(want[1]).tobytes()
    n = hotpix._middle_pair(v, hotpix._NO_MASK, math.inf, math.nan, -1, hist)[0]
    n_again, lo, hi = hotpix._middle_pair(v, hotpix._NO_MASK, math.inf, math.nan, n, hist)
    assert n_again == n and math.isnan(lo) and math.isnan(hi)  # one pass: the count only
    assert not hist.any()


@pytest.mark.parametrize("shape", [(37, 53), (1, 61), (61, 1), (301, 299)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_find_hot_pixels_is_the_sort_based_one(shape: tuple[int, int], seed: int) -> None:
    """Same map, dark image, level and thresholds as the sort-based implementation, with
    masked and NaN pixels, on float32 images."""
    rng = np.random.default_rng(seed)
    comb = rng.normal(0.0, 2.0, shape).astype(np.float32)
    noise = rng.gamma(30.0, 0.25, shape).astype(np.float32)
    peel = rng.gamma(30.0, 0.25, shape).astype(np.float32)
    qual = (rng.random(shape) < 0.05).astype(np.uint8)
    for image, scale in ((comb, 500.0), (noise, 60.0), (peel, 60.0)):
        flat = image.reshape(-1)
        flat[rng.random(flat.size) < 0.02] = np.float32(scale)
        flat[rng.random(flat.size) < 0.03] = np.nan
    args = (600.0, 5.0, None, 6.0, 5)
    hot = find_hot_pixels(comb, qual, noise, peel, *args)
    bpm, dark, level, threshold, clip_surv, clip_peel = sort_find_hot_pixels(
        comb, qual, noise, peel, *args
    )
    assert hot.bpm.tobytes() == bpm.tobytes() and hot.bpm.dtype == np.uint8
    assert hot.dark.tobytes() == dark.tobytes() and hot.dark.dtype == np.float32
    assert same(hot.level, level) and hot.hot_threshold == threshold
    assert same(hot.noise, clip_surv) and same(hot.noise_peel, clip_peel)
    # a mask as booleans or wider integers decides the same
    for q in (qual.astype(bool), qual.astype(np.int32) * 7):
        again = find_hot_pixels(comb, q, noise, peel, *args)
        assert again.bpm.tobytes() == bpm.tobytes() and same(again.level, level)
    # everything masked: the level comes from every finite pixel
    all_masked = find_hot_pixels(comb, np.ones(shape, np.uint8), noise, peel, *args)
    assert same(all_masked.level, sort_robust_level(comb))


# ------------------------------------------------------------------------------------------
# settings


def test_hotpix_settings_defaults_and_not_in_params() -> None:
    for instrument, arm in (("soxs", "NIR"), ("soxs", "VIS"), ("xsh", "UVB")):
        s = load_settings(instrument, arm)
        assert (s.hot_sigma, s.hot_rate, s.noise_sigma, s.noise_iterations) == (5, None, 6, 5)
        assert tuple(k for k, _ in s.hotpix_params) == HOTPIX_KEYS
        assert not any(k in HOTPIX_KEYS for k, _ in s.params)
        assert len(s.params) == 4  # the master's PRO REC1 PARAMn stay soxspipe's


def test_hotpix_settings_spellings_and_arm_blocks(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "soxs_mdark:\n  hot_pixel_sigma: 7\n  hot-pixel-rate: 0.02\n"
        "  noise_clipping_iterations: 2\n  nir:\n    noise-clipping-sigma: 4.5\n",
        encoding="utf-8",
    )
    nir = load_settings("soxs", "NIR", path)
    vis = load_settings("soxs", "VIS", path)
    assert (nir.hot_sigma, nir.hot_rate, nir.noise_sigma, nir.noise_iterations) == (
        7,
        0.02,
        4.5,
        2,
    )
    assert vis.noise_sigma == 6
    assert dict(nir.hotpix_params)["noise-clipping-sigma"] == 4.5
    assert len(nir.params) == 4


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("hot-pixel-sigma: -1", "hot-pixel-sigma"),
        ("hot-pixel-rate: -0.1", "hot-pixel-rate"),
        ("hot-pixel-rate: fast", "hot-pixel-rate"),
        ("noise-clipping-iterations: 1.5", "noise-clipping-iterations"),
        ("noise-clipping-sigma: .nan", "noise-clipping-sigma"),
        ("vis:\n        hot-pixel-sigma: 0", "hot-pixel-sigma"),
    ],
)
def test_bad_hotpix_settings(text: str, match: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("soxs-mdark:\n    " + text + "\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=match):
        load_settings("soxs", "NIR", path)


def test_rate_zero_or_null_is_unused(tmp_path: Path) -> None:
    for value in ("0", "null"):
        path = tmp_path / "s.yaml"
        path.write_text(f"soxs-mdark:\n  hot-pixel-rate: {value}\n", encoding="utf-8")
        assert load_settings("soxs", "VIS", path).hot_rate is None


# ------------------------------------------------------------------------------------------
# the products of a small set


@pytest.fixture(scope="module")
def small_sof(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = DarkSetSpec(
        "soxs",
        "VIS",
        n_frames=6,
        binning=(2, 2),
        exptime=600.0,
        seed=21,
        hot_tail=1.0,
        telegraph_fraction=5e-4,
        cosmic_scale=5.0,
    )
    root = tmp_path_factory.mktemp("hotpix-small")
    return write_sof(root / sof_name(spec), simulate_set(spec, root / "raw"))


@pytest.fixture(scope="module")
def small(small_sof: Path, tmp_path_factory: pytest.TempPathFactory) -> ProductResult:
    ws = tmp_path_factory.mktemp("hotpix-ws")
    plan = plan_product([str(small_sof)], ws, numerics="soxspipe-0.17.4", plots=True)
    (result,) = compute_products([plan], "sync")
    return result


def test_result_carries_the_new_products_and_qc(small: ProductResult) -> None:
    assert small.hotpix_path.endswith(f"{small.name}_HOTPIX.fits")
    assert small.noise_path.endswith(f"{small.name}_NOISE.fits")
    assert small.paths == (small.path, small.hotpix_path, small.noise_path)
    assert all(Path(p).parent == Path(small.path).parent for p in small.paths)
    qc = {r.name: r for r in small.qc}
    assert set(HOTPIX_QC) <= set(qc)
    bpm = fits.getdata(small.hotpix_path)
    assert qc["HOTPIX PHYS NUM"].value == int(np.count_nonzero(bpm & HOT))
    assert qc["NOISYPIX NUM"].value == int(np.count_nonzero(bpm & NOISY))
    assert qc["HOTPIX PHYS FRAC"].value == float(f"{np.count_nonzero(bpm & HOT) / bpm.size:.6f}")
    assert not any(qc[name].to_header for name in HOTPIX_QC)
    # physical hot pixels are a small part of soxspipe's HOTPIX NUM on this set
    assert 0 < qc["HOTPIX PHYS NUM"].value < qc["HOTPIX NUM"].value
    names = {Path(p).name for p in small.plots}
    assert {f"{small.name}_hotpix_map.png", f"{small.name}_dark_current.png"} <= names
    assert all(Path(p).stat().st_size > 0 for p in small.plots)


def test_master_dark_is_unchanged_by_the_maps(small: ProductResult) -> None:
    with fits.open(small.path, checksum=True) as hdul:
        assert [h.name for h in hdul] == ["FLUX", "QUAL", "ERRS"]
        h = hdul[0].header
    keys = [str(k) for k in h]
    assert not [k for k in keys if k.startswith("ESO QC") and ("PHYS" in k or "NOISY" in k)]
    assert "ESO PRO REC1 PARAM5 NAME" not in h
    assert [h[f"ESO PRO REC1 PARAM{i} NAME"] for i in range(1, 5)] == [
        "stacked-clipping-sigma",
        "stacked-clipping-iterations",
        "frame-clipping-sigma",
        "frame-clipping-iterations",
    ]
    assert not [
        k
        for k in keys
        if k.startswith("MDARK ") and k != "MDARK NUMERICS" and k != "MDARK FINGERPRINT"
    ]


def test_hotpix_map_is_a_soxspipe_static_bad_pixel_map(small: ProductResult) -> None:
    from astropy import units as u
    from astropy.nddata import CCDData

    with fits.open(small.hotpix_path, checksum=True) as hdul:
        assert len(hdul) == 1
        data = np.asarray(hdul[0].data)
        h = hdul[0].header
    master = fits.getheader(small.path)
    assert data.dtype == np.uint8 and data.shape == fits.getdata(small.path).shape
    assert set(np.unique(data)) <= {0, HOT, NOISY, HOT | NOISY}
    assert h["ESO PRO CATG"] == "HOT_PIXEL_MAP_VIS"
    assert (h["ESO PRO TYPE"], h["ESO PRO TECH"]) == ("REDUCED", "IMAGE")
    assert (h["MDARK BPM HOT"], h["MDARK BPM NOISY"]) == (HOT, NOISY)
    raw = [k for k in master if str(k).startswith("ESO PRO REC1 RAW")]
    assert raw and all(h[k] == master[k] for k in raw)
    params = {
        h[f"ESO PRO REC1 PARAM{i} NAME"]: h[f"ESO PRO REC1 PARAM{i} VALUE"] for i in range(1, 9)
    }
    assert params["hot-pixel-sigma"] == 5 and params["noise-clipping-iterations"] == 5
    assert params["hot-pixel-rate"] == 0.0  # null: not used
    assert h["ESO QC HOTPIX PHYS NUM"] == int(np.count_nonzero(data & HOT))
    assert h["ESO QC NOISYPIX NUM"] == int(np.count_nonzero(data & NOISY))
    assert "ESO QC HOTPIX NUM" not in h  # the master's QC stays with the master
    assert "BUNIT" not in h
    # read as soxspipe reads its static maps (base_recipe: CCDData, hdu 0, any non-zero bad)
    bitmap = CCDData.read(small.hotpix_path, hdu=0, unit=u.dimensionless_unscaled)
    np.testing.assert_array_equal(bitmap.data.astype(bool), data != 0)


def test_noise_product(small: ProductResult) -> None:
    with fits.open(small.noise_path, checksum=True) as hdul:
        assert [x.name for x in hdul] == ["NOISE", "NOISE_PEEL"]
        noise, peel = np.asarray(hdul[0].data), np.asarray(hdul[1].data)
        h = hdul[0].header
    assert noise.dtype.str[1:] == "f4" and peel.dtype.str[1:] == "f4"
    assert h["ESO PRO CATG"] == "MASTER_DARK_NOISE_VIS" and h["BUNIT"] == "electron"
    ron = fits.getheader(small.path)["ESO QC RAW RON"]
    # the median temporal noise is about the read noise (a few % of dark shot noise)
    assert 0.5 * ron < np.nanmedian(noise) < 1.2 * ron
    assert np.isfinite(peel).mean() > 0.99


def test_rerun_is_byte_identical(small: ProductResult, small_sof: Path, tmp_path: Path) -> None:
    plan = plan_product(
        [str(small_sof)], tmp_path, numerics="soxspipe-0.17.4", rows=33, plots=False
    )
    (again,) = compute_products([plan], "threads")
    for a, b in zip(small.paths, again.paths, strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes(), Path(a).name


# ------------------------------------------------------------------------------------------
# the same maps whatever the strip height or scheduler


RUNS = (("sync", 1), ("sync", 64), ("threads", None), ("threads", 7), ("processes", 64))


def test_maps_identical_for_every_strip_height_and_scheduler(
    small: ProductResult, small_sof: Path, tmp_path: Path
) -> None:
    reference = [Path(p).read_bytes() for p in small.paths]
    for scheduler, rows in RUNS:
        ws = tmp_path / f"{scheduler}-{rows}"
        plan = plan_product(
            [str(small_sof)], ws, numerics="soxspipe-0.17.4", rows=rows, plots=False
        )
        (result,) = compute_products([plan], scheduler)
        got = [Path(p).read_bytes() for p in result.paths]
        assert got == reference, f"{scheduler} rows={rows}"


# ------------------------------------------------------------------------------------------
# the measurement of issue 7 on every arm (smaller sets than benchmarks/bench_hotpix.py)

ARMS = {
    "soxs-nir": DarkSetSpec("soxs", "NIR", exptime=300.0, seed=81),
    "soxs-vis": DarkSetSpec("soxs", "VIS", exptime=600.0, binning=(2, 2), seed=82),
    "xsh-uvb": DarkSetSpec("xsh", "UVB", exptime=600.0, binning=(2, 2), seed=83),
    "xsh-vis": DarkSetSpec("xsh", "VIS", exptime=600.0, binning=(2, 2), seed=84),
    "xsh-nir": DarkSetSpec("xsh", "NIR", exptime=300.0, seed=85),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arm", "numerics"),
    [(arm, "soxspipe-0.17.4") for arm in sorted(ARMS)]
    + [("soxs-vis", "accurate"), ("xsh-uvb", "accurate")],
)
def test_recall_and_false_flags_against_injected_truth(
    arm: str, numerics: str, tmp_path: Path
) -> None:
    """Issue 7: >= 99% of hot pixels above 5 sigma of ERRS, <= 0.01% false flags,
    >= 95% of telegraph pixels, on ten frames with cosmic rays at 5x the model's rate."""
    base = ARMS[arm]
    spec = DarkSetSpec(
        base.instrument,
        base.arm,
        n_frames=10,
        exptime=base.exptime,
        binning=base.binning,
        seed=base.seed,
        hot_tail=1.0,
        telegraph_fraction=5e-4,
        cosmic_scale=5.0,
    )
    sof = write_sof(tmp_path / sof_name(spec), simulate_set(spec, tmp_path / "raw"))
    plan = plan_product([str(sof)], tmp_path / "ws", numerics=numerics, plots=False)
    (result,) = compute_products([plan], "threads")
    with fits.open(result.path) as hdul:
        errs = np.asarray(hdul["ERRS"].data, dtype=np.float64)
        qual = np.asarray(hdul["QUAL"].data) != 0
    bpm = np.asarray(fits.getdata(result.hotpix_path))
    truth = injected_defects(spec)
    score = score_flags(truth, bpm != 0, errs)
    assert score.hot_strong >= 50 and score.telegraph >= 200  # the test measures something
    assert score.hot_recall >= 0.99, score
    assert score.false_fraction <= 1e-4, score
    assert score.telegraph_recall >= 0.95, score
    assert score.telegraph_recall_detectable >= 0.99, score
    # and soxspipe's mask on the same data: more false flags or fewer hot pixels found
    theirs = score_flags(truth, qual, errs)
    assert theirs.false_fraction > 10 * score.false_fraction or theirs.hot_recall < 0.9


# ------------------------------------------------------------------------------------------
# the simulator's injected defects


def test_default_sets_inject_no_telegraph_pixels() -> None:
    spec = DarkSetSpec("soxs", "VIS", n_frames=2, binning=(2, 2))
    truth = injected_defects(spec)
    assert not truth.telegraph.any()
    assert truth.hot.shape == spec.arm_spec.trimmed_shape(2, 2)
    assert truth.hot.sum() > 0 and truth.cold.sum() > 0
    assert (truth.hot_excess[truth.hot] > 0).all() and (truth.hot_excess[~truth.hot] == 0).all()


@pytest.mark.parametrize(("instrument", "arm"), [("soxs", "NIR"), ("xsh", "UVB")])
def test_injected_truth_is_where_the_frames_show_it(
    instrument: str, arm: str, tmp_path: Path
) -> None:
    spec = DarkSetSpec(
        instrument,
        arm,
        n_frames=4,
        exptime=100.0,
        seed=5,
        binning=(2, 2),
        hot_tail=1.0,
        telegraph_fraction=2e-4,
    )
    truth = injected_defects(spec)
    plan = plan_product(
        [str(p) for p in simulate_set(spec, tmp_path)], tmp_path / "ws", plots=False
    )
    from mdark_dask.io.stack import strip_stack
    from mdark_dask.plan.sizing import strip_rows

    stack = np.asarray(
        strip_stack(plan.frameset.reader(), strip_rows(*plan.shape)).compute(scheduler="sync"),
        dtype=np.float64,
    )
    level = np.median(stack, axis=(1, 2))[:, None, None]
    assert stack.shape[1:] == truth.hot.shape
    sat = truth.saturated
    bright = truth.hot & ~sat & (truth.hot_excess > 200)
    assert bright.sum() > 5
    measured = np.median(stack - level, axis=0)[bright]
    np.testing.assert_allclose(measured, truth.hot_excess[bright], rtol=0.2, atol=30)
    # telegraph pixels: the frame-to-frame range is the injected jump (both levels seen)
    seen = truth.telegraph & (truth.telegraph_high > 0) & (truth.telegraph_high < spec.n_frames)
    jump = np.ptp(stack - level, axis=0)[seen]
    np.testing.assert_allclose(
        jump, truth.telegraph_amplitude[seen], rtol=0.1, atol=6 * spec.effective_ron
    )
    assert truth.telegraph.sum() == round(truth.hot.size * 2e-4)
    assert not (truth.telegraph & (truth.hot | truth.cold)).any()


def test_spec_rejects_bad_defect_parameters() -> None:
    for kw in (
        {"hot_tail": 0.0},
        {"telegraph_fraction": 0.6},
        {"telegraph_amplitude": (5.0, 1.0)},
        {"cosmic_scale": -1.0},
    ):
        with pytest.raises(ValueError):
            DarkSetSpec("soxs", "NIR", **kw)


def test_score_flags_counts() -> None:
    spec = DarkSetSpec("soxs", "VIS", n_frames=10, binning=(2, 2), telegraph_fraction=1e-3)
    truth = injected_defects(spec)
    errs = np.ones(truth.hot.shape)
    perfect = score_flags(truth, truth.any, errs)
    assert perfect.false_flags == 0 and perfect.hot_recall == 1 and perfect.telegraph_recall == 1
    noisy = truth.any.copy()
    noisy[0, :10] = True
    assert score_flags(truth, noisy, errs).false_flags == 10 - int(truth.any[0, :10].sum())
    assert score_flags(truth, np.zeros_like(noisy), errs).hot_recall == 0
    with pytest.raises(ValueError, match="shape"):
        score_flags(truth, noisy[1:], errs)
