"""QC plots: the compiled histogram counts against numpy's, the block flags and bounds the
images and axes are drawn from, and the files the plot functions write.

Arrays are small and odd-shaped so a swapped axis or a lost edge shows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.image import imread

from mdark_dask.numerics.hotpix import HOT, NOISY, find_hot_pixels
from mdark_dask.numerics.steps import Bounds, Master
from mdark_dask.report import draw, figures

HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_counts(
    values: npt.NDArray[np.floating], shift: float, edges: npt.NDArray[np.float64], clip: bool
) -> npt.NDArray[np.int64]:
    """What the plots counted before: numpy on a float64 copy of the finite values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)] + shift
    if clip:
        v = np.clip(v, edges[0], edges[-1])
    return np.histogram(v, bins=edges)[0]


def awkward(kind: str, size: int, seed: int, dtype: type[np.floating]) -> npt.NDArray:
    """Continuous, quantized (on the edges) and heavy-tailed values, with NaN and inf."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        v = rng.normal(3.0, 2.0, size)
    elif kind == "integers":  # exactly on integer edges
        v = rng.integers(-4, 12, size).astype(np.float64)
    else:
        v = rng.standard_cauchy(size) * 5.0
    v = v.astype(dtype)
    v[rng.random(size) < 0.1] = np.nan
    v[rng.random(size) < 0.02] = np.inf
    v[rng.random(size) < 0.02] = -np.inf
    return v


@HYP
@given(
    kind=st.sampled_from(["normal", "integers", "cauchy"]),
    shape=st.sampled_from([(1,), (7,), (37, 53), (61, 1), (200, 3)]),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    bins=st.integers(1, 300),
    lo=st.sampled_from([-4.0, -1.5, 0.0, 2.0]),
    width=st.sampled_from([1.0, 8.0, 16.0, 1e-3]),
    shift=st.sampled_from([0.0, 0.25, -1000.0]),
    clip=st.booleans(),
)
def test_bin_counts_on_even_edges_are_numpys(
    kind: str,
    shape: tuple[int, ...],
    seed: int,
    dtype: type[np.floating],
    bins: int,
    lo: float,
    width: float,
    shift: float,
    clip: bool,
) -> None:
    v = awkward(kind, math.prod(shape), seed, dtype).reshape(shape)
    if shift == -1000.0:
        v = (v + np.asarray(1000.0, dtype=dtype)).astype(dtype)
    edges = np.linspace(lo, lo + width, bins + 1)
    got = figures.bin_counts(v, shift, edges, clip=clip)
    np.testing.assert_array_equal(got, reference_counts(v, shift, edges, clip))
    # and numpy's even-bin path, the one the histogram plot used
    finite = np.asarray(v, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)] + shift
    if clip:
        finite = np.clip(finite, edges[0], edges[-1])
    even = np.histogram(finite, bins=bins, range=(lo, lo + width))[0]
    np.testing.assert_array_equal(got, even)


@HYP
@given(
    kind=st.sampled_from(["normal", "integers", "cauchy"]),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    spread=st.sampled_from([1e-4, 0.3, 1.0, 2.5]),
    low=st.sampled_from([-5.0, -40.0, -3000.0]),
    clip=st.booleans(),
)
def test_bin_counts_on_the_dark_panels_edges_are_numpys(
    kind: str, seed: int, dtype: type[np.floating], spread: float, low: float, clip: bool
) -> None:
    """Linear bins up to ``10 * spread``, then logarithmic ones: the dark-current panel."""
    v = awkward(kind, 999, seed, dtype)
    v[:5] = np.asarray([1e4, 2e5, -7e3, 10 * spread, low], dtype=dtype)
    linthresh = 10 * spread
    edges = np.unique(
        np.concatenate(
            [
                np.linspace(low, linthresh, 120),
                np.geomspace(max(linthresh, 1e-3), 3e5, 80),
            ]
        )
    )
    got = figures.bin_counts(v, 0.0, edges, clip=clip)
    np.testing.assert_array_equal(got, reference_counts(v, 0.0, edges, clip))
    if clip:
        assert got.sum() == np.isfinite(v).sum()


def test_bin_counts_edges_of_every_kind() -> None:
    """No even leading bins, one bin, values exactly on every edge, and bad edges."""
    edges = np.array([0.0, 1.0, 3.0, 3.5, 10.0, 100.0])
    assert figures.even_run(edges) == (0, 1)
    v = np.concatenate([edges, edges - 1e-12, edges + 1e-12, [np.nan, np.inf, -np.inf]])
    for clip in (False, True):
        np.testing.assert_array_equal(
            figures.bin_counts(v, 0.0, edges, clip=clip), reference_counts(v, 0.0, edges, clip)
        )
    geometric = np.geomspace(1.0, 1e6, 13)
    assert figures.even_run(geometric) == (0, 1)
    np.testing.assert_array_equal(
        figures.bin_counts(v * 1e4, 0.0, geometric, clip=True),
        reference_counts(v * 1e4, 0.0, geometric, True),
    )
    one = np.array([2.0, 4.0])
    np.testing.assert_array_equal(
        figures.bin_counts(v, 0.0, one, clip=True), [v[np.isfinite(v)].size]
    )
    for bad in (np.array([1.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, np.nan])):
        with pytest.raises(ValueError, match="edges"):
            figures.bin_counts(v, 0.0, bad, clip=False)


def reference_block_or(mask: npt.NDArray, step: int) -> npt.NDArray[np.uint8]:
    """Pad to whole blocks, OR over each block (the numpy way)."""
    m = np.asarray(mask).astype(np.uint8)
    ny, nx = m.shape
    pad = np.zeros((-(-ny // step) * step, -(-nx // step) * step), dtype=np.uint8)
    pad[:ny, :nx] = m
    blocks = pad.reshape(pad.shape[0] // step, step, pad.shape[1] // step, step)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1)


@pytest.mark.parametrize("shape", [(37, 53), (5, 7), (1, 61), (61, 1), (8, 8)])
@pytest.mark.parametrize("step", [1, 2, 3, 4, 9])
def test_block_or_keeps_every_flag(shape: tuple[int, int], step: int) -> None:
    rng = np.random.default_rng(shape[0] * 7 + step)
    bpm = (rng.random(shape) < 0.02) * np.uint8(HOT) | (rng.random(shape) < 0.02) * np.uint8(NOISY)
    bpm = bpm.astype(np.uint8)
    got = figures.block_or(bpm, step)
    np.testing.assert_array_equal(got, reference_block_or(bpm, step))
    assert got.shape == (-(-shape[0] // step), -(-shape[1] // step))
    # booleans and wider integers: any non-zero pixel flags its block
    qual = rng.random(shape) < 0.05
    np.testing.assert_array_equal(figures.block_or(qual, step) != 0, reference_block_or(qual, step))
    wide = qual.astype(np.int32) * 256  # non-zero, yet zero in its low byte
    np.testing.assert_array_equal(figures.block_or(wide, step) != 0, reference_block_or(qual, step))


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 3000),
    q=st.sampled_from([0.0, 0.5, 0.9, 0.9999, 1.0]),
    scale=st.sampled_from([1e-3, 1.0, 7.0, 1e5]),
)
def test_quantile_bound_bounds_numpys_percentile(
    seed: int, size: int, q: float, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    v = (rng.gamma(3.0, scale / 3.0, size)).astype(np.float32)
    v[rng.random(size) < 0.05] = np.nan
    finite = v[np.isfinite(v)].astype(np.float64)
    bound = figures.quantile_bound(v, q)
    if not finite.size:
        assert math.isnan(bound)
        return
    exact = float(np.percentile(finite, 100 * q))
    ranked = np.sort(finite)[math.ceil(q * (finite.size - 1))]
    assert exact <= ranked <= bound <= ranked * (1 + 2.0**-8)


def test_quantile_and_range_of_nothing() -> None:
    empty = np.full((3, 4), np.nan, dtype=np.float32)
    assert math.isnan(figures.quantile_bound(empty, 0.5))
    assert all(math.isnan(x) for x in figures.finite_range(empty))
    v = np.array([[np.inf, -3.0], [np.nan, 8.5]], dtype=np.float32)
    assert figures.finite_range(v) == (-3.0, 8.5)
    assert figures.finite_range(np.array([1.0, -np.inf, np.nan])) == (1.0, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_range_scan_keeps_the_first_zeros_sign(dtype: type) -> None:
    """With an infinity the range is scanned by the compiled kernel, which replaces the
    running extreme only by a value strictly beyond it: of equal zeros, the first one's
    sign."""
    for first, second in ((-0.0, 0.0), (0.0, -0.0)):
        lo, hi = figures.finite_range(np.array([np.inf, first, second], dtype=dtype))
        assert math.copysign(1.0, lo) == math.copysign(1.0, hi) == math.copysign(1.0, first)


def test_block_or_of_empty_masks() -> None:
    for shape, step in (((0, 5), 2), ((3, 0), 2), ((0, 0), 1)):
        got = figures.block_or(np.zeros(shape, dtype=np.uint8), step)
        assert got.shape == (-(-shape[0] // step), -(-shape[1] // step))


def test_symlog_is_continuous_and_increasing() -> None:
    x = np.concatenate([-np.geomspace(1e6, 1e-3, 200), [0.0], np.geomspace(1e-3, 1e6, 200)])
    for linthresh in (0.5, 17.1, 1e3):
        y = draw.symlog(x, linthresh)
        assert np.all(np.diff(y) > 0)
        at = draw.symlog(np.array([linthresh, -linthresh]), linthresh)
        np.testing.assert_allclose(at, [linthresh, -linthresh])
        ticks = draw.symlog_ticks(-2500.0, 1.5e5, linthresh)
        assert np.all(np.diff(ticks) > 0) and ticks[0] >= -2500.0 and ticks[-1] <= 1.5e5
        assert 0.0 in ticks and 1e5 in ticks


def small_master(shape: tuple[int, int], seed: int) -> Master:
    """A master of a few thousand pixels with flagged and NaN pixels."""
    rng = np.random.default_rng(seed)
    combined = rng.normal(0.0, 2.0, shape).astype(np.float32)
    qual = (np.abs(combined) > 6.0).astype(np.uint8)
    combined[0, 0] = np.float32(500.0)
    qual[0, 0] = 1
    combined[-1, -1] = np.nan
    qual[-1, -1] = 1
    level = 1200.0
    flux = np.where(qual != 0, np.float32(0.0), combined).astype(np.float32) + np.float32(level)
    errs = np.full(shape, 0.7, dtype=np.float32)
    return Master(flux, qual, errs, level, level, 2.0, 0.7, Bounds(-6.0, 6.0), combined)


@pytest.mark.parametrize("shape", [(61, 47), (1300, 7)])
def test_plot_files_and_their_images(shape: tuple[int, int], tmp_path: Path) -> None:
    master = small_master(shape, seed=shape[0])
    rng = np.random.default_rng(5)
    noise = rng.gamma(30.0, 0.25, shape).astype(np.float32)
    peel = rng.gamma(30.0, 0.25, shape).astype(np.float32)
    peel[1, 2] = np.float32(400.0)
    peel[-1, :] = np.nan
    hot = find_hot_pixels(master.combined, master.qual, noise, peel, 600.0, 5.0, None, 6.0, 5)
    assert hot.bpm[0, 0] & HOT and hot.bpm[1, 2] & NOISY
    qc_dir = tmp_path / "qc" / "soxs_mdark"
    image, hist = draw.draw_all(figures.master_figures(master, qc_dir, "M"))
    levels = np.tile([0.0, 1.0, 1200.0, 2.0], (4, 1))
    (frames,) = draw.draw_all(
        figures.frames_figures(60000.0 + np.arange(4) / 1440, levels, qc_dir, "M")
    )
    hot_map, dist = draw.draw_all(figures.hotpix_figures(hot, noise, peel, qc_dir, "M"))
    names = [Path(p).name for p in (image, hist, frames, hot_map, dist)]
    assert names == [
        "M_image.png",
        "M_histogram.png",
        "M_frames.png",
        "M_hotpix_map.png",
        "M_dark_current.png",
    ]
    assert sorted(p.name for p in qc_dir.iterdir()) == sorted(names)  # no temporary left
    step = max(1, -(-max(shape) // figures.IMAGE_SIDE))
    expect = (-(-shape[0] // step), -(-shape[1] // step))
    # the plain images: row 0 at the bottom, a flagged pixel's block coloured
    img = imread(image)
    assert img.shape[:2] == expect
    np.testing.assert_allclose(img[-1, 0, :3], [1.0, 0.0, 0.0])  # (0, 0) masked: red
    pix = imread(hot_map)
    assert pix.shape[:2] == expect
    flags = figures.block_or(hot.bpm, step)[::-1]
    red = np.all(np.isclose(pix[..., :3], [216 / 255, 0, 0]), axis=-1)
    blue = np.all(np.isclose(pix[..., :3], [0, 51 / 255, 229 / 255]), axis=-1)
    magenta = np.all(np.isclose(pix[..., :3], [204 / 255, 0, 204 / 255]), axis=-1)
    white = np.all(pix[..., :3] == 1.0, axis=-1)
    np.testing.assert_array_equal(red, flags == HOT)
    np.testing.assert_array_equal(blue, flags == NOISY)
    np.testing.assert_array_equal(magenta, flags == HOT | NOISY)
    np.testing.assert_array_equal(white, flags == 0)
    for figure in (hist, frames, dist):
        assert imread(figure).shape[0] > 300


def test_plots_of_nothing_finite(tmp_path: Path) -> None:
    """All-NaN noise images and master: the figures are still written, without warnings."""
    shape = (9, 11)
    master = small_master(shape, seed=1)
    nan = np.full(shape, np.nan, dtype=np.float32)
    hot = find_hot_pixels(nan, master.qual, nan, nan, 600.0, 5.0, None, 6.0, 5)
    assert math.isnan(hot.noise.threshold) and not hot.bpm.any()
    paths = draw.draw_all(figures.hotpix_figures(hot, nan, nan, tmp_path, "E"))
    assert all(Path(p).stat().st_size > 0 for p in paths)


@HYP
@given(
    kind=st.sampled_from(["normal", "integers", "cauchy"]),
    seed=st.integers(0, 2**32 - 1),
    spread=st.sampled_from([1e-3, 0.3, 1.7, 25.0]),
    low=st.sampled_from([-3.0, -60.0, -2300.0]),
    high=st.sampled_from([50.0, 1.5e5]),
    clip=st.booleans(),
)
def test_bin_counts_on_symlog_edges_with_even_bins_in_the_middle(
    kind: str, seed: int, spread: float, low: float, high: float, clip: bool
) -> None:
    """The dark panel's edges as drawn: logarithmic below ``-10 * spread`` when the master
    has a pixel far below its level, even within, logarithmic above. The even run is
    found in the middle (so the pass computes most bins) and the counts are numpy's."""
    linthresh = 10 * spread
    edges = figures.symlog_edges(low * spread, high * spread, linthresh)
    first, m = figures.even_run(edges)
    assert m >= 1
    assert np.allclose(np.diff(edges[first : first + m + 1]), np.diff(edges)[first])
    v = awkward(kind, 2000, seed, np.float32) * np.float32(spread)
    v[:4] = np.asarray([low * spread, high * spread, 0.0, linthresh], dtype=np.float32)
    got = figures.bin_counts(v, 0.0, edges, clip=clip)
    np.testing.assert_array_equal(got, reference_counts(v, 0.0, edges, clip))


