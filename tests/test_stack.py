"""Lazy prepared stacks and the FITS pixel reader (rotate, trim, convert to electrons).

* ``prepared_stack`` is an xarray (frame, y, x) float32 view, chunked in full-width row
  strips holding every frame, and reads no pixel until computed;
* ``FrameReader`` pickles, and any window it reads equals the same window of
  ``float32(float64(rot90(astropy data, k)[trim]) * gain)`` for every arm's rotation and
  every on-disk integer/float layout (uint16 with BZERO included).
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
import pytest
import xarray as xr
from astropy.io import fits

import mdark_dask.io.fits as mfits
from mdark_dask.api import prepared_stack
from mdark_dask.instruments import ARMS
from mdark_dask.io.fits import FrameReader, StackReader, scan_frame
from mdark_dask.io.stack import frame_stack, strip_stack
from mdark_dask.plan.frameset import SCAN_KEYWORDS, FrameSet, build_frameset
from mdark_dask.plan.product import plan_product
from mdark_dask.recipe import master_graph, stacked_graph
from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof

F32 = npt.NDArray[np.float32]


def expected_prepared(
    path: Path | str, k: int, region: tuple[int, int, int, int], gain: float, ext: int = 0
) -> F32:
    """soxspipe's preparation from astropy's scaled data: rotate, trim, x gain in float64."""
    rs, re_, cs, ce = region
    data = fits.getdata(path, ext=ext)
    trimmed = np.rot90(data, k)[rs:re_, cs:ce]
    return (np.asarray(trimmed, dtype=np.float64) * np.float64(gain)).astype(np.float32)


# ------------------------------------------------------------------------------------------
# simulated sets


@pytest.fixture(scope="module")
def vis_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """SOXS VIS 2x2: the smallest science region (2048 x 404), 3 frames, uint16 BZERO."""
    root = tmp_path_factory.mktemp("vis")
    paths = simulate_set(
        DarkSetSpec("soxs", "VIS", n_frames=3, binning=(2, 2), exptime=60), root / "raw"
    )
    sof = write_sof(root / "vis.sof", paths)
    return sof, paths


@pytest.fixture(scope="module")
def vis_frameset(vis_set: tuple[Path, list[Path]]) -> FrameSet:
    return build_frameset([str(p) for p in vis_set[1]], "accurate")


ARM_CASES = {
    "soxs-VIS-2x2-k0": DarkSetSpec("soxs", "VIS", n_frames=1, binning=(2, 2), exptime=60),
    "xsh-UVB-2x2-k2": DarkSetSpec("xsh", "UVB", n_frames=1, binning=(2, 2), exptime=60),
    "xsh-NIR-k1": DarkSetSpec("xsh", "NIR", n_frames=1, exptime=60),
}


@pytest.fixture(scope="module")
def arm_frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, DarkSetSpec]]:
    root = tmp_path_factory.mktemp("arms")
    out = {}
    for name, spec in ARM_CASES.items():
        (path,) = simulate_set(spec, root / name)
        out[name] = (path, spec)
    return out


# ------------------------------------------------------------------------------------------
# prepared_stack: shape, dtype, coordinates, chunks


@pytest.mark.parametrize("rows", [None, 1, 7, 100, 2048, 5000])
def test_prepared_stack_layout(vis_frameset: FrameSet, rows: int | None) -> None:
    fs = vis_frameset
    xa = prepared_stack(fs, rows)
    n = len(fs.frames)
    ny, nx = ARMS[("soxs", "VIS")].trimmed_shape(2, 2)
    assert isinstance(xa, xr.DataArray)
    assert isinstance(xa.data, da.Array)
    assert xa.dims == ("frame", "y", "x")
    assert xa.shape == (n, ny, nx) == (3, 2048, 404)
    assert xa.dtype == np.float32
    for coord in ("file", "mjd_obs", "exptime", "arm"):
        assert coord in xa.coords
        assert xa.coords[coord].dims == ("frame",)
    assert list(xa.coords["file"].values) == [f.name for f in fs.frames]
    mjd = [float(v) for v in xa.coords["mjd_obs"].values]
    assert mjd == sorted(mjd) and len(set(mjd)) == n
    assert list(xa.coords["exptime"].values) == [60.0] * n
    assert list(xa.coords["arm"].values) == ["VIS"] * n
    # all frames in one chunk, full-width row strips of the requested height
    fchunks, ychunks, xchunks = xa.chunks
    assert fchunks == (n,)
    assert xchunks == (nx,)
    assert sum(ychunks) == ny
    height = ychunks[0]
    if rows is not None:
        assert height == min(rows, ny)
    assert all(c == height for c in ychunks[:-1])
    assert 0 < ychunks[-1] <= height


def test_prepared_stack_values(vis_frameset: FrameSet) -> None:
    fs = vis_frameset
    k, region, gain = fs.spec.rotation_k, fs.region, fs.gain
    expected = np.stack([expected_prepared(f.path, k, region, gain) for f in fs.frames])
    got = prepared_stack(fs, rows=7).values
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    window = prepared_stack(fs, rows=100).isel(y=slice(95, 205), x=slice(3, 40)).values
    np.testing.assert_array_equal(window, expected[:, 95:205, 3:40])
    # the per-frame view: one chunk per whole frame
    per_frame = frame_stack(fs.reader())
    assert per_frame.chunks == ((1,) * len(fs.frames), (2048,), (404,))
    np.testing.assert_array_equal(per_frame[1].compute(), expected[1])


# ------------------------------------------------------------------------------------------
# laziness: nothing reads pixels before compute


@pytest.fixture
def pixel_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count every way a FrameReader can touch pixels."""
    calls: Counter[str] = Counter()

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: FrameReader, *args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return original(self, *args, **kwargs)

        return wrapper

    for name in ("__getitem__", "read", "_raw_values"):
        original = getattr(mfits.FrameReader, name, None)
        if original is not None:
            monkeypatch.setattr(mfits.FrameReader, name, counting(name, original))
    return calls


