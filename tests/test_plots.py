"""QC plots: the compiled histogram counts against numpy's, the block flags and bounds the
images and axes are drawn from, and the files the plot functions write.

Arrays are small and odd-shaped so a swapped axis or a lost edge shows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdark_dask.numerics.hotpix import HOT, NOISY, find_hot_pixels
from mdark_dask.numerics.steps import Bounds, Master
from mdark_dask.report import axes, binning, canvas, draw, figures
from mdark_dask.report.canvas import Lines, Markers, Panel, Picture, Raster, Rect

T = TypeVar("T")

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
    got = binning.bin_counts(v, shift, edges, clip=clip)
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
    got = binning.bin_counts(v, 0.0, edges, clip=clip)
    np.testing.assert_array_equal(got, reference_counts(v, 0.0, edges, clip))
    if clip:
        assert got.sum() == np.isfinite(v).sum()


def test_bin_counts_edges_of_every_kind() -> None:
    """No even leading bins, one bin, values exactly on every edge, and bad edges."""
    edges = np.array([0.0, 1.0, 3.0, 3.5, 10.0, 100.0])
    assert binning.even_run(edges) == (0, 1)
    v = np.concatenate([edges, edges - 1e-12, edges + 1e-12, [np.nan, np.inf, -np.inf]])
    for clip in (False, True):
        np.testing.assert_array_equal(
            binning.bin_counts(v, 0.0, edges, clip=clip), reference_counts(v, 0.0, edges, clip)
        )
    geometric = np.geomspace(1.0, 1e6, 13)
    assert binning.even_run(geometric) == (0, 1)
    np.testing.assert_array_equal(
        binning.bin_counts(v * 1e4, 0.0, geometric, clip=True),
        reference_counts(v * 1e4, 0.0, geometric, True),
    )
    one = np.array([2.0, 4.0])
    np.testing.assert_array_equal(
        binning.bin_counts(v, 0.0, one, clip=True), [v[np.isfinite(v)].size]
    )
    for bad in (np.array([1.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, np.nan])):
        with pytest.raises(ValueError, match="edges"):
            binning.bin_counts(v, 0.0, bad, clip=False)


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
    bound = binning.quantile_bound(v, q)
    if not finite.size:
        assert math.isnan(bound)
        return
    exact = float(np.percentile(finite, 100 * q))
    ranked = np.sort(finite)[math.ceil(q * (finite.size - 1))]
    assert exact <= ranked <= bound <= ranked * (1 + 2.0**-8)


def test_quantile_and_range_of_nothing() -> None:
    empty = np.full((3, 4), np.nan, dtype=np.float32)
    assert math.isnan(binning.quantile_bound(empty, 0.5))
    assert all(math.isnan(x) for x in binning.finite_range(empty))
    v = np.array([[np.inf, -3.0], [np.nan, 8.5]], dtype=np.float32)
    assert binning.finite_range(v) == (-3.0, 8.5)
    assert binning.finite_range(np.array([1.0, -np.inf, np.nan])) == (1.0, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_range_scan_keeps_the_first_zeros_sign(dtype: type) -> None:
    """With an infinity the range is scanned by the compiled kernel, which replaces the
    running extreme only by a value strictly beyond it: of equal zeros, the first one's
    sign."""
    for first, second in ((-0.0, 0.0), (0.0, -0.0)):
        lo, hi = binning.finite_range(np.array([np.inf, first, second], dtype=dtype))
        assert math.copysign(1.0, lo) == math.copysign(1.0, hi) == math.copysign(1.0, first)


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


def context(shape: tuple[int, int] | None = None, **changes: object) -> figures.Context:
    """The figures' context of a 3-frame SOXS NIR set of 600 s (changes as given)."""
    ctx = figures.Context(
        name="M",
        instrument="soxs",
        arm="NIR",
        exptime=600.0,
        date="2026-01-11T08:29:24.123",
        frames=("SOXS.a.fits", "SOXS.b.fits", "SOXS.c.fits"),
        dropped=(),
        gain=2.0,
        hot_sigma=5.0,
        hot_rate=None,
        noise_sigma=6.0,
    )
    return ctx._replace(**changes)  # type: ignore[arg-type]


