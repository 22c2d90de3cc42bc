"""The numerical kernels against independent oracles: preparation, level clip, stack clip,
strip combine and finalize.

Every oracle here is written from what soxspipe 0.17.4, astropy and bottleneck compute,
not from the package:

* the accurate whole-image clip is a plain float64 numpy loop;
* the soxspipe-0.17.4 clip is a sequential-float32 model of astropy 6.1.2 + bottleneck 1.4
  (``np.add.accumulate``), with bounds rounded to float32 and the final mask from the last
  bounds; the installed astropy is a further oracle where the accumulation cannot matter;
* the stack clip is a per-pixel pure-Python model of astropy's median / MAD-std C clip, and
  astropy itself;
* the strip combine is soxspipe's stacking (ccdproc's ``average_combine`` after the clip)
  written out with numpy.

Arrays are small and odd-shaped (37x53, 5x7, 1xN, Nx1) so a swapped axis shows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
import pytest
from astropy.stats import sigma_clip
from astropy.utils.exceptions import AstropyUserWarning
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mdark_dask.numerics import steps
from mdark_dask.numerics.steps import Bounds, clip_mask, global_clip_bounds
from tests import oracle

F32 = npt.NDArray[np.float32]
MAD_TO_STD = 1.482602218505602
SHAPES = [(37, 53), (53, 37), (5, 7), (1, 61), (61, 1)]

HYP = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------------------------
# data


def pedestal_image(shape: tuple[int, int], seed: int, nonfinite: bool = True) -> F32:
    """A dark-like float32 image: pedestal, noise, hot/cold pixels, optional NaN/inf."""
    rng = np.random.default_rng(seed)
    img = rng.normal(2300.0, 7.7, shape).astype(np.float32)
    flat = img.reshape(-1)
    n = flat.size
    if n >= 4:
        idx = rng.choice(n, size=max(1, n // 50), replace=False)
        flat[idx] += rng.uniform(50, 5000, idx.size).astype(np.float32)
        flat[rng.integers(0, n)] = np.float32(100.0)
    if nonfinite and n >= 8:
        flat[rng.integers(0, n)] = np.nan
        flat[rng.integers(0, n)] = np.inf
        flat[rng.integers(0, n)] = -np.inf
    return img


# ------------------------------------------------------------------------------------------
# oracles of the whole-image clip (astropy sigma_clip(axis=None))


def oracle_accurate(image: F32, sigma: float, maxiters: int) -> tuple[float, float]:
    """Straightforward float64 numpy: mean, population std, float64 comparisons."""
    x = np.asarray(image, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    lo = hi = math.nan
    for _ in range(maxiters):
        size = x.size
        mean = x.mean()
        std = x.std()
        lo, hi = float(mean - sigma * std), float(mean + sigma * std)
        x = x[(x >= lo) & (x <= hi)]
        if x.size == size:
            break
    return lo, hi


def _seq32(x: F32) -> np.float32:
    """bottleneck's float32 accumulator: sequential, in memory order."""
    if x.size == 0:
        return np.float32(0.0)
    return np.add.accumulate(x, dtype=np.float32)[-1]


def oracle_soxspipe(image: F32, sigma: float, maxiters: int) -> tuple[float, float]:
    """astropy 6.1.2 ``sigma_clip(axis=None)`` with bottleneck 1.4.0 on float32 data.

    bottleneck ``nanmean``: float32 sum / float32(count), returned as a Python float;
    ``nanstd``: float32 sum of float32 squared deviations / count, sqrt. astropy computes
    ``cen -/+ std * sigma`` in double; numpy compares the float32 pixels with the Python
    float bound after rounding it to float32.
    """
    x = np.ascontiguousarray(image, dtype=np.float32).ravel()
    x = x[np.isfinite(x)]
    lo = hi = math.nan
    for _ in range(maxiters):
        size = x.size
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = float(_seq32(x) / np.float32(size))
            dev = np.subtract(x, np.float32(mean), dtype=np.float32)
            var = _seq32(np.multiply(dev, dev, dtype=np.float32)) / np.float32(size)
        std = float(np.float32(math.sqrt(float(var)))) if var == var else math.nan
        lo = float(np.float32(mean - std * sigma))
        hi = float(np.float32(mean + std * sigma))
        x = x[(x >= np.float32(lo)) & (x <= np.float32(hi))]
        if x.size == size:
            break
    return lo, hi