def test_building_stack_and_graph_reads_no_pixels(
    vis_set: tuple[Path, list[Path]], tmp_path: Path, pixel_reads: Counter[str]
) -> None:
    sof, _ = vis_set
    plan = plan_product([str(sof)], tmp_path / "ws", plots=False)
    xa = prepared_stack(plan.frameset)
    strip_stack(plan.frameset.reader(), 7)
    levels, joined = stacked_graph(plan)
    graph = master_graph(plan)
    assert graph is not None and len(levels) == len(plan.level_groups())
    strip_keys = [k for k in joined.dask if isinstance(k, tuple) and k[0].startswith("strip-")]
    assert len(strip_keys) == len(plan.strip_bounds())
    assert sum(pixel_reads.values()) == 0, dict(pixel_reads)
    assert not plan.product_path.exists()
    # ...and the counter does see reads once something is computed
    assert xa.isel(y=slice(0, 3)).values.shape == (3, 3, 404)
    assert sum(pixel_reads.values()) > 0


# ------------------------------------------------------------------------------------------
# FrameReader: pickling, rotations, windows, on-disk layouts


def test_frame_reader_pickles(vis_frameset: FrameSet) -> None:
    reader = vis_frameset.reader()
    again = pickle.loads(pickle.dumps(reader))
    assert isinstance(again, StackReader)
    assert again == reader
    assert again.shape == reader.shape
    np.testing.assert_array_equal(again[:, 10:20, :], reader[:, 10:20, :])
    frame = reader.frames[1]
    frame_again = pickle.loads(pickle.dumps(frame))
    assert frame_again == frame
    np.testing.assert_array_equal(frame_again[100:107], frame[100:107])
    np.testing.assert_array_equal(
        frame_again[100:107],
        expected_prepared(frame.raw.path, frame.rotation_k, frame.region, frame.gain)[100:107],
    )


