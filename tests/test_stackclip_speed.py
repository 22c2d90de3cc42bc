"""The tiled strip kernel (:mod:`mdark_dask.numerics.stackclip`) against the astropy-based oracle.

:func:`mdark_dask.numerics.stackclip.stack_strip_kernel` sorts whole tiles of columns with one
comparator network, runs the first clip iteration across the columns, regroups the
columns still clipping by their count of values, and sums with the values left out added
as ``+0.0``. Each of these must give the bytes of the one-pixel-at-a-time computation, so
every field of the strip (NaNs and the sign of zero included) is compared byte for byte
with :func:`tests.oracle.stack_strip_reference` on data made to hit the corners:
ties (MAD = 0), NaN and infinities (fewer values in some columns), ``-0.0``, outliers
that take several iterations, frame counts around the network's powers of two and tile
widths that split the columns unevenly.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from astropy.utils.exceptions import AstropyUserWarning
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdark_dask.numerics import stackclip, steps
from tests import oracle

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

HYP = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def reference(e: F32, levels: F64, ron: float, sigma: float, maxiters: int) -> npt.NDArray[np.void]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        out: npt.NDArray[np.void] = oracle.stack_strip_reference(e, levels, ron, sigma, maxiters)
    return out


def kernel(
    e: F32, levels: F64, ron: float, sigma: float, maxiters: int, tile_bytes: int
) -> npt.NDArray[np.void]:
    """``steps.stack_strip`` with the tile width of the kernel chosen."""
    shape = e.shape[1:]
    fields = {
        name: np.empty(shape, dtype=steps.STRIP_DTYPE[name])
        for name in steps.STRIP_DTYPE.names or ()
    }
    stackclip.stack_strip_kernel(
        np.ascontiguousarray(e, dtype=np.float32),
        np.ascontiguousarray(levels[:, 0]),
        np.ascontiguousarray(levels[:, 1]),
        np.ascontiguousarray(levels[:, 2]),
        np.float32(float(ron) ** 2),
        float(sigma),
        int(maxiters),
        fields["flux"],
        fields["errs"],
        fields["mask"],
        fields["noise"],
        fields["noise_peel"],
        float(ron),
        steps.PEEL_SIGMA,
        tile_bytes,
    )
    out = np.empty(shape, dtype=steps.STRIP_DTYPE)
    for name, values in fields.items():
        out[name] = values
    return out


#: The kernel's NaN: quiet, sign bit clear (``np.float32(np.nan)``), as bottleneck's
#: ``nanmean`` gives for a pixel with nothing kept.
QUIET_NAN = np.float32(np.nan).view(np.uint32)


def assert_same_bytes(got: npt.NDArray[np.void], want: npt.NDArray[np.void]) -> None:
    """Every field byte for byte, except the sign of the reference's NaN in ``flux`` and
    ``errs`` of pixels with nothing kept: numpy's ``0 / 0`` there is the x86 default NaN
    (sign bit set); the kernel writes the quiet NaN with the sign bit clear, as it always
    has, and that is checked instead."""
    assert got.dtype == want.dtype == steps.STRIP_DTYPE
    assert got.shape == want.shape
    for name in steps.STRIP_DTYPE.names or ():
        a = np.ascontiguousarray(got[name])
        b = np.ascontiguousarray(want[name])
        if name in ("flux", "errs"):
            nan = np.isnan(b)
            np.testing.assert_array_equal(np.isnan(a), nan, err_msg=name)
            assert (a[nan].view(np.uint32) == QUIET_NAN).all(), name
            a, b = a[~nan], b[~nan]
        differ = a.view(np.uint8) != b.view(np.uint8)
        assert not differ.any(), (name, np.argwhere(differ.reshape(*a.shape, -1).any(-1))[:5])


def corner_stack(
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    spread: int,
    p_nonfinite: float,
    p_outlier: float,
    zero_level: bool,
) -> tuple[F32, F64]:
    """Prepared frames with ties, NaN/+-inf, -0.0, outliers; levels that mask some."""
    base = rng.integers(-3, 4, shape)
    values = base[None] + rng.integers(-spread, spread + 1, (n, *shape))
    e = values.astype(np.float32) * np.float32(0.5)
    if zero_level:
        means = np.zeros(n)
        e[rng.random(e.shape) < 0.2] = np.float32(-0.0)  # -0.0 - 0.0 stays -0.0
    else:
        means = rng.choice([-1.25, 0.0, 0.5, 3.0], n) + rng.normal(0.0, 0.3, n)
        e += means[:, None, None].astype(np.float32)
    hit = rng.random(e.shape) < p_outlier
    e[hit] += (
        rng.choice([-1.0, 1.0], int(hit.sum())) * rng.uniform(5, 500, int(hit.sum()))
    ).astype(np.float32)
    bad = rng.random(e.shape) < p_nonfinite
    e[bad] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), int(bad.sum()))
    half = rng.choice([0.5, 2.0, 50.0], n)
    levels = np.stack([means - half, means + half, means, np.full(n, 1.0)], axis=1)
    return e, levels


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.one_of(st.integers(1, 24), st.sampled_from([31, 32, 33, 47])),
    shape=st.sampled_from([(1, 1), (1, 17), (3, 5), (2, 33), (7, 3), (1, 49)]),
    spread=st.sampled_from([0, 1, 2, 40]),
    p_nonfinite=st.sampled_from([0.0, 0.0, 0.05, 0.3, 1.0]),
    p_outlier=st.sampled_from([0.0, 0.05, 0.2, 0.45]),
    zero_level=st.booleans(),
    sigma=st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0]),
    maxiters=st.sampled_from([1, 2, 3, 5, 10]),
    ron=st.sampled_from([0.0, 0.7, 7.3]),
    tile_bytes=st.sampled_from([1, 1200, stackclip.TILE_BYTES]),
)
def test_kernel_bytes_equal_the_reference(
    seed: int,
    n: int,
    shape: tuple[int, int],
    spread: int,
    p_nonfinite: float,
    p_outlier: float,
    zero_level: bool,
    sigma: float,
    maxiters: int,
    ron: float,
    tile_bytes: int,
) -> None:
    rng = np.random.default_rng(seed)
    e, levels = corner_stack(rng, n, shape, spread, p_nonfinite, p_outlier, zero_level)
    want = reference(e, levels, ron, sigma, maxiters)
    assert_same_bytes(kernel(e, levels, ron, sigma, maxiters, tile_bytes), want)
    if tile_bytes == stackclip.TILE_BYTES:
        assert_same_bytes(steps.stack_strip(e, levels, ron, sigma, maxiters), want)


@pytest.mark.parametrize("n", [5, 19, 20, 21, 64])
def test_dark_like_strip_bytes_equal_the_reference(n: int) -> None:
    """Noise around a pedestal with cosmic rays, hot, cold, telegraph and NaN pixels, over
    several tiles of columns (several clip iterations, peeling, fewer values)."""
    rng = np.random.default_rng(n)
    shape = (3, 450)
    e = rng.normal(2300.0, 7.3, (n, *shape)).astype(np.float32)
    hit = rng.random(e.shape) < 0.02
    e[hit] += rng.uniform(30, 3000, int(hit.sum())).astype(np.float32)
    e[:, 0, 5] = np.float32(60000.0)
    e[: n // 3, 1, 7] += np.float32(80.0)  # telegraph: the same level in several frames
    e[rng.random(e.shape) < 0.01] = np.nan
    e[:, 2, 9] = np.nan
    means = 2300.0 + rng.normal(0.0, 0.5, n)
    levels = np.stack([means - 40.0, means + 40.0, means, np.full(n, 7.0)], axis=1)
    want = reference(e, levels, 7.3, 3.0, 3)
    assert_same_bytes(steps.stack_strip(e, levels, 7.3, 3.0, 3), want)
    assert_same_bytes(kernel(e, levels, 7.3, 3.0, 3, 1), want)


def test_empty_strips() -> None:
    levels = np.zeros((0, 4))
    out = kernel(np.empty((0, 2, 3), dtype=np.float32), levels, 7.3, 3.0, 3, stackclip.TILE_BYTES)
    assert np.isnan(out["flux"]).all() and np.isnan(out["noise_peel"]).all()
    assert (out["mask"] == 1).all()
    for shape in [(3, 0, 5), (3, 4, 0)]:
        e = np.empty(shape, dtype=np.float32)
        assert steps.stack_strip(e, np.zeros((3, 4)), 7.3, 3.0, 3).shape == shape[1:]


@pytest.mark.parametrize("n", range(1, 17))
def test_network_sorts_every_zero_one_input(n: int) -> None:
    """The 0-1 principle: a comparator network sorts everything if it sorts all 0/1 inputs."""
    net = stackclip.batcher_network(n)
    assert ((net[:, 0] < net[:, 1]) & (net[:, 1] < n) & (net[:, 0] >= 0)).all()
    cols = np.arange(2**n, dtype=np.int64)
    key = ((cols[None, :] >> np.arange(n)[:, None]) & 1).astype(np.float32)
    stackclip._sort_columns(key, net, key.shape[1])
    assert (np.diff(key, axis=0) >= 0).all()


@pytest.mark.parametrize("n", [17, 20, 33, 100, 257])
def test_network_sorts_and_keeps_signed_zeros(n: int) -> None:
    rng = np.random.default_rng(n)
    key = rng.choice(np.array([-0.0, 0.0, 1.0, -1.0, np.inf], dtype=np.float32), (n, 300))
    key[:, :150] = rng.normal(size=(n, 150)).astype(np.float32)
    want = np.sort(key, axis=0)
    negative_zeros = np.signbit(key) & (key == 0)
    stackclip._sort_columns(key, stackclip.batcher_network(n), key.shape[1])
    np.testing.assert_array_equal(key, want)
    # every column is a permutation of its values: no zero changed its sign
    np.testing.assert_array_equal((np.signbit(key) & (key == 0)).sum(0), negative_zeros.sum(0))


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.sampled_from([-7.0, -2.5, -1.0, 0.0, 0.5, 1.0, 1.5, 4.0, 1e3]), min_size=1, max_size=23
    ),
    shift=st.sampled_from([0.0, 0.1, -3.3]),
)
def test_tile_bounds_equal_the_walk(values: list[float], shift: float) -> None:
    """The first clip iteration across columns: the smallest larger-end deviation over the
    runs of k + 1 sorted values is the walk's (and numpy's) k-th smallest deviation."""
    s = np.sort(np.asarray(values, dtype=np.float32) + np.float32(shift))
    n = s.size
    s64 = s.astype(np.float64)
    med = stackclip._median_sorted(s64, 0, n)
    assert med == np.median(s64)
    deviations = np.sort(np.abs(s64 - med))
    for k in range(n):
        out = np.empty(2)
        stackclip._kth_deviation_tile(
            np.repeat(s[:, None], 2, axis=1), n, 2, np.full(2, med), k, out
        )
        assert out[0] == out[1] == deviations[k] == stackclip._kth_deviation(s64, 0, n, med, k)
    tile = np.ascontiguousarray(np.repeat(s[:, None], 3, axis=1))
    got = [np.empty(3) for _ in range(4)]
    stackclip._bounds_tile(tile, n, 3, 3.0, *got)
    std = stackclip._mad_std(s64, 0, n, med)
    assert (got[0] == med).all() and (got[1] == std).all()
    assert (got[2] == med - 3.0 * std).all() and (got[3] == med + 3.0 * std).all()


def test_strip_kernel_clip_equals_clip_bounds_sorted() -> None:
    """The regrouped later iterations give the one-pixel clip's bounds: the kept values of
    every pixel are those inside :func:`stackclip.clip_bounds_sorted`'s bounds."""
    rng = np.random.default_rng(5)
    n, shape = 12, (4, 70)
    e = rng.normal(0.0, 1.0, (n, *shape)).astype(np.float32)
    tail = rng.random(e.shape) < 0.15
    e[tail] *= np.float32(25.0)  # heavy tails: three or more iterations
    e[rng.random(e.shape) < 0.05] = np.nan
    levels = np.stack([np.full(n, -1e9), np.full(n, 1e9), np.zeros(n), np.ones(n)], axis=1)
    out = kernel(e, levels, 1.0, 2.0, 10, 1)
    kept_sum = np.zeros(shape, dtype=np.float32)
    for y, x in itertools.product(range(shape[0]), range(shape[1])):
        v = e[:, y, x].astype(np.float64)
        s = np.sort(v[np.isfinite(v)])
        lo, hi = stackclip.clip_bounds_sorted(s, s.size, 2.0, 10)
        keep = (v >= lo) & (v <= hi)
        acc = np.float32(0.0)
        for value in e[keep, y, x]:
            acc = np.float32(acc + value)
        kept_sum[y, x] = acc / np.float32(keep.sum()) if keep.any() else np.nan
    np.testing.assert_array_equal(out["flux"], kept_sum)