def oracle_mask(image: F32, lo: float, hi: float) -> npt.NDArray[np.bool_]:
    """Final mask: outside the last bounds, or non-finite."""
    with np.errstate(invalid="ignore"):
        v = np.asarray(image, dtype=np.float64)
        return ~(np.isfinite(v) & (v >= lo) & (v <= hi))


def iteration_margin(image: F32, sigma: float, maxiters: int) -> float:
    """Smallest distance of any kept value to the bounds of any iteration (float64 clip).

    When this is large, float32 vs float64 accumulation cannot change any decision.
    """
    x = np.asarray(image, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    margin = math.inf
    for _ in range(maxiters):
        size = x.size
        mean, std = x.mean(), x.std()
        lo, hi = mean - sigma * std, mean + sigma * std
        margin = min(margin, float(np.min(np.abs(x - lo))), float(np.min(np.abs(x - hi))))
        x = x[(x >= lo) & (x <= hi)]
        if x.size == size:
            break
    return margin


# ------------------------------------------------------------------------------------------
# global_clip_bounds + clip_mask


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("sigma", "maxiters"), [(3.0, 1), (3.0, 3), (2.5, 10)])
def test_global_clip_accurate_matches_float64_numpy(
    shape: tuple[int, int], sigma: float, maxiters: int
) -> None:
    img = pedestal_image(shape, seed=hash(shape) % 1000)
    bounds = global_clip_bounds(img, sigma, maxiters, "accurate")
    lo, hi = oracle_accurate(img, sigma, maxiters)
    assert isinstance(bounds, Bounds)
    assert bounds.lo == pytest.approx(lo, rel=1e-12, abs=1e-9)
    assert bounds.hi == pytest.approx(hi, rel=1e-12, abs=1e-9)
    mask = clip_mask(img, bounds)
    assert mask.shape == img.shape
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, oracle_mask(img, lo, hi))
    assert mask[~np.isfinite(img)].all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("sigma", "maxiters"), [(3.0, 1), (3.0, 3), (2.5, 10)])
def test_global_clip_soxspipe_matches_sequential_float32_model(
    shape: tuple[int, int], sigma: float, maxiters: int
) -> None:
    img = pedestal_image(shape, seed=1 + hash(shape) % 1000)
    bounds = global_clip_bounds(img, sigma, maxiters, "soxspipe-0.17.4")
    lo, hi = oracle_soxspipe(img, sigma, maxiters)
    # exact: the model is the semantics, not an approximation of them
    assert (bounds.lo, bounds.hi) == (lo, hi)
    # bounds are float32 values
    assert float(np.float32(bounds.lo)) == bounds.lo
    assert float(np.float32(bounds.hi)) == bounds.hi
    np.testing.assert_array_equal(clip_mask(img, bounds), oracle_mask(img, lo, hi))


def test_soxspipe_numerics_show_the_float32_bias() -> None:
    """On a big pedestal the float32 sequential mean is biased (astropy #17185)."""
    img = np.random.default_rng(3).normal(2300.0, 7.7, (1000, 1001)).astype(np.float32)
    acc = global_clip_bounds(img, 3.0, 1, "accurate")
    sox = global_clip_bounds(img, 3.0, 1, "soxspipe-0.17.4")
    assert (sox.lo, sox.hi) == oracle_soxspipe(img, 3.0, 1)
    # the float32 accumulation drifts the centre and inflates the width
    assert abs((sox.lo + sox.hi) / 2 - (acc.lo + acc.hi) / 2) > 1.0
    assert (sox.hi - sox.lo) > (acc.hi - acc.lo) + 1.0


def test_clip_order_is_c_order() -> None:
    """The soxspipe statistics follow memory order of the C-contiguous image: a
    Fortran-ordered or transposed input must give the bounds of its C-ordered copy."""
    img = pedestal_image((37, 53), seed=11, nonfinite=False)
    fortran = np.asfortranarray(img)
    a = global_clip_bounds(img, 3.0, 3, "soxspipe-0.17.4")
    b = global_clip_bounds(fortran, 3.0, 3, "soxspipe-0.17.4")
    assert a == b
    t = global_clip_bounds(img.T, 3.0, 3, "soxspipe-0.17.4")
    assert t == oracle_soxspipe(np.ascontiguousarray(img.T), 3.0, 3)