def reduced(shape: tuple[int, int], seed: int, exptime: float = 600.0) -> tuple:
    """A small master, its hot pixels and noise images: (0, 0) hot, (1, 2) noisy."""
    master = small_master(shape, seed=seed)
    rng = np.random.default_rng(5)
    noise = rng.gamma(30.0, 0.25, shape).astype(np.float32)
    peel = rng.gamma(30.0, 0.25, shape).astype(np.float32)
    peel[1, 2] = np.float32(400.0)
    peel[-1, :] = np.nan
    hot = find_hot_pixels(master.combined, master.qual, noise, peel, exptime, 5.0, None, 6.0, 5)
    assert hot.bpm[0, 0] & HOT and hot.bpm[1, 2] & NOISY
    return master, hot, noise, peel


def marked(marks: figures.Marks) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in zip(marks.y, marks.x, strict=True)}


def flagged(bpm: npt.NDArray, bit: int) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in zip(*np.nonzero(bpm & bit), strict=True)}


def axes_aspect(panel: Panel) -> float:
    """Width / height of a panel's box as drawn on the page."""
    return panel.width / panel.height


def texts(picture: Picture) -> str:
    """Every text of a laid-out figure: titles, labels, legends, notes, tick labels."""
    return "\n".join(picture.texts())


def items(picture: Picture, kind: type[T]) -> list[T]:
    """The picture's items of one kind, in drawing order."""
    return [i for i in picture.items if isinstance(i, kind)]


