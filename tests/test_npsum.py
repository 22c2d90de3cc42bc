"""numpy 2.1's summation order, replayed by :mod:`mdark_dask.numerics.masked`.

Up to 8192 elements (one ufunc buffer) the installed numpy sums in the same pairwise order
as numpy 2.1, so ``np.sum`` and ``np.ma.mean``/``np.ma.std`` are exact oracles there.
Beyond one buffer the order is checked against its definition (pairwise within each
8192-element buffer, buffers accumulated in order) and, for magnitude, against
``math.fsum``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdark_dask.numerics.masked import masked_mean_std, sum32, sum64

BUFFER = 8192
SIZES = [1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 1000, 1961, 4097, 8191, 8192]
SHAPES_2D = [(37, 53), (53, 37), (1, 8192), (8192, 1), (64, 128), (90, 91)]


def noisy32(shape: int | tuple[int, ...], seed: int) -> npt.NDArray[np.float32]:
    """Pedestal plus noise: float32 rounding makes every summation order visible."""
    rng = np.random.default_rng(seed)
    return rng.normal(2300.0, 7.7, shape).astype(np.float32)


def exact_bits(a: np.floating, b: np.floating) -> bool:
    return bool(np.asarray(a).tobytes() == np.asarray(b).tobytes())


@pytest.mark.parametrize("n", SIZES)
def test_sum32_matches_numpy_up_to_one_buffer(n: int) -> None:
    for seed in range(3):
        a = noisy32(n, seed)
        got = sum32(a)
        assert isinstance(got, np.float32)
        assert exact_bits(got, np.sum(a))
        mixed = (a - np.float32(2300.0)) * np.float32(1e3)
        assert exact_bits(sum32(mixed), np.sum(mixed))


@pytest.mark.parametrize("n", SIZES)
def test_sum64_matches_numpy_up_to_one_buffer(n: int) -> None:
    for seed in range(3):
        a = noisy32(n, seed).astype(np.float64) * 1.000001 + 1e-9
        got = sum64(a)
        assert isinstance(got, np.float64)
        assert exact_bits(got, np.sum(a))


@pytest.mark.parametrize("shape", SHAPES_2D)
def test_sums_of_2d_arrays_are_c_order_sums(shape: tuple[int, int]) -> None:
    a = noisy32(shape, 4)
    assert exact_bits(sum32(a), np.sum(a))
    assert exact_bits(sum32(a), np.sum(a.ravel()))
    b = a.astype(np.float64) * 1.1
    assert exact_bits(sum64(b), np.sum(b))
    # a transposed (Fortran-ordered) view is summed in the C order of its values
    t = a.T
    assert exact_bits(sum32(t), np.sum(np.ascontiguousarray(t)))
    assert exact_bits(sum64(b.T), np.sum(np.ascontiguousarray(b.T)))


def test_empty_sums_are_zero() -> None:
    assert sum32(np.empty(0, dtype=np.float32)) == 0
    assert sum64(np.empty(0, dtype=np.float64)) == 0


def _buffered_model32(a: npt.NDArray[np.float32]) -> np.float32:
    """numpy 2.1's order by definition: np.sum (exact up to one buffer) per 8192-element
    buffer, buffers added to a float32 accumulator in order."""
    flat = np.ascontiguousarray(a).ravel()
    acc = np.float32(0.0)
    for start in range(0, flat.size, BUFFER):
        acc = np.float32(acc + np.sum(flat[start : start + BUFFER]))
    return acc


def _buffered_model64(a: npt.NDArray[np.float64]) -> np.float64:
    flat = np.ascontiguousarray(a).ravel()
    acc = np.float64(0.0)
    for start in range(0, flat.size, BUFFER):
        acc = np.float64(acc + np.sum(flat[start : start + BUFFER]))
    return acc


@pytest.mark.parametrize("n", [8193, 8200, 16384, 16385, 3 * 8192 + 129, 100_003])
def test_sums_beyond_one_buffer_follow_the_buffered_order(n: int) -> None:
    a = noisy32(n, 6)
    assert exact_bits(sum32(a), _buffered_model32(a))
    b = a.astype(np.float64) * 1.000001
    assert exact_bits(sum64(b), _buffered_model64(b))


def test_large_frame_sum_sanity_against_fsum() -> None:
    """A 2040x2040 NIR-like frame at 2300 e-: float32 result close to the exact sum."""
    a = np.random.default_rng(7).normal(2300, 7.7, (2040, 2040)).astype(np.float32)
    got = sum32(a)
    assert isinstance(got, np.float32)
    exact = math.fsum(a.ravel().astype(np.float64).tolist())
    assert abs(float(got) - exact) <= 1e-6 * abs(exact)
    assert exact_bits(got, _buffered_model32(a))
    # the pairwise order is far better than a sequential float32 sum
    sequential = np.add.accumulate(a.ravel(), dtype=np.float32)[-1]
    assert abs(float(sequential) - exact) > 10 * abs(float(got) - exact)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(0, 300), st.integers(8000, 20000)),
    magnitude=st.sampled_from([1, 10, 100, 800]),
)
def test_sum32_of_small_integers_is_exact(seed: int, n: int, magnitude: int) -> None:
    """Integer data with |partial sums| < 2**24: every order gives the exact sum."""
    rng = np.random.default_rng(seed)
    ints = rng.integers(-magnitude, magnitude + 1, n)
    assert n * magnitude < 2**24
    got = sum32(ints.astype(np.float32))
    assert int(got) == int(ints.sum())
    assert float(got) == float(ints.sum())
    got64 = sum64(ints.astype(np.float64))
    assert int(got64) == int(ints.sum())


# ------------------------------------------------------------------------------------------
# masked_mean_std: np.ma.mean / np.ma.std (ddof 0) of float32 data


@pytest.mark.parametrize("shape", [(37, 53), (5, 7), (1, 61), (61, 1), (64, 128), (1,)])
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.9])
def test_masked_mean_std_matches_numpy_ma(shape: tuple[int, ...], fraction: float) -> None:
    rng = np.random.default_rng(int(fraction * 100) + shape[0])
    values = noisy32(shape, shape[0])
    mask = rng.random(shape) < fraction
    if mask.all():
        mask.reshape(-1)[0] = False
    mean, std = masked_mean_std(values, mask)
    assert isinstance(mean, float)
    assert isinstance(std, float)
    ma = np.ma.array(values, mask=mask)
    assert mean == float(np.ma.mean(ma))
    assert std == float(np.ma.std(ma))


def test_masked_values_take_no_part_even_when_not_finite() -> None:
    values = noisy32((37, 53), 8)
    mask = np.zeros(values.shape, dtype=bool)
    values[3, 4], values[5, 6], values[7, 8] = np.nan, np.inf, -np.inf
    mask[3, 4] = mask[5, 6] = mask[7, 8] = True
    mask[0, :10] = True
    mean, std = masked_mean_std(values, mask)
    ma = np.ma.array(values, mask=mask)
    assert math.isfinite(mean) and math.isfinite(std)
    assert mean == float(np.ma.mean(ma))
    assert std == float(np.ma.std(ma))


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (37, 53)])
def test_masked_mean_std_all_masked_is_nan(shape: tuple[int, int]) -> None:
    values = noisy32(shape, 1)
    mean, std = masked_mean_std(values, np.ones(shape, dtype=bool))
    assert math.isnan(mean)
    assert math.isnan(std)


def test_masked_mean_std_constant_data() -> None:
    values = np.full((5, 7), 1234.5, dtype=np.float32)
    mean, std = masked_mean_std(values, np.zeros((5, 7), dtype=bool))
    assert mean == 1234.5
    assert std == 0.0


def test_masked_mean_std_needs_a_mask_value_per_value() -> None:
    values = noisy32((5, 7), 2)
    with pytest.raises(ValueError):
        masked_mean_std(values, np.zeros(34, dtype=bool))
    # any shape with as many values is read in C order, as the flat arrays are
    mask = np.zeros((5, 7), dtype=bool)
    mask[0, :3] = True
    assert masked_mean_std(values, mask.reshape(7, 5)) == masked_mean_std(values, mask)