def test_even_run_finds_the_longest_even_stretch() -> None:
    log_lin_log = np.concatenate([[-1000.0, -100.0], np.linspace(-10, 10, 41), [100.0, 1e3]])
    assert figures.even_run(log_lin_log) == (2, 40)
    assert figures.even_run(np.linspace(0.0, 1.0, 7)) == (0, 6)
    assert figures.even_run(np.array([0.0, 1.0])) == (0, 1)


@HYP
@given(
    kind=st.sampled_from(["normal", "integers", "cauchy"]),
    seed=st.integers(0, 2**32 - 1),
    median=st.sampled_from([0.0, 0.1, 2301.987654321, -7.25]),
    clip=st.booleans(),
)
def test_bin_counts_round32_counts_the_dark_image_without_making_it(
    kind: str, seed: int, median: float, clip: bool
) -> None:
    """The dark panel bins ``float32(combined - median)`` straight from the master: the
    same counts as the dark-current image itself."""
    from mdark_dask.numerics.hotpix import dark_image

    combined = (awkward(kind, 3001, seed, np.float32) + np.float32(median)).astype(np.float32)
    dark = dark_image(combined, median)
    edges = figures.symlog_edges(-40.0, 3000.0, 5.0)
    np.testing.assert_array_equal(
        figures.bin_counts(combined, -median, edges, clip=clip, round32=True),
        figures.bin_counts(dark, 0.0, edges, clip=clip),
    )
