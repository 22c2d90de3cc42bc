"""Per instrument and arm: header keywords, science pixels, rotation and detector fallbacks.

Everything here is a frozen value copied from soxspipe 0.17.4's resource files
(``<inst>_keywords.yaml`` and ``<inst>_detector_parameters.yaml``: keyword names, science
pixels, rotation, gain and RON fallbacks), so that the preparation of a raw frame is the
same function of the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from mdark_dask.errors import InputError


@dataclass(frozen=True)
class Keywords:
    """FITS keywords of one instrument, by the soxspipe alias that reads them."""

    arm: str = "ESO SEQ ARM"
    instrume: str = "INSTRUME"
    dpr_type: str = "ESO DPR TYPE"
    dpr_catg: str = "ESO DPR CATG"
    dpr_tech: str = "ESO DPR TECH"
    pro_type: str = "ESO PRO TYPE"
    pro_catg: str = "ESO PRO CATG"
    pro_tech: str = "ESO PRO TECH"
    exptime: str = "EXPTIME"
    mjd_obs: str = "MJD-OBS"
    date_obs: str = "DATE-OBS"
    binx: str = "ESO DET BINX"
    biny: str = "ESO DET BINY"
    read_speed: str = "ESO DET READ CURID"
    conad: str = "ESO DET OUT1 CONAD"
    gain: str = "ESO DET OUT1 GAIN"
    ron: str = "ESO DET CHIP RON"
    detector_temp_nir: str | None = "ESO INS TEMP217 VAL"
    detector_temp_vis: str | None = "ESO INS TEMP104 VAL"
    cpath_temp: str | None = "ESO INS TEMP301 VAL"
    tpl_name: str = "ESO TPL NAME"
    tpl_nexp: str = "ESO TPL NEXP"
    tpl_expno: str = "ESO TPL EXPNO"
    tpl_start: str = "ESO TPL START"
    tpl_id: str = "ESO TPL ID"
    obs_name: str = "ESO OBS NAME"
    obs_id: str = "ESO OBS ID"


SOXS_KEYWORDS: Final = Keywords()
XSH_KEYWORDS: Final = Keywords(
    binx="CDELT1",
    biny="CDELT2",
    read_speed="ESO DET READ SPEED",
    gain="GAIN",
    ron="ESO DET OUT1 RON",
    detector_temp_nir=None,
    detector_temp_vis=None,
    cpath_temp=None,
)


def detector_temp_unit(arm: str) -> str:
    """The unit of a SOXS arm's detector temperature keyword: the NIR array's sensor reads
    kelvin, the VIS CCD's reads degrees Celsius (soxspipe's QC calls both kelvin)."""
    return "K" if arm == "NIR" else "\N{DEGREE SIGN}C"


def keywords_of(instrument: str) -> Keywords:
    """The keyword dictionary of ``soxs``; X-shooter's for anything else (frames whose
    instrument is unknown are named by X-shooter's keywords, as soxspipe reads them)."""
    return SOXS_KEYWORDS if instrument == "soxs" else XSH_KEYWORDS


# X-shooter's bad-pixel-map binning keys (WIN_BINX/WIN_BINY) differ from its trim binning keys.
XSH_WIN_BIN: Final = ("ESO DET WIN1 BINX", "ESO DET WIN1 BINY")


@dataclass(frozen=True)
class ArmSpec:
    """Detector geometry and fallbacks of one arm.

    Attributes
    ----------
    instrument : str
        ``"soxs"`` or ``"xsh"`` (the soxspipe ``instrument`` setting).
    arm : str
        ``VIS``, ``NIR`` or ``UVB``.
    rotation_k : int
        ``numpy.rot90`` quarter turns applied before trimming, as soxspipe rotates.
    rows, cols : tuple of int
        Science pixels ``[start, end)`` of an unbinned, rotated frame (soxspipe's
        ``science-pixels`` detector parameters).
    gain, ron : float
        Detector-parameter fallbacks in e-/ADU and e-, used when a header lacks them.
    bpm : mapping
        Static bad-pixel-map file per ``<binx>x<biny>`` key.
    """

    instrument: str
    arm: str
    rotation_k: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    gain: float
    ron: float
    bpm: MappingProxyType[str, str]

    @property
    def keywords(self) -> Keywords:
        """The keyword dictionary of the instrument."""
        return keywords_of(self.instrument)

    @property
    def binned(self) -> bool:
        """Whether frames of this arm carry a binning (NIR is always 1x1)."""
        return self.arm != "NIR"

    def science_region(self, ybin: int, xbin: int) -> tuple[int, int, int, int]:
        """Return ``(rs, re, cs, ce)`` of the trim after rotation, scaled for binning.

        Integer truncation of the scaled indices is soxspipe's (``int(rs / ybin)``).
        """
        rs, re_ = self.rows
        cs, ce = self.cols
        if ybin > 1:
            rs, re_ = int(rs / ybin), int(re_ / ybin)
        if xbin > 1:
            cs, ce = int(cs / xbin), int(ce / xbin)
        return rs, re_, cs, ce

    def trimmed_shape(self, ybin: int = 1, xbin: int = 1) -> tuple[int, int]:
        """Shape of a prepared frame."""
        rs, re_, cs, ce = self.science_region(ybin, xbin)
        return re_ - rs, ce - cs

    def raw_shape(self, ybin: int = 1, xbin: int = 1) -> tuple[int, int]:
        """Smallest raw shape (rows, cols) that holds the science pixels, before rotation."""
        _, re_, _, ce = self.science_region(ybin, xbin)
        if self.rotation_k % 2:
            return ce, re_
        return re_, ce