def _windows(ny: int, nx: int) -> Iterator[tuple[slice, ...]]:
    yield (slice(0, ny),)
    yield (slice(0, 1), slice(0, nx))
    yield (slice(ny - 1, ny), slice(0, nx))
    yield (slice(7, 7 + 37), slice(0, nx))
    yield (slice(ny // 2, ny), slice(0, nx))
    yield (slice(5, 12), slice(3, nx - 2))


@pytest.mark.parametrize("case", list(ARM_CASES))
def test_row_strips_equal_rows_of_the_whole_frame(
    arm_frames: dict[str, tuple[Path, DarkSetSpec]], case: str
) -> None:
    path, spec = arm_frames[case]
    arm = spec.arm_spec
    region = arm.science_region(spec.ybin, spec.xbin)
    raw = scan_frame(path, SCAN_KEYWORDS)
    reader = FrameReader(raw, arm.rotation_k, region, spec.effective_gain)
    assert reader.shape == arm.trimmed_shape(spec.ybin, spec.xbin)
    whole = expected_prepared(path, arm.rotation_k, region, spec.effective_gain)
    assert whole.shape == reader.shape
    got_whole = reader[:, :]
    assert got_whole.dtype == np.float32
    np.testing.assert_array_equal(got_whole, whole)
    ny, nx = reader.shape
    for key in _windows(ny, nx):
        np.testing.assert_array_equal(reader[key], whole[key])
    # strips of any height tile the frame
    for rows in (1, 64, 301):
        joined = np.concatenate([reader[r : r + rows, :] for r in range(0, ny, rows)])
        np.testing.assert_array_equal(joined, whole)


def test_simulated_uint16_frames_are_bzero_frames(
    arm_frames: dict[str, tuple[Path, DarkSetSpec]],
) -> None:
    path, spec = arm_frames["soxs-VIS-2x2-k0"]
    header = fits.getheader(path)
    assert header["BITPIX"] == 16 and header["BZERO"] == 32768
    raw = scan_frame(path, SCAN_KEYWORDS)
    region = spec.arm_spec.science_region(spec.ybin, spec.xbin)
    reader = FrameReader(raw, 0, region, 1.0)
    data = fits.getdata(path)
    assert data.dtype == np.uint16
    rs, re_, cs, ce = region
    np.testing.assert_array_equal(reader[:, :], data[rs:re_, cs:ce].astype(np.float32))


# tiny handcrafted frames: every rotation and on-disk layout


def _pattern(shape: tuple[int, int], lo: float, hi: float, seed: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    values = rng.uniform(lo, hi, shape)
    flat = values.reshape(-1)
    flat[0], flat[-1] = lo, hi  # the extremes of the type
    return values


def _write_layout(path: Path, layout: str, shape: tuple[int, int]) -> int:
    """Write a small frame with the given on-disk layout; return its image HDU index."""
    if layout == "uint16-bzero":
        data: npt.NDArray[Any] = _pattern(shape, 0, 65535, 1).round().astype(np.uint16)
        data.reshape(-1)[1:5] = [32767, 32768, 1, 65534]
    elif layout == "int16":
        data = _pattern(shape, -32768, 32767, 2).round().astype(np.int16)
    elif layout == "uint32-bzero":
        data = _pattern(shape, 0, 2**32 - 1, 3).round().astype(np.uint32)
    elif layout == "int32":
        data = _pattern(shape, -(2**31), 2**31 - 1, 4).round().astype(np.int32)
    elif layout == "uint8":
        data = _pattern(shape, 0, 255, 5).round().astype(np.uint8)
    elif layout == "float32":
        data = _pattern(shape, -1e4, 1e5, 6).astype(np.float32)
        data.reshape(-1)[2] = np.nan
    elif layout == "float64":
        data = _pattern(shape, -1e4, 1e5, 7)
    elif layout == "int16-scaled":
        hdu = fits.PrimaryHDU(_pattern(shape, 100, 60000, 8).round().astype(np.float64))
        hdu.scale("int16", bscale=2.0, bzero=32000.0)
        hdu.writeto(path)
        return 0
    elif layout == "uint64-small":
        # pseudo-unsigned 64-bit with ordinary dark-like values
        data = _pattern(shape, 0, 65535, 9).round().astype(np.uint64)
    elif layout == "compressed-uint16":
        data = _pattern(shape, 0, 65535, 10).round().astype(np.uint16)
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data)]).writeto(path)
        return 1
    else:  # pragma: no cover
        raise AssertionError(layout)
    fits.PrimaryHDU(data).writeto(path)
    return 0