@pytest.mark.parametrize("numerics", steps.NUMERICS)
def test_all_nonfinite_image_is_fully_masked(numerics: steps.Numerics) -> None:
    img = np.full((5, 7), np.nan, dtype=np.float32)
    img[0, 0] = np.inf
    bounds = global_clip_bounds(img, 3.0, 3, numerics)
    assert clip_mask(img, bounds).all()


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from(SHAPES),
    sigma=st.sampled_from([2.0, 2.5, 3.0, 5.0]),
    maxiters=st.integers(1, 6),
    scale=st.sampled_from([1.0, 7.7, 300.0]),
    level=st.sampled_from([0.0, 1000.0, 2300.0, -50.0]),
)
def test_global_clip_property_both_numerics(
    seed: int,
    shape: tuple[int, int],
    sigma: float,
    maxiters: int,
    scale: float,
    level: float,
) -> None:
    rng = np.random.default_rng(seed)
    img = (level + scale * rng.standard_normal(shape)).astype(np.float32)
    flat = img.reshape(-1)
    k = rng.integers(0, 4)
    flat[rng.integers(0, flat.size, k)] = (level + 50 * scale * rng.standard_normal(k)).astype(
        np.float32
    )
    if flat.size > 3 and rng.random() < 0.3:
        flat[rng.integers(0, flat.size)] = np.nan

    sox = global_clip_bounds(img, sigma, maxiters, "soxspipe-0.17.4")
    lo, hi = oracle_soxspipe(img, sigma, maxiters)
    assert (sox.lo, sox.hi) == (lo, hi) or (math.isnan(lo) and math.isnan(sox.lo))
    np.testing.assert_array_equal(clip_mask(img, sox), oracle_mask(img, lo, hi))

    acc = global_clip_bounds(img, sigma, maxiters, "accurate")
    lo, hi = oracle_accurate(img, sigma, maxiters)
    assume(iteration_margin(img, sigma, maxiters) > 1e-9 * max(1.0, abs(level)))
    assert acc.lo == pytest.approx(lo, rel=1e-12, abs=1e-12)
    assert acc.hi == pytest.approx(hi, rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(clip_mask(img, acc), oracle_mask(img, lo, hi))


def _astropy_mask(img: F32, sigma: float, maxiters: int) -> npt.NDArray[np.bool_]:
    clipped = sigma_clip(
        img, sigma=sigma, maxiters=maxiters, cenfunc="mean", stdfunc="std", axis=None
    )
    return np.ma.getmaskarray(clipped)


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([(5, 7), (1, 61), (61, 1), (9, 11)]),
    sigma=st.sampled_from([1.5, 2.0, 3.0]),
    maxiters=st.integers(1, 5),
    numerics=st.sampled_from(steps.NUMERICS),
)
def test_global_clip_matches_installed_astropy_when_well_conditioned(
    seed: int, shape: tuple[int, int], sigma: float, maxiters: int, numerics: steps.Numerics
) -> None:
    """Small integer data near 0: float32 and float64 sums are exact, so any astropy
    (bottleneck or not) must give the same mask as either numerics."""
    rng = np.random.default_rng(seed)
    img = rng.integers(-20, 21, shape).astype(np.float32)
    flat = img.reshape(-1)
    n_out = int(rng.integers(0, 3))
    flat[rng.integers(0, flat.size, n_out)] = rng.integers(-300, 301, n_out).astype(np.float32)
    assume(iteration_margin(img, sigma, maxiters) > 1e-3)
    bounds = global_clip_bounds(img, sigma, maxiters, numerics)
    np.testing.assert_array_equal(clip_mask(img, bounds), _astropy_mask(img, sigma, maxiters))