def _bpm(**files: str) -> MappingProxyType[str, str]:
    return MappingProxyType({k.removeprefix("b"): v for k, v in files.items()})


ARMS: Final[MappingProxyType[tuple[str, str], ArmSpec]] = MappingProxyType(
    {
        ("soxs", "VIS"): ArmSpec(
            "soxs",
            "VIS",
            0,
            (0, 4096),
            (50, 858),
            1.0,
            3.80,
            _bpm(
                b1x1="BP_MAP_RP_VIS_1x1.fits",
                b1x2="BP_MAP_RP_VIS_1x2.fits",
                b2x1="BP_MAP_RP_VIS_2x1.fits",
                b2x2="BP_MAP_RP_VIS_2x2.fits",
            ),
        ),
        ("soxs", "NIR"): ArmSpec(
            "soxs", "NIR", 0, (4, 2044), (4, 2044), 2.3, 7.3, _bpm(b1x1="BP_MAP_RP_NIR.fits")
        ),
        ("xsh", "UVB"): ArmSpec(
            "xsh",
            "UVB",
            2,
            (0, 3000),
            (48, 2096),
            1.61,
            2.60,
            _bpm(
                b1x1="BP_MAP_RP_UVB_1x1.fits",
                b1x2="BP_MAP_RP_UVB_1x2.fits",
                b2x2="BP_MAP_RP_UVB_2x2.fits",
            ),
        ),
        ("xsh", "VIS"): ArmSpec(
            "xsh",
            "VIS",
            0,
            (0, 4000),
            (10, 2058),
            1.4,
            5.3,
            _bpm(
                b1x1="BP_MAP_RP_VIS_1x1.fits",
                b1x2="BP_MAP_RP_VIS_1x2.fits",
                b2x2="BP_MAP_RP_VIS_2x2.fits",
            ),
        ),
        ("xsh", "NIR"): ArmSpec(
            "xsh", "NIR", 1, (4, 2044), (20, 1076), 2.12, 8.0, _bpm(b1x1="BP_MAP_RP_NIR.fits")
        ),
    }
)

INSTRUMENT_NAMES: Final = MappingProxyType({"SOXS": "soxs", "XSHOOTER": "xsh", "SHOOT": "xsh"})
# The INSTRUME value each instrument writes (used by the simulator and sof names).
INSTRUME_VALUE: Final = MappingProxyType({"soxs": "SOXS", "xsh": "XSHOOTER"})


def instrument_of(instrume: object) -> str:
    """Map an ``INSTRUME`` header value to ``"soxs"`` or ``"xsh"``.

    Raises
    ------
    InputError
        For anything else: mdark-dask knows no other instrument's geometry.
    """
    name = str(instrume).strip().upper() if instrume is not None else ""
    try:
        return INSTRUMENT_NAMES[name]
    except KeyError:
        what = "no INSTRUME" if instrume is None else f"unknown instrument {instrume!r}"
        raise InputError(f"{what} (INSTRUME must be SOXS or XSHOOTER)") from None


def arm_spec(instrument: str, arm: object) -> ArmSpec:
    """Look up the :class:`ArmSpec` of an instrument's arm."""
    key = (instrument, str(arm).strip().upper() if arm is not None else "")
    try:
        return ARMS[key]
    except KeyError:
        raise InputError(f"unknown arm {arm!r} for instrument {instrument}") from None