LAYOUTS = [
    "uint16-bzero",
    "int16",
    "uint32-bzero",
    "int32",
    "uint8",
    "float32",
    "float64",
    "int16-scaled",
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("gain", [1.0, 1.61, 2.12])
def test_reader_layouts_and_rotations(tmp_path: Path, layout: str, k: int, gain: float) -> None:
    raw_shape = (37, 53)
    path = tmp_path / "frame.fits"
    ext = _write_layout(path, layout, raw_shape)
    raw = scan_frame(path, ())
    assert raw.shape == raw_shape
    assert raw.hdu == ext
    rot = raw_shape if k % 2 == 0 else raw_shape[::-1]
    region = (2, rot[0] - 3, 5, rot[1] - 1)
    reader = FrameReader(raw, k, region, gain)
    expected = expected_prepared(path, k, region, gain, ext=ext)
    assert reader.shape == expected.shape
    np.testing.assert_array_equal(reader[:, :], expected)
    ny, nx = reader.shape
    for key in _windows(ny, nx):
        np.testing.assert_array_equal(reader[key], expected[key])
    if layout == "uint16-bzero":
        assert raw.offset is not None  # memory-mapped despite BZERO = 32768
        if gain == 1.0 and k == 0:
            data = fits.getdata(path)
            assert data.dtype == np.uint16
            rs, re_, cs, ce = region
            np.testing.assert_array_equal(reader[:, :], data[rs:re_, cs:ce].astype(np.float32))


def _check_layout(tmp_path: Path, layout: str, k: int, gain: float) -> None:
    raw_shape = (37, 53)
    path = tmp_path / f"{layout}.fits"
    ext = _write_layout(path, layout, raw_shape)
    raw = scan_frame(path, ())
    assert (raw.shape, raw.hdu) == (raw_shape, ext)
    rot = raw_shape if k % 2 == 0 else raw_shape[::-1]
    region = (2, rot[0] - 3, 5, rot[1] - 1)
    reader = FrameReader(raw, k, region, gain)
    np.testing.assert_array_equal(reader[:, :], expected_prepared(path, k, region, gain, ext))


def test_uint64_pseudo_unsigned_frames_read_exactly(tmp_path: Path) -> None:
    """BITPIX 64 / BZERO 2**63 is a pseudo-unsigned layout the reader memory-maps; small
    values (a dark's) must come out as astropy's uint64 values, not float64(v) + 2**63."""
    _check_layout(tmp_path, "uint64-small", 0, 1.0)


def test_tile_compressed_frames_are_read(tmp_path: Path) -> None:
    """A tile-compressed image (``.fits.fz`` style, image in HDU 1) scans and reads."""
    _check_layout(tmp_path, "compressed-uint16", 1, 1.61)


def test_gzip_frames_are_read(tmp_path: Path) -> None:
    """A gzip-compressed frame (``.fits.gz``) is read through astropy, not memory-mapped."""
    data = _pattern((37, 53), 0, 65535, 11).round().astype(np.uint16)
    path = tmp_path / "frame.fits.gz"
    fits.PrimaryHDU(data).writeto(path)
    raw = scan_frame(path, ())
    assert raw.offset is None
    region = (3, 50, 1, 30)
    reader = FrameReader(raw, 1, region, 2.12)
    np.testing.assert_array_equal(reader[:, :], expected_prepared(path, 1, region, 2.12))
    np.testing.assert_array_equal(reader[4:9, :], expected_prepared(path, 1, region, 2.12)[4:9])


def test_stack_reader_reads_every_frame(vis_frameset: FrameSet) -> None:
    reader = vis_frameset.reader()
    fs = vis_frameset
    expected = np.stack(
        [expected_prepared(f.path, fs.spec.rotation_k, fs.region, fs.gain) for f in fs.frames]
    )
    got = reader[slice(0, 3), slice(30, 61), slice(0, 404)]
    assert got.shape == (3, 31, 404)
    assert got.dtype == np.float32
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected[:, 30:61])
    np.testing.assert_array_equal(reader[1, 5:9, 0:404], expected[1, 5:9])
    np.testing.assert_array_equal(reader[slice(1, 3), slice(0, 2048), slice(0, 404)], expected[1:])


