"""The reader against real headers and real files from an optional data directory outside
the repository (``REAL``).

No real SOXS or X-shooter raw darks are available to test with, so this module uses what
is:

* real raw frames of other instruments (Keck NIRSPEC darks, Kast/HIRES/LRIS/ISIS biases,
  an ESO ISAAC science frame): gzip-compressed, some multi-extension. The header scan must
  read each one or reject it with one line, and the recipe and the night planner must turn
  them away as an unknown instrument, never crash;
* text dumps of real X-shooter product headers that carry the raw frames' detector
  keywords (``xshooter_headers/``): turned back into raw darks (ESO PRO cards dropped,
  DPR TYPE/CATG/TECH set to DARK/CALIB/IMAGE) on small synthetic pixels, they must resolve
  to the arm, binning, gain (``ESO DET OUT1 CONAD``) and read noise (``ESO DET OUT1 RON``)
  the real header says.

Every test skips when the data directory is absent.
"""

from __future__ import annotations

import re
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from mdark_dask.cli import main
from mdark_dask.errors import InputError
from mdark_dask.instruments import ARMS
from mdark_dask.io.fits import RawFrame, scan_frame
from mdark_dask.plan.frameset import SCAN_KEYWORDS
from mdark_dask.plan.night import classify, plan_night
from mdark_dask.plan.product import plan_product

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FITS_NAME = re.compile(r"\.(fits|fit|fts)(\.gz|\.fz|\.z|\.bz2)?$", re.IGNORECASE)


def _real_files() -> list[Path]:
    if not REAL.is_dir():
        return []
    return sorted(p for p in REAL.rglob("*") if p.is_file() and FITS_NAME.search(p.name))


def _headers() -> list[Path]:
    folder = REAL / "xshooter_headers"
    return sorted(folder.glob("*.hdr")) if folder.is_dir() else []


REAL_FILES = _real_files()
HEADER_DUMPS = _headers()


@pytest.fixture(scope="module", autouse=True)
def real_dir() -> Path:
    """The real-data directory; every test of the module skips without it."""
    if not REAL.is_dir():
        pytest.skip(f"no real data at {REAL}")
    return REAL


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def first_image(path: Path) -> tuple[int, tuple[int, int]]:
    """Index and (rows, cols) of the first 2-D image HDU, read independently with astropy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            for index, hdu in enumerate(hdul):
                h = hdu.header
                if h.get("NAXIS") == 2:
                    return index, (int(h["NAXIS2"]), int(h["NAXIS1"]))
    raise AssertionError(f"{path} holds no 2-D image")


def rel(path: Path) -> str:
    return str(path.relative_to(REAL)) if REAL in path.parents else path.name


# --------------------------------------------------------------------------------------------
# the header scan on every real file


@pytest.mark.parametrize("path", REAL_FILES, ids=[rel(p) for p in REAL_FILES])
def test_scan_frame_reads_or_rejects_in_one_line(path: Path) -> None:
    try:
        frame = scan_frame(path, SCAN_KEYWORDS)
    except InputError as exc:  # any other exception fails the test
        message = str(exc)
        assert message and "\n" not in message, message
        assert str(path) in message
        return
    assert isinstance(frame, RawFrame)
    hdu, shape = first_image(path)
    assert (frame.hdu, frame.shape) == (hdu, shape)
    assert frame.path == str(path)
    assert frame.offset is None  # compressed: never memory-mapped
    assert frame.size == path.stat().st_size


def test_scan_reads_real_eso_hierarch_cards() -> None:
    """ISAAC: a real ESO raw frame with 406 HIERARCH cards, one of them not FITS-standard."""
    path = REAL / "vlt_isaac_sw" / "ISAAC.2006-04-13T06:32:38.944.fits.gz"
    if not path.exists():
        pytest.skip("no ISAAC frame")
    frame = scan_frame(path, SCAN_KEYWORDS)
    assert frame.get("INSTRUME") == "ISAAC"
    assert frame.get("ESO DPR TYPE") == "OBJECT"
    assert frame.get("ESO DPR CATG") == "SCIENCE"
    assert frame.get("ESO DPR TECH") == "IMAGE,JITTER"
    assert frame.get("EXPTIME") == 4.0
    assert frame.get("ESO TPL ID") == "ISAACSW_img_obs_AutoJitter"
    assert frame.shape == (1024, 1024) and frame.bitpix == -32
    assert classify(frame) == "unknown instrument 'ISAAC'"


def test_scan_reads_multi_extension_files() -> None:
    """HIRES/LRIS/ISIS: empty primary HDU, images in extensions; the first image is taken
    and the primary header's cards are kept."""
    mef = [p for p in REAL_FILES if first_image(p)[0] > 0]
    if not mef:
        pytest.skip("no multi-extension file")
    for path in mef:
        frame = scan_frame(path, SCAN_KEYWORDS)
        assert frame.hdu == 1, path
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            primary = fits.getheader(path, 0)
        assert frame.get("INSTRUME") == primary.get("INSTRUME"), path


