"""The fused level clip (:func:`mdark_dask.numerics.levelclip.level_stats`) against the
step-by-step form (:func:`tests.oracle.frame_level_reference`: the clip's bounds, its mask,
then the numpy 2.1 masked mean and std of :mod:`mdark_dask.numerics.masked`).

Both numerics must give the same four float64 numbers bit for bit: on dark-like images
with outliers and non-finite values, on odd sizes around the 8192-value buffers of the
pairwise sums, on degenerate images (constant, all masked, one value), and on a real-size
frame.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdark_dask.numerics import steps
from mdark_dask.numerics.levelclip import _float32_bounds
from mdark_dask.numerics.masked import BUFFER, pairwise_buffer
from tests import oracle

F32 = npt.NDArray[np.float32]

HYP = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SIZES = [1, 2, 7, 8, 9, 127, 128, 129, 1000, 8191, 8192, 8193, 16384 + 129, 3 * 8192 + 7]


def same(a: steps.FrameLevel, b: steps.FrameLevel) -> bool:
    """Equal bit for bit, NaN included."""
    return bool(np.array(a, dtype=np.float64).tobytes() == np.array(b, dtype=np.float64).tobytes())


def check(img: F32, sigma: float, maxiters: int) -> None:
    for numerics in steps.NUMERICS:
        got = steps.frame_level(img, sigma, maxiters, numerics)
        ref = oracle.frame_level_reference(img, sigma, maxiters, numerics)
        assert isinstance(got, steps.FrameLevel)
        assert same(got, ref), (numerics, got, ref)


def dark(rng: np.random.Generator, n: int, level: float, scale: float) -> F32:
    img = (level + scale * rng.standard_normal(n)).astype(np.float32)
    if n >= 4:
        idx = rng.choice(n, size=max(1, n // 60), replace=False)
        img[idx] += rng.uniform(-30, 300, idx.size).astype(np.float32) * np.float32(scale)
    return img


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from(SIZES) | st.integers(1, 40000),
    sigma=st.sampled_from([1.0, 2.0, 2.5, 3.0, 5.0]),
    maxiters=st.integers(0, 7),
    level=st.sampled_from([0.0, -50.0, 2300.0, 1e6]),
    scale=st.sampled_from([0.0, 1e-3, 1.0, 7.7, 300.0]),
    nonfinite=st.integers(0, 4),
    negzero=st.booleans(),
    width=st.integers(1, 9),
)
def test_fused_level_equals_the_reference(
    seed: int,
    n: int,
    sigma: float,
    maxiters: int,
    level: float,
    scale: float,
    nonfinite: int,
    negzero: bool,
    width: int,
) -> None:
    rng = np.random.default_rng(seed)
    img = dark(rng, n, level, scale)
    if nonfinite:
        specials = np.array([np.nan, np.inf, -np.inf, np.nan], dtype=np.float32)
        img[rng.integers(0, n, nonfinite)] = specials[:nonfinite]
    if negzero:
        img[rng.integers(0, n, 1 + n // 10)] = np.float32(-0.0)
    rows = width if n % width == 0 else 1
    check(img.reshape(rows, -1), sigma, maxiters)


@pytest.mark.parametrize("n", SIZES)
def test_fused_level_sizes(n: int) -> None:
    rng = np.random.default_rng(n)
    check(dark(rng, n, 2300.0, 7.7).reshape(1, n), 3.0, 3)
    check(dark(rng, n, 2300.0, 7.7).reshape(n, 1), 2.0, 5)


@pytest.mark.parametrize(
    "img",
    [
        np.full((5, 7), 2300.0, dtype=np.float32),
        np.full((5, 7), np.nan, dtype=np.float32),
        np.array([[np.inf, -np.inf, np.nan]], dtype=np.float32),
        np.array([[np.float32(3.5)]], dtype=np.float32),
        np.array([[-0.0, 0.0, -0.0]], dtype=np.float32),
        np.array([[3.0e38, 3.0e38, -3.0e38, 1.0]], dtype=np.float32),  # float32 sums overflow
        np.array([[1e-45, -1e-45, 0.0, 2e-45]], dtype=np.float32),  # subnormals
    ],
    ids=["constant", "all-nan", "non-finite", "one", "zeros", "overflow", "subnormal"],
)
@pytest.mark.parametrize("maxiters", [0, 1, 3, 10])
def test_fused_level_degenerate_images(img: F32, maxiters: int) -> None:
    with np.errstate(all="ignore"):
        check(img, 3.0, maxiters)


def test_fused_level_non_contiguous_input_is_read_in_c_order() -> None:
    img = dark(np.random.default_rng(7), 37 * 53, 2300.0, 7.7).reshape(37, 53)
    for view in (np.asfortranarray(img), img.T, img[::2, 1::3]):
        check(view, 3.0, 3)


@pytest.mark.slow
def test_fused_level_real_size_frame() -> None:
    """A 2040 x 2040 dark-like frame: the float32 sums drift, every iteration runs."""
    rng = np.random.default_rng(11)
    img = dark(rng, 2040 * 2040, 2300.0, 7.7).reshape(2040, 2040)
    img[rng.integers(0, 2040, 50), rng.integers(0, 2040, 50)] = np.nan
    check(img, 3.0, 3)


# the pieces


def numpy_pairwise(a: npt.NDArray[np.floating], lo: int, n: int) -> np.floating:
    """numpy 2.1's ``pairwise_sum`` (``loops_utils.h.src``), recursive and in plain Python,
    as the definition the compiled :func:`pairwise_buffer` is checked against."""
    if n < 8:
        res = a.dtype.type(-0.0)
        for i in range(n):
            res += a[lo + i]
        return res
    if n <= 128:
        r = [a[lo + k] for k in range(8)]
        stop = n - n % 8
        for i in range(8, stop, 8):
            for k in range(8):
                r[k] += a[lo + i + k]
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for i in range(stop, n):
            res += a[lo + i]
        return res
    half = n // 2
    half -= half % 8
    return numpy_pairwise(a, lo, half) + numpy_pairwise(a, lo + half, n - half)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_buffer_is_numpys_pairwise_order(dtype: type[np.floating]) -> None:
    rng = np.random.default_rng(3)
    a = (2300.0 + 7.7 * rng.standard_normal(BUFFER + 72)).astype(dtype)
    a[rng.integers(0, BUFFER, 20)] = -0.0
    for n in [*range(1, 300), 1000, 4095, 4096, 4097, 8000, 8191, BUFFER]:
        got = pairwise_buffer(a, n)
        want = numpy_pairwise(a, 0, n)
        assert np.asarray(got, dtype=dtype).tobytes() == np.asarray(want, dtype=dtype).tobytes()


@given(
    bound=st.floats(allow_nan=True, allow_infinity=True),
    v=st.floats(width=32, allow_nan=True, allow_infinity=True),
)
def test_float32_bounds_compare_as_float64(bound: float, v: float) -> None:
    """``lo32 <= v`` exactly when ``lo <= float64(v)``, and ``v <= hi32`` when
    ``float64(v) <= hi``, for every float32 ``v``."""
    lo32, hi32 = _float32_bounds(bound, bound)
    x = np.float32(v)
    assert (x >= lo32) == (np.float64(x) >= bound)
    assert (x <= hi32) == (np.float64(x) <= bound)
    assert math.isnan(lo32) == math.isnan(bound)


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from(SIZES) | st.integers(1, 40000),
    bounds=st.tuples(st.floats(80.0, 100.0), st.floats(100.0, 130.0)),
    mean=st.floats(90.0, 110.0),
)
def test_accurate_sums_are_numpys_float64_sums(
    seed: int, n: int, bounds: tuple[float, float], mean: float
) -> None:
    """Accurate mode's kept sum is ``np.sum(np.where(kept, x, 0), dtype=np.float64)`` bit
    for bit (numpy casts in 8192-value buffers, each summed pairwise), and the squared
    anomalies are summed the same way: an exact definition, with a numpy oracle."""
    from mdark_dask.numerics.levelclip import _kept_squares, _kept_sum

    rng = np.random.default_rng(seed)
    x = dark(rng, n, 100.0, 5.0)
    x[rng.random(n) < 0.01] = np.nan
    lo, hi = np.float32(bounds[0]), np.float32(bounds[1])
    kept = np.isfinite(x) & (x >= lo) & (x <= hi)
    total, count = _kept_sum(x, lo, hi, False)
    assert count == int(kept.sum())
    assert total == np.sum(np.where(kept, x, np.float32(0.0)), dtype=np.float64)
    squares = np.where(kept, (x.astype(np.float64) - mean) ** 2, 0.0)
    oracle = 0.0
    for start in range(0, n, BUFFER):  # numpy's buffered reduction, one buffer at a time
        oracle += float(np.sum(squares[start : start + BUFFER]))
    assert _kept_squares(x, lo, hi, mean, False) == oracle


def test_infinite_bounds_count_infinite_values_as_the_reference_does() -> None:
    """A float32 std that overflows (soxspipe numerics) gives infinite bounds; numpy's
    masked statistics then count an infinite pixel as inside, and so must the fused
    clip (NaN, not inf, for the std here)."""
    img = np.array([3e19, -3e19, np.inf, 1.0, 2.0, 4.0, 5.0, 7.0], dtype=np.float32)
    check(img.reshape(2, 4), 3.0, 3)
    level = steps.frame_level(img, 3.0, 3, "soxspipe-0.17.4")
    assert (level.lo, level.hi) == (-math.inf, math.inf)
    assert math.isnan(level.std)


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from(SIZES) | st.integers(1, 20000),
    bounds=st.tuples(st.floats(80.0, 100.0), st.floats(100.0, 130.0)),
    mean=st.floats(90.0, 110.0),
)
def test_soxspipe_sums_are_sequential_float32_sums(
    seed: int, n: int, bounds: tuple[float, float], mean: float
) -> None:
    """soxspipe mode's kept sum and squares are bottleneck's sequential float32 sums from
    +0.0 over the kept values in C order (``np.add.accumulate`` is that chain)."""
    from mdark_dask.numerics.levelclip import _kept_squares, _kept_sum

    rng = np.random.default_rng(seed)
    x = dark(rng, n, 100.0, 5.0)
    x[rng.random(n) < 0.01] = np.nan
    x[rng.random(n) < 0.01] = np.float32(-0.0)
    lo, hi = np.float32(bounds[0]), np.float32(bounds[1])
    kept = np.isfinite(x) & (x >= lo) & (x <= hi)
    zero = np.zeros(1, dtype=np.float32)
    total, count = _kept_sum(x, lo, hi, True)
    assert count == int(kept.sum())
    chain = np.add.accumulate(np.concatenate([zero, x[kept]]), dtype=np.float32)[-1]
    assert np.float32(total).tobytes() == chain.tobytes()
    d = x[kept] - np.float32(mean)
    chain = np.add.accumulate(np.concatenate([zero, d * d]), dtype=np.float32)[-1]
    assert np.float32(_kept_squares(x, lo, hi, mean, True)).tobytes() == chain.tobytes()


def test_the_compiled_clip_refuses_what_it_cannot_read() -> None:
    """The C loops read one contiguous float32 axis: anything else is an error, not a
    crash or a silent copy in another dtype."""
    from mdark_dask.numerics import levelclip

    img = dark(np.random.default_rng(1), 64, 2300.0, 7.7)
    unreadable: list[F32] = [img.astype(np.float64), img.reshape(8, 8), img[::2]]
    for bad in unreadable:
        for fn in (levelclip.clip_bounds, levelclip.level_bounds, levelclip.level_stats):
            with pytest.raises(ValueError):
                fn(bad, 3.0, 3, True)
    with pytest.raises(ValueError):
        pairwise_buffer(img, 0)
    with pytest.raises(ValueError):
        pairwise_buffer(img, 65)
    with pytest.raises(ValueError):
        pairwise_buffer(img.astype(np.float16), 8)