@pytest.mark.parametrize("numerics", steps.NUMERICS)
@pytest.mark.parametrize("seed", range(8))
def test_global_clip_matches_installed_astropy_fixed(numerics: steps.Numerics, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    img = rng.integers(-20, 21, (5, 7)).astype(np.float32)
    img[seed % 5, seed % 7] = 250.0
    img[(seed + 2) % 5, (seed + 3) % 7] = -90.0
    assert iteration_margin(img, 2.0, 5) > 1e-3
    bounds = global_clip_bounds(img, 2.0, 5, numerics)
    mask = clip_mask(img, bounds)
    np.testing.assert_array_equal(mask, _astropy_mask(img, 2.0, 5))
    assert mask[seed % 5, seed % 7]


def test_frame_level_statistics_are_numpy_masked_stats() -> None:
    img = pedestal_image((37, 53), seed=5)
    for numerics in steps.NUMERICS:
        level = steps.frame_level(img, 3.0, 3, numerics)
        bounds = global_clip_bounds(img, 3.0, 3, numerics)
        assert (level.lo, level.hi) == (bounds.lo, bounds.hi)
        masked = np.ma.array(img, mask=clip_mask(img, bounds))
        assert level.mean == float(np.ma.mean(masked))
        assert level.std == float(np.ma.std(masked))


# ------------------------------------------------------------------------------------------
# the stack clip (median/MAD-std along the frames): a per-pixel model of astropy's C code


def _median(v: list[float]) -> float:
    s = sorted(v)
    n = len(s)
    return s[(n - 1) // 2] if n % 2 else 0.5 * (s[n // 2] + s[n // 2 - 1])


def pixel_clip_bounds(values: list[float], sigma: float, maxiters: int) -> tuple[float, float]:
    """astropy ``compute_sigma_clipped_bounds`` (median, MAD-std) on one pixel, in double."""
    x = [v for v in values if math.isfinite(v)]
    if not x:
        return math.nan, math.nan
    iteration = 0
    while True:
        med = _median(x)
        std = _median([abs(v - med) for v in x]) * MAD_TO_STD
        lo, hi = med - sigma * std, med + sigma * std
        kept = [v for v in x if lo <= v <= hi]
        if len(kept) == len(x) or not kept:
            return lo, hi
        x = kept
        iteration += 1
        if iteration >= maxiters:
            return lo, hi


def oracle_stack_clip(stack: F32, sigma: float, maxiters: int) -> npt.NDArray[np.bool_]:
    _, ny, nx = stack.shape
    out = np.ones(stack.shape, dtype=bool)
    for y in range(ny):
        for x in range(nx):
            vals = [float(v) for v in stack[:, y, x]]
            lo, hi = pixel_clip_bounds(vals, sigma, maxiters)
            for i, v in enumerate(vals):
                out[i, y, x] = not (math.isfinite(v) and lo <= v <= hi)
    return out


def astropy_stack_clip(stack: F32, sigma: float, maxiters: int) -> npt.NDArray[np.bool_]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        clipped = sigma_clip(
            stack,
            sigma_lower=sigma,
            sigma_upper=sigma,
            axis=0,
            maxiters=maxiters,
            cenfunc="median",
            stdfunc="mad_std",
        )
    return np.ma.getmaskarray(clipped)


def small_stack(rng: np.random.Generator, n: int, shape: tuple[int, int]) -> F32:
    """Integer-valued float32 frames, with repeated values (MAD = 0 cases) and outliers."""
    spread = int(rng.choice([0, 1, 3, 30]))
    base = rng.integers(-50, 51, shape)
    stack = base[None] + rng.integers(-spread, spread + 1, (n, *shape))
    out = stack.astype(np.float32)
    k = int(rng.integers(0, 4))
    f = rng.integers(0, n, k)
    y = rng.integers(0, shape[0], k)
    x = rng.integers(0, shape[1], k)
    out[f, y, x] += rng.choice([-1, 1], k) * rng.integers(100, 5000, k)
    return out


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(5, 7), (1, 13), (11, 1)])
def test_stack_clip_mask_is_astropy_median_mad_clip(n: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(n * 100 + shape[0])
    for sigma, maxiters in [(3.0, 3), (5.0, 5), (1.0, 1), (2.0, 10)]:
        stack = small_stack(rng, n, shape)
        got = oracle.stack_clip_mask(stack, sigma, maxiters)
        np.testing.assert_array_equal(got, astropy_stack_clip(stack, sigma, maxiters))
        np.testing.assert_array_equal(got, oracle_stack_clip(stack, sigma, maxiters))


def test_stack_clip_with_two_frames_never_clips() -> None:
    """With N = 2 the MAD clip can never clip a finite value."""
    rng = np.random.default_rng(2)
    stack = rng.normal(0, 100, (2, 37, 53)).astype(np.float32)
    assert not oracle.stack_clip_mask(stack, 3.0, 3).any()


# ------------------------------------------------------------------------------------------
# stack_strip against the step-by-step computation


def oracle_stack_strip(
    e: F32, levels: npt.NDArray[np.float64], ron: float, sigma: float, maxiters: int
) -> tuple[F32, F32, npt.NDArray[np.bool_]]:
    """soxspipe's stacking step by step, ``E = float32(E - m)`` .. ``unc``, with
    bottleneck's nanmean."""
    n = e.shape[0]
    e64 = e.astype(np.float64)
    sub = np.empty(e.shape, dtype=np.float32)
    a_mask = np.ones(e.shape[1:], dtype=bool)
    for i in range(n):
        lo, hi, m, _ = (float(v) for v in levels[i])
        with np.errstate(invalid="ignore"):
            a_mask &= ~((e64[i] >= lo) & (e64[i] <= hi))
        sub[i] = (e64[i] - m).astype(np.float32)
    positive = np.maximum(e, np.float32(0.0))
    sig = np.sqrt(positive + np.float32(ron * ron), dtype=np.float32)
    clipped = astropy_stack_clip(sub, sigma, maxiters)
    k = clipped.sum(axis=0)

    def nanmean_seq(values: F32) -> F32:
        with_nan = np.where(clipped, np.float32(np.nan), values)
        acc = np.zeros(values.shape[1:], dtype=np.float32)
        count = np.zeros(values.shape[1:], dtype=np.int64)
        for frame in with_nan:
            ok = ~np.isnan(frame)
            acc = np.add(acc, np.where(ok, frame, np.float32(0.0)), dtype=np.float32)
            count += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.divide(acc, count.astype(np.float32), dtype=np.float32)

    comb = nanmean_seq(sub)
    with np.errstate(invalid="ignore", divide="ignore"):
        unc = (nanmean_seq(sig).astype(np.float64) / np.sqrt((n - k).astype(np.float64))).astype(
            np.float32
        )
    mask = (k == n) | a_mask
    return comb, unc, mask


def dark_stack(
    n: int, shape: tuple[int, int], seed: int, gain: float = 1.5
) -> tuple[F32, npt.NDArray[np.float64]]:
    """Prepared frames (electrons) with a hot pixel, cosmics, NaNs and fitting levels."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(1500.0, 4.0, (n, *shape)).round()
    raw += rng.normal(0.0, 0.4, (n, 1, 1)).round()  # frame-to-frame drift
    e = (raw * gain).astype(np.float32)
    ny, nx = shape
    e[:, 0, nx // 2] = np.float32(60000.0)  # hot in every frame: the AND mask
    e[0, ny // 2, 0] += np.float32(9000.0)  # cosmic in frame 0 only
    e[n - 1, ny - 1, nx - 1] = np.float32(-200.0)  # cold in one frame
    e[1 % n, ny // 2, nx - 1] = np.nan  # NaN in one frame
    e[:, ny - 1, 0] = np.nan  # NaN in every frame: all clipped
    levels = np.empty((n, 4), dtype=np.float64)
    for i in range(n):
        m = 2250.0 + float(rng.normal(0, 0.6)) + 1e-7 * i
        levels[i] = (m - 30.0, m + 30.0, m, 6.0 + 0.01 * i)
    return e, levels


@pytest.mark.parametrize("n", [3, 4, 5, 7])
@pytest.mark.parametrize("shape", [(5, 7), (1, 9), (9, 1), (37, 53)])
@pytest.mark.parametrize(("sigma", "maxiters"), [(3.0, 3), (5.0, 5)])
def test_stack_strip_matches_appendix_a(
    n: int, shape: tuple[int, int], sigma: float, maxiters: int
) -> None:
    e, levels = dark_stack(n, shape, seed=n * 7 + shape[0])
    out = steps.stack_strip(e, levels, 3.8, sigma, maxiters)
    assert out.dtype == steps.STRIP_DTYPE
    assert out.shape == shape
    comb, unc, mask = oracle_stack_strip(e, levels, 3.8, sigma, maxiters)
    np.testing.assert_array_equal(out["flux"], comb)
    np.testing.assert_array_equal(out["errs"], unc)
    np.testing.assert_array_equal(out["mask"].astype(bool), mask)
    assert set(np.unique(out["mask"])) <= {0, 1}
    # the features: hot pixel masked by the AND of the level masks, NaN stack masked
    assert out["mask"][0, shape[1] // 2] == 1
    assert out["mask"][shape[0] - 1, 0] == 1
    assert np.isnan(out["flux"][shape[0] - 1, 0])


@pytest.mark.parametrize("n", [3, 5])
def test_stack_strip_matches_its_numpy_reference(n: int) -> None:
    """The compiled strip kernel and the package's numpy reference agree bit for bit."""
    reference = getattr(oracle, "stack_strip_reference", None)
    if reference is None:
        pytest.skip("no stack_strip_reference in this version")
    e, levels = dark_stack(n, (37, 53), seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        ref = reference(e, levels, 3.8, 3.0, 3)
    out = steps.stack_strip(e, levels, 3.8, 3.0, 3)
    for field in ("flux", "errs", "mask"):
        np.testing.assert_array_equal(out[field], ref[field])


def test_stack_strip_is_per_pixel_so_strips_tile() -> None:
    """Any row split of the strip gives the same bytes as the whole (the tiling promise)."""
    e, levels = dark_stack(5, (37, 53), seed=9)
    whole = steps.stack_strip(e, levels, 3.8, 3.0, 3)
    for rows in (1, 7, 36):
        parts = [
            steps.stack_strip(np.ascontiguousarray(e[:, r : r + rows]), levels, 3.8, 3.0, 3)
            for r in range(0, 37, rows)
        ]
        joined = np.concatenate(parts)
        assert joined.tobytes() == whole.tobytes()


# ------------------------------------------------------------------------------------------
# hypothesis properties of the stack


def _perm_levels(
    levels: npt.NDArray[np.float64], perm: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    return np.ascontiguousarray(levels[perm])


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 8),
    shape=st.sampled_from([(1, 1), (3, 5), (1, 7), (6, 1), (4, 4)]),
    sigma=st.sampled_from([1.0, 2.0, 3.0, 5.0]),
    maxiters=st.integers(1, 5),
    data=st.data(),
)
def test_frame_order_does_not_matter(
    seed: int,
    n: int,
    shape: tuple[int, int],
    sigma: float,
    maxiters: int,
    data: st.DataObject,
) -> None:
    rng = np.random.default_rng(seed)
    stack = small_stack(rng, n, shape)
    perm = np.asarray(data.draw(st.permutations(range(n))), dtype=np.int64)
    permuted = np.ascontiguousarray(stack[perm])
    mask = oracle.stack_clip_mask(stack, sigma, maxiters)
    np.testing.assert_array_equal(oracle.stack_clip_mask(permuted, sigma, maxiters), mask[perm])

    e = (stack + np.float32(2000.0)).astype(np.float32)
    means = 2000.0 + rng.normal(0, 0.5, n)
    levels = np.stack([means - 200.0, means + 200.0, means, np.full(n, 5.0)], axis=1)
    a = steps.stack_strip(e, levels, 3.8, sigma, maxiters)
    b = steps.stack_strip(
        np.ascontiguousarray(e[perm]), _perm_levels(levels, perm), 3.8, sigma, maxiters
    )
    np.testing.assert_array_equal(a["mask"], b["mask"])
    # the float32 sum over frames is order dependent in the last bits only
    scale = float(np.max(np.abs(e - means[:, None, None].astype(np.float32))))
    atol = 4 * n * float(np.finfo(np.float32).eps) * max(scale, 1.0)
    np.testing.assert_allclose(a["flux"], b["flux"], rtol=1e-6, atol=atol)
    np.testing.assert_allclose(a["errs"], b["errs"], rtol=1e-6)


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 8),
    shape=st.sampled_from([(1, 1), (3, 5), (1, 7), (6, 1)]),
    c=st.integers(-64, 64),
    sigma=st.sampled_from([1.0, 2.0, 3.0, 5.0]),
    maxiters=st.integers(1, 5),
)
def test_adding_a_constant_keeps_the_clip_mask(
    seed: int, n: int, shape: tuple[int, int], c: int, sigma: float, maxiters: int
) -> None:
    rng = np.random.default_rng(seed)
    stack = small_stack(rng, n, shape)
    shifted = (stack + np.float32(c)).astype(np.float32)
    np.testing.assert_array_equal(
        oracle.stack_clip_mask(shifted, sigma, maxiters),
        oracle.stack_clip_mask(stack, sigma, maxiters),
    )
    # through stack_strip: a frame and its level shifted together give the same stack
    means = rng.integers(-100, 100, n).astype(np.float64)
    levels = np.stack([means - 400.0, means + 400.0, means, np.full(n, 5.0)], axis=1)
    e = (stack + means[:, None, None]).astype(np.float32)
    e_c = (e + np.float32(c)).astype(np.float32)
    levels_c = levels + np.asarray([c, c, c, 0.0])
    a = steps.stack_strip(e, levels, 3.8, sigma, maxiters)
    b = steps.stack_strip(e_c, levels_c, 3.8, sigma, maxiters)
    np.testing.assert_array_equal(a["mask"], b["mask"])
    np.testing.assert_array_equal(a["flux"], b["flux"])


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 9),
    shape=st.sampled_from([(1, 1), (3, 5), (1, 7), (6, 1)]),
    sign=st.sampled_from([-1.0, 1.0]),
    maxiters=st.integers(1, 5),
    data=st.data(),
)
def test_lone_strong_outlier_is_clipped(
    seed: int,
    n: int,
    shape: tuple[int, int],
    sign: float,
    maxiters: int,
    data: st.DataObject,
) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(-10, 11, (n, *shape)).astype(np.float32)
    f = data.draw(st.integers(0, n - 1))
    y = data.draw(st.integers(0, shape[0] - 1))
    x = data.draw(st.integers(0, shape[1] - 1))
    stack = base.copy()
    stack[f, y, x] = np.float32(sign * 1e6)
    mask = oracle.stack_clip_mask(stack, 3.0, maxiters)
    assert mask[f, y, x]

    means = np.full(n, 2000.0)
    levels = np.stack([means - 50.0, means + 50.0, means, np.full(n, 5.0)], axis=1)
    e = (stack + np.float32(2000.0)).astype(np.float32)
    out = steps.stack_strip(e, levels, 3.8, 3.0, maxiters)
    others = np.delete(base[:, y, x], f)
    assert others.min() <= out["flux"][y, x] <= others.max()
    assert out["mask"][y, x] == 0