# --------------------------------------------------------------------------------------------
# the recipe and the night planner turn foreign instruments away

#: The folders of real frames, with what the one error line says of them (Kast's headers
#: have no INSTRUME at all).
FOLDERS = {
    "keck_nirspec_nir": "unknown instrument 'NIRSPEC'",
    "vlt_isaac_sw": "unknown instrument 'ISAAC'",
    "shane_kast_blue": "no INSTRUME",
    "shane_kast_red": "no INSTRUME",
    "keck_hires_uv": "unknown instrument 'HIRES: High Resolution Echelle Spectrometer'",
    "keck_lris_blue": "unknown instrument 'LRISBLUE'",
    "wht_isis_blue": "unknown instrument 'ISIS blue arm'",
}


def assert_one_error_line(code: int, err: str, match: str) -> None:
    assert code != 0
    assert "Traceback" not in err, err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ERROR:"), lines[0]
    assert "unexpected" not in lines[0], lines[0]
    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize(("folder", "says"), FOLDERS.items())
def test_mdark_rejects_a_foreign_instrument_directory(
    folder: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = REAL / folder
    if not directory.is_dir():
        pytest.skip(f"no {folder}")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, "mdark", directory, "-o", ws, "--no-plots")
    assert_one_error_line(code, err, re.escape(f"ERROR: {says} (INSTRUME must be"))
    assert not list(ws.rglob("*.fits"))