@pytest.mark.parametrize("rows", [1, 7, 64, None, 10_000])
def test_strip_bounds_cover_every_row_once(
    vis_set: tuple[Path, list[Path]], tmp_path: Path, rows: int | None
) -> None:
    sof, _ = vis_set
    plan = plan_product([str(sof)], tmp_path / "ws", rows=rows, plots=False)
    bounds = plan.strip_bounds()
    ny = plan.frameset.reader().shape[1]
    covered = [y for y0, y1 in bounds for y in range(y0, y1)]
    assert covered == list(range(ny))
    assert all(y1 - y0 == (rows or bounds[0][1]) for y0, y1 in bounds[:-1])


def test_level_groups_cover_every_frame_once(
    vis_set: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    sof, _ = vis_set
    plan = plan_product([str(sof)], tmp_path / "ws", plots=False)
    groups = plan.level_groups()
    assert [i for a, b in groups for i in range(a, b)] == list(range(len(plan.frameset.frames)))
    assert all(b > a for a, b in groups)


@pytest.mark.parametrize("layout", ["uint16-bzero", "float64", "int16-scaled", "compressed-uint16"])
@pytest.mark.parametrize("k", [0, 1, 3])
@pytest.mark.parametrize("step", [1, 4, 9, 1000])
def test_row_blocks_are_the_rows_of_the_strip(
    tmp_path: Path, layout: str, k: int, step: int
) -> None:
    """What a strip task reads, a block of rows at a time: the rows of the whole read,
    top to bottom, every row once, for every rotation and layout (memory-mapped or
    decoded: a decoded frame comes in one block)."""
    raw_shape = (37, 53)
    frames = []
    for i in range(3):
        path = tmp_path / f"{i}.fits"
        ext = _write_layout(path, layout, raw_shape)
        raw = scan_frame(path, ())
        rot = raw_shape if k % 2 == 0 else raw_shape[::-1]
        frames.append(FrameReader(raw, k, (2, rot[0] - 3, 5, rot[1] - 1), 1.61))
    assert ext == (1 if layout.startswith("compressed") else 0)
    reader = StackReader(tuple(frames))
    whole = reader[:, :, :]
    ny = reader.shape[1]
    for rows in [(0, ny), (3, 17), (ny - 1, ny), (5, 5)]:
        got = [(y, block.copy()) for y, block in reader.row_blocks(rows, step)]
        firsts = [y for y, _ in got]
        span = rows[1] - rows[0]
        mapped = layout in ("uint16-bzero", "float64")  # the others are decoded by astropy
        assert mapped == (frames[0].raw.offset is not None)
        assert firsts == list(range(rows[0], rows[1], step if mapped else max(span, 1)))
        if span:
            np.testing.assert_array_equal(
                np.concatenate([b for _, b in got], axis=1), whole[:, rows[0] : rows[1]]
            )
        assert all(b.flags.c_contiguous and b.dtype == np.float32 for _, b in got)


def test_row_reader_refuses_rows_outside_the_frame(vis_frameset: FrameSet) -> None:
    frame = vis_frameset.reader().frames[0]
    fill = frame.row_reader(frame.stored())
    ny, nx = frame.shape
    out = np.empty((4, nx), dtype=np.float32)
    fill(ny - 4, out)
    np.testing.assert_array_equal(out, frame[ny - 4 :, :])
    for y, shape in [(ny - 3, (4, nx)), (-1, (4, nx)), (0, (4, nx + 1))]:
        with pytest.raises(ValueError, match="rows"):
            fill(y, np.empty(shape, dtype=np.float32))