# ------------------------------------------------------------------------------------------
# per-pixel preparation: electrons and deviation


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([(5, 7), (1, 61), (61, 1), (37, 53)]),
    dtype=st.sampled_from(["uint16", "int16", "int32", "float32", "float64"]),
    gain=st.one_of(
        st.sampled_from([1.0, 1.5, 1.61, 2.12, 2.3, 0.667, 1.4]),
        st.floats(0.01, 100.0, allow_nan=False),
    ),
)
def test_electrons_is_float32_of_float64_product(
    seed: int, shape: tuple[int, int], dtype: str, gain: float
) -> None:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if dtype.startswith(("u", "i")) else None
    if info is not None:
        raw = rng.integers(info.min, int(info.max) + 1, shape, dtype=np.int64).astype(dtype)
    else:
        raw = (rng.normal(0, 1e4, shape)).astype(dtype)
    out = steps.electrons(raw.astype(np.float64), gain)
    expected = np.array(
        [np.float32(float(v) * gain) for v in raw.ravel().tolist()], dtype=np.float32
    ).reshape(shape)
    assert out.dtype == np.float32
    assert out.shape == shape
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([(5, 7), (1, 61), (61, 1)]),
    ron=st.one_of(st.sampled_from([0.0, 3.8, 7.3, 2.6, 8.0, 5.3]), st.floats(1e-3, 50.0)),
)
def test_deviation_properties(seed: int, shape: tuple[int, int], ron: float) -> None:
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 200.0, shape).astype(np.float32)
    e.reshape(-1)[0] = np.float32(0.0)
    e.reshape(-1)[-1] = np.float32(-0.0)
    dev = oracle.deviation(e, ron)
    assert dev.dtype == np.float32
    assert dev.shape == shape
    floor = np.sqrt(np.float32(float(ron) ** 2), dtype=np.float32)
    # >= RON: exactly >= sqrt(float32(RON**2)), and >= RON to float32 rounding
    assert (dev >= floor).all()
    assert (dev.astype(np.float64) >= float(ron) * (1 - 2 * float(np.finfo(np.float32).eps))).all()
    nonpos = e <= 0
    assert nonpos.any()
    assert (dev[nonpos] == floor).all()
    pos = ~nonpos
    expected = np.sqrt(e[pos] + np.float32(float(ron) ** 2), dtype=np.float32)
    np.testing.assert_array_equal(dev[pos], expected)


