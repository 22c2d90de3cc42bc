"""Products carry the CHECKSUM and DATASUM cards astropy computes, byte for byte.

The oracle is astropy itself: the same HDU list is written once with astropy's own
``add_checksum`` and once with :func:`mdark_dask.io.fits.add_checksum`; the files must be
identical and verify. Arrays are tiny and odd-sized (a last partial 32-bit word), with
NaN, -0.0 and extremes, of every image type: those stored as their own words and those
stored through BZERO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mdark_dask.io.fits import CHECKSUM_COMMENT, add_checksum, write_atomic

HYP = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

WORDS = ["u1", "<i2", "<i4", "<i8", "<f4", "<f8", ">f4", ">i2"]  # stored as they are
OFFSET = ["i1", "<u2", "<u4", "<u8"]  # stored through BZERO


def write_both(hdus: list[Any], tmp_path: Path) -> tuple[bytes, bytes]:
    """The bytes of ``hdus`` written with astropy's add_checksum, then with ours."""
    out = []
    for name, add in (
        ("astropy", lambda h: h.add_checksum(when=CHECKSUM_COMMENT)),
        ("ours", lambda h: add_checksum(h, CHECKSUM_COMMENT)),
    ):
        hdul = fits.HDUList([h.copy() for h in hdus])
        for hdu in hdul:
            add(hdu)
        path = tmp_path / f"{name}.fits"
        hdul.writeto(path, overwrite=True, output_verify="ignore")
        with fits.open(path, checksum=True) as check:  # verifies, or warns (an error here)
            assert all(h.header["CHECKSUM"] for h in check)
        out.append(path.read_bytes())
    return out[0], out[1]


@st.composite
def images(draw: st.DrawFn, dtypes: list[str]) -> np.ndarray[Any, Any]:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    return draw(hnp.arrays(dtype, shape))


@HYP
@given(image=images(WORDS + OFFSET), extension=images(WORDS), read_only=st.booleans())
def test_files_equal_astropys(
    image: np.ndarray[Any, Any],
    extension: np.ndarray[Any, Any],
    read_only: bool,
    tmp_path: Path,
) -> None:
    if read_only:
        image = image.view()
        image.flags.writeable = False
    header = fits.Header([("OBJECT", "dark"), ("CHECKSUM", "stale"), ("DATASUM", "1")])
    hdus = [fits.PrimaryHDU(image, header=header), fits.ImageHDU(extension, name="QUAL")]
    astropy_bytes, our_bytes = write_both(hdus, tmp_path)
    assert our_bytes == astropy_bytes


def test_product_sized_images_equal_astropys(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    flux = rng.normal(100.0, 5.0, (2048, 2047)).astype(np.float32)
    flux[0, :5] = [np.nan, -0.0, np.inf, -np.inf, np.float32(3.4e38)]
    view = flux.view()
    view.flags.writeable = False
    hdus = [
        fits.PrimaryHDU(view),
        fits.ImageHDU((flux > 100).astype(np.uint8)),
        fits.ImageHDU(np.zeros((1, 3), dtype=np.float64)),
    ]
    astropy_bytes, our_bytes = write_both(hdus, tmp_path)
    assert our_bytes == astropy_bytes


def test_write_atomic_keeps_the_callers_arrays(tmp_path: Path) -> None:
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    hdul = fits.HDUList([fits.PrimaryHDU(data)])
    write_atomic(hdul, tmp_path / "p.fits")
    assert hdul[0].data is data
    np.testing.assert_array_equal(data, np.arange(12, dtype=np.float32).reshape(3, 4))
    with fits.open(tmp_path / "p.fits", checksum=True) as check:
        np.testing.assert_array_equal(check[0].data, data)
        assert check[0].header.comments["CHECKSUM"] == CHECKSUM_COMMENT


def test_a_scaled_image_read_from_a_file_verifies(tmp_path: Path) -> None:
    """An image stored through BSCALE/BZERO and read back is written scaled back: its
    DATASUM is of the stored integers."""
    stored = tmp_path / "scaled.fits"
    hdu = fits.PrimaryHDU(np.arange(35, dtype=np.int16).reshape(5, 7))
    hdu.header["BSCALE"], hdu.header["BZERO"] = 2.0, 100.0
    hdu.writeto(stored)
    with fits.open(stored, scale_back=True) as hdul:
        add_checksum(hdul[0], CHECKSUM_COMMENT)
        hdul.writeto(tmp_path / "out.fits", output_verify="ignore")
    with fits.open(tmp_path / "out.fits", checksum=True) as check:  # verifies (no warning)
        np.testing.assert_array_equal(check[0].data, np.arange(35).reshape(5, 7) * 2.0 + 100)
