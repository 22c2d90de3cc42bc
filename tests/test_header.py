"""The astropy-free header reader agrees with astropy, or says it is unsure.

The oracle is astropy itself: every file is scanned both ways
(:func:`mdark_dask.io.fits.read_scan_astropy`), and the plain reader must give the same
shape, BITPIX, scaling, data offset and card values, or ``None``. Headers are written by
astropy from generated cards; real frames of other instruments, from an optional data
directory outside the repository (``REAL``), are decompressed and read both ways when it
is present.
"""

from __future__ import annotations

import gzip
import string
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from mdark_dask.io.fits import read_scan_astropy, scan_frame
from mdark_dask.io.header import read_plain_header
from mdark_dask.plan.frameset import SCAN_KEYWORDS
from mdark_dask.simulate import DarkSetSpec, simulate_set

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
HYP = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

KEYS = (*SCAN_KEYWORDS, "ESO DET DIT", "OBJECT", "AIRMASS", "ESO INS MODE", "ORIGIN")


def both(path: Path, keywords: tuple[str, ...] = KEYS) -> tuple[Any, Any]:
    """(plain reader's scan or None, astropy's scan), in :func:`read_scan_astropy`'s form."""
    plain = read_plain_header(str(path), keywords)
    reference = read_scan_astropy(str(path), keywords)
    if plain is None:
        return None, reference
    got = (
        0,
        plain.shape,
        plain.bitpix,
        plain.bzero,
        plain.bscale,
        plain.data_offset,
        False,
        plain.cards,
    )
    return got, reference


def assert_same_types(got: Any, reference: Any) -> None:
    """Equal values of equal types (``1 == 1.0 == True`` would hide a wrong parse)."""
    assert got == reference
    for (_, a), (_, b) in zip(got[-1], reference[-1], strict=True):
        assert type(a) is type(b)


printable = st.text(alphabet=string.printable[:95], max_size=40)  # ' ' to '~'
values = st.one_of(
    printable,
    st.booleans(),
    st.integers(-(2**62), 2**62),
    st.floats(allow_nan=False, allow_infinity=False),
)
hierarch = st.lists(
    st.sampled_from(["DET", "INS", "SEQ", "TPL", "OUT1", "CHIP", "X9", "A_B"]),
    min_size=1,
    max_size=4,
).map(lambda w: "ESO " + " ".join(w))
keys = st.one_of(st.sampled_from(KEYS), hierarch)
#: (dtype, (BSCALE, BZERO) or None) of the image
IMAGES = [
    (np.uint16, None),
    (np.int16, None),
    (np.float32, None),
    (np.int32, None),
    (np.float64, None),
    (np.uint8, None),
    (np.int16, (2.0, 100.0)),
]


@HYP
@given(
    cards=st.lists(st.tuples(keys, values, printable), max_size=25),
    image=st.sampled_from(IMAGES),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
)
# an empty string before a comment with a quote: astropy reads ``'' / '`` as "' /"
@example(cards=[("ESO SEQ ARM", "", "'")], image=(np.uint16, None), shape=(1, 1))
def test_plain_reader_agrees_with_astropy(
    cards: list[tuple[str, Any, str]],
    image: tuple[Any, tuple[float, float] | None],
    shape: tuple[int, int],
    tmp_path: Path,
) -> None:
    dtype, scaling = image
    hdu = fits.PrimaryHDU(np.arange(shape[0] * shape[1]).reshape(shape).astype(dtype))
    if scaling is not None:
        hdu.header["BSCALE"], hdu.header["BZERO"] = scaling
    path = tmp_path / "h.fits"
    with warnings.catch_warnings():
        # astropy cuts a comment that does not fit its card, and says so: the file is
        # what both readers read
        warnings.simplefilter("ignore", VerifyWarning)
        for key, value, comment in cards:
            hdu.header[key] = (value, comment)  # a repeated key replaces the card
        hdu.writeto(path, overwrite=True)
        long_cards = any(len(fits.Card(k, v).image) > 80 for k, v, _ in cards)
    got, reference = both(path)
    tricky = any(
        isinstance(v, str) and (v.rstrip(" ").endswith("&") or "'" in c) for _, v, c in cards
    )
    event("plain reader: " + ("unsure" if got is None else "read"))
    if got is None:
        # the plain reader gives up only on what it cannot read exactly
        assert tricky or long_cards
    else:
        assert_same_types(got, reference)


