"""The synthetic raw darks: shapes, headers soxspipe reads, reproducibility, sof names.

Whether soxspipe 0.17.4 itself accepts the frames is checked by the oracle tests; these tests
pin down the properties those runs rely on, without the oracle.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from mdark_dask.instruments import ARMS, INSTRUME_VALUE
from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof

ALL_ARMS = sorted(ARMS)  # (instrument, arm)
NATIVE = {
    ("soxs", "NIR"): ((2048, 2048), np.uint16),
    ("soxs", "VIS"): ((4096, 908), np.uint16),
    ("xsh", "UVB"): ((3000, 2144), np.uint16),
    ("xsh", "VIS"): ((4000, 2106), np.uint16),
    ("xsh", "NIR"): ((1100, 2048), np.float32),
}


def _min_shape(instrument: str, arm: str) -> tuple[int, int]:
    """Smallest raw frame that still holds the science pixels (keeps tests fast)."""
    return ARMS[(instrument, arm)].raw_shape()


def _read(path: Path) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path) as hdul:
        assert len(hdul) == 1, "raw darks are single-HDU files"
        return np.asarray(hdul[0].data).copy(), hdul[0].header.copy()


def _clipped_std(x: np.ndarray) -> float:
    """Std of the core of a distribution (5-sigma clipped), robust to integer quantisation."""
    x = np.asarray(x, dtype=np.float64).ravel()
    keep = np.ones(x.size, dtype=bool)
    for _ in range(5):
        m, s = x[keep].mean(), x[keep].std()
        keep = np.abs(x - m) < 5 * s
    return float(x[keep].std())


def _prepared(spec: DarkSetSpec, data: np.ndarray) -> np.ndarray:
    """soxspipe's rotation and trim, for locating science pixels."""
    a = ARMS[(spec.instrument, spec.arm)]
    rs, re_, cs, ce = a.science_region(spec.ybin, spec.xbin)
    return np.rot90(data, a.rotation_k)[rs:re_, cs:ce]


# ------------------------------------------------------------------------------------------
# Shapes and dtypes


@pytest.mark.parametrize(("instrument", "arm"), ALL_ARMS)
def test_native_shape_and_dtype(instrument: str, arm: str, tmp_path: Path) -> None:
    spec = DarkSetSpec(instrument, arm, n_frames=1, exptime=10.0)
    (path,) = simulate_set(spec, tmp_path)
    data, header = _read(path)
    shape, dtype = NATIVE[(instrument, arm)]
    assert data.shape == shape
    want = np.dtype(dtype)
    assert (data.dtype.kind, data.dtype.itemsize) == (want.kind, want.itemsize)
    if dtype == np.uint16:
        # astropy's uint16 convention: signed 16-bit on disk with an offset.
        assert header["BITPIX"] == 16
        assert header["BZERO"] == 32768
        assert header["BSCALE"] == 1
    else:
        assert header["BITPIX"] == -32
    # The trimmed frame has soxspipe's science shape.
    assert _prepared(spec, data).shape == ARMS[(instrument, arm)].trimmed_shape()


def test_xsh_nir_rotates_to_2048_rows(tmp_path: Path) -> None:
    spec = DarkSetSpec("xsh", "NIR", n_frames=1)
    data, _ = _read(simulate_set(spec, tmp_path)[0])
    assert np.rot90(data, 1).shape == (2048, 1100)
    assert _prepared(spec, data).shape == (2040, 1056)


@pytest.mark.parametrize(
    ("instrument", "arm", "binning", "shape", "trimmed"),
    [
        ("soxs", "VIS", (2, 1), (4096, 454), (4096, 404)),
        ("soxs", "VIS", (2, 2), (2048, 454), (2048, 404)),
        ("xsh", "UVB", (2, 2), (1500, 1072), (1500, 1024)),
        ("xsh", "VIS", (1, 2), (2000, 2106), (2000, 2048)),
    ],
)
def test_binned_shapes(
    instrument: str,
    arm: str,
    binning: tuple[int, int],
    shape: tuple[int, int],
    trimmed: tuple[int, int],
    tmp_path: Path,
) -> None:
    spec = DarkSetSpec(instrument, arm, n_frames=1, binning=binning)
    data, header = _read(simulate_set(spec, tmp_path)[0])
    assert data.shape == shape
    assert _prepared(spec, data).shape == trimmed
    kw = ARMS[(instrument, arm)].keywords
    assert (header[kw.binx], header[kw.biny]) == binning


