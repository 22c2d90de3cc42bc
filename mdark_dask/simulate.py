"""Synthetic raw dark frames that soxspipe 0.17.4 accepts.

The parity tests, benchmarks and demos need raw darks of every arm without shipping
gigabytes of real data. This module writes single-HDU FITS files that look like real SOXS
and X-shooter darks to ``soxs_mdark`` and to soxspipe's data organiser: the native raw size
and dtype, the ESO header keywords both read (detector, instrument, template and
observation keywords) and a pixel model with the features a master-dark recipe must cope
with:

* a pedestal (NIR reset level, CCD bias) with a weak fixed column/row pattern on the CCDs;
* dark current x EXPTIME, slightly non-uniform per pixel, with its shot noise;
* Gaussian read noise (RON / gain, in ADU);
* a fixed set of hot pixels (a few saturating) and a few cold/dead pixels;
* cosmic rays, different in every frame, each hitting a small cluster of pixels;
* optionally (off by default, so default sets keep their bytes): hot-pixel dark currents
  from a Pareto (power-law) tail instead of log-uniform, telegraph pixels that jump between
  two levels from frame to frame, and a higher cosmic-ray rate. :func:`injected_defects`
  returns where every defect is, in the master's pixel grid, for the hot-pixel tests.

Everything fixed (pattern, dark map, hot and cold pixels) depends only on the seed, arm,
binning and shape, so every frame of a set, and every set of the same seed, shares it;
everything random per frame (noise, cosmics) is drawn from a generator seeded by the seed and
the frame number, so a set is reproducible bit for bit.

Only the science pixels (soxspipe's trim, :meth:`ArmSpec.raw_shape`) collect dark current,
hot pixels and cosmic rays; pre-/overscan and NIR reference pixels carry the pedestal and read
noise only, as on the real detectors.

From the command line, ``python -m mdark_dask.simulate set soxs NIR -o DIR`` writes one set
and its sof, ``python -m mdark_dask.simulate night -o DIR`` a night of every arm of both
instruments (``--help`` lists the options).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from mdark_dask.instruments import ARMS, INSTRUME_VALUE, SOXS_KEYWORDS, XSH_WIN_BIN, ArmSpec
from mdark_dask.io.fits import read_header, write_image

__all__ = [
    "DarkSetSpec",
    "Defects",
    "FlagScore",
    "injected_defects",
    "score_flags",
    "simulate_set",
    "sof_name",
    "write_sof",
]

# --------------------------------------------------------------------------------------------
# Per-arm detector model. Numbers the simulator invents (pedestals, dark rates, readout gaps)
# live here; numbers soxspipe defines (science pixels, fallback gain/RON) come from ARMS.


@dataclass(frozen=True)
class _ArmModel:
    """What the simulator needs to know about one arm beyond :class:`ArmSpec`.

    Attributes
    ----------
    native : tuple of int
        Raw (rows, cols) of an unbinned frame as the instrument writes it.
    dtype : str
        ``"uint16"`` (CCDs and the SOXS NIR controller) or ``"float32"`` (X-shooter NIR).
    pedestal : float
        Bias or reset level in ADU.
    pattern : float
        Amplitude (ADU) of the fixed column/row bias pattern; 0 for the NIR arrays.
    dark_rate : float
        Mean dark current of a normal pixel in e-/s.
    hot_rate : tuple of float
        Log-uniform range of hot-pixel dark currents in e-/s.
    full_well : float
        The ADU value a saturating pixel reads.
    readout_gap : float
        Seconds between the end of one exposure and the start of the next.
    header_gain : float or None
        e-/ADU the headers carry by default; ``None`` where the arm has no header gain
        (soxspipe then uses the detector-parameter fallback of :class:`ArmSpec`).
    header_ron : float or None
        Read noise (e-) the headers carry; ``None`` where they carry none.
    read_speed : str or int or None
        Default readout mode (SOXS ``ESO DET READ CURID``, X-shooter ``ESO DET READ SPEED``).
    """

    native: tuple[int, int]
    dtype: str
    pedestal: float
    pattern: float
    dark_rate: float
    hot_rate: tuple[float, float]
    full_well: float
    readout_gap: float
    header_gain: float | None
    header_ron: float | None
    read_speed: str | int | None


_MODELS: Final[dict[tuple[str, str], _ArmModel]] = {
    ("soxs", "NIR"): _ArmModel(
        (2048, 2048), "uint16", 12.0, 0.0, 0.01, (0.5, 200.0), 65535.0, 6.0, None, None, 3
    ),
    ("soxs", "VIS"): _ArmModel(
        (4096, 908), "uint16", 1500.0, 1.5, 0.0005, (0.05, 50.0), 65535.0, 45.0, 1.5, 3.8, 1
    ),
    ("xsh", "UVB"): _ArmModel(
        (3000, 2144),
        "uint16",
        1200.0,
        1.5,
        0.0003,
        (0.05, 50.0),
        65535.0,
        40.0,
        1.61,
        2.6,
        "1pt/400k/lg",
    ),
    ("xsh", "VIS"): _ArmModel(
        (4000, 2106),
        "uint16",
        1800.0,
        1.5,
        0.0005,
        (0.05, 50.0),
        65535.0,
        40.0,
        1.4,
        5.3,
        "1pt/400k/lg",
    ),
    ("xsh", "NIR"): _ArmModel(
        (1100, 2048), "float32", 100.0, 0.0, 0.01, (0.5, 200.0), 45000.0, 5.0, None, None, None
    ),
}

# SOXS readout-mode names by CURID (only written for completeness: soxspipe reads CURID).
_SOXS_CURNAME: Final = {
    "NIR": {1: "Double", 2: "Fowler", 3: "UpTheRamp"},
    "VIS": {1: "slow-100kHz", 2: "fast-1MHz"},
}
# The data organiser's names for X-shooter readout speeds.
_XSH_ROSPEED: Final = {
    "1pt/400k/lg": "fast",
    "1pt/400k/lg/AFC": "fast",
    "1pt/100k/hg": "slow",
    "1pt/100k/hg/AFC": "slow",
}

_HOT_FRACTION: Final = 2e-4  # of the science pixels
_SATURATED_HOT: Final = 0.03  # fraction of the hot pixels that read the full well
_COLD_FRACTION: Final = 3e-5
_CR_RATE: Final = 8e-8  # cosmic-ray hits per (unbinned) science pixel per second
_DARK_SPREAD: Final = 0.3  # sigma of log(dark rate) of normal pixels


@dataclass(frozen=True)
class DarkSetSpec:
    """One template's worth of raw darks: what :func:`simulate_set` writes.

    Attributes
    ----------
    instrument : str
        ``"soxs"`` or ``"xsh"``.
    arm : str
        ``"NIR"``, ``"VIS"`` or (X-shooter) ``"UVB"``.
    n_frames : int
        Frames in the set (``ESO TPL NEXP``).
    exptime : float
        ``EXPTIME`` in seconds; every frame gets the same value (soxspipe compares exactly).
    binning : tuple of int
        ``(binx, biny)``; ignored for NIR, whose arrays are never binned.
    start : str
        ``DATE-OBS`` of the first frame (UTC, ISO); later frames follow at EXPTIME plus the
        arm's readout gap.
    seed : int
        Seeds the fixed pattern (hot pixels, dark map) and, with the frame number, the
        per-frame noise and cosmic rays.
    shape : tuple of int or None
        Raw (rows, cols) before rotation; ``None`` is the arm's native size divided by the
        binning. Must hold the science pixels (:meth:`ArmSpec.raw_shape`).
    dpr_type : str
        ``ESO DPR TYPE``; anything but ``DARK`` lets tests exercise soxspipe's type check.
    read_speed : str or int or None
        ``ESO DET READ CURID`` (SOXS) or ``ESO DET READ SPEED`` (X-shooter); ``None`` is the
        arm default (SOXS NIR 3, VIS 1; X-shooter UVB/VIS ``1pt/400k/lg``, NIR absent).
    gain : float or None
        e-/ADU written where the arm has a header gain (SOXS VIS, X-shooter UVB/VIS);
        ``None`` is the arm default (SOXS VIS 1.5, X-shooter UVB 1.61, VIS 1.4). The pixel
        model converts electrons to ADU with the gain soxspipe will use.
    hot_tail : float or None
        Tail index ``alpha`` of heavy-tailed hot-pixel dark currents: each hot pixel's
        excess over the mean rate is Pareto type II (Lomax), ``lo * (U**(-1/alpha) - 1)``
        with ``lo`` the arm's lowest log-uniform hot rate, so ``P(excess > x) =
        (1 + x / lo)**-alpha``: a continuum from barely warm to saturating (the full well
        caps it). ``None`` keeps the log-uniform rates.
    telegraph_fraction : float
        Fraction of the science pixels that are telegraph pixels: in every frame,
        independently and with probability 1/2, such a pixel reads its normal value plus
        its amplitude. 0 (the default) injects none.
    telegraph_amplitude : tuple of float
        Range of the telegraph amplitudes in units of the read noise (RON, e-); each pixel
        draws its amplitude log-uniformly in it.
    cosmic_scale : float
        Multiplies the cosmic-ray rate (1 is the default model, about 8e-8 hits per pixel
        per second).
    pedestal : float or None
        Bias or reset level in ADU; ``None`` for the arm's own. SOXS NIR frames are
        processed ramps whose level is small (soxspipe's MDARK MEDIAN range for NIR is
        -15 to 50 e-), so the default is 12 ADU; a larger level (e.g. 1000 ADU) makes
        a set whose master fails that range.
    dpr_tech : str
        ``ESO DPR TECH``; with ``dpr_type`` it makes frames that are not darks, such as a
        NIR single-pinhole arc (``LAMP,WAVE``, ``ECHELLE,PINHOLE``), which soxspipe's
        organiser plans for its later recipes.
    slit : str or None
        The slit (SOXS ``ESO INS NISE NAME`` / ``VISE NAME``); ``None`` is ``BLANK``, a
        dark's. soxspipe's organiser reads ``PINHOLE``, ``MULT`` and ``SLIT`` in it.
    lamps : tuple of str
        Lamps switched on (SOXS ``ESO INS <LAMP> NAME`` cards, e.g. ``("ARGO", "MERC")``
        for Ar and Hg, which soxspipe's NIR dispersion solution requires).
    spots : tuple of (x, y, electrons)
        Point sources (Gaussian, sigma :data:`SPOT_SIGMA` px) added to every frame,
        at ``(x, y)`` of soxspipe's prepared (rotated and trimmed) frame, 0-based, as
        its static line lists give ``detector_x``/``detector_y``, with ``electrons`` in
        the whole spot.
    obs_name : str or None
        ``ESO OBS NAME`` (also the template name); ``None`` is the dark's
        ``DARK_<ARM>_<EXPTIME>s``.
    """

    instrument: str
    arm: str
    n_frames: int = 3
    exptime: float = 60.0
    binning: tuple[int, int] = (1, 1)
    start: str = "2026-01-11T08:29:24.123"
    seed: int = 0
    shape: tuple[int, int] | None = None
    dpr_type: str = "DARK"
    read_speed: str | int | None = None
    gain: float | None = None
    hot_tail: float | None = None
    telegraph_fraction: float = 0.0
    telegraph_amplitude: tuple[float, float] = (8.0, 80.0)
    cosmic_scale: float = 1.0
    pedestal: float | None = None
    dpr_tech: str = "IMAGE"
    slit: str | None = None
    lamps: tuple[str, ...] = ()
    spots: tuple[tuple[float, float, float], ...] = ()
    obs_name: str | None = None

    def __post_init__(self) -> None:
        """Reject specs soxspipe could never see, so mistakes surface before any file exists."""
        if (self.instrument, self.arm) not in ARMS:
            raise ValueError(f"unknown instrument/arm {self.instrument!r}/{self.arm!r}")
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if not (math.isfinite(self.exptime) and self.exptime >= 0):
            raise ValueError(f"exptime must be finite and >= 0, got {self.exptime}")
        if len(self.binning) != 2 or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in self.binning
        ):
            raise ValueError(f"binning must be two integers >= 1, got {self.binning}")
        if self.gain is not None and not (math.isfinite(self.gain) and self.gain > 0):
            raise ValueError(f"gain must be > 0, got {self.gain}")
        if self.hot_tail is not None and not (math.isfinite(self.hot_tail) and self.hot_tail > 0):
            raise ValueError(f"hot_tail must be > 0, got {self.hot_tail}")
        if not 0.0 <= self.telegraph_fraction < 0.5:
            raise ValueError(
                f"telegraph_fraction must be in [0, 0.5), got {self.telegraph_fraction}"
            )
        lo, hi = self.telegraph_amplitude
        if not (math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(f"telegraph_amplitude must be 0 < lo <= hi, got {(lo, hi)}")
        if not (math.isfinite(self.cosmic_scale) and self.cosmic_scale >= 0):
            raise ValueError(f"cosmic_scale must be >= 0, got {self.cosmic_scale}")
        _parse_start(self.start)  # raises ValueError if unparseable
        raw = self.raw_shape
        need = self.arm_spec.raw_shape(self.ybin, self.xbin)
        if raw[0] < need[0] or raw[1] < need[1]:
            raise ValueError(
                f"shape {raw} is too small for the {self.instrument} {self.arm} science pixels:"
                f" a raw frame needs at least {need} (rows, cols)"
            )

    @property
    def arm_spec(self) -> ArmSpec:
        """soxspipe's geometry and fallbacks of the arm."""
        return ARMS[(self.instrument, self.arm)]

    @property
    def xbin(self) -> int:
        """Binning along x (columns); 1 for NIR."""
        return 1 if self.arm == "NIR" else int(self.binning[0])

    @property
    def ybin(self) -> int:
        """Binning along y (rows); 1 for NIR."""
        return 1 if self.arm == "NIR" else int(self.binning[1])

    @property
    def raw_shape(self) -> tuple[int, int]:
        """Raw (rows, cols) of every frame of the set, before any rotation."""
        if self.shape is not None:
            return int(self.shape[0]), int(self.shape[1])
        rows, cols = _MODELS[(self.instrument, self.arm)].native
        return rows // self.ybin, cols // self.xbin

    @property
    def effective_read_speed(self) -> str | int | None:
        """The readout mode written into the headers."""
        if self.read_speed is not None:
            return self.read_speed
        return _MODELS[(self.instrument, self.arm)].read_speed

    @property
    def header_gain(self) -> float | None:
        """The gain (e-/ADU) the headers carry, or ``None`` for arms without one."""
        default = _MODELS[(self.instrument, self.arm)].header_gain
        if default is None:
            return None
        return default if self.gain is None else float(self.gain)

    @property
    def effective_gain(self) -> float:
        """The gain soxspipe will apply: the header gain, else the detector-parameter one."""
        g = self.header_gain
        return self.arm_spec.gain if g is None else g

    @property
    def effective_ron(self) -> float:
        """Read noise in e-: the header value, else the detector-parameter fallback."""
        ron = _MODELS[(self.instrument, self.arm)].header_ron
        return self.arm_spec.ron if ron is None else ron


# --------------------------------------------------------------------------------------------
# Geometry


def _science_box(spec: DarkSetSpec) -> tuple[int, int, int, int]:
    """Science pixels as ``(r0, r1, c0, c1)`` in *raw* coordinates (before rotation).

    soxspipe rotates with ``numpy.rot90(data, k)`` and then trims. A
    ``rot90`` of an array is a view, so marking the trim region in the rotated view of a
    boolean raw-shaped array marks exactly the raw pixels that survive the trim.
    """
    rs, re_, cs, ce = spec.arm_spec.science_region(spec.ybin, spec.xbin)
    rows, cols = spec.raw_shape
    mark = np.zeros((rows, cols), dtype=bool)
    np.rot90(mark, spec.arm_spec.rotation_k)[rs:re_, cs:ce] = True
    r = np.flatnonzero(mark.any(axis=1))
    c = np.flatnonzero(mark.any(axis=0))
    return int(r[0]), int(r[-1]) + 1, int(c[0]), int(c[-1]) + 1


# --------------------------------------------------------------------------------------------
# Pixel model


@dataclass(frozen=True)
class _Detector:
    """The part of the pixel model that is the same in every frame of a seed.

    Attributes
    ----------
    bias : ndarray of float32
        Pedestal plus fixed pattern, in ADU, raw shape.
    dark_rate : ndarray of float32
        Dark current of each pixel in e-/s (0 outside the science pixels; hot pixels included).
    hot : ndarray of intp
        Flat indices of the hot pixels.
    saturated : ndarray of intp
        Flat indices of the hot pixels that read the full well whatever the exposure.
    cold : ndarray of intp
        Flat indices of cold/dead pixels.
    cold_level : ndarray of float32
        What each cold pixel reads (ADU, before read noise).
    box : tuple of int
        Science pixels in raw coordinates.
    telegraph : ndarray of intp
        Flat indices of the telegraph pixels (none unless the spec asks for them).
    telegraph_amp : ndarray of float32
        Each telegraph pixel's amplitude in e-.
    """

    bias: npt.NDArray[np.float32]
    dark_rate: npt.NDArray[np.float32]
    hot: npt.NDArray[np.intp]
    saturated: npt.NDArray[np.intp]
    cold: npt.NDArray[np.intp]
    cold_level: npt.NDArray[np.float32]
    box: tuple[int, int, int, int]
    telegraph: npt.NDArray[np.intp]
    telegraph_amp: npt.NDArray[np.float32]


def _pick(
    rng: np.random.Generator, box: tuple[int, int, int, int], ncols: int, n: int
) -> npt.NDArray[np.intp]:
    """Draw ``n`` distinct flat indices inside the science box."""
    r0, r1, c0, c1 = box
    w = c1 - c0
    size = (r1 - r0) * w
    n = min(n, size)
    local = rng.choice(size, size=n, replace=False)
    return ((local // w + r0) * ncols + (local % w + c0)).astype(np.intp)


def _detector(spec: DarkSetSpec) -> _Detector:
    """Build the fixed pattern of the seed: bias structure, dark map, hot and cold pixels."""
    model = _MODELS[(spec.instrument, spec.arm)]
    rows, cols = spec.raw_shape
    rng = np.random.default_rng([spec.seed, 0])
    box = _science_box(spec)
    r0, r1, c0, c1 = box
    npix_bin = spec.xbin * spec.ybin  # on-chip binning sums the dark charge of the pixels

    pedestal = model.pedestal if spec.pedestal is None else spec.pedestal
    bias = np.full((rows, cols), pedestal, dtype=np.float32)
    if model.pattern:
        col = rng.normal(0.0, 0.5 * model.pattern, cols) + model.pattern * np.sin(
            np.linspace(0.0, 3.0 * np.pi, cols)
        )
        row = np.linspace(-model.pattern, model.pattern, rows) + rng.normal(0.0, 0.2, rows)
        bias += col.astype(np.float32)[None, :]
        bias += row.astype(np.float32)[:, None]

    dark = np.zeros((rows, cols), dtype=np.float32)
    # Log-normal around the mean rate (the -s²/2 keeps the mean at dark_rate).
    sub = rng.standard_normal((r1 - r0, c1 - c0), dtype=np.float32)
    sub *= np.float32(_DARK_SPREAD)
    sub += np.float32(np.log(model.dark_rate * npix_bin) - 0.5 * _DARK_SPREAD**2)
    dark[r0:r1, c0:c1] = np.exp(sub)

    nsci = (r1 - r0) * (c1 - c0)
    n_hot = max(3, round(nsci * _HOT_FRACTION))
    n_cold = max(2, round(nsci * _COLD_FRACTION))
    idx = _pick(rng, box, cols, n_hot + n_cold)
    hot, cold = idx[:n_hot], idx[n_hot:]
    lo, hi = model.hot_rate
    flat_dark = dark.reshape(-1)
    flat_dark[hot] = np.exp(rng.uniform(np.log(lo), np.log(hi), hot.size)).astype(np.float32)
    flat_dark[cold] = 0.0
    n_sat = max(1, round(hot.size * _SATURATED_HOT))
    saturated = hot[:n_sat]
    # Dead pixels read (nearly) nothing; cold ones read part of the pedestal.
    cold_level = (bias.reshape(-1)[cold] * rng.uniform(0.0, 0.6, cold.size)).astype(np.float32)
    # The optional defects draw from their own generator: default sets keep their bytes.
    extra = np.random.default_rng([spec.seed, 2])
    if spec.hot_tail is not None:
        u = 1.0 - extra.random(hot.size)  # (0, 1]
        excess = np.minimum(lo * (u ** (-1.0 / spec.hot_tail) - 1.0), 1e7)
        flat_dark[hot] = (model.dark_rate * npix_bin + excess).astype(np.float32)
    telegraph = np.zeros(0, dtype=np.intp)
    amp = np.zeros(0, dtype=np.float32)
    n_tel = round(nsci * spec.telegraph_fraction)
    if n_tel:
        taken = np.concatenate([hot, cold])
        cand = _pick(extra, box, cols, min(nsci, n_tel + taken.size))
        telegraph = cand[~np.isin(cand, taken)][:n_tel]
        a_lo, a_hi = spec.telegraph_amplitude
        ron = spec.effective_ron
        draw = extra.uniform(np.log(a_lo), np.log(a_hi), telegraph.size)
        amp = (ron * np.exp(draw)).astype(np.float32)
    return _Detector(bias, dark, hot, saturated, cold, cold_level, box, telegraph, amp)


def _telegraph_high(spec: DarkSetSpec, det: _Detector, i: int) -> npt.NDArray[np.bool_]:
    """Which telegraph pixels read their high level in frame ``i``."""
    return np.random.default_rng([spec.seed, 3, i]).random(det.telegraph.size) < 0.5


def _cosmics(
    spec: DarkSetSpec,
    det: _Detector,
    rng: np.random.Generator,
    frame: npt.NDArray[np.float32],
    gain: float,
) -> None:
    """Add this frame's cosmic-ray hits (in place): a bright pixel and a few neighbours."""
    r0, r1, c0, c1 = det.box
    nsci = (r1 - r0) * (c1 - c0) * spec.xbin * spec.ybin
    n = int(rng.poisson(_CR_RATE * nsci * spec.exptime * spec.cosmic_scale))
    if n == 0:
        return
    cols = frame.shape[1]
    cy = rng.integers(r0, r1, n)
    cx = rng.integers(c0, c1, n)
    energy = np.exp(rng.uniform(np.log(300.0), np.log(3e4), n))  # e- in the central pixel
    # 3x3 footprint: the centre always, each neighbour with probability 0.35.
    dy = np.repeat(np.arange(-1, 2), 3)
    dx = np.tile(np.arange(-1, 2), 3)
    frac = rng.uniform(0.05, 0.4, (n, 9))
    hit = rng.random((n, 9)) < 0.35
    frac[:, 4] = 1.0
    hit[:, 4] = True
    yy = cy[:, None] + dy[None, :]
    xx = cx[:, None] + dx[None, :]
    ok = hit & (yy >= r0) & (yy < r1) & (xx >= c0) & (xx < c1)
    flat = frame.reshape(-1)
    np.add.at(flat, (yy[ok] * cols + xx[ok]), (energy[:, None] * frac)[ok] / gain)


#: Gaussian sigma (px) of :attr:`DarkSetSpec.spots`.
SPOT_SIGMA: Final = 1.2


def _spot_image(spec: DarkSetSpec) -> npt.NDArray[np.float32]:
    """The spots of ``spec`` in e-, raw shape: drawn in soxspipe's prepared frame (rotated
    by ``rotation_k`` quarter turns, then trimmed) and put back through the same view."""
    rs, re_, cs, ce = spec.arm_spec.science_region(spec.ybin, spec.xbin)
    light = np.zeros(spec.raw_shape, dtype=np.float32)
    science = np.rot90(light, spec.arm_spec.rotation_k)[rs:re_, cs:ce]
    rows, cols = science.shape
    half = math.ceil(4 * SPOT_SIGMA)
    norm = 1.0 / (2.0 * math.pi * SPOT_SIGMA**2)
    for x, y, electrons in spec.spots:
        cx, cy = round(x), round(y)
        y0, y1 = max(cy - half, 0), min(cy + half + 1, rows)
        x0, x1 = max(cx - half, 0), min(cx + half + 1, cols)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        r2 = (xx - x) ** 2 + (yy - y) ** 2
        science[y0:y1, x0:x1] += (electrons * norm * np.exp(-r2 / (2 * SPOT_SIGMA**2))).astype(
            np.float32
        )
    return light


def _frame(spec: DarkSetSpec, det: _Detector, i: int) -> npt.NDArray[np.uint16 | np.float32]:
    """Pixel values of frame ``i`` (0-based) in ADU, in the arm's raw dtype."""
    model = _MODELS[(spec.instrument, spec.arm)]
    gain = spec.effective_gain
    rng = np.random.default_rng([spec.seed, 1, i])
    dark_e = det.dark_rate * np.float32(spec.exptime)
    # Read noise and dark shot noise in one normal draw (Gaussian is exact enough for
    # the counts involved and much faster than Poisson).
    sigma = np.sqrt(dark_e + np.float32(spec.effective_ron**2)) / np.float32(gain)
    frame = rng.standard_normal(det.bias.shape, dtype=np.float32)
    frame *= sigma
    frame += det.bias
    frame += dark_e / np.float32(gain)
    frame += np.float32(rng.normal(0.0, 0.3))  # small frame-to-frame level drift
    _cosmics(spec, det, rng, frame, gain)
    if spec.spots:
        frame += _spot_image(spec) / np.float32(gain)
    flat = frame.reshape(-1)
    if det.telegraph.size:
        high = _telegraph_high(spec, det, i)
        flat[det.telegraph] += np.where(high, det.telegraph_amp / np.float32(gain), np.float32(0))
    ron_adu = spec.effective_ron / gain
    flat[det.cold] = det.cold_level + rng.normal(0.0, ron_adu, det.cold.size).astype(np.float32)
    np.minimum(frame, np.float32(model.full_well), out=frame)
    flat[det.saturated] = model.full_well
    if model.dtype == "uint16":
        np.rint(frame, out=frame)
        np.clip(frame, 0.0, 65535.0, out=frame)
        return frame.astype(np.uint16)
    return frame


# --------------------------------------------------------------------------------------------
# Headers


_MJD_EPOCH: Final = datetime(1858, 11, 17)


def _parse_start(start: str) -> datetime:
    """``DarkSetSpec.start`` as a naive UTC datetime rounded to the millisecond."""
    dt = datetime.fromisoformat(start.strip().removesuffix("Z"))
    if dt.tzinfo is not None:
        raise ValueError(f"start must be a naive UTC time, got {start!r}")
    ms = round(dt.microsecond / 1000)
    return dt.replace(microsecond=0) + timedelta(milliseconds=ms)


def _times(spec: DarkSetSpec) -> list[datetime]:
    """Start of every frame, spaced by EXPTIME + the arm's readout gap, whole milliseconds.

    Plain datetime arithmetic on purpose: astropy's UTC arithmetic consults the leap-second
    table, which may try to download an update (and warn) for dates past its expiry.
    """
    model = _MODELS[(spec.instrument, spec.arm)]
    t0 = _parse_start(spec.start)
    step_ms = round((spec.exptime + model.readout_gap) * 1000)
    return [t0 + timedelta(milliseconds=i * step_ms) for i in range(spec.n_frames)]


def _isot(t: datetime) -> str:
    """ESO DATE-OBS format: ``YYYY-MM-DDTHH:MM:SS.sss``."""
    return t.isoformat(timespec="milliseconds")


def _mjd(t: datetime) -> float:
    """MJD of a UTC time (days of 86400 s, as MJD-OBS is written)."""
    return (t - _MJD_EPOCH) / timedelta(days=1)


#: A raw frame's header cards, in order: ``(keyword, value, comment)``.
Cards = list[tuple[str, object, str]]


def _put(h: Cards, key: str, value: object, comment: str) -> None:
    """Add a card (:func:`mdark_dask.io.fits.write_image` spells long ESO keywords as
    HIERARCH cards)."""
    h.append((key, value, comment))


def _header(spec: DarkSetSpec, i: int, t: datetime, first: datetime, filename: str) -> Cards:
    """The primary header of frame ``i``: every keyword soxspipe's mdark and organiser read."""
    kw = spec.arm_spec.keywords
    arm = spec.arm
    soxs = spec.instrument == "soxs"
    date_obs = _isot(t)
    tpl_start = first.isoformat(timespec="seconds")
    h: Cards = []
    _put(h, "ORIGIN", "ESO-LASILLA" if soxs else "ESO-PARANAL", "European Southern Observatory")
    _put(h, "TELESCOP", "ESO-NTT" if soxs else "ESO-VLT-U2", "ESO telescope designation")
    _put(h, kw.instrume, INSTRUME_VALUE[spec.instrument], "Instrument used")
    _put(h, "OBJECT", "DARK", "Original target")
    _put(h, kw.date_obs, date_obs, "Observing date")
    _put(h, kw.mjd_obs, _mjd(t), "Obs start")
    _put(h, kw.exptime, float(spec.exptime), "Integration time")
    _put(h, "ARCFILE", filename, "Archive File Name")
    _put(h, kw.obs_id, 200000000 + spec.seed % 100000000, "Observation block ID")
    obs_name = spec.obs_name or f"DARK_{arm}_{_exptime_label(spec.exptime)}s"
    _put(h, kw.obs_name, obs_name, "OB name")
    _put(h, "ESO OBS START", tpl_start, "OB start time")
    _put(h, "ESO OBS TARG NAME", "DARK", "OB target name")
    _put(h, "ESO OBS TPLNO", 1, "Template number within OB")
    _put(h, "ESO OBS NTPL", 1, "Number of templates within OB")
    prefix = "SOXS" if soxs else "XSHOOTER"
    _put(h, kw.tpl_id, f"{prefix}_{arm.lower()}_cal_Dark", "Template signature ID")
    _put(h, kw.tpl_name, spec.obs_name or f"{arm} dark", "Template name")
    _put(h, kw.tpl_nexp, spec.n_frames, "Number of exposures within template")
    _put(h, kw.tpl_expno, i + 1, "Exposure number within template")
    _put(h, kw.tpl_start, tpl_start, "TPL start time")
    _put(h, kw.dpr_catg, "CALIB", "Observation category")
    _put(h, kw.dpr_type, spec.dpr_type, "Observation type")
    _put(h, kw.dpr_tech, spec.dpr_tech, "Observation technique")
    _put(h, kw.arm, arm, "Arm")
    if soxs:
        _soxs_keys(spec, h)
    else:
        _xsh_keys(spec, h)
    return h


def _soxs_keys(spec: DarkSetSpec, h: Cards) -> None:
    """SOXS detector and instrument keywords, as soxspipe 0.17.4 reads them."""
    kw = SOXS_KEYWORDS
    arm = spec.arm
    curid = spec.effective_read_speed
    _put(h, kw.read_speed, curid, "Used readout mode id")
    name = _SOXS_CURNAME[arm].get(curid, f"mode{curid}") if isinstance(curid, int) else curid
    _put(h, "ESO DET READ CURNAME", str(name), "Used readout mode name")
    if arm == "VIS":
        gain = spec.header_gain
        assert gain is not None  # SOXS VIS always has a header gain
        # soxspipe 0.17.4 takes max(CONAD, GAIN). Real headers carry CONAD in e-/ADU and
        # GAIN = 1/CONAD in ADU/e-; for a gain below 1 that max would pick the inverse, so
        # GAIN is capped at the gain itself to make soxspipe use exactly `gain`.
        _put(h, kw.binx, spec.xbin, "Binning factor along X")
        _put(h, kw.biny, spec.ybin, "Binning factor along Y")
        _put(h, kw.conad, gain, "Conversion from electrons to ADU")
        _put(h, kw.gain, min(gain, round(1.0 / gain, 3)), "Conversion from ADUs to electrons")
        _put(h, kw.ron, spec.effective_ron, "Readout noise per output (e-)")
    # soxspipe reads all three temperatures of every SOXS frame (KeyError if absent).
    assert kw.cpath_temp and kw.detector_temp_nir and kw.detector_temp_vis
    _put(h, kw.cpath_temp, 16.0, "Common path temperature [C]")
    _put(h, kw.detector_temp_nir, 45.0, "NIR detector temperature [K]")
    _put(h, kw.detector_temp_vis, -110.0, "VIS detector temperature [C]")
    _put(h, "ESO INS ACFW ID", "OPEN", "Acquisition camera filter wheel")
    # FITS logical: the organiser treats anything truthy, including the string 'F', as a
    # simulated frame and drops it.
    _put(h, "ESO INS NISE SWSIM", False, "NIR spectrograph simulated")
    _put(h, "ESO INS VISE SWSIM", False, "VIS spectrograph simulated")
    _put(h, "ESO INS NISE NAME", spec.slit or "BLANK", "NIR slit")
    _put(h, "ESO INS VISE NAME", spec.slit or "BLANK", "VIS slit")
    for lamp in spec.lamps:
        _put(h, f"ESO INS {lamp} NAME", f"{lamp.title()}_Lamp", "Calibration lamp on")


def _xsh_keys(spec: DarkSetSpec, h: Cards) -> None:
    """X-shooter detector keywords, as soxspipe 0.17.4 reads them."""
    kw = spec.arm_spec.keywords
    speed = spec.effective_read_speed
    if speed is not None:
        _put(h, kw.read_speed, speed, "Readout speed")
    slit = {"UVB": "OPTI3", "VIS": "OPTI4", "NIR": "OPTI5"}[spec.arm]
    _put(h, f"ESO INS {slit} NAME", "Blind", "Slit")
    if spec.arm != "NIR":
        gain = spec.header_gain
        assert gain is not None
        _put(h, kw.binx, float(spec.xbin), "Binning factor along X")
        _put(h, kw.biny, float(spec.ybin), "Binning factor along Y")
        _put(h, XSH_WIN_BIN[0], spec.xbin, "Binning factor along X")
        _put(h, XSH_WIN_BIN[1], spec.ybin, "Binning factor along Y")
        _put(h, kw.conad, gain, "Conversion from electrons to ADU")
        _put(h, kw.ron, spec.effective_ron, "Readout noise per output (e-)")


# --------------------------------------------------------------------------------------------
# Public API


def simulate_set(spec: DarkSetSpec, out_dir: Path) -> list[Path]:
    """Write the raw dark frames of ``spec`` into ``out_dir``.

    Parameters
    ----------
    spec : DarkSetSpec
        What to simulate.
    out_dir : Path
        Created if missing. Files are named like the instrument names them
        (``SOXS.<DATE-OBS>.fits``, ``XSHOO.<DATE-OBS>.fits``) and overwritten if present.

    Returns
    -------
    list of Path
        The frames in time (MJD-OBS) order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    det = _detector(spec)
    times = _times(spec)
    stem = "SOXS" if spec.instrument == "soxs" else "XSHOO"
    paths: list[Path] = []
    for i, t in enumerate(times):
        name = f"{stem}.{_isot(t)}.fits"
        path = out_dir / name
        write_image(path, _frame(spec, det, i), _header(spec, i, t, times[0], name))
        paths.append(path)
    return paths


def write_sof(path: Path, frames: Sequence[Path], tag: str | None = None) -> Path:
    """Write a soxspipe set-of-files listing ``frames``, as the data organiser writes one.

    One ``<absolute path>  <TAG>`` line per frame, the paths padded to one width and no
    trailing newline, as the data organiser's ``tabulate`` "plain" table. soxspipe ignores
    the tag, but the organiser writes ``<DPR TYPE>_<ARM>``, which is the default here (read
    from each frame's header).

    Parameters
    ----------
    path : Path
        The ``.sof`` to write; its basename decides the product name and night directory,
        see :func:`sof_name`.
    frames : sequence of Path
        Raw frames, in the order to list them.
    tag : str, optional
        One tag for every line instead of the header-derived one.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If there are no frames, or a path would be mangled by soxspipe's parser (it cuts
        every line after the first ``.fits``).
    """
    if not frames:
        raise ValueError("a sof needs at least one frame")
    rows: list[tuple[str, str]] = []
    for frame in frames:
        p = str(Path(frame).resolve())
        if p.count(".fits") != 1 or not p.endswith(".fits") or "\n" in p:
            raise ValueError(f"soxspipe cannot read the path {p!r} from a sof")
        if tag is None:
            h = read_header(p)
            line_tag = f"{h[SOXS_KEYWORDS.dpr_type]}_{h[SOXS_KEYWORDS.arm]}"
        else:
            line_tag = tag
        rows.append((p, line_tag))
    width = max(len(p) for p, _ in rows)
    text = "\n".join(f"{p:<{width}}  {t}".rstrip() for p, t in rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _exptime_label(exptime: float) -> str:
    """EXPTIME as the organiser prints it: rounded to 2 decimals, Python float repr."""
    return str(float(round(exptime, 2)))


def sof_name(spec: DarkSetSpec) -> str:
    """The name soxspipe's data organiser gives the MDARK sof of this set.

    ``<date-obs>_<arm>_<binning>_<rospeed>_MDARK_<lamp>_<slit>_<exptime>s_<instrume>``,
    upper-cased, with empty fields (``--``; lamp and slit are always empty for darks)
    squeezed out and ``.`` turned into ``_``. For example
    ``20260111T082924_NIR_3_MDARK_5_0S_SOXS.sof``. The organiser never makes X-shooter MDARK
    sofs (its sof map leaves them out), so those names follow the same scheme with the
    organiser's X-shooter binning (``WIN1 BINX x WIN1 BINY``) and readout speed
    (``fast``/``slow``).
    """
    date = _times(spec)[0].strftime("%Y%m%dT%H%M%S")
    binning = "--" if spec.arm == "NIR" else f"{spec.xbin}x{spec.ybin}"
    speed = spec.effective_read_speed
    if speed is None:
        rospeed = "--"
    elif spec.instrument == "xsh":
        rospeed = _XSH_ROSPEED.get(str(speed), str(speed))
    else:
        rospeed = str(speed)
    name = (
        f"{date}_{spec.arm}_{binning}_{rospeed}_mdark_--_--_{_exptime_label(spec.exptime)}s"
        f"_{INSTRUME_VALUE[spec.instrument]}"
    ).upper()
    for _ in range(5):
        name = name.replace("_--_", "_").replace(" ", "").replace(".", "_").replace("__", "_")
    return name + ".sof"


# --------------------------------------------------------------------------------------------
# Injected truth, for the hot-pixel tests and benchmark


_T = TypeVar("_T", bound=np.generic)


@dataclass(frozen=True)
class Defects:
    """Where the simulator put its defects, in the master's pixel grid (rotated, trimmed).

    Attributes
    ----------
    hot, saturated, cold, telegraph : ndarray of bool
        Hot pixels (saturated ones included), hot pixels that read the full well, cold or
        dead pixels, telegraph pixels.
    hot_excess : ndarray of float64
        Expected excess of each hot pixel over a normal pixel of the master, in e-: its dark
        charge (capped by the full well) minus the mean dark charge; 0 elsewhere.
    telegraph_amplitude : ndarray of float64
        Each telegraph pixel's jump in e-; 0 elsewhere.
    telegraph_high : ndarray of int
        In how many frames each telegraph pixel read its high level.
    n_frames : int
        Frames in the set.
    """

    hot: npt.NDArray[np.bool_]
    saturated: npt.NDArray[np.bool_]
    cold: npt.NDArray[np.bool_]
    telegraph: npt.NDArray[np.bool_]
    hot_excess: npt.NDArray[np.float64]
    telegraph_amplitude: npt.NDArray[np.float64]
    telegraph_high: npt.NDArray[np.int64]
    n_frames: int

    @property
    def any(self) -> npt.NDArray[np.bool_]:
        """Every injected defect: a flag here is never a false flag."""
        return self.hot | self.cold | self.telegraph

    @property
    def telegraph_detectable(self) -> npt.NDArray[np.bool_]:
        """Telegraph pixels seen at each level in at least two frames.

        A pixel that jumps in only one frame of the set looks exactly like a cosmic-ray hit
        in time; one that never jumps is a normal (or, always high, a hot) pixel.
        """
        low = self.n_frames - self.telegraph_high
        return self.telegraph & (np.minimum(low, self.telegraph_high) >= 2)


def _master_grid(spec: DarkSetSpec, raw: npt.NDArray[_T]) -> npt.NDArray[_T]:
    """A raw-shaped array seen in the master's grid: soxspipe's rotation, then its trim."""
    rs, re_, cs, ce = spec.arm_spec.science_region(spec.ybin, spec.xbin)
    return np.ascontiguousarray(np.rot90(raw, spec.arm_spec.rotation_k)[rs:re_, cs:ce])


def injected_defects(spec: DarkSetSpec) -> Defects:
    """The defects :func:`simulate_set` injects for ``spec``, in the master's pixel grid."""
    model = _MODELS[(spec.instrument, spec.arm)]
    det = _detector(spec)
    shape = spec.raw_shape
    gain = spec.effective_gain

    def mark(idx: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        m = np.zeros(shape, dtype=bool)
        m.reshape(-1)[idx] = True
        return _master_grid(spec, m)

    mean_dark = model.dark_rate * spec.xbin * spec.ybin * spec.exptime
    cap = (model.full_well - det.bias.reshape(-1)[det.hot].astype(np.float64)) * gain
    charge = det.dark_rate.reshape(-1)[det.hot].astype(np.float64) * spec.exptime
    charge[np.isin(det.hot, det.saturated)] = np.inf
    excess = np.zeros(shape, dtype=np.float64)
    excess.reshape(-1)[det.hot] = np.minimum(charge, cap) - mean_dark
    amplitude = np.zeros(shape, dtype=np.float64)
    amplitude.reshape(-1)[det.telegraph] = det.telegraph_amp
    high = np.zeros(shape, dtype=np.int64)
    for i in range(spec.n_frames):
        high.reshape(-1)[det.telegraph] += _telegraph_high(spec, det, i)
    return Defects(
        hot=mark(det.hot),
        saturated=mark(det.saturated),
        cold=mark(det.cold),
        telegraph=mark(det.telegraph),
        hot_excess=_master_grid(spec, excess),
        telegraph_amplitude=_master_grid(spec, amplitude),
        telegraph_high=_master_grid(spec, high),
        n_frames=spec.n_frames,
    )


@dataclass(frozen=True)
class FlagScore:
    """How a map of flagged pixels matches the injected defects.

    Attributes
    ----------
    pixels : int
        Pixels in the map.
    hot_strong : int
        Injected hot pixels whose excess exceeds ``k`` times the per-pixel uncertainty.
    hot_recall : float
        Fraction of those flagged.
    hot_recall_all : float
        Fraction of all injected hot pixels flagged (faint ones included).
    false_flags : int
        Flagged pixels that are no injected defect.
    telegraph : int
        Injected telegraph pixels.
    telegraph_recall : float
        Fraction of them flagged.
    telegraph_recall_detectable : float
        Fraction flagged of those seen at each level in at least two frames.
    """

    pixels: int
    hot_strong: int
    hot_recall: float
    hot_recall_all: float
    false_flags: int
    telegraph: int
    telegraph_recall: float
    telegraph_recall_detectable: float

    @property
    def false_fraction(self) -> float:
        """False flags as a fraction of all pixels."""
        return self.false_flags / self.pixels


def score_flags(
    defects: Defects,
    flagged: npt.NDArray[np.bool_],
    uncertainty: npt.NDArray[np.floating],
    k: float = 5.0,
) -> FlagScore:
    """Score a boolean map of flagged pixels against the injected defects.

    ``uncertainty`` is the master's per-pixel 1-sigma uncertainty (its ERRS image); a hot
    pixel counts as strong when its injected excess exceeds ``k`` times it.
    """
    flagged = np.asarray(flagged, dtype=bool)
    if flagged.shape != defects.hot.shape:
        raise ValueError(f"map shape {flagged.shape} is not the master's {defects.hot.shape}")

    def frac(sel: npt.NDArray[np.bool_]) -> float:
        n = int(sel.sum())
        return float(flagged[sel].sum() / n) if n else float("nan")

    strong = defects.hot & (defects.hot_excess > k * np.asarray(uncertainty, dtype=np.float64))
    return FlagScore(
        pixels=int(flagged.size),
        hot_strong=int(strong.sum()),
        hot_recall=frac(strong),
        hot_recall_all=frac(defects.hot),
        false_flags=int((flagged & ~defects.any).sum()),
        telegraph=int(defects.telegraph.sum()),
        telegraph_recall=frac(defects.telegraph),
        telegraph_recall_detectable=frac(defects.telegraph_detectable),
    )


# --------------------------------------------------------------------------------------------
# Command line: ``python -m mdark_dask.simulate set|night ...``

_PROG: Final = "python -m mdark_dask.simulate"
_NIGHT_START: Final = "2026-01-11T00:00:00.000"
_PAUSE: Final = timedelta(minutes=2)  # between two templates of one instrument
# Every arm of both instruments, each at two exposure times (seconds).
_NIGHT_SETS: Final = (
    ("soxs", "NIR", (5.0, 60.0)),
    ("soxs", "VIS", (60.0, 300.0)),
    ("xsh", "UVB", (60.0, 300.0)),
    ("xsh", "VIS", (60.0, 300.0)),
    ("xsh", "NIR", (120.0, 300.0)),
)


@dataclass(frozen=True)
class _Template:
    """One template of a simulated night and what of it ends up on disk."""

    spec: DarkSetSpec
    keep: int  # frames written; fewer than ``spec.n_frames`` for an aborted template
    left_out: str  # why ``mdark-dask night`` leaves it out; "" for a set it reduces


def _smallest(spec: DarkSetSpec) -> DarkSetSpec:
    """``spec`` in the smallest raw frame that holds its science pixels."""
    shape = spec.arm_spec.raw_shape(spec.ybin, spec.xbin)
    return DarkSetSpec(**{**spec.__dict__, "shape": shape})


def _night(n_frames: int, start: str, small: bool, seed: int, extras: bool) -> list[_Template]:
    """The templates of a simulated night, in the order they are written.

    SOXS (at the NTT) and X-shooter (at the VLT) observe at the same time, each instrument
    one template after the other: every arm at two exposure times, then (``extras``) three
    things a real night also holds and ``mdark-dask night`` leaves out: a set of too few
    frames, a bias frame and an aborted template.
    """
    from mdark_dask.plan.frameset import MIN_FRAMES  # the fewest frames a set may have
    from mdark_dask.plan.names import NIGHT_OFFSET  # a night's date is the date this earlier

    if n_frames < MIN_FRAMES:
        raise ValueError(
            f"a night needs --frames {MIN_FRAMES} or more (sets of fewer are left out)"
        )
    clock = {"soxs": _parse_start(start), "xsh": _parse_start(start)}
    night: list[_Template] = []

    def add(
        instrument: str,
        arm: str,
        exptime: float,
        n: int,
        keep: int | None = None,
        left_out: str = "",
        dpr_type: str = "DARK",
    ) -> None:
        spec = DarkSetSpec(
            instrument,
            arm,
            n_frames=n,
            exptime=exptime,
            binning=(2, 2) if small else (1, 1),
            start=_isot(clock[instrument]),
            seed=seed + len(night),
            dpr_type=dpr_type,
        )
        night.append(_Template(_smallest(spec) if small else spec, keep or n, left_out))
        step = timedelta(seconds=exptime + _MODELS[(instrument, arm)].readout_gap)
        clock[instrument] = _times(spec)[-1] + step + _PAUSE

    for instrument, arm, exptimes in _NIGHT_SETS:
        for exptime in exptimes:
            add(instrument, arm, exptime, n_frames)
    if extras:
        short = MIN_FRAMES - 1
        add("soxs", "NIR", 10.0, short, left_out=f"only {short} frames")
        add("soxs", "VIS", 0.0, 1, left_out="a bias, not a dark", dpr_type="BIAS")
        add(
            "xsh",
            "NIR",
            60.0,
            n_frames + 1,
            n_frames,
            f"aborted, {n_frames} of {n_frames + 1} frames",
        )
    first = (_parse_start(start) - NIGHT_OFFSET).date()
    if any((_times(t.spec)[-1] - NIGHT_OFFSET).date() != first for t in night):
        raise ValueError(
            f"{n_frames} frames a set from {start} run past 15:00 UTC into the next night; "
            "give an earlier --start or fewer --frames"
        )
    return night


def _frames_arg(text: str) -> int:
    """argparse type of --frames: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _exptime_arg(text: str) -> float:
    """argparse type of --exptime: seconds, finite and >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be finite and >= 0, got {text}")
    return value


def _start_arg(text: str) -> str:
    """argparse type of --start: a naive UTC ISO time."""
    try:
        _parse_start(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a UTC time like 2026-01-11T08:29:24.123: {text!r}"
        ) from None
    return text


def _binning_arg(text: str) -> tuple[int, int]:
    """argparse type of --binning: ``XxY``, e.g. ``2x2``."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"not a binning like 1x1 or 2x2: {text!r}")
    return int(parts[0]), int(parts[1])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Write synthetic raw SOXS and X-shooter dark frames (FITS files) that\n"
        "soxspipe's soxs_mdark and mdark-dask accept.",
        epilog="examples:\n"
        f"  {_PROG} set soxs NIR --frames 5 --exptime 5 -o sim\n"
        "  mdark-dask mdark sim/sof/*.sof -o ws\n"
        f"  {_PROG} night --small -o raw-night\n"
        "  mdark-dask night raw-night -o ws --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{set,night}")

    one = sub.add_parser(
        "set",
        help="one set of darks (one template) and its sof",
        description="Write one set of raw darks into DIR/raw/NAME/ and its sof, as "
        "soxspipe's data organiser names it, into DIR/sof/NAME.sof.",
    )
    one.add_argument("instrument", choices=("soxs", "xsh"), help="SOXS or X-shooter")
    one.add_argument(
        "arm", type=str.upper, choices=("NIR", "VIS", "UVB"), help="UVB is X-shooter's only"
    )
    one.add_argument("-o", "--output", required=True, metavar="DIR", help="where to write")
    one.add_argument(
        "--frames", type=_frames_arg, default=3, metavar="N", help="frames (default 3)"
    )
    one.add_argument(
        "--exptime",
        type=_exptime_arg,
        default=60.0,
        metavar="SECONDS",
        help="exposure time (default 60)",
    )
    one.add_argument(
        "--start",
        type=_start_arg,
        default=DarkSetSpec.start,
        metavar="ISOT",
        help=f"DATE-OBS of the first frame, UTC (default {DarkSetSpec.start})",
    )
    one.add_argument(
        "--binning",
        type=_binning_arg,
        default=(1, 1),
        metavar="XxY",
        help="CCD binning, e.g. 2x2 (default 1x1; NIR arrays are never binned)",
    )
    one.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    one.add_argument(
        "--small",
        action="store_true",
        help="the smallest raw frames that hold the science pixels (quicker to write and reduce)",
    )

    night = sub.add_parser(
        "night",
        help="a whole night: every arm of both instruments, and frames left out",
        description="Write a night of raw frames into DIR, as a night directory holds them: "
        "darks of every SOXS and X-shooter arm at two exposure times each, and (unless "
        "--darks-only) a set of too few frames, a bias frame and an aborted template, which "
        "`mdark-dask night` lists as left out.",
    )
    night.add_argument("-o", "--output", required=True, metavar="DIR", help="where to write")
    night.add_argument(
        "--frames", type=_frames_arg, default=3, metavar="N", help="frames a set (default 3)"
    )
    night.add_argument(
        "--start",
        type=_start_arg,
        default=_NIGHT_START,
        metavar="ISOT",
        help=f"start of the first template, UTC (default {_NIGHT_START})",
    )
    night.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    night.add_argument(
        "--small",
        action="store_true",
        help="CCDs binned 2x2 and the smallest raw frames (quicker to write and reduce)",
    )
    night.add_argument(
        "--darks-only",
        action="store_true",
        help="only the sets of darks: no short set, bias or aborted template",
    )
    return parser


def _write_set(args: argparse.Namespace) -> None:
    """``set``: one set of darks and its sof."""
    arms = sorted(arm for inst, arm in ARMS if inst == args.instrument)
    if args.arm not in arms:
        raise ValueError(f"{args.instrument} has no {args.arm} arm, only {' and '.join(arms)}")
    spec = DarkSetSpec(
        args.instrument,
        args.arm,
        n_frames=args.frames,
        exptime=args.exptime,
        binning=args.binning,
        start=args.start,
        seed=args.seed,
    )
    if args.small:
        spec = _smallest(spec)
    out = Path(args.output)
    name = sof_name(spec).removesuffix(".sof")
    if str((out / "raw" / name / "frame.fits").resolve()).count(".fits") != 1:
        raise ValueError(
            f"soxspipe cannot read a sof of frames under {out} (a '.fits' in the path)"
        )
    frames = simulate_set(spec, out / "raw" / name)
    sof = write_sof(out / "sof" / f"{name}.sof", frames)
    rows, cols = spec.raw_shape
    print(
        f"{len(frames)} {spec.instrument.upper()} {spec.arm} darks of {spec.exptime:g} s "
        f"({rows} x {cols} raw pixels) in {frames[0].parent}"
    )
    print(f"sof: {sof}")
    print(f"next: mdark-dask mdark {sof} -o WORKSPACE")


def _write_night(args: argparse.Namespace) -> None:
    """``night``: every template of the night, flat in one directory, one line each."""
    out = Path(args.output)
    night = _night(args.frames, args.start, args.small, args.seed, not args.darks_only)
    sets = sum(1 for t in night if not t.left_out)
    print(f"writing {sets} sets of darks and {len(night) - sets} templates left out into {out}")
    for template in night:
        spec = template.spec
        frames = simulate_set(spec, out)
        for aborted in frames[template.keep :]:
            aborted.unlink()
        if spec.dpr_type == "DARK":
            what, name = "darks", sof_name(spec).removesuffix(".sof")
        else:  # not a set: `mdark-dask night` lists the frame itself
            what, name = spec.dpr_type.lower(), frames[0].name
        label = f"{spec.instrument.upper()} {spec.arm} {what} of {spec.exptime:g} s"
        why = f"  (left out: {template.left_out})" if template.left_out else ""
        print(f"  {template.keep:2d} x {label:<27s} {name}{why}", flush=True)
    print(f"next: mdark-dask night {out} -o WORKSPACE --dry-run")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mdark_dask.simulate``: write a set of darks or a night; the exit status.

    Bad arguments exit with status 2, a failure to write with 1, with a message on stderr
    (argparse's usage and one line, or one line).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "set":
            _write_set(args)
        else:
            _write_night(args)
    except ValueError as exc:  # a spec that cannot be simulated, or a path a sof cannot hold
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"ERROR: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
