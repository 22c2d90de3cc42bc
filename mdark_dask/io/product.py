"""Product files: master arrays, QC and provenance to HDU lists, and products read back.

The layout is soxspipe's so products drop into soxspipe unchanged: FLUX float32 primary,
QUAL uint8, ERRS float32; the primary header is the earliest raw frame's, with ESO QC,
PRO and PRO REC1 keywords, DPR keywords scrubbed, sorted alphabetically.

Beside it, two mdark-dask products (:mod:`mdark_dask.numerics.hotpix`), whose headers are the
master's with their own PRO CATG, QC and parameters:

* the hot-pixel map, in the format of soxspipe's static bad-pixel maps (one uint8 image,
  non-zero = bad; bit 1 hot, bit 2 noisy), so it can serve where soxspipe reads one;
* the noise image (float32 e-, NaN where undefined) with its peeled companion (isolated
  extreme values peeled, :mod:`mdark_dask.numerics.hotpix`) as an image extension.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from mdark_dask._version import __version__
from mdark_dask.io.header import card_values, read_layout
from mdark_dask.numerics.hotpix import HOT, NOISY, HotPixels
from mdark_dask.numerics.qc import QCRow
from mdark_dask.numerics.steps import Master

PIPE_ID = f"mdark-dask/v{__version__}"
#: The header card of a product that records what it was made from (its plan's digest).
FINGERPRINT_KEY = "MDARK FINGERPRINT"
RECIPE_ID = "soxs-mdark"
_SCRUB = ("ESO DPR TECH", "ESO DPR CATG", "ESO DPR TYPE", "ARCFILE")


def set_card(header: fits.Header, key: str, value: object, comment: str = "") -> None:
    """Set ``key`` (a HIERARCH card when longer than 8 characters or spaced) to ``value``,
    its comment cut to what fits the 80-character card.

    astropy cuts a too-long card itself, with a warning that the writes would have to
    silence; warning filters are process-wide and not thread-safe (the plotting threads
    and background imports use them too), so the cut is made here instead: the same card
    image, no warning.
    """
    name = key if len(key) <= 8 and " " not in key else f"HIERARCH {key}"
    if comment:
        # the card with a one-character comment: where the comment starts, and the room
        probe = fits.Card(name, value, "x").image.rstrip()
        comment = comment[: max(0, 80 - (len(probe) - 1))] if len(probe) <= 80 else ""
    header[name] = (value, comment)


def _fit_name(key: str, value: str) -> str:
    """Truncate a string value so ``HIERARCH key = 'value'`` fits one 80-character card."""
    room = 80 - len(f"HIERARCH {key} = ''")
    return value[:room]


def primary_header(
    raw_header: fits.Header,
    arm: str,
    raws: Sequence[tuple[str, str]],
    params: Sequence[tuple[str, object]],
    numerics: str,
    qc: Sequence[QCRow],
) -> fits.Header:
    """Build the FLUX header from the earliest raw frame's header.

    Parameters
    ----------
    raw_header : astropy.io.fits.Header
        The earliest raw frame's header.
    arm : str
        The arm (``ESO SEQ ARM``).
    raws : sequence of (file name, category)
        The raw frames combined, in order, with their ``<DPR TYPE>_<ARM>`` category.
    params : sequence of (name, value)
        The recipe parameters (``ESO PRO REC1 PARAMn``).
    numerics : str
        The numerics mode (``MDARK NUMERICS``).
    qc : sequence of QCRow
        The QC rows; those marked for the header become ``ESO QC`` cards.
    """
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
            set_card(header, f"ESO QC {row.name.upper()}", row.value, row.comment)
    set_card(header, "ESO SEQ ARM", arm)
    set_card(header, "ESO PRO TYPE", "REDUCED")
    set_card(header, "ESO PRO CATG", f"MASTER_DARK_{arm}")
    set_card(header, "ESO PRO TECH", "IMAGE")
    for n, (raw_name, catg) in enumerate(raws, start=1):
        key = f"ESO PRO REC1 RAW{n} NAME"
        set_card(header, key, _fit_name(key, raw_name))
        set_card(header, f"ESO PRO REC1 RAW{n} CATG", catg)
    for n, (name, value) in enumerate(params, start=1):
        set_card(header, f"ESO PRO REC1 PARAM{n} NAME", name[:40])
        set_card(header, f"ESO PRO REC1 PARAM{n} VALUE", value)
    set_card(header, "ESO PRO REC1 PIPE ID", PIPE_ID)
    set_card(header, "ESO PRO REC1 ID", RECIPE_ID)
    set_card(header, "MDARK NUMERICS", numerics, "mdark-dask numerics mode")
    header["NCOMBINE"] = (len(raws), "number of raw frames combined")
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


def _derived_header(
    master_header: fits.Header, catg: str, qc: Sequence[QCRow], params: Sequence[tuple[str, object]]
) -> fits.Header:
    """A product header derived from the master's: same provenance, its own CATG and QC.

    The master's QC cards describe the master and are dropped; the hot-pixel parameters
    follow the master's ``ESO PRO REC1 PARAMn`` (which stay the soxspipe recipe's).
    """
    header = master_header.copy()
    for key in ("EXTNAME", "BUNIT"):
        header.remove(key, ignore_missing=True, remove_all=True)
    # Listed in a soxspipe sof, a one-HDU image without SXSPRE is taken for a raw frame
    # to prepare (``base_recipe._prepare_single_frame``), whose ``ESO DPR TYPE`` the
    # scrubbed header lacks (KeyError). With SXSPRE it passes as prepared and, its PRO
    # CATG matching none a recipe filters on, is left unused.
    header["SXSPRE"] = ("mdark-dask", "a product, not a raw frame to prepare")
    for key in [k for k in header if str(k).startswith("ESO QC ")]:
        header.remove(key, remove_all=True)
    set_card(header, "ESO PRO CATG", catg)
    first = 1
    while f"ESO PRO REC1 PARAM{first} NAME" in header:
        first += 1
    for n, (name, value) in enumerate(params, start=first):
        set_card(header, f"ESO PRO REC1 PARAM{n} NAME", name[:40])
        # a null rate is "not used", which the settings also spell 0
        set_card(header, f"ESO PRO REC1 PARAM{n} VALUE", 0.0 if value is None else value)
    for row in qc:
        set_card(header, f"ESO QC {row.name.upper()}", row.value, row.comment)
    return header


def hotpix_header(
    master_header: fits.Header,
    arm: str,
    hot: HotPixels,
    qc: Sequence[QCRow],
    params: Sequence[tuple[str, object]],
) -> fits.Header:
    """Header of the hot-pixel map: PRO CATG ``HOT_PIXEL_MAP_<ARM>``, bits documented."""
    header = _derived_header(master_header, f"HOT_PIXEL_MAP_{arm}", qc, params)
    set_card(header, "MDARK BPM HOT", HOT, "bit value of hot pixels (dark current)")
    set_card(header, "MDARK BPM NOISY", NOISY, "bit value of noisy pixels (temporal noise)")
    set_card(header, "MDARK DARK LEVEL", _finite(hot.level.median), "[e-] robust master level")
    set_card(header, "MDARK DARK SPREAD", _finite(hot.level.std), "[e-] MAD-std of the master")
    set_card(
        header,
        "MDARK HOT THRESHOLD",
        _finite(hot.hot_threshold),
        "[e-] hot pixels: dark current above",
    )
    set_card(
        header,
        "MDARK NOISE THRESHOLD",
        _finite(hot.noise.threshold),
        "[e-] noisy: scatter of kept frames above",
    )
    set_card(
        header,
        "MDARK NOISEPEEL THRESHOLD",
        _finite(hot.noise_peel.threshold),
        "[e-] noisy: scatter, extremes removed, above",
    )
    header.add_comment("Bad-pixel map: 0 = good, non-zero = bad (soxspipe static BPM format).")
    header.add_comment("HOTPIX NUM/FRAC: masked (soxspipe QC), every QUAL pixel of the master;")
    header.add_comment("HOTPIX PHYS NUM/FRAC: hot pixels; NOISYPIX NUM/FRAC: noisy pixels.")
    header.add_comment(f"Bit {HOT}: hot pixel, dark current above MDARK HOT THRESHOLD.")
    header.add_comment(f"Bit {NOISY}: noisy pixel, temporal scatter along the stack of all")
    header.add_comment("frames with isolated extremes removed above MDARK NOISEPEEL THRESHOLD")
    header.add_comment("(from 5 frames on), else scatter of the frames kept by the stack")
    header.add_comment("clip above MDARK NOISE THRESHOLD. See the _NOISE.fits product.")
    return header


def _finite(value: float) -> float:
    # FITS cannot hold NaN values in cards; a frame without statistics writes 0
    return float(value) if value == value else 0.0


def read_only(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A read-only float32 view of ``image``, for astropy to write.

    astropy writes (and checksums) a writeable little-endian array by byte-swapping it in
    place and back, so any thread reading it meanwhile (the QC plots) could see swapped
    values; a read-only one it swaps into a copy instead, the same bytes in the file for
    the same time (one pass instead of two) and a transient image of memory.
    """
    view = np.asarray(image, dtype=np.float32).view()
    view.flags.writeable = False
    return view