def test_nir_ignores_binning(tmp_path: Path) -> None:
    spec = DarkSetSpec("soxs", "NIR", n_frames=1, binning=(2, 2))
    data, header = _read(simulate_set(spec, tmp_path)[0])
    assert data.shape == (2048, 2048)
    assert "ESO DET BINX" not in header


@pytest.mark.parametrize(("instrument", "arm"), ALL_ARMS)
def test_minimum_shape_is_accepted(instrument: str, arm: str, tmp_path: Path) -> None:
    shape = _min_shape(instrument, arm)
    spec = DarkSetSpec(instrument, arm, n_frames=1, shape=shape)
    data, _ = _read(simulate_set(spec, tmp_path)[0])
    assert data.shape == shape
    assert _prepared(spec, data).shape == ARMS[(instrument, arm)].trimmed_shape()


@pytest.mark.parametrize(("instrument", "arm"), ALL_ARMS)
def test_too_small_shape_is_rejected(instrument: str, arm: str) -> None:
    rows, cols = _min_shape(instrument, arm)
    with pytest.raises(ValueError, match="science pixels"):
        DarkSetSpec(instrument, arm, shape=(rows - 1, cols))
    with pytest.raises(ValueError, match="science pixels"):
        DarkSetSpec(instrument, arm, shape=(rows, cols - 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"instrument": "soxs", "arm": "UVB"},
        {"instrument": "espresso", "arm": "VIS"},
        {"instrument": "soxs", "arm": "NIR", "n_frames": 0},
        {"instrument": "soxs", "arm": "NIR", "exptime": -1.0},
        {"instrument": "soxs", "arm": "VIS", "binning": (0, 1)},
        {"instrument": "soxs", "arm": "VIS", "gain": 0.0},
        {"instrument": "soxs", "arm": "NIR", "start": "yesterday"},
    ],
)
def test_invalid_specs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DarkSetSpec(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Headers

COMMON_KEYS = [
    "INSTRUME",
    "DATE-OBS",
    "MJD-OBS",
    "EXPTIME",
    "OBJECT",
    "ESO DPR CATG",
    "ESO DPR TYPE",
    "ESO DPR TECH",
    "ESO SEQ ARM",
    "ESO OBS ID",
    "ESO OBS NAME",
    "ESO OBS START",
    "ESO OBS TARG NAME",
    "ESO OBS TPLNO",
    "ESO OBS NTPL",
    "ESO TPL ID",
    "ESO TPL NAME",
    "ESO TPL NEXP",
    "ESO TPL EXPNO",
    "ESO TPL START",
]
SOXS_KEYS = [
    "ESO DET READ CURID",
    "ESO DET READ CURNAME",
    "ESO INS TEMP301 VAL",
    "ESO INS TEMP217 VAL",
    "ESO INS TEMP104 VAL",
    "ESO INS ACFW ID",
    "ESO INS NISE SWSIM",
    "ESO INS VISE SWSIM",
    "ESO INS NISE NAME",
    "ESO INS VISE NAME",
]


@pytest.fixture(scope="module")
def headers(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[fits.Header]]:
    """Headers of a 3-frame set of every arm (minimum raw shapes)."""
    out: dict[tuple[str, str], list[fits.Header]] = {}
    for instrument, arm in ALL_ARMS:
        spec = DarkSetSpec(
            instrument, arm, n_frames=3, exptime=30.0, shape=_min_shape(instrument, arm)
        )
        paths = simulate_set(spec, tmp_path_factory.mktemp(f"{instrument}{arm}"))
        out[(instrument, arm)] = [fits.getheader(p) for p in paths]
    return out


@pytest.mark.parametrize(("instrument", "arm"), ALL_ARMS)
def test_common_keywords(
    instrument: str, arm: str, headers: dict[tuple[str, str], list[fits.Header]]
) -> None:
    hs = headers[(instrument, arm)]
    for n, h in enumerate(hs, start=1):
        for key in COMMON_KEYS:
            assert key in h, key
        assert h["INSTRUME"] == INSTRUME_VALUE[instrument]
        assert h["ESO SEQ ARM"] == arm
        assert (h["ESO DPR CATG"], h["ESO DPR TYPE"], h["ESO DPR TECH"]) == (
            "CALIB",
            "DARK",
            "IMAGE",
        )
        assert h["OBJECT"] == "DARK"
        assert h["EXPTIME"] == 30.0
        assert h["ESO TPL NEXP"] == 3
        assert h["ESO TPL EXPNO"] == n
        assert "ESO PRO CATG" not in h and "ESO PRO TYPE" not in h
        assert "SXSPRE" not in h
    # One template: the set-defining keywords agree across frames.
    for key in ("ESO OBS ID", "ESO OBS NAME", "ESO TPL ID", "ESO TPL NAME", "ESO TPL START"):
        assert len({h[key] for h in hs}) == 1, key


@pytest.mark.parametrize(("instrument", "arm"), ALL_ARMS)
def test_times_are_consistent(
    instrument: str, arm: str, headers: dict[tuple[str, str], list[fits.Header]]
) -> None:
    hs = headers[(instrument, arm)]
    mjd0 = datetime(1858, 11, 17)
    starts = []
    for h in hs:
        t = datetime.fromisoformat(h["DATE-OBS"])
        assert len(h["DATE-OBS"]) == len("2026-01-11T08:29:24.123")
        assert h["MJD-OBS"] == pytest.approx((t - mjd0) / timedelta(days=1), abs=1e-9)
        starts.append(t)
    assert starts[0] == datetime(2026, 1, 11, 8, 29, 24, 123000)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(g > hs[0]["EXPTIME"] for g in gaps)  # exposure plus a readout gap
    assert [h["MJD-OBS"] for h in hs] == sorted(h["MJD-OBS"] for h in hs)
    assert hs[0]["ESO TPL START"] <= hs[0]["DATE-OBS"]


@pytest.mark.parametrize("arm", ["NIR", "VIS"])
def test_soxs_keywords(arm: str, headers: dict[tuple[str, str], list[fits.Header]]) -> None:
    for h in headers[("soxs", arm)]:
        for key in SOXS_KEYS:
            assert key in h, key
        # soxspipe reads all three temperatures and crashes without them.
        assert h["ESO INS TEMP301 VAL"] == 16.0
        assert h["ESO INS TEMP217 VAL"] == 45.0
        assert h["ESO INS TEMP104 VAL"] == -110.0
        # FITS logicals, not the string 'F' (which the organiser treats as "simulated").
        assert h["ESO INS NISE SWSIM"] is False
        assert h["ESO INS VISE SWSIM"] is False
        assert isinstance(h["ESO INS ACFW ID"], str)
        assert h["ESO DET READ CURID"] == (3 if arm == "NIR" else 1)


def test_soxs_nir_has_no_gain_or_binning(
    headers: dict[tuple[str, str], list[fits.Header]],
) -> None:
    # soxspipe then falls back to the detector parameters (2.3 e-/ADU, RON 7.3 e-).
    for h in headers[("soxs", "NIR")]:
        for key in (
            "ESO DET BINX",
            "ESO DET BINY",
            "ESO DET OUT1 CONAD",
            "ESO DET OUT1 GAIN",
            "ESO DET CHIP RON",
        ):
            assert key not in h, key


def test_soxs_vis_gain_and_ron(headers: dict[tuple[str, str], list[fits.Header]]) -> None:
    for h in headers[("soxs", "VIS")]:
        assert (h["ESO DET BINX"], h["ESO DET BINY"]) == (1, 1)
        assert h["ESO DET OUT1 CONAD"] == 1.5
        assert h["ESO DET OUT1 GAIN"] == 0.667
        # soxspipe 0.17.4's gain is max(CONAD, GAIN).
        assert max(h["ESO DET OUT1 CONAD"], h["ESO DET OUT1 GAIN"]) == 1.5
        assert h["ESO DET CHIP RON"] == 3.8


@pytest.mark.parametrize("gain", [0.8, 1.0, 2.5])
def test_soxs_vis_gain_override(gain: float, tmp_path: Path) -> None:
    spec = DarkSetSpec("soxs", "VIS", n_frames=2, gain=gain, shape=_min_shape("soxs", "VIS"))
    paths = simulate_set(spec, tmp_path)
    (a, h), (b, _) = _read(paths[0]), _read(paths[1])
    assert max(h["ESO DET OUT1 CONAD"], h["ESO DET OUT1 GAIN"]) == gain
    # Electrons are converted with the gain soxspipe will apply: RON 3.8 e- -> ADU.
    # The prescan (no dark signal) of a frame difference is pure read noise.
    diff = (a.astype(np.float64) - b)[:, 5:45]
    assert _clipped_std(diff) / np.sqrt(2) == pytest.approx(3.8 / gain, rel=0.1)


@pytest.mark.parametrize(("arm", "conad", "ron"), [("UVB", 1.61, 2.6), ("VIS", 1.4, 5.3)])
def test_xsh_ccd_keywords(
    arm: str, conad: float, ron: float, headers: dict[tuple[str, str], list[fits.Header]]
) -> None:
    for h in headers[("xsh", arm)]:
        assert h["INSTRUME"] == "XSHOOTER"
        assert (h["CDELT1"], h["CDELT2"]) == (1, 1)
        assert (h["ESO DET WIN1 BINX"], h["ESO DET WIN1 BINY"]) == (1, 1)
        assert h["ESO DET READ SPEED"] == "1pt/400k/lg"
        assert h["ESO DET OUT1 CONAD"] == conad
        assert h["ESO DET OUT1 RON"] == ron
        assert "ESO INS TEMP301 VAL" not in h


def test_xsh_nir_keywords(headers: dict[tuple[str, str], list[fits.Header]]) -> None:
    for h in headers[("xsh", "NIR")]:
        for key in (
            "ESO DET READ SPEED",
            "ESO DET OUT1 CONAD",
            "CDELT1",
            "CDELT2",
            "ESO DET WIN1 BINX",
        ):
            assert key not in h, key


def test_read_speed_and_dpr_type_options(tmp_path: Path) -> None:
    spec = DarkSetSpec("soxs", "NIR", n_frames=1, read_speed=1, dpr_type="BIAS")
    _, h = _read(simulate_set(spec, tmp_path / "a")[0])
    assert h["ESO DET READ CURID"] == 1
    assert h["ESO DPR TYPE"] == "BIAS"
    spec = DarkSetSpec(
        "xsh", "UVB", n_frames=1, read_speed="1pt/100k/hg", shape=_min_shape("xsh", "UVB")
    )
    _, h = _read(simulate_set(spec, tmp_path / "b")[0])
    assert h["ESO DET READ SPEED"] == "1pt/100k/hg"


def test_file_names(tmp_path: Path) -> None:
    paths = simulate_set(DarkSetSpec("soxs", "NIR", n_frames=2, exptime=5.0), tmp_path / "s")
    assert paths[0].name == "SOXS.2026-01-11T08:29:24.123.fits"
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    spec = DarkSetSpec("xsh", "NIR", n_frames=1, shape=_min_shape("xsh", "NIR"))
    assert simulate_set(spec, tmp_path / "x")[0].name == "XSHOO.2026-01-11T08:29:24.123.fits"


# ------------------------------------------------------------------------------------------
# Pixel model


@pytest.fixture(scope="module")
def vis_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[DarkSetSpec, np.ndarray]:
    """Three long SOXS VIS darks (many cosmics, bright hot pixels), as a (3, rows, cols) cube."""
    spec = DarkSetSpec("soxs", "VIS", n_frames=3, exptime=600.0, seed=7)
    paths = simulate_set(spec, tmp_path_factory.mktemp("vis"))
    return spec, np.stack([_read(p)[0] for p in paths])


def test_reproducible_for_a_seed(tmp_path: Path) -> None:
    spec = DarkSetSpec(
        "soxs", "VIS", n_frames=2, exptime=100.0, seed=3, shape=_min_shape("soxs", "VIS")
    )
    a = simulate_set(spec, tmp_path / "a")
    b = simulate_set(spec, tmp_path / "b")
    for pa, pb in zip(a, b, strict=True):
        da, ha = _read(pa)
        db, hb = _read(pb)
        np.testing.assert_array_equal(da, db)
        assert list(ha.items()) == list(hb.items())
    other = simulate_set(
        DarkSetSpec(
            "soxs", "VIS", n_frames=1, exptime=100.0, seed=4, shape=_min_shape("soxs", "VIS")
        ),
        tmp_path / "c",
    )
    assert not np.array_equal(_read(a[0])[0], _read(other[0])[0])


def test_frames_differ_within_a_set(vis_set: tuple[DarkSetSpec, np.ndarray]) -> None:
    _, cube = vis_set
    assert not np.array_equal(cube[0], cube[1])


def test_levels_and_noise(vis_set: tuple[DarkSetSpec, np.ndarray]) -> None:
    spec, cube = vis_set
    frame = cube[0].astype(np.float64)
    sci = _prepared(spec, frame)
    # Pedestal ~1500 ADU; dark current of 0.0005 e-/s adds < 1 ADU in 600 s.
    assert 1000 < np.median(sci) < 2000
    # Read noise, with the weak fixed pattern removed by differencing two frames.
    diff = (cube[0].astype(np.float64) - cube[1])[:, 60:840]
    assert _clipped_std(diff) / np.sqrt(2) == pytest.approx(3.8 / 1.5, rel=0.1)


def test_nir_level_matches_reference(tmp_path: Path) -> None:
    # a 1000 ADU NIR pedestal gives MDARK MEDIAN ~2300 e- at 2.3 e-/ADU
    spec = DarkSetSpec("soxs", "NIR", n_frames=1, exptime=5.0, pedestal=1000.0)
    data, _ = _read(simulate_set(spec, tmp_path / "appendix_b")[0])
    sci = _prepared(spec, data.astype(np.float64))
    assert np.median(sci) * 2.3 == pytest.approx(2300, rel=0.01)
    # by default a processed ramp's small level: inside soxspipe's NIR range [-15, 50] e-
    spec = DarkSetSpec("soxs", "NIR", n_frames=1, exptime=5.0)
    data, _ = _read(simulate_set(spec, tmp_path / "default")[0])
    sci = _prepared(spec, data.astype(np.float64))
    assert np.median(sci) * 2.3 == pytest.approx(27.6, rel=0.05)
    assert np.mean(data == 0) < 1e-3  # the read noise seldom reaches zero


def test_hot_pixels_fixed_across_frames(
    vis_set: tuple[DarkSetSpec, np.ndarray], tmp_path: Path
) -> None:
    spec, cube = vis_set
    sci = np.stack([_prepared(spec, f.astype(np.float64)) for f in cube])
    level = np.median(sci)
    high = sci > level + 200  # ~80 sigma of the read noise
    always = high.all(axis=0)
    n_hot = int(always.sum())
    assert n_hot > 100  # hot pixels exist and are high in every frame
    # Any two frames agree on the hot pixels (cosmic rays rarely hit the same pixel twice).
    pair01, pair12 = high[0] & high[1], high[1] & high[2]
    assert (pair01 ^ pair12).sum() < 0.1 * n_hot
    # Same seed, another set: the same hot-pixel positions.
    again = simulate_set(spec, tmp_path)
    sci2 = _prepared(spec, _read(again[-1])[0].astype(np.float64))
    assert np.all(sci2[always] > level + 100)
    # A few hot pixels saturate.
    assert np.any(cube == 65535)
    sat = (cube == 65535).all(axis=0)
    assert 1 <= sat.sum() < n_hot


def test_hot_pixels_depend_on_seed(tmp_path: Path) -> None:
    def hot(seed: int) -> np.ndarray:
        spec = DarkSetSpec("soxs", "NIR", n_frames=1, exptime=60.0, seed=seed)
        data = _read(simulate_set(spec, tmp_path / str(seed))[0])[0].astype(np.float64)
        sci = _prepared(spec, data)
        return np.asarray(sci > np.median(sci) + 1000)

    a, b = hot(1), hot(2)
    assert a.sum() > 10 and b.sum() > 10
    assert (a & b).sum() < 0.1 * a.sum()


def test_cosmic_rays_differ_per_frame(vis_set: tuple[DarkSetSpec, np.ndarray]) -> None:
    spec, cube = vis_set
    sci = np.stack([_prepared(spec, f.astype(np.float64)) for f in cube])
    high = sci > np.median(sci) + 150
    only = [high[k] & ~high[[j for j in range(3) if j != k]].any(axis=0) for k in range(3)]
    counts = [int(o.sum()) for o in only]
    assert all(c > 20 for c in counts), counts  # each frame has hits of its own
    # Hits are small multi-pixel clusters: some one-frame pixels have one-frame neighbours.
    o = only[0]
    neighbours = (o[1:, :] & o[:-1, :]).sum() + (o[:, 1:] & o[:, :-1]).sum()
    assert neighbours > 0


def test_cold_pixels_and_clipping(vis_set: tuple[DarkSetSpec, np.ndarray]) -> None:
    spec, cube = vis_set
    sci = _prepared(spec, cube[0].astype(np.float64))
    assert np.any(sci < np.median(sci) - 300)  # cold/dead pixels
    assert cube.dtype == np.uint16 and cube.min() >= 0 and cube.max() <= 65535


def test_overscan_has_no_dark_signal(tmp_path: Path) -> None:
    spec = DarkSetSpec("soxs", "VIS", n_frames=1, exptime=3600.0, seed=5)
    data = _read(simulate_set(spec, tmp_path)[0])[0].astype(np.float64)
    pre, sci = data[:, 5:45], data[:, 60:840]
    # Hot pixels and cosmic rays only land on the science pixels.
    assert pre.max() < np.median(pre) + 50
    assert sci.max() > np.median(sci) + 1000


def test_float_nir_is_not_quantised(tmp_path: Path) -> None:
    spec = DarkSetSpec("xsh", "NIR", n_frames=1, exptime=120.0, shape=_min_shape("xsh", "NIR"))
    data, _ = _read(simulate_set(spec, tmp_path)[0])
    assert (data.dtype.kind, data.dtype.itemsize) == ("f", 4)
    assert np.any(data != np.round(data))


def test_large_frame_is_fast(tmp_path: Path) -> None:
    spec = DarkSetSpec("soxs", "NIR", n_frames=4, exptime=60.0)
    t0 = time.perf_counter()
    simulate_set(spec, tmp_path)
    per_frame = (time.perf_counter() - t0) / 4
    assert per_frame < 1.0, f"{per_frame:.2f} s per 2048x2048 frame"


# ------------------------------------------------------------------------------------------
# sof names and files


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        # the data organiser's names
        (
            DarkSetSpec("soxs", "NIR", n_frames=5, exptime=5.0),
            "20260111T082924_NIR_3_MDARK_5_0S_SOXS.sof",
        ),
        (
            DarkSetSpec("soxs", "VIS", n_frames=3, exptime=600.0, start="2026-01-11T09:00:00"),
            "20260111T090000_VIS_1X1_1_MDARK_600_0S_SOXS.sof",
        ),
        # ORACLE.md
        (
            DarkSetSpec("soxs", "NIR", exptime=60.0, start="2026-01-11T08:31:26.500"),
            "20260111T083126_NIR_3_MDARK_60_0S_SOXS.sof",
        ),
        # 0.5 s gives 0_5S; exptime is rounded to 2 decimals
        (DarkSetSpec("soxs", "NIR", exptime=0.5), "20260111T082924_NIR_3_MDARK_0_5S_SOXS.sof"),
        (DarkSetSpec("soxs", "NIR", exptime=60.001), "20260111T082924_NIR_3_MDARK_60_0S_SOXS.sof"),
        (
            DarkSetSpec("soxs", "VIS", exptime=1.25, binning=(2, 1), read_speed=2),
            "20260111T082924_VIS_2X1_2_MDARK_1_25S_SOXS.sof",
        ),
        # X-shooter: WIN1 binning, readout speed as fast/slow, no NIR binning or speed
        (
            DarkSetSpec("xsh", "UVB", exptime=60.0),
            "20260111T082924_UVB_1X1_FAST_MDARK_60_0S_XSHOOTER.sof",
        ),
        (
            DarkSetSpec("xsh", "VIS", exptime=60.0, binning=(1, 2), read_speed="1pt/100k/hg"),
            "20260111T082924_VIS_1X2_SLOW_MDARK_60_0S_XSHOOTER.sof",
        ),
        (DarkSetSpec("xsh", "NIR", exptime=120.0), "20260111T082924_NIR_MDARK_120_0S_XSHOOTER.sof"),
    ],
)
def test_sof_name(spec: DarkSetSpec, name: str) -> None:
    assert sof_name(spec) == name