SHAPES = [(61, 47), (1300, 7), (9, 130), (1031, 517)]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_master_image_in_physical_units_on_pixel_axes(
    shape: tuple[int, int], tmp_path: Path
) -> None:
    from astropy.visualization import ZScaleInterval

    master, _, _, _ = reduced(shape, seed=shape[0])
    (fig,) = figures.image_figures(master, tmp_path, context())
    assert isinstance(fig, figures.ImageFigure)
    block = binning.display_block(shape)
    assert max(fig.image.shape) <= binning.IMAGE_SIDE and fig.block == block
    np.testing.assert_allclose(fig.image, binning.block_mean(master.flux, block) / 600.0)
    assert fig.shape == shape and fig.unit == "e-/s"
    # nothing marked over the image: the masked pixels (hot ones among them) are counted,
    # and the figure says where they are marked
    assert fig.marks == ()
    n_masked = int(np.count_nonzero(master.qual))
    assert fig.notes[0].startswith(f"masked (soxspipe QC): {n_masked} pixels (")
    assert (
        fig.notes[1] == "they and the hot pixels are marked on the hot-pixel map (_hotpix_map.png)"
    )
    assert fig.title.splitlines() == [
        "SOXS NIR master dark, 3 x 600 s, 2026-01-11",
        "master dark (FLUX) / 600 s",
        "M",
    ]
    pic = draw.render(fig)
    ax, bar = pic.panel("image"), pic.panel("colour bar")
    assert ax.xlim == (-0.5, shape[1] - 0.5) and ax.ylim == (-0.5, shape[0] - 0.5)
    assert ax.xlabel == "x [pixel]" and ax.ylabel == "y [pixel]"
    assert math.isclose(axes_aspect(ax), shape[1] / shape[0], rel_tol=1e-6)
    finite = fig.image[np.isfinite(fig.image)]
    np.testing.assert_allclose(bar.ylim, ZScaleInterval().get_limits(finite))
    assert bar.ylabel == "[e-/s] (zscale)"
    # the image fills the axes box (its last blocks may reach past the frame's edge, and
    # are clipped), row 0 at the bottom (as DS9 shows a FITS image), in the zscale grey
    # levels of the colour bar
    (image, ramp) = items(pic, Raster)
    left, top, right, bottom = image.box
    assert image.clip == ax.box and (left, bottom) == (ax.box[0], ax.box[3])
    assert right >= ax.box[2] - 1e-9 and top <= ax.box[1] + 1e-9
    np.testing.assert_array_equal(image.pixels[::-1], axes.grey_levels(fig.image, *bar.ylim))
    assert ramp.box == bar.box and ramp.pixels[0, 0] == 255 and ramp.pixels[-1, 0] == 0
    words = texts(pic)
    assert fig.title in words and "zscale stretch" in words and fig.notes[1] in words


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 5000),
    kind=st.sampled_from(["normal", "integers", "cauchy"]),
    hot=st.sampled_from([0.0, 0.01, 0.3]),
)
def test_our_zscale_is_astropys(seed: int, size: int, kind: str, hot: float) -> None:
    """The stretch is astropy's ZScaleInterval, computed without importing it in the
    QC plots' code: the same limits on noise, steps, heavy tails and hot pixels."""
    from astropy.visualization import ZScaleInterval

    rng = np.random.default_rng(seed)
    v = awkward(kind, size, seed, np.float64)
    v[rng.random(size) < hot] += 5000.0
    finite = v[np.isfinite(v)]
    if not finite.size:
        return
    ours = draw.zscale(finite)
    theirs = ZScaleInterval().get_limits(finite)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_a_zero_second_dark_is_shown_in_electrons(tmp_path: Path) -> None:
    master, _, _, _ = reduced((21, 17), seed=3, exptime=0.0)
    (fig,) = figures.image_figures(master, tmp_path, context(exptime=0.0))
    assert isinstance(fig, figures.ImageFigure)
    assert fig.unit == "e-" and fig.title.splitlines()[1] == "master dark (FLUX)"
    np.testing.assert_allclose(fig.image, master.flux.astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_flag_map_marks_every_flag_and_shades_the_qual_share(
    shape: tuple[int, int], tmp_path: Path
) -> None:
    master, hot, noise, peel = reduced(shape, seed=shape[1])
    hot_map, _ = figures.hotpix_figures(master, hot, noise, peel, tmp_path, context())
    assert isinstance(hot_map, figures.FlagMapFigure)
    block = binning.display_block(shape)
    np.testing.assert_allclose(hot_map.masked, binning.block_mean(master.qual != 0, block))
    assert hot_map.masked.max() <= 1.0 and hot_map.shape == shape
    hot_marks, noisy_marks = hot_map.marks
    assert marked(hot_marks) == flagged(hot.bpm, HOT)
    assert marked(noisy_marks) == flagged(hot.bpm, NOISY) and (1, 2) in marked(noisy_marks)
    assert noisy_marks.label == f"noisy pixels: {hot.n_noisy} (temporal scatter above 6 sigma)"
    n_masked = int(np.count_nonzero(master.qual))
    assert hot_map.masked_label.startswith(f"masked (soxspipe QC): {n_masked} (")
    # the cut-out: full resolution, inside the frame, around the brightest hot pixel
    cut = hot_map.cutout
    side = figures.CUTOUT_SIDE
    assert cut.image.shape == (min(side, shape[0]), min(side, shape[1]))
    window = (slice(cut.y0, cut.y0 + side), slice(cut.x0, cut.x0 + side))
    np.testing.assert_allclose(
        cut.image, (master.combined[window].astype(np.float64) + master.master_mean) / 600.0
    )
    np.testing.assert_array_equal(cut.hot, (hot.bpm[window] & HOT) != 0)
    np.testing.assert_array_equal(cut.masked, master.qual[window] != 0)
    assert cut.hot[0 - cut.y0, 0 - cut.x0]  # (0, 0) holds 500 e-: the brightest
    assert cut.what == "the brightest hot pixel (x 0, y 0)"
    pic = draw.render(hot_map)
    frame_ax, cut_ax = pic.panel("frame"), pic.panel("cut-out")
    assert math.isclose(axes_aspect(frame_ax), shape[1] / shape[0], rel_tol=1e-6)
    assert math.isclose(axes_aspect(cut_ax), 1.0, rel_tol=1e-6)
    # every hot and noisy pixel marked at its own place on the frame, inside the box
    hot_drawn, noisy_drawn = items(pic, Markers)[:2]
    np.testing.assert_allclose(hot_drawn.x, frame_ax.px(hot_marks.x))
    np.testing.assert_allclose(hot_drawn.y, frame_ax.py(hot_marks.y))
    assert noisy_drawn.shape == "x" and noisy_drawn.x.size == noisy_marks.x.size
    assert hot_drawn.clip == frame_ax.box
    # on the cut-out each hot pixel is outlined as its own pixel, in red
    red = [r for r in items(pic, Rect) if r.outline == "red"]
    assert len(red) == int(cut.hot.sum())
    side_px = cut_ax.width / cut.image.shape[1]
    assert all(math.isclose(r.box[2] - r.box[0], side_px) for r in red)
    words = texts(pic)
    assert hot_marks.label in words and noisy_marks.label in words
    assert hot_map.masked_label in words


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([(1, 1), (3, 5), (17, 4), (40, 41)]),
    fraction=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    most=st.integers(1, 30),
)
def test_only_the_brightest_flags_are_marked_when_there_are_too_many(
    seed: int, shape: tuple[int, int], fraction: float, most: int
) -> None:
    rng = np.random.default_rng(seed)
    bpm = (rng.random(shape) < fraction).astype(np.uint8) * np.uint8(HOT)
    values = rng.normal(0.0, 1.0, shape).astype(np.float32)
    values[rng.random(shape) < 0.1] = np.nan
    marks = figures.pixel_marks(bpm, HOT, values, "hot", "red", "o", most=most)
    every = flagged(bpm, HOT)
    chosen = marked(marks)
    assert chosen <= every and len(chosen) == min(len(every), most)
    assert ("brightest" in marks.label) == (len(every) > most)
    left = every - chosen
    if chosen and left:
        low = min(np.nan_to_num(values[p], nan=-np.inf) for p in chosen)
        assert all(np.nan_to_num(values[p], nan=-np.inf) <= low for p in left)


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([(0, 3), (1, 1), (1, 7), (3, 5), (7, 9), (17, 4), (40, 41)]),
    fraction=st.sampled_from([0.0, 0.01, 0.2, 1.0]),
    bit=st.sampled_from([HOT, NOISY]),
)
def test_flagged_pixels_are_numpys_nonzero(
    seed: int, shape: tuple[int, int], fraction: float, bit: int
) -> None:
    rng = np.random.default_rng(seed)
    bpm = ((rng.random(shape) < fraction) * HOT | (rng.random(shape) < fraction) * NOISY).astype(
        np.uint8
    )
    ys, xs = figures.flagged_pixels(bpm, bit)
    want_y, want_x = np.nonzero(bpm & bit)
    np.testing.assert_array_equal(ys, want_y)
    np.testing.assert_array_equal(xs, want_x)