# ------------------------------------------------------------------------------------------
# finalize (post-stack clip, master RON, fill and level restore)


def make_strip(shape: tuple[int, int], seed: int) -> npt.NDArray[np.void]:
    rng = np.random.default_rng(seed)
    strip = np.zeros(shape, dtype=steps.STRIP_DTYPE)
    flux = rng.normal(0.0, 3.0, shape).astype(np.float32)
    flat = flux.reshape(-1)
    flat[rng.choice(flat.size, 6, replace=False)] = np.float32(800.0)  # hot
    flat[rng.choice(flat.size, 2, replace=False)] = np.float32(-400.0)  # cold
    flat[rng.choice(flat.size, 3, replace=False)] = np.nan  # all clipped
    strip["flux"] = flux
    strip["errs"] = rng.uniform(2.0, 3.0, shape).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    mask.reshape(-1)[rng.choice(flat.size, 4, replace=False)] = 1
    strip["mask"] = mask
    return strip


LEVELS = np.asarray(
    [
        [2200.0, 2400.0, 2300.123456789, 7.7],
        [2201.0, 2401.0, 2301.987654321, 7.8],
        [2199.0, 2399.0, 2299.5, 7.65],
    ]
)


@pytest.mark.parametrize("numerics", steps.NUMERICS)
@pytest.mark.parametrize("shape", [(37, 53), (5, 7), (1, 61)])
def test_finalize_on_constructed_strip(numerics: steps.Numerics, shape: tuple[int, int]) -> None:
    strip = make_strip(shape, seed=shape[0])
    master = steps.finalize(strip, LEVELS, 3.0, 3, numerics)
    comb = strip["flux"]
    oracle = oracle_soxspipe if numerics == "soxspipe-0.17.4" else oracle_accurate
    lo, hi = oracle(comb, 3.0, 3)
    if numerics == "soxspipe-0.17.4":
        assert (master.post_bounds.lo, master.post_bounds.hi) == (lo, hi)
    else:
        assert master.post_bounds.lo == pytest.approx(lo, rel=1e-12)
        assert master.post_bounds.hi == pytest.approx(hi, rel=1e-12)
    mask = strip["mask"].astype(bool) | oracle_mask(comb, lo, hi)

    assert master.qual.dtype == np.uint8
    assert set(np.unique(master.qual)) <= {0, 1}
    np.testing.assert_array_equal(master.qual.astype(bool), mask)
    assert master.qual[np.isnan(comb)].all()
    if comb.size > 1000:  # a handful of hot/cold pixels are outliers of a big frame
        assert master.qual[comb == 800.0].all()
        assert master.qual[comb == -400.0].all()

    means = LEVELS[:, 2]
    master_mean = float(np.sum(means) / len(means))
    raw_ron = float(np.sum(LEVELS[:, 3]) / len(means))
    assert master.master_mean == master_mean
    assert master.raw_ron == raw_ron
    assert master.mdark_median == float(np.median(means))

    assert master.flux.dtype == np.float32
    assert master.errs.dtype == np.float32
    assert master.flux.shape == master.errs.shape == master.qual.shape == shape
    # masked pixels: FLUX is exactly float32(masterMean), ERRS exactly float32(rawRon)
    assert (master.flux[mask] == np.float32(master_mean)).all()
    assert (master.errs[mask] == np.float32(raw_ron)).all()
    # unmasked: float32(float64(comb) + masterMean) and the strip's errs
    expected = (comb[~mask].astype(np.float64) + master_mean).astype(np.float32)
    np.testing.assert_array_equal(master.flux[~mask], expected)
    np.testing.assert_array_equal(master.errs[~mask], strip["errs"][~mask])
    assert np.isfinite(master.flux).all()
    assert np.isfinite(master.errs).all()
    # master RON: numpy masked std of the combined frame (<= 8192 values: numpy agrees)
    assert master.master_ron == float(np.ma.std(np.ma.array(comb, mask=mask)))


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([(5, 7), (1, 61), (61, 1), (13, 17)]),
    numerics=st.sampled_from(steps.NUMERICS),
    n_nan=st.integers(1, 5),
)
def test_finalize_masks_every_nan_pixel(
    seed: int, shape: tuple[int, int], numerics: steps.Numerics, n_nan: int
) -> None:
    rng = np.random.default_rng(seed)
    strip = np.zeros(shape, dtype=steps.STRIP_DTYPE)
    flux = rng.normal(0.0, 5.0, shape).astype(np.float32)
    nan_at = rng.choice(flux.size, min(n_nan, flux.size - 1), replace=False)
    flux.reshape(-1)[nan_at] = np.nan
    strip["flux"] = flux
    strip["errs"] = np.float32(np.nan)
    strip["errs"][~np.isnan(flux)] = np.float32(1.0)
    master = steps.finalize(strip, LEVELS, 3.0, 3, numerics)
    nan = np.isnan(flux)
    assert master.qual[nan].all()
    assert (master.flux[nan] == np.float32(master.master_mean)).all()
    assert (master.errs[nan] == np.float32(master.raw_ron)).all()