def test_kernel_checks_its_arrays_and_fills_strided_outputs() -> None:
    """The C kernel takes raw pointers: the wrapper refuses what it cannot read safely and
    fills outputs that are not contiguous (fields of a structured array) with the same
    bytes as contiguous ones."""
    rng = np.random.default_rng(3)
    e, levels = corner_stack(rng, 7, (3, 21), 2, 0.05, 0.1, False)
    want = kernel(e, levels, 7.3, 3.0, 3, stackclip.TILE_BYTES)
    out = np.zeros(e.shape[1:], dtype=steps.STRIP_DTYPE)
    good: dict[str, Any] = {
        "e": e,
        "level_lo": np.ascontiguousarray(levels[:, 0]),
        "level_hi": np.ascontiguousarray(levels[:, 1]),
        "level_mean": np.ascontiguousarray(levels[:, 2]),
        "ron2": np.float32(7.3**2),
        "sigma": 3.0,
        "maxiters": 3,
        **{name: out[name] for name in ("flux", "errs", "mask", "noise", "noise_peel")},
        "ron": 7.3,
        "peel_sigma": steps.PEEL_SIGMA,
    }
    assert not good["flux"].flags.c_contiguous
    stackclip.stack_strip_kernel(**good)
    assert_same_bytes(out, want)
    bad: list[tuple[str, Any, type[Exception], str]] = [
        ("e", e.astype(np.float64), ValueError, "float32"),
        ("e", e[:, :, ::2], ValueError, "float32"),
        ("ron2", 7.3**2, TypeError, "ron2"),
        ("level_mean", good["level_mean"][:-1], ValueError, "level"),
        ("flux", good["flux"][:-1], ValueError, "output"),
        ("mask", good["mask"].astype(bool), ValueError, "output"),
    ]
    for name, value, error, match in bad:
        with pytest.raises(error, match=match):
            stackclip.stack_strip_kernel(**{**good, name: value})
    with pytest.raises(ValueError, match="range"):
        stackclip._mad_std(np.arange(3.0), 1, 1, 0.0)
    with pytest.raises(ValueError, match="comparator"):
        stackclip._sort_columns(np.zeros((3, 4), np.float32), np.array([[0, 3]]), 4)