def test_block_means_of_odd_shapes() -> None:
    rng = np.random.default_rng(2)
    for shape, block in (((7, 5), 2), ((5, 13), 4), ((1, 1), 3), ((12, 8), 4)):
        v = rng.normal(0.0, 1.0, shape).astype(np.float32)
        got = binning.block_mean(v, block)
        assert got.shape == (-(-shape[0] // block), -(-shape[1] // block))
        for (j, i), value in np.ndenumerate(got):
            square = v[j * block : (j + 1) * block, i * block : (i + 1) * block]
            assert math.isclose(value, float(square.astype(np.float64).mean()), rel_tol=1e-5)


def test_the_frames_plot_names_each_frame_on_axes_in_electrons(tmp_path: Path) -> None:
    names = tuple(f"SOXS.2026-01-11T08:{m:02d}:00.000.fits" for m in range(7))
    levels = np.tile([0.0, 1.0, 2300.0, 7.23], (7, 1))
    levels[3, 2] = 2300.2  # a 0.2 e- step: small against the 7 e- scatter
    levels[:, 3] += np.linspace(0.0, 0.016, 7)
    ctx = context(frames=names, dropped=(("SOXS.bad.fits", "EXPTIME 5 s, not 600 s"),))
    (fig,) = figures.frames_figures(levels, tmp_path, ctx)
    assert isinstance(fig, figures.FramesFigure)
    # named by file, without the part every name shares (said in the axis label)
    assert fig.labels == tuple(f"08:{m:02d}:00" for m in range(7))
    assert fig.xlabel == "frame, in order of observation (file SOXS.2026-01-11T<frame>.000.fits)"
    assert fig.dropped == ("SOXS.bad.fits (left out: EXPTIME 5 s, not 600 s)",)
    lo, hi = fig.level_limits
    assert lo <= 2300.0 - 7.0 and hi >= 2300.0 + 7.0  # at least a read noise either side
    assert fig.scatter_limits[0] == 0.0 and fig.scatter_limits[1] >= 7.246
    pic = draw.render(fig)
    top, bottom = pic.panel("level"), pic.panel("scatter")
    assert top.ylim == fig.level_limits and bottom.ylim == fig.scatter_limits
    assert top.ylabel == "level [e-]" and bottom.ylabel == "scatter [e-]"
    ticks = [label for _, label in bottom.xticks]
    assert ticks == [*fig.labels, fig.dropped[0]] and bottom.xlabel == fig.xlabel
    drawn = {t.text: t for t in items(pic, canvas.Text)}
    assert drawn[fig.dropped[0]].colour == "red" and drawn[fig.labels[0]].colour == "black"
    assert drawn[fig.labels[0]].angle == 90  # names read upwards under their frame
    # the level is plotted one point per frame, at positions 1..n
    level_line = items(pic, Lines)[0]
    np.testing.assert_allclose(level_line.points[:, 0], top.px(np.arange(1, 8)))
    np.testing.assert_allclose(level_line.points[:, 1], top.py(levels[:, 2]))
    # the left-out file is marked with a red cross after the frames, on both panels
    crosses = [m for m in items(pic, Markers) if m.shape == "x"]
    assert len(crosses) == 2 and all(m.colour == "red" for m in crosses)
    np.testing.assert_allclose([m.x[0] for m in crosses], [top.px(8.0)] * 2)
    assert "SOXS NIR master dark, 7 x 600 s, 2026-01-11" in texts(pic)


@HYP
@given(
    names=st.lists(
        st.text(alphabet="SOXH.:-_T0123456789abfits", min_size=1, max_size=12),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    head=st.sampled_from(["", "SOXS.2026-01-11T", "XSHOO."]),
    tail=st.sampled_from(["", ".fits", ".123.fits"]),
)
def test_short_names_keep_every_frame_apart(names: list[str], head: str, tail: str) -> None:
    full = tuple(head + name + tail for name in names)
    shared_head, shared_tail, shorts = figures.short_names(full)
    assert all(shorts) and len(set(shorts)) == len(full)
    assert [shared_head + short + shared_tail for short in shorts] == list(full)


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    level=st.sampled_from([0.0, 25.0, 2300.0]),
    ron=st.sampled_from([0.0, 1.0, 7.2]),
    jump=st.sampled_from([0.0, 0.01, 3.0, 500.0]),
)
def test_frame_axes_show_every_frame_and_at_least_the_read_noise(
    seed: int, n: int, level: float, ron: float, jump: float
) -> None:
    rng = np.random.default_rng(seed)
    levels = level + rng.normal(0.0, 0.01, n) + jump * (rng.random(n) < 0.2)
    scatter = np.abs(ron + rng.normal(0.0, 0.01, n))
    lo, hi = figures.level_limits(levels, scatter)
    assert lo < levels.min() and hi > levels.max()
    assert hi - lo >= 2 * float(np.median(scatter)) * (1 - 1e-9)
    s_lo, s_hi = figures.scatter_limits(scatter)
    assert s_lo == 0.0 and s_hi > scatter.max() * 1.2 - 1e-12


@HYP
@given(
    quantum=st.sampled_from([0.1, 1.5 / 7, 2.0 / 3, 1.0, 0.333]),
    offset=st.floats(-1000.0, 1000.0, allow_nan=False),
    lo=st.floats(-50.0, 50.0, allow_nan=False),
    span=st.floats(0.5, 300.0),
    bins=st.integers(5, 300),
)
def test_bins_of_whole_electron_steps_show_no_comb(
    quantum: float, offset: float, lo: float, span: float, bins: int
) -> None:
    """A mean of whole-ADU frames steps by ``gain / n`` e-: every bin holds the same
    number of steps, so a flat distribution of them gives flat counts."""
    edges = binning.lattice_edges(offset + lo, offset + lo + span, bins, quantum, offset)
    steps_ = np.diff(edges)
    ratio = steps_ / quantum
    np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-6)
    assert edges[0] <= offset + lo and edges[-1] >= offset + lo + span
    k = np.arange(math.floor((edges[0] - offset) / quantum) - 2, (edges[-1] - offset) / quantum + 2)
    values = offset + k * quantum
    counts = binning.bin_counts(values, 0.0, edges, clip=False)
    assert np.all(counts == round(ratio[0]))


def test_histogram_and_dark_panel_say_what_each_line_is(tmp_path: Path) -> None:
    master, hot, noise, peel = reduced((61, 47), seed=4)
    (hist,) = figures.master_figures(master, tmp_path, context())
    assert isinstance(hist, figures.HistogramFigure)
    b_lo, b_hi = (
        master.post_bounds.lo + master.master_mean,
        master.post_bounds.hi + master.master_mean,
    )
    assert [ln.label for ln in hist.lines] == [
        f"lower bound {figures.sig(b_lo)} e-",
        f"upper bound {figures.sig(b_hi)} e-",
    ]
    assert "pixels outside the bounds are masked (soxspipe QC)" in hist.title
    assert "before filling" not in hist.title and "before masked pixels are filled" in hist.xlabel
    ratio = np.diff(hist.edges) / context().quantum
    np.testing.assert_allclose(ratio, np.round(ratio), atol=1e-6)

    _, dist = figures.hotpix_figures(master, hot, noise, peel, tmp_path, context())
    assert isinstance(dist, figures.DistributionFigure)
    dark, noisy = dist.dark, dist.noise
    assert "[e-/s]" in dark.xlabel and dark.title.startswith(f"hot pixels: {hot.n_hot} (")
    (threshold,) = dark.lines
    assert math.isclose(threshold.x, hot.hot_threshold / 600.0)
    assert threshold.decides and "5 x robust spread" in threshold.label
    assert noisy.title == f"noisy pixels: {hot.n_noisy} (temporal scatter above 6 sigma)"
    assert [ln.decides for ln in noisy.lines] == [True, False]
    assert noisy.lines[0].label.endswith("(decides)")
    assert "peel" not in noisy.title + "".join(c.label for c in noisy.curves)
    # a pixel far below the level: the panel runs out to a power of ten, labelled
    combined = master.combined.copy()
    combined[2, 3] = np.float32(-3000.0)
    far = find_hot_pixels(combined, master.qual, noise, peel, 600.0, 5.0, None, 6.0, 5)
    _, dist = figures.hotpix_figures(
        master._replace(combined=combined), far, noise, peel, tmp_path, context()
    )
    assert isinstance(dist, figures.DistributionFigure)
    assert dist.dark.edges[0] == -10.0  # -3000 e- / 600 s = -5 e-/s, out to -10
    pic = draw.render(dist)
    top = pic.panel("dark current")
    labels = [label for _, label in top.xticks]
    assert all(labels) and labels[0] == "-10"
    assert top.xlim[0] == draw.symlog(np.array([-10.0]), dist.dark.linthresh)[0]
    assert top.ylog and pic.panel("noise").ylog


def test_the_rate_decides_when_it_is_higher(tmp_path: Path) -> None:
    master, _, noise, peel = reduced((61, 47), seed=4)
    hot = find_hot_pixels(master.combined, master.qual, noise, peel, 600.0, 5.0, 1.0, 6.0, 5)
    _, dist = figures.hotpix_figures(master, hot, noise, peel, tmp_path, context(hot_rate=1.0))
    assert isinstance(dist, figures.DistributionFigure)
    by_sigma, by_rate = dist.dark.lines
    assert by_rate.decides and not by_sigma.decides
    assert by_rate.x == 1.0 and by_rate.label == "1 e-/s: hot-pixel rate (decides)"
    assert math.isclose(by_rate.x, hot.hot_threshold / 600.0)


@pytest.mark.parametrize(("lo", "hi"), [(-30.0, 5000.0), (-4.0, 40.0), (-2500.0, 1.5e5)])
def test_the_dark_panel_ends_at_labelled_powers_of_ten(lo: float, hi: float) -> None:
    """Far bins have a tick label: the range runs out to the next power of ten."""
    for end in (lo, hi):
        out = figures._decade(end, 10.0)
        if abs(end) > 10.0:
            assert abs(out) >= abs(end) and math.log10(abs(out)).is_integer()
            assert out in draw.symlog_ticks(
                figures._decade(lo, 10.0), figures._decade(hi, 10.0), 10.0
            )
        else:
            assert out == end


def test_the_plots_as_pixels(tmp_path: Path) -> None:
    """Once as pixels: every file is written at its figure's size, and none is blank."""
    from PIL import Image

    shape = (1300, 207)  # tall, as VIS and UVB frames are
    master, hot, noise, peel = reduced(shape, seed=7)
    ctx = context()
    qc_dir = tmp_path / "qc" / "soxs_mdark"
    built = (
        figures.image_figures(master, qc_dir, ctx)
        + figures.master_figures(master, qc_dir, ctx)
        + figures.frames_figures(np.tile([0.0, 1.0, 1200.0, 2.0], (3, 1)), qc_dir, ctx)
        + figures.hotpix_figures(master, hot, noise, peel, qc_dir, ctx)
    )
    paths = draw.draw_all(built)
    assert [Path(p).name for p in paths] == [
        "M_image.png",
        "M_histogram.png",
        "M_frames.png",
        "M_hotpix_map.png",
        "M_dark_current.png",
    ]
    assert sorted(p.name for p in qc_dir.iterdir()) == sorted(Path(p).name for p in paths)
    for figure, path in zip(built, paths, strict=True):
        with Image.open(path) as png:
            assert png.size == draw.render(figure).size
            grey = np.asarray(png.convert("L"), dtype=np.float64)
        assert grey.std() > 10 and np.unique(grey).size > 20, path
    with Image.open(paths[0]) as image:
        assert image.size[1] > image.size[0]  # the tall frame gives a tall figure
    # the image's axes box holds the frame at its aspect: measured in the PNG's pixels,
    # where the frame's black outline is
    grey = np.asarray(Image.open(paths[0]).convert("L"))
    box = draw.render(built[0]).panel("image").box
    x0, y0, x1, y1 = (round(v) for v in box)
    row, col = grey[(y0 + y1) // 2], grey[:, (x0 + x1) // 2]
    assert row[x0] < 100 and row[x1 - 1] < 100 and col[y0] < 100 and col[y1 - 1] < 100
    assert math.isclose((x1 - x0) / (y1 - y0), shape[1] / shape[0], rel_tol=0.02)


def test_plots_of_nothing_finite(tmp_path: Path) -> None:
    """All-NaN noise images and master: the figures are still written, without warnings."""
    shape = (9, 11)
    master = small_master(shape, seed=1)
    nan = np.full(shape, np.nan, dtype=np.float32)
    hot = find_hot_pixels(nan, master.qual, nan, nan, 600.0, 5.0, None, 6.0, 5)
    assert math.isnan(hot.noise.threshold) and not hot.bpm.any()
    empty = master._replace(combined=nan, flux=nan)
    paths = draw.draw_all(
        figures.hotpix_figures(empty, hot, nan, nan, tmp_path, context())
        + figures.image_figures(empty, tmp_path, context())
    )
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
    edges = binning.symlog_edges(low * spread, high * spread, linthresh)
    first, m = binning.even_run(edges)
    assert m >= 1
    assert np.allclose(np.diff(edges[first : first + m + 1]), np.diff(edges)[first])
    v = awkward(kind, 2000, seed, np.float32) * np.float32(spread)
    v[:4] = np.asarray([low * spread, high * spread, 0.0, linthresh], dtype=np.float32)
    got = binning.bin_counts(v, 0.0, edges, clip=clip)
    np.testing.assert_array_equal(got, reference_counts(v, 0.0, edges, clip))


def test_even_run_finds_the_longest_even_stretch() -> None:
    log_lin_log = np.concatenate([[-1000.0, -100.0], np.linspace(-10, 10, 41), [100.0, 1e3]])
    assert binning.even_run(log_lin_log) == (2, 40)
    assert binning.even_run(np.linspace(0.0, 1.0, 7)) == (0, 6)
    assert binning.even_run(np.array([0.0, 1.0])) == (0, 1)


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
    edges = binning.symlog_edges(-40.0, 3000.0, 5.0)
    np.testing.assert_array_equal(
        binning.bin_counts(combined, -median, edges, clip=clip, round32=True),
        binning.bin_counts(dark, 0.0, edges, clip=clip),
    )


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (513, 130)])
def test_the_thumbnail_is_every_steps_pixel_stretched_over_the_unflagged_percentiles(
    shape: tuple[int, int],
) -> None:
    from mdark_dask.report.thumbnail import thumbnail_grey

    rng = np.random.default_rng(shape[0])
    flux = rng.normal(100.0, 5.0, shape).astype(np.float32)
    qual = (rng.random(shape) < 0.1).astype(np.uint8)
    flux[qual != 0] = 1e5  # flagged pixels do not set the stretch
    flux.flat[0] = np.nan  # drawn black
    grey = thumbnail_grey(flux, qual, max_side=64)
    step = max(1, -(-max(shape) // 64))
    small = flux[::step, ::step].astype(np.float64)
    good = small[(qual[::step, ::step] == 0) & np.isfinite(small)]
    lo, hi = np.percentile(good, [1, 99]) if good.size else (0.0, 1.0)
    with np.errstate(invalid="ignore"):
        want = np.clip((small - lo) / max(float(hi - lo), 1e-12), 0.0, 1.0)
    want = (np.nan_to_num(want, nan=0.0) * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(grey, want)
    assert grey.shape == small.shape and grey.flat[0] == 0