def build_hotpix_hdul(hot: HotPixels, header: fits.Header) -> fits.HDUList:
    """The hot-pixel map: one uint8 primary image, as soxspipe's static bad-pixel maps."""
    return fits.HDUList([fits.PrimaryHDU(np.asarray(hot.bpm, dtype=np.uint8), header=header)])


def noise_header(
    master_header: fits.Header,
    arm: str,
    hot: HotPixels,
    params: Sequence[tuple[str, object]],
) -> fits.Header:
    """Header of the noise image: PRO CATG ``MASTER_DARK_NOISE_<ARM>``, e-."""
    header = _derived_header(master_header, f"MASTER_DARK_NOISE_{arm}", (), params)
    header["BUNIT"] = "electron"
    header["EXTNAME"] = "NOISE"
    set_card(header, "MDARK NOISE MEDIAN", _finite(hot.noise.median), "[e-] median of the noise")
    set_card(header, "MDARK NOISE SPREAD", _finite(hot.noise.std), "[e-] MAD-std of the noise")
    set_card(
        header, "MDARK NOISE THRESHOLD", _finite(hot.noise.threshold), "[e-] noisy: scatter above"
    )
    header.add_comment("Per-pixel population std (e-) of the level-subtracted frames kept")
    header.add_comment("by the stack clip; NaN where fewer than two were kept. Extension")
    header.add_comment("NOISE_PEEL: the same over all finite frames once isolated extreme")
    header.add_comment("values are removed (NaN with fewer than five finite frames).")
    return header