def test_mdark_rejects_nirspec_darks_given_as_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The three real NIR darks (IMAGETYP='dark', no EXPTIME, no ESO keywords)."""
    darks = [
        REAL / "keck_nirspec_nir" / f"NS.20160414.{n}.fits.gz" for n in ("02861", "02899", "02912")
    ]
    darks = [p for p in darks if p.exists()]
    if len(darks) < 3:
        pytest.skip("NIRSPEC darks missing")
    code, _, err = run(capsys, "mdark", *darks, "-o", tmp_path / "ws", "--no-plots")
    assert_one_error_line(code, err, r"unknown instrument 'NIRSPEC'")


def test_mdark_rejects_the_isaac_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = REAL / "vlt_isaac_sw" / "ISAAC.2006-04-13T06:32:38.944.fits.gz"
    if not path.exists():
        pytest.skip("no ISAAC frame")
    code, _, err = run(capsys, "mdark", path, "-o", tmp_path / "ws", "--no-plots")
    assert_one_error_line(code, err, r"unknown instrument 'ISAAC'")


def test_plan_night_leaves_out_every_real_frame_with_a_reason() -> None:
    plan = plan_night([str(REAL)])
    assert plan.sets == ()
    assert plan.skipped, "nothing was looked at"
    for item in plan.skipped:
        folder = Path(item.what).relative_to(REAL).parts[0]
        assert item.reason == FOLDERS[folder], item
        assert Path(item.what).is_file(), item


def test_plan_night_looks_at_every_real_fits_file() -> None:
    """No FITS file of the directory is dropped silently (WHT's ``.fit.gz`` included)."""
    plan = plan_night([str(REAL)])
    assert sorted(s.what for s in plan.skipped) == sorted(str(p) for p in REAL_FILES)


def test_night_on_the_real_directory_reports_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real frames of other instruments: every one is left out, counted by its reason,
    and the night, having no set to reduce, stops with one line and creates nothing."""
    ws = tmp_path / "ws"
    code, out, err = run(capsys, "night", REAL, "-o", ws, "--cluster", "sync", "--no-plots")
    assert code != 0
    assert "Traceback" not in err and "unexpected" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith("ERROR: no set of raw darks to reduce in the inputs")
    assert "unknown instrument" in line or "no INSTRUME" in line
    assert REAL_FILES
    assert f"{len(REAL_FILES)} file(s) or group(s) left out" in out
    table = out.split("left out    reason")[1].splitlines()[2:]
    counts = [row for row in table if row[:1].isdigit()]
    assert sum(int(row.split()[0]) for row in counts) == len(REAL_FILES)
    found = {row.split(maxsplit=1)[1].strip(): int(row.split()[0]) for row in counts}
    expected: dict[str, int] = {}
    for path in REAL_FILES:
        says = FOLDERS[path.relative_to(REAL).parts[0]]
        expected[says] = expected.get(says, 0) + 1
    assert found == expected
    assert not ws.exists()


# --------------------------------------------------------------------------------------------
# real X-shooter detector keywords, as raw darks

# What the dumps say (checked against the dump in every test): arm, WIN1 BINX x BINY,
# CONAD (e-/ADU), OUT1 RON (e-), organiser readout-speed field. The NIR dump has no CONAD
# and no RON: the detector-parameter fallbacks apply.
EXPECTED: dict[str, tuple[str, tuple[int, int] | None, float | None, float | None, str]] = {
    "BP_MAP_RP_NIR": ("NIR", None, None, None, ""),
    "BP_MAP_RP_UVB_1x1": ("UVB", (1, 1), 0.62, 2.6, "SLOW"),
    "BP_MAP_RP_UVB_1x2": ("UVB", (1, 2), 0.62, 2.6, "SLOW"),
    "BP_MAP_RP_UVB_2x2": ("UVB", (2, 2), 1.75, 4.5, "FAST"),
    "BP_MAP_RP_VIS_1x1": ("VIS", (1, 1), 0.6, 3.2, "SLOW"),
    "BP_MAP_RP_VIS_1x2": ("VIS", (1, 2), 0.6, 3.2, "SLOW"),
    "BP_MAP_RP_VIS_2x2": ("VIS", (2, 2), 1.4, 5.3, "FAST"),
}
N_FRAMES = 3


def read_dump(path: Path) -> fits.Header:
    """The real header as dumped by ``Header.totextfile``."""
    return fits.Header.fromtextfile(str(path))


def as_raw_dark(dump: fits.Header, instrume: str | None = None) -> fits.Header:
    """Turn a product header back into a raw dark's: drop PRO cards, set the DPR triplet.

    Two more changes, both things a real raw frame has that these product dumps lost:
    ``CDELT1/2`` carry the binning in X-shooter raw frames (soxspipe's trim binning), but the
    products reset them to 1; the NIR dump has no EXPTIME, so it gets ``ESO DET DIT``.
    """
    h = dump.copy()
    for key in [k for k in h if k.startswith("ESO PRO ")]:
        del h[key]
    h["HIERARCH ESO DPR CATG"] = "CALIB"
    h["HIERARCH ESO DPR TYPE"] = "DARK"
    h["HIERARCH ESO DPR TECH"] = "IMAGE"
    arm = str(h["ESO SEQ ARM"]).strip()
    if arm != "NIR":
        h["CDELT1"] = float(h["ESO DET WIN1 BINX"])
        h["CDELT2"] = float(h["ESO DET WIN1 BINY"])
    if "EXPTIME" not in h:
        h["EXPTIME"] = float(h["ESO DET DIT"])
    if instrume is not None:
        h["INSTRUME"] = instrume
    return h


def write_raw_darks(dump_path: Path, out: Path, instrume: str | None = None) -> list[Path]:
    """Three raw darks with the real cards on zeros+noise of the arm's smallest raw shape."""
    header = as_raw_dark(read_dump(dump_path), instrume)
    arm = str(header["ESO SEQ ARM"]).strip()
    spec = ARMS[("xsh", arm)]
    if arm == "NIR":
        shape = spec.raw_shape()
    else:
        shape = spec.raw_shape(int(header["ESO DET WIN1 BINY"]), int(header["ESO DET WIN1 BINX"]))
    rng = np.random.default_rng(zlib.crc32(dump_path.name.encode()))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(N_FRAMES):
        if arm == "NIR":  # X-shooter NIR raw frames are float32
            data: Any = rng.normal(100.0, 5.0, shape).astype(np.float32)
        else:
            data = (1000 + rng.integers(0, 12, shape)).astype(np.uint16)
        h = header.copy()
        h["MJD-OBS"] = float(header["MJD-OBS"]) + i * 30.0 / 86400.0
        path = out / f"XSHOO.{dump_path.stem}.{i}.fits"
        with warnings.catch_warnings():
            # keep the real cards as they are (e.g. NIR's 'ESO DET CHIP PXSPACE = 1.800e-05',
            # not FITS-standard): the reader must cope with them
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            fits.PrimaryHDU(data=data, header=h).writeto(path, output_verify="ignore")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def xsh_raw(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One directory of raw darks per real X-shooter header dump."""
    if not HEADER_DUMPS:
        pytest.skip("no X-shooter header dumps")
    root = tmp_path_factory.mktemp("xsh_real_headers")
    return {p.stem: write_raw_darks(p, root / p.stem)[0].parent for p in HEADER_DUMPS}


def test_expected_table_covers_every_dump() -> None:
    assert sorted(p.stem for p in HEADER_DUMPS) == sorted(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_real_xshooter_header_resolves_arm_binning_gain_ron(
    stem: str, xsh_raw: dict[str, Path], tmp_path: Path
) -> None:
    if stem not in xsh_raw:
        pytest.skip(f"no {stem}.hdr")
    arm, win_bin, conad, ron, rospeed = EXPECTED[stem]
    dump = read_dump(REAL / "xshooter_headers" / f"{stem}.hdr")
    # the table says what the dump says
    assert str(dump["ESO SEQ ARM"]).strip() == arm
    assert dump.get("ESO DET OUT1 CONAD") == conad
    assert dump.get("ESO DET OUT1 RON") == ron
    if win_bin is not None:
        assert (dump["ESO DET WIN1 BINX"], dump["ESO DET WIN1 BINY"]) == win_bin

    plan = plan_product([str(xsh_raw[stem])], tmp_path / "ws")
    fs = plan.frameset
    assert (fs.instrument, fs.arm) == ("xsh", arm)
    assert len(fs.frames) == N_FRAMES
    fallback = ARMS[("xsh", arm)]
    assert fs.gain == (conad if conad is not None else fallback.gain)
    assert fs.ron == (ron if ron is not None else fallback.ron)
    assert fs.win_binning == win_bin
    # soxspipe's trim binning is [ybin, xbin]; NIR is never binned
    assert fs.binning == ((win_bin[1], win_bin[0]) if win_bin else (1, 1))
    assert fs.exptime == float(dump.get("EXPTIME", dump.get("ESO DET DIT")))
    assert plan.settings.instrument == "xsh"
    bins = f"_{win_bin[0]}X{win_bin[1]}" if win_bin else ""
    speed = f"_{rospeed}" if rospeed else ""
    exptime = str(fs.exptime).replace(".", "_")
    assert re.search(rf"_{arm}{bins}{speed}_MDARK_{exptime}S_XSHOOTER$", plan.name), plan.name


def test_real_xshooter_raw_instrume_shoot(tmp_path: Path) -> None:
    """Raw X-shooter frames say INSTRUME='SHOOT' (the products say 'XSHOOTER')."""
    dump = REAL / "xshooter_headers" / "BP_MAP_RP_VIS_2x2.hdr"
    if not dump.exists():
        pytest.skip("no VIS 2x2 dump")
    frames = write_raw_darks(dump, tmp_path / "raw", instrume="SHOOT")
    fs = plan_product([str(p) for p in frames], tmp_path / "ws").frameset
    assert (fs.instrument, fs.arm, fs.gain, fs.ron) == ("xsh", "VIS", 1.4, 5.3)


def test_real_xshooter_templates_are_incomplete_in_a_night(xsh_raw: dict[str, Path]) -> None:
    """Three frames of a real 37- (44-) exposure template: the organiser leaves them out."""
    plan = plan_night([str(d) for d in xsh_raw.values()])
    assert plan.sets == ()
    reasons = sorted(s.reason for s in plan.skipped)
    nexp = {
        stem: int(read_dump(REAL / "xshooter_headers" / f"{stem}.hdr")["ESO TPL NEXP"])
        for stem in xsh_raw
    }
    assert reasons == sorted(
        f"incomplete template: {N_FRAMES} of {n} frames" for n in nexp.values()
    )


def test_real_xshooter_header_frames_reduce(
    xsh_raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The smallest arm end to end: the recipe uses the real gain and RON."""
    stem = "BP_MAP_RP_UVB_2x2"
    if stem not in xsh_raw:
        pytest.skip(f"no {stem}.hdr")
    ws = tmp_path / "ws"
    code, out, err = run(capsys, "mdark", xsh_raw[stem], "-o", ws, "--no-plots")
    assert code == 0, err
    assert "gain 1.75 e-/ADU, RON 4.5 e-" in out
    (made,) = [
        p
        for p in (ws / "products" / "soxs_mdark").glob("*.fits")
        if not p.stem.endswith(("_HOTPIX", "_NOISE"))  # the maps beside the master
    ]
    assert made.name.endswith("_UVB_2X2_FAST_MDARK_0_0S_XSHOOTER.fits")
    with fits.open(made, checksum=True) as hdul:
        header = hdul[0].header
        assert header["ESO DET OUT1 CONAD"] == 1.75
        assert header["ESO DET READ SPEED"] == "1pt/400k/lg"