@pytest.mark.parametrize(
    "spec",
    [
        DarkSetSpec("soxs", "NIR", 2, 5.0, seed=3),
        DarkSetSpec("soxs", "VIS", 2, 5.0, binning=(2, 2), shape=(2048, 429)),
        DarkSetSpec("xsh", "NIR", 2, 5.0),
        DarkSetSpec("xsh", "VIS", 2, 5.0, binning=(1, 2)),
    ],
    ids=["soxs-nir", "soxs-vis", "xsh-nir", "xsh-vis"],
)
def test_simulated_frames_are_read_without_astropy(spec: DarkSetSpec, tmp_path: Path) -> None:
    for frame in simulate_set(spec, tmp_path):
        got, reference = both(frame, SCAN_KEYWORDS)
        assert got is not None
        assert_same_types(got, reference)


def write(path: Path, text: str, data: bytes = b"\0" * 2880) -> Path:
    """A file of 80-character cards (padded to a block), then ``data``."""
    cards = "".join(line.ljust(80) for line in text.splitlines())
    path.write_bytes(cards.ljust(-(-len(cards) // 2880) * 2880).encode("ascii") + data)
    return path


PLAIN = """SIMPLE  =                    T
BITPIX  =                   16
NAXIS   =                    2
NAXIS1  =                    4
NAXIS2  =                    3
{extra}
END"""


@pytest.mark.parametrize(
    "extra",
    [
        "exptime =                  5.0",  # lower case: astropy normalises it
        "EXPTIME =                  5.0\nEXPTIME =                  6.0",  # repeated
        "EXPTIME =",  # no value
        "EXPTIME =                 5.0d0",  # lower-case exponent
        "EXPTIME =               (1, 2)",  # complex
        "OBJECT  = 'abc&'\nCONTINUE  'def'",  # a long string
        "OBJECT  = 'abc'x",  # garbage after the string
        "OBJECT  = 'abc",  # no closing quote
        "HIERARCH ESO  DET DIT = 1.0",  # two blanks: astropy keeps them in the keyword
        "HIERARCH ESO DET DIT 1.0",  # no value indicator
        "GAIN.SPE=                    4",  # a keyword astropy accepts with a warning
        "FOO     = 'a\x01b'",  # a control character in a card not asked for:
        "FOO     = 'a\tb'",  # astropy refuses the whole header
        "HIERARCH ESO X = 'a\x7fb'",
    ],
)
def test_anything_unusual_is_left_to_astropy(extra: str, tmp_path: Path) -> None:
    path = write(tmp_path / "odd.fits", PLAIN.format(extra=extra))
    keywords = ("EXPTIME", "OBJECT", "ESO DET DIT")
    assert read_plain_header(str(path), keywords) is None


def test_a_real_valued_naxis_is_left_to_astropy(tmp_path: Path) -> None:
    real = PLAIN.replace("NAXIS   =                    2", "NAXIS   =                  2.0")
    path = write(tmp_path / "naxis.fits", real.format(extra=""))
    assert read_plain_header(str(path), KEYS) is None


@pytest.mark.parametrize("keyword", ["DP1.AXIS.1", "HIERARCH ESO DET DIT", "GAIN.SPE"])
def test_keywords_astropy_looks_up_its_own_way_are_left_to_it(keyword: str, tmp_path: Path) -> None:
    """Record-valued (dotted) or HIERARCH-prefixed keywords: astropy's lookup rules."""
    path = write(tmp_path / "k.fits", PLAIN.format(extra="HIERARCH ESO DET DIT = 1.0"))
    assert read_plain_header(str(path), (keyword,)) is None
    assert read_plain_header(str(path), ("ESO DET DIT",)) is not None


def test_ordinary_cards_are_read(tmp_path: Path) -> None:
    extra = "\n".join(
        [
            "EXPTIME =                  5.0 / s",
            "OBJECT  = 'it''s a  '         / quotes doubled, trailing blanks dropped",
            "ORIGIN  = ''",
            "HIERARCH ESO DET DIT = -.5E-3",
            "HIERARCH ESO SEQ ARM = 'NIR'",
            "AIRMASS =             1.0D+01",
            "ESO     =                    T",
            "COMMENT   EXPTIME = 9 (commentary: not a card of EXPTIME)",
            "BZERO   =                32768",
        ]
    )
    path = write(tmp_path / "ok.fits", PLAIN.format(extra=extra), b"\0" * 2880)
    keys = ("EXPTIME", "OBJECT", "ORIGIN", "ESO DET DIT", "ESO SEQ ARM", "AIRMASS", "ESO")
    got, reference = both(path, keys)
    assert got is not None
    assert_same_types(got, reference)
    assert dict(got[-1]) == {
        "EXPTIME": 5.0,
        "OBJECT": "it's a",
        "ORIGIN": "",
        "ESO DET DIT": -0.0005,
        "ESO SEQ ARM": "NIR",
        "AIRMASS": 10.0,
        "ESO": True,
    }
    assert got[3:6] == (32768.0, 1.0, 2880)


@pytest.mark.parametrize(
    "case", ["gzip", "extension", "no END", "short", "empty", "not FITS", "NAXIS 3"]
)
def test_other_files_are_left_to_astropy(case: str, tmp_path: Path) -> None:
    path = tmp_path / "f.fits"
    if case == "gzip":
        plain = write(tmp_path / "p.fits", PLAIN.format(extra=""))
        path.write_bytes(gzip.compress(plain.read_bytes()))
    elif case == "extension":
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 4), np.int16))]).writeto(path)
    elif case == "no END":
        write(path, PLAIN.format(extra="").replace("END", ""), b"")
    elif case == "short":
        path.write_bytes(b"SIMPLE  =                    T".ljust(80))
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "not FITS":
        path.write_bytes(b"hello" * 1000)
    else:
        cube = PLAIN.replace("NAXIS   =                    2", "NAXIS   =                    3")
        write(path, cube.format(extra="NAXIS3  = 1"))
    assert read_plain_header(str(path), KEYS) is None