def build_noise_hdul(
    noise: npt.NDArray[np.float32], noise_peel: npt.NDArray[np.float32], header: fits.Header
) -> fits.HDUList:
    """The noise image (primary) and its peeled companion (``NOISE_PEEL``)."""
    loo_header = fits.Header()
    loo_header["BUNIT"] = "electron"
    return fits.HDUList(
        [
            fits.PrimaryHDU(read_only(noise), header=header),
            fits.ImageHDU(read_only(noise_peel), loo_header, name="NOISE_PEEL"),
        ]
    )


def build_hdul(master: Master, header: fits.Header) -> fits.HDUList:
    """Assemble FLUX / QUAL / ERRS."""
    flux = fits.PrimaryHDU(read_only(master.flux), header=header)
    qual = fits.ImageHDU(np.asarray(master.qual, dtype=np.uint8), name="QUAL")
    errs_header = fits.Header()
    errs_header["UTYPE"] = "StdDevUncertainty"
    errs = fits.ImageHDU(read_only(master.errs), errs_header, name="ERRS")
    return fits.HDUList([flux, qual, errs])


def product_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded in a complete product, or None.

    The product counts only if every HDU's DATASUM/CHECKSUM verifies, so a file cut short
    or damaged under its final name is never taken as up to date. This reads every pixel:
    :func:`recorded_fingerprint` is the check that does not.
    """
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy warns on a failed checksum
            with fits.open(path, checksum=True) as hdul:
                for hdu in hdul:
                    _ = hdu.data  # reading the data verifies DATASUM
                return str(hdul[0].header[FINGERPRINT_KEY])
    except (OSError, KeyError, IndexError, ValueError, TypeError, Warning):
        return None


def hdus_of(path: str | Path) -> int:
    """How many HDUs a product file has, by its kind (:func:`build_hdul`,
    :func:`build_hotpix_hdul`, :func:`build_noise_hdul`)."""
    name = str(path)
    return 1 if name.endswith("_HOTPIX.fits") else 2 if name.endswith("_NOISE.fits") else 3


def recorded_fingerprint(path: str | Path) -> tuple[str, bytes] | None:
    """The fingerprint a product records, and its primary header, checked without
    reading its data: the file is as long as its headers say, and each header's CHECKSUM
    verifies against its DATASUM (:func:`mdark_dask.io.header.read_layout`); None if not.

    A file cut short or grown, or a header changed by a byte, is caught here; pixels
    changed in place under intact headers only by :func:`product_fingerprint`.
    """
    try:
        headers = read_layout(str(path))
    except OSError:
        return None
    if headers is None or len(headers) != hdus_of(path):  # cut where an HDU begins
        return None
    value = card_values(headers[0], (FINGERPRINT_KEY,)).get(FINGERPRINT_KEY)
    return (value, headers[0]) if isinstance(value, str) else None


def products_state(
    paths: Sequence[str], fingerprint: str, verify: bool = False
) -> tuple[QCRow, ...] | None:
    """The QC rows of a product whose files (``paths``: the master first, then its
    companions) are all there, complete and made from ``fingerprint``; None otherwise.

    Cheap by default (:func:`recorded_fingerprint` of each file); with ``verify`` every
    file's data checksums are verified as well (:func:`product_fingerprint`), which reads
    every pixel.
    """
    master: bytes | None = None
    for path in paths:
        found = recorded_fingerprint(path)
        if found is None or found[0] != fingerprint:
            return None
        master = found[1] if master is None else master
        if verify and product_fingerprint(Path(path)) != fingerprint:
            return None
    if master is None:
        return None
    return qc_of_header(fits.Header.fromstring(master.decode("ascii")))


def header_qc(path: Path) -> tuple[QCRow, ...]:
    """The QC rows recorded in an existing product's header (its ``ESO QC`` cards)."""
    return qc_of_header(fits.getheader(path, 0))