def test_sof_name_matches_first_date_obs(tmp_path: Path) -> None:
    spec = DarkSetSpec("soxs", "NIR", n_frames=2, exptime=5.0, start="2026-03-02T23:59:59.999")
    h = fits.getheader(simulate_set(spec, tmp_path)[0])
    stamp = h["DATE-OBS"].split(".")[0].replace("-", "").replace(":", "")
    assert sof_name(spec).startswith(stamp + "_")


def _parse_sof_like_soxspipe(text: str) -> list[str]:
    """soxspipe's ``set_of_files`` rules for the FITS entries."""
    out = []
    for line in text.split("\n"):
        if not line or line[0] == "#":
            continue
        if ".fits" in line:
            out.append(line.split(".fits")[0] + ".fits")
    return out


def test_write_sof_round_trip(tmp_path: Path) -> None:
    spec = DarkSetSpec("soxs", "NIR", n_frames=3, exptime=5.0)
    frames = simulate_set(spec, tmp_path / "raw")
    sof = write_sof(tmp_path / "sof" / sof_name(spec), frames)
    assert sof == tmp_path / "sof" / sof_name(spec)
    text = sof.read_text()
    assert not text.endswith("\n")  # tabulate "plain": no trailing newline
    lines = text.split("\n")
    assert len(lines) == 3
    for line, frame in zip(lines, frames, strict=True):
        path, tag = line.split()
        assert Path(path).is_absolute()
        assert Path(path) == frame.resolve()
        assert tag == "DARK_NIR"
        assert line == f"{path}  {tag}"  # two spaces between path and tag
    assert _parse_sof_like_soxspipe(text) == [str(f.resolve()) for f in frames]


