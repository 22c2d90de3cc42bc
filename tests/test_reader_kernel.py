"""The one-pass compiled reader against the three-pass numpy formula.

:func:`numpy_formula` converts a window in three numpy passes through a float64 buffer:
``copyto`` (byte swap and widening), ``+= BZERO`` (only when non-zero) and a float64
product rounded once to float32, as soxspipe prepares a frame. It is the oracle; the
compiled kernel behind ``FrameReader.read`` must give the same bits for every on-disk type, every
rotation, odd trims and windows (steps and integer indices included), random bit patterns
of the float types (NaN payloads, infinities, -0.0, subnormals) included.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdark_dask.io.fits import _DISK_DTYPE, FrameReader, RawFrame, StackReader, scan_frame
from mdark_dask.numerics.steps import electrons

HYP = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# (BITPIX, BZERO) of every layout the reader memory-maps
MAPPED = [
    (8, 0.0),
    (16, 0.0),
    (16, 32768.0),
    (32, 0.0),
    (32, 2.0**31),
    (64, 0.0),
    (-32, 0.0),
    (-64, 0.0),
]
GAINS = [1.0, 2.3, 1.61, 2.12, 0.5, 1.0 / 3.0]


def numpy_formula(
    stored: npt.NDArray[Any],
    k: int,
    region: tuple[int, int, int, int],
    window: Any,
    offset: float,
    gain: float,
) -> npt.NDArray[np.float32]:
    """The reader's former conversion: float64 block, ``+= offset`` when non-zero, then
    :func:`mdark_dask.numerics.steps.electrons` (float64 product rounded once)."""
    rs, re_, cs, ce = region
    view = np.rot90(stored, k)[rs:re_, cs:ce][window]
    block = np.empty(view.shape, dtype=np.float64)
    with np.errstate(all="ignore"):  # float64 frames of random bits overflow float32
        np.copyto(block, view, casting="unsafe")
        if offset:
            block += offset
        return electrons(block, np.float64(gain))


def random_stored(
    rng: np.random.Generator, bitpix: int, shape: tuple[int, int]
) -> npt.NDArray[Any]:
    """Random stored words: every bit pattern for the integers and, for the floats, random
    bits mixed with ordinary values and the special ones."""
    dtype = np.dtype(_DISK_DTYPE[bitpix])
    words = rng.integers(0, 256, size=shape[0] * shape[1] * dtype.itemsize, dtype=np.uint8)
    stored = words.view(dtype).reshape(shape).copy()
    if bitpix < 0:
        flat = stored.reshape(-1)
        n = flat.size
        normal = rng.normal(2300.0, 50.0, n).astype(dtype)
        pick = rng.random(n)
        flat[pick < 0.6] = normal[pick < 0.6]
        specials = np.array(
            [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-42, -1e-42, 3.4e38], dtype=dtype
        )
        idx = rng.integers(0, n, size=min(n, 12))
        flat[idx] = specials[rng.integers(0, specials.size, size=idx.size)]
    return stored


def write_raw(stored: npt.NDArray[Any], bitpix: int, bzero: float, directory: str) -> RawFrame:
    """The words as a header-less file, scanned by hand: the pixels start at offset 0."""
    path = Path(directory) / f"raw{bitpix}_{int(bzero)}.bin"
    stored.tofile(path)
    return RawFrame(str(path), 0, stored.shape, bitpix, 0, bzero, 1.0, ())


def bits(a: npt.NDArray[np.float32]) -> npt.NDArray[np.uint32]:
    return np.ascontiguousarray(a).view(np.uint32)


def slices(n: int) -> st.SearchStrategy[Any]:
    """A slice (any step, either direction) or an index along an axis of length n."""
    bound = st.integers(-n - 2, n + 2) | st.none()
    step = st.sampled_from([None, 1, 2, 3, -1, -2])
    return st.builds(slice, bound, bound, step) | st.integers(0, n - 1)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, ...]:
    bitpix, bzero = draw(st.sampled_from(MAPPED))
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    k = draw(st.integers(0, 3))
    rot = shape if k % 2 == 0 else shape[::-1]
    rs = draw(st.integers(0, rot[0] - 1))
    re_ = draw(st.integers(rs + 1, rot[0]))
    cs = draw(st.integers(0, rot[1] - 1))
    ce = draw(st.integers(cs + 1, rot[1]))
    region = (rs, re_, cs, ce)
    window = draw(
        st.just((slice(None), slice(None)))
        | st.tuples(slices(re_ - rs), slices(ce - cs))
        | st.tuples(slices(re_ - rs))
    )
    gain = draw(st.sampled_from(GAINS) | st.floats(0.01, 100.0))
    seed = draw(st.integers(0, 2**32 - 1))
    return bitpix, bzero, shape, k, region, window, gain, seed


@HYP
@given(case=cases())
def test_reader_equals_the_three_pass_formula(case: tuple[Any, ...]) -> None:
    bitpix, bzero, shape, k, region, window, gain, seed = case
    stored = random_stored(np.random.default_rng(seed), bitpix, shape)
    with tempfile.TemporaryDirectory() as tmp:
        reader = FrameReader(write_raw(stored, bitpix, bzero, tmp), k, region, gain)
        got = reader[window]
        # the formula is per pixel: the window of the whole, indexed as numpy does
        expected = numpy_formula(stored, k, region, (slice(None), slice(None)), bzero, gain)
        expected = expected[window]
        assert got.dtype == np.float32
        assert got.shape == expected.shape
        np.testing.assert_array_equal(bits(got), bits(expected))
        # into a given array, as StackReader reads
        full = reader[:, :]
        out = np.full(reader.shape, np.float32(7.0))
        assert np.shares_memory(reader.read((slice(None), slice(None)), out=out), out)
        np.testing.assert_array_equal(bits(out), bits(full))


@pytest.mark.parametrize(("bitpix", "bzero"), MAPPED)
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_odd_frames_every_rotation(tmp_path: Path, bitpix: int, bzero: float, k: int) -> None:
    """Frames larger than a transposition band (odd rotations read in bands of rows) with
    odd trims, whole and in row strips of a stack."""
    shape = (613, 1031)
    stored = random_stored(np.random.default_rng(abs(bitpix) + k), bitpix, shape)
    raw = write_raw(stored, bitpix, bzero, str(tmp_path))
    rot = shape if k % 2 == 0 else shape[::-1]
    region = (3, rot[0] - 5, 7, rot[1] - 2)
    reader = FrameReader(raw, k, region, 2.3)
    whole = numpy_formula(stored, k, region, (slice(None), slice(None)), bzero, 2.3)
    np.testing.assert_array_equal(bits(reader[:, :]), bits(whole))
    stack = StackReader((reader, reader))
    for y0, y1 in [(0, 1), (0, 205), (100, 557), (511, 515)]:
        strip = stack[:, y0:y1]
        np.testing.assert_array_equal(bits(strip[1]), bits(whole[y0:y1]))
        np.testing.assert_array_equal(bits(strip[0]), bits(whole[y0:y1]))


@pytest.mark.parametrize("dtype", ["<f4", ">f4", ">f8", "<u2", ">i2", "<u8"])
@pytest.mark.parametrize("k", [0, 1])
def test_astropy_fallback_keeps_every_bit(tmp_path: Path, dtype: str, k: int) -> None:
    """Frames astropy must read (gzip): its arrays, native or not, through the same kernel
    with no offset, so a stored -0.0 stays negative and NaN payloads survive."""
    rng = np.random.default_rng(5)
    if dtype[1] == "f":
        data: npt.NDArray[Any] = rng.normal(0.0, 100.0, (23, 41)).astype(dtype)
        data[0, :4] = [-0.0, np.nan, -np.inf, 1e-42]
    else:
        data = rng.integers(0, 60000, (23, 41)).astype(dtype)
    path = tmp_path / "frame.fits.gz"
    fits.PrimaryHDU(data).writeto(path)
    raw = scan_frame(path, ())
    assert raw.offset is None
    stored = np.asarray(fits.getdata(path))
    rot = stored.shape if k % 2 == 0 else stored.shape[::-1]
    region = (1, rot[0] - 2, 3, rot[1])
    reader = FrameReader(raw, k, region, 1.61)
    expected = numpy_formula(stored, k, region, (slice(None), slice(None)), 0.0, 1.61)
    np.testing.assert_array_equal(bits(reader[:, :]), bits(expected))


def test_advanced_indices_read_as_numpy_indexes(tmp_path: Path) -> None:
    stored = random_stored(np.random.default_rng(1), 16, (30, 20))
    reader = FrameReader(write_raw(stored, 16, 32768.0, str(tmp_path)), 1, (2, 18, 1, 29), 2.3)
    whole = reader[:, :]
    np.testing.assert_array_equal(reader[[0, 3, 5], :], whole[[0, 3, 5], :])
    np.testing.assert_array_equal(reader[whole > whole.mean()], whole[whole > whole.mean()])


def test_out_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    stored = random_stored(np.random.default_rng(2), 16, (30, 20))
    reader = FrameReader(write_raw(stored, 16, 0.0, str(tmp_path)), 0, (0, 30, 0, 20), 1.0)
    with pytest.raises(ValueError, match="out is"):
        reader.read((slice(0, 5), slice(None)), out=np.empty((4, 20), dtype=np.float32))