def qc_of_header(header: fits.Header) -> tuple[QCRow, ...]:
    """The QC rows of a product's primary header (its ``ESO QC`` cards)."""
    rows = []
    for card in header.cards:
        key = str(card.keyword)
        if key.startswith("ESO QC "):
            unit = "electrons" if "[e-]" in str(card.comment) else ""
            rows.append(QCRow(key.removeprefix("ESO QC "), card.value, unit, card.comment, True))
    return tuple(rows)


class ProductImages(NamedTuple):
    """A master dark read back: its images and its primary header's cards."""

    flux: npt.NDArray[np.float32]
    qual: npt.NDArray[np.uint8]
    errs: npt.NDArray[np.float32]
    cards: dict[str, Any]


def read_product(path: str | Path) -> ProductImages:
    """Read a master-dark product: FLUX, QUAL, ERRS and the primary header's cards
    (without COMMENT and HISTORY)."""
    with fits.open(path) as hdul:
        header = hdul[0].header
        cards = {k: header[k] for k in header if k and k not in ("COMMENT", "HISTORY")}
        return ProductImages(
            flux=np.asarray(hdul["FLUX"].data, dtype=np.float32),
            qual=np.asarray(hdul["QUAL"].data, dtype=np.uint8),
            errs=np.asarray(hdul["ERRS"].data, dtype=np.float32),
            cards=cards,
        )


def read_hotpix_map(path: str | Path) -> npt.NDArray[np.uint8]:
    """The map of a ``_HOTPIX.fits`` file (hot and noisy bits, 0 for good pixels)."""
    with fits.open(path) as hdul:
        for hdu in hdul:
            if hdu.data is not None:
                return np.asarray(hdu.data, dtype=np.uint8)
    raise OSError(f"{path} holds no image")