def test_write_sof_relative_paths_and_custom_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = DarkSetSpec("xsh", "UVB", n_frames=2, shape=_min_shape("xsh", "UVB"))
    frames = simulate_set(spec, tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    rel = [Path("raw") / f.name for f in frames]
    text = write_sof(Path("x.sof"), rel).read_text()
    assert [ln.split()[1] for ln in text.split("\n")] == ["DARK_UVB", "DARK_UVB"]
    assert _parse_sof_like_soxspipe(text) == [str(f.resolve()) for f in frames]
    text = write_sof(Path("y.sof"), rel, tag="MY_TAG").read_text()
    assert all(ln.endswith("  MY_TAG") for ln in text.split("\n"))


def test_write_sof_rejects_unparseable_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_sof(tmp_path / "a.sof", [])
    with pytest.raises(ValueError):
        write_sof(tmp_path / "a.sof", [tmp_path / "dir.fits" / "frame.fits"], tag="DARK_NIR")
    with pytest.raises(ValueError):
        write_sof(tmp_path / "a.sof", [tmp_path / "frame.fits.gz"], tag="DARK_NIR")


# ------------------------------------------------------------------------------------------
# Command line: python -m mdark_dask.simulate


def _simulate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mdark_dask.simulate ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "mdark_dask.simulate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_help_names_both_subcommands() -> None:
    done = _simulate("--help")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s+set\s", done.stdout, re.M), done.stdout
    assert re.search(r"^\s+night\s", done.stdout, re.M), done.stdout
    for sub in ("set", "night"):
        done = _simulate(sub, "--help")
        assert done.returncode == 0, done.stderr
        assert "--output DIR" in done.stdout and "--frames N" in done.stdout


def test_cli_set_writes_frames_and_a_sof(tmp_path: Path) -> None:
    args = "set xsh uvb --frames 4 --exptime 30 --binning 2x2 --start 2026-01-11T10:00:00"
    done = _simulate(*args.split(), "--seed", "3", "--small", "-o", tmp_path)
    assert done.returncode == 0, done.stderr
    spec = DarkSetSpec(
        "xsh",
        "UVB",
        n_frames=4,
        exptime=30.0,
        binning=(2, 2),
        start="2026-01-11T10:00:00",
        seed=3,
        shape=ARMS[("xsh", "UVB")].raw_shape(2, 2),
    )
    name = sof_name(spec).removesuffix(".sof")
    frames = sorted((tmp_path / "raw" / name).glob("*.fits"))
    assert len(frames) == 4
    sof = tmp_path / "sof" / f"{name}.sof"
    assert _parse_sof_like_soxspipe(sof.read_text()) == [str(f.resolve()) for f in frames]
    assert str(sof) in done.stdout
    # the same frames as the Python API writes
    again = simulate_set(spec, tmp_path / "api")
    for ours, theirs in zip(frames, again, strict=True):
        (a, ha), (b, hb) = _read(ours), _read(theirs)
        np.testing.assert_array_equal(a, b)
        assert list(ha.items()) == list(hb.items())
    assert a.shape == (1500, 1048)
    assert (ha["EXPTIME"], ha["ESO DET WIN1 BINX"], ha["ESO TPL NEXP"]) == (30.0, 2, 4)


def test_cli_night_is_planned_into_sets(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    done = _simulate("night", "--small", "-o", raw)
    assert done.returncode == 0, done.stderr
    listed = [ln.split() for ln in done.stdout.splitlines() if re.match(r"\s+\d+ x ", ln)]
    sets = [words[8] for words in listed if "(left" not in words]
    left_out = [words[8] for words in listed if "(left" in words]
    arms = {tuple(words[2:4]) for words in listed if "(left" not in words}
    assert len(sets) == 10 and len(left_out) == 3
    assert arms == {(i.upper(), a) for i, a in ARMS}  # every arm of both instruments
    assert sum(int(words[0]) for words in listed) == len(list(raw.glob("*.fits")))
    # the console script beside this interpreter, as a user runs it
    exe = Path(sys.executable).with_name("mdark-dask")
    ws = tmp_path / "ws"
    plan = subprocess.run(
        [str(exe), "night", str(raw), "-o", str(ws), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert plan.returncode == 0, plan.stderr
    for name in sets:  # a set: a product to make
        assert f"soxs_mdark/{name}.fits" in plan.stdout, name
    for name in left_out:  # listed as left out, and no product
        assert name in plan.stdout, name
        assert f"soxs_mdark/{name.removesuffix('.fits')}.fits" not in plan.stdout, name
    assert not (ws / "products").exists()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["set", "soxs", "UVB"], 2, "soxs has no UVB arm"),
        (["set", "xsh", "NIR", "--frames", "0"], 2, "--frames"),
        (["set", "xsh", "NIR", "--start", "yesterday"], 2, "--start"),
        (["night", "--frames", "2"], 2, "--frames 3 or more"),
        (["night", "--start", "2026-01-11T14:00:00"], 2, "next night"),
        (["set", "xsh", "NIR", "--small", "-o", "/dev/null/sim"], 1, "cannot write"),
    ],
)
def test_cli_errors_are_short(args: list[str], status: int, message: str, tmp_path: Path) -> None:
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "out")]
    done = _simulate(*args)
    assert done.returncode == status
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert message in lines[-1]  # argparse's usage, then one line; or just one line
    assert lines[-1].startswith("ERROR: ") == (len(lines) == 1)
    assert not (tmp_path / "out").exists()


