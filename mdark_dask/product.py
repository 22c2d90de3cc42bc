"""Master arrays + QC + provenance -> the product HDU list (reference §6.3-6.4). No disk.

The layout is soxspipe's so products drop into soxspipe unchanged: FLUX float32 primary,
QUAL uint8, ERRS float32; the primary header is the earliest raw frame's, with ESO QC,
PRO and PRO REC1 keywords, DPR keywords scrubbed, sorted alphabetically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from mdark_dask._version import __version__
from mdark_dask.frameset import FrameSet
from mdark_dask.kernels import Master
from mdark_dask.qc import QCRow
from mdark_dask.settings import Settings

PIPE_ID = f"mdark-dask/v{__version__}"
RECIPE_ID = "soxs-mdark"
_SCRUB = ("ESO DPR TECH", "ESO DPR CATG", "ESO DPR TYPE", "ARCFILE")


def _set(header: fits.Header, key: str, value: object, comment: str = "") -> None:
    # ESO keywords longer than 8 characters are HIERARCH cards; say so to avoid warnings
    name = key if len(key) <= 8 and " " not in key else f"HIERARCH {key}"
    header[name] = (value, comment)


def _fit_name(key: str, value: str) -> str:
    """Truncate a string value so ``HIERARCH key = 'value'`` fits one 80-character card."""
    room = 80 - len(f"HIERARCH {key} = ''")
    return value[:room]


def primary_header(
    raw_header: fits.Header,
    frameset: FrameSet,
    settings: Settings,
    qc: Sequence[QCRow],
) -> fits.Header:
    """Build the FLUX header from the earliest raw frame's header."""
    header = raw_header.copy(strip=True)
    for key in ("BZERO", "BSCALE", "BLANK"):
        header.remove(key, ignore_missing=True, remove_all=True)
    header["BUNIT"] = "electron"
    # soxspipe marks prepared frames with SXSPRE (only its presence is ever tested); a
    # fixed value keeps products byte-identical between runs.
    header["SXSPRE"] = ("mdark-dask", "frame prepared: trimmed, gain, errors")
    header["EXTNAME"] = "FLUX"
    for row in qc:
        if row.to_header:
            _set(header, f"ESO QC {row.name.upper()}", row.value, row.comment)
    arm = frameset.arm
    _set(header, "ESO SEQ ARM", arm)
    _set(header, "ESO PRO TYPE", "REDUCED")
    _set(header, "ESO PRO CATG", f"MASTER_DARK_{arm}")
    _set(header, "ESO PRO TECH", "IMAGE")
    kw = frameset.spec.keywords
    for n, raw in enumerate(frameset.frames, start=1):
        key = f"ESO PRO REC1 RAW{n} NAME"
        _set(header, key, _fit_name(key, raw.name))
        _set(header, f"ESO PRO REC1 RAW{n} CATG", f"{raw.get(kw.dpr_type)}_{arm}")
    for n, (name, value) in enumerate(settings.params, start=1):
        _set(header, f"ESO PRO REC1 PARAM{n} NAME", name[:40])
        _set(header, f"ESO PRO REC1 PARAM{n} VALUE", value)
    _set(header, "ESO PRO REC1 PIPE ID", PIPE_ID)
    _set(header, "ESO PRO REC1 ID", RECIPE_ID)
    _set(header, "MDARK NUMERICS", settings.numerics, "mdark-dask numerics mode")
    header["NCOMBINE"] = (len(frameset.frames), "number of raw frames combined")
    for key in _SCRUB:
        header.remove(key, ignore_missing=True, remove_all=True)
    if "RADECSYS" in header:
        header.rename_keyword("RADECSYS", "RADESYS")
    if "ESO TEL TARG EQUINOX" in header and "EQUINOX" not in header:
        header.rename_keyword("HIERARCH ESO TEL TARG EQUINOX", "EQUINOX")
    header.remove("INHERIT", ignore_missing=True)
    if "COMMENT" in header or "HISTORY" in header:
        return header
    structural = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND"}
    cards = sorted(
        (c for c in header.cards if c.keyword not in structural), key=lambda c: c.keyword
    )
    return fits.Header(cards)


def build_hdul(master: Master, header: fits.Header) -> fits.HDUList:
    """Assemble FLUX / QUAL / ERRS."""
    flux = fits.PrimaryHDU(np.asarray(master.flux, dtype=np.float32), header=header)
    qual = fits.ImageHDU(np.asarray(master.qual, dtype=np.uint8), name="QUAL")
    errs_header = fits.Header()
    errs_header["UTYPE"] = "StdDevUncertainty"
    errs = fits.ImageHDU(np.asarray(master.errs, dtype=np.float32), errs_header, name="ERRS")
    return fits.HDUList([flux, qual, errs])


def product_dir(workspace: Path) -> Path:
    """Where products and their logs go (the documented layout, CONTRACT §3)."""
    return workspace / "products" / "soxs_mdark"


def qc_dir(workspace: Path) -> Path:
    """Where QC plots go."""
    return workspace / "qc" / "soxs_mdark"