def test_scan_frame_reads_a_truncated_plain_frame_as_truncated(tmp_path: Path) -> None:
    """The plain reader reads the header; the size check still finds the missing pixels."""
    from mdark_dask.errors import InputError

    path = write(tmp_path / "cut.fits", PLAIN.format(extra=""), b"\0" * 10)
    assert read_plain_header(str(path), KEYS) is not None
    with pytest.raises(InputError, match="truncated FITS file"):
        scan_frame(path, KEYS)


REAL_FILES = sorted(REAL.glob("*/*.fits.gz")) + sorted(REAL.glob("*/*.fit.gz"))


@pytest.mark.skipif(not REAL_FILES, reason="../shared/data/real is not available")
def test_real_frames_agree(tmp_path: Path) -> None:
    """Real headers of other instruments, decompressed: read both ways, the same (or left
    to astropy: multi-extension files, non-standard keywords)."""
    read = 0
    for gz in REAL_FILES:
        path = tmp_path / gz.name.removesuffix(".gz")
        path.write_bytes(gzip.decompress(gz.read_bytes()))
        got, reference = both(path)
        if got is not None:
            read += 1
            assert_same_types(got, reference)
        else:
            assert reference[0] != 0 or "GAIN.SPE" in fits.getheader(path)
    assert read >= len(REAL_FILES) // 2  # most real frames are plain