def test_arc_headers_and_spots(tmp_path: Path) -> None:
    """A non-dark frame (a NIR pinhole arc): its DPR, slit and lamp cards, and spots of the
    asked electrons at the asked place of soxspipe's rotated and trimmed frame; the rest of
    the frame is the dark of the same seed."""
    arc = {"dpr_type": "LAMP,WAVE", "dpr_tech": "ECHELLE,PINHOLE", "slit": "PINHOLE"}
    base = DarkSetSpec("soxs", "NIR", n_frames=1, exptime=1.0, seed=5, **arc)
    spots = ((100.0, 200.0, 5e4), (1500.3, 900.7, 2e4))
    spec = replace(base, spots=spots, lamps=("ARGO", "MERC"), obs_name="ARC_NIR")
    (plain,) = simulate_set(base, tmp_path / "plain")
    (lit,) = simulate_set(spec, tmp_path / "lit")
    h = fits.getheader(lit)
    assert (h["ESO DPR TYPE"], h["ESO DPR TECH"]) == ("LAMP,WAVE", "ECHELLE,PINHOLE")
    assert h["ESO INS NISE NAME"] == "PINHOLE" and h["ESO OBS NAME"] == "ARC_NIR"
    assert (h["ESO INS ARGO NAME"], h["ESO INS MERC NAME"]) == ("Argo_Lamp", "Merc_Lamp")
    assert "ESO INS ARGO NAME" not in fits.getheader(plain)
    diff = fits.getdata(lit).astype(np.float64) - fits.getdata(plain).astype(np.float64)
    assert abs(diff.sum() * spec.effective_gain - 7e4) < 0.01 * 7e4
    rs, re_, cs, ce = spec.arm_spec.science_region(1, 1)
    science = np.rot90(diff, spec.arm_spec.rotation_k)[rs:re_, cs:ce]
    for x, y, _ in spots:
        window = science[round(y) - 3 : round(y) + 4, round(x) - 3 : round(x) + 4]
        assert window.max() == science[round(y), round(x)] > 0
