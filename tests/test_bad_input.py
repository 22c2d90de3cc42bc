"""Bad input through the real CLI: one ``ERROR:`` line, a non-zero exit, nothing written.

Every case runs ``mdark_dask.cli.main([...])`` in-process on small simulated SOXS VIS 2x2
darks (2048 x 429 raw pixels, the smallest frame that holds the binned science region) and
checks, for each failure:

* the exit status is non-zero and the failure is an expected one (not the CLI's
  "unexpected ..." bug path);
* stderr holds exactly one line, starting with ``ERROR:``, and no traceback;
* nothing was written to the workspace: no ``.fits`` product and no temporary file.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from mdark_dask.cli import main
from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof
from tests.commands import console

# The cheapest arm: SOXS VIS binned 2x2 holds its science region in 2048 x 429 raw pixels.
SPEC = DarkSetSpec("soxs", "VIS", n_frames=4, exptime=5.0, binning=(2, 2), shape=(2048, 429))
COMMON = ("--no-plots",)


# --------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def base_frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four good raw darks, shared read-only by every test (copy before editing)."""
    return simulate_set(SPEC, tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def good_sof(base_frames: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sof of three good frames (never edited)."""
    return write_sof(tmp_path_factory.mktemp("sof") / "good.sof", base_frames[:3])


def copy_frames(frames: list[Path], dest: Path) -> list[Path]:
    """Copy frames into ``dest`` so a test may edit their headers."""
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, dest / f.name)) for f in frames]


def setval(path: Path, keyword: str, value: Any) -> None:
    """Edit one header card (ESO keywords spelled as HIERARCH cards, as the frames do)."""
    key = f"HIERARCH {keyword}" if len(keyword) > 8 or " " in keyword else keyword
    fits.setval(path, key, value=value)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    capsys.readouterr()  # drop anything printed before
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(workspace: Path) -> list[str]:
    """Product files and temporary files anywhere under the workspace."""
    found = []
    for root, _dirs, files in os.walk(workspace):
        for name in files:
            if (
                name.endswith((".fits", ".tmp"))
                or ".tmp" in name
                or name.startswith(".mdark-dask-write-test")
            ):
                found.append(os.path.join(root, name))
    return sorted(found)


def assert_failed(code: int, err: str, workspace: Path, match: str | None = None) -> str:
    """The common checks of every failure; returns the ERROR line."""
    assert code != 0, f"exit status 0 for a bad input; stderr: {err!r}"
    assert "Traceback" not in err, err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {err!r}"
    line = lines[0]
    assert line.startswith("ERROR:"), line
    assert "unexpected" not in line, f"an expected failure took the bug path: {line}"
    if match is not None:
        assert re.search(match, line, flags=re.IGNORECASE), f"{match!r} not in {line!r}"
    assert not leftovers(workspace), leftovers(workspace)
    assert not list((workspace / "products" / "soxs_mdark").glob("*.fits"))
    return line


def assert_no_tmp(workspace: Path) -> None:
    """No temporary file anywhere under the workspace (after a successful run)."""
    tmps = [p for p in leftovers(workspace) if not p.endswith((".fits",))]
    assert not tmps, tmps


def mdark(sof: Path, workspace: Path, *extra: str | Path) -> list[str | Path]:
    """Arguments of ``mdark-dask mdark <sof> -o <workspace> --no-plots ...``."""
    return ["mdark", sof, "-o", workspace, *COMMON, *extra]


# --------------------------------------------------------------------------------------------
# the sof itself


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# only a comment\n\n#another\n"],
    ids=["empty", "blank-lines", "comments-only"],
)
def test_empty_sof(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sof = tmp_path / "empty.sof"
    sof.write_text(text, encoding="utf-8")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match="no frames")


def test_sof_names_missing_file(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "raw" / "SOXS.nope.fits"
    sof = tmp_path / "missing.sof"
    lines = [f"{p}  DARK_VIS" for p in base_frames[:3]] + [f"{missing}  DARK_VIS"]
    sof.write_text("\n".join(lines), encoding="utf-8")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=re.escape("SOXS.nope.fits"))


def test_sof_file_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(tmp_path / "nothere.sof", ws))
    assert_failed(code, err, ws, match="nothere.sof")


def test_sof_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sof = tmp_path / "binary.sof"
    sof.write_bytes(b"\xff\xfe\x00\x81garbage\n")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match="binary.sof")


def test_directory_without_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here", encoding="utf-8")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, "mdark", empty, "-o", ws, *COMMON)
    assert_failed(code, err, ws, match="no FITS frames")


# --------------------------------------------------------------------------------------------
# the set of frames


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_frames(
    n: int, base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sof = write_sof(tmp_path / "few.sof", base_frames[:n])
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=rf"at least 3 .*got {n}")


def test_dark_mixed_with_bias(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bias_spec = DarkSetSpec(
        "soxs",
        "VIS",
        n_frames=1,
        exptime=5.0,
        binning=(2, 2),
        shape=(2048, 429),
        start="2026-01-11T09:00:00.000",
        dpr_type="BIAS",
    )
    bias = simulate_set(bias_spec, tmp_path / "bias")
    sof = write_sof(tmp_path / "mixed.sof", [*base_frames[:3], *bias])
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match="mix of DARK and BIAS")


def test_no_dark_frames(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = copy_frames(base_frames[:3], tmp_path / "raw")
    for f in frames:
        setval(f, "ESO DPR TYPE", "BIAS")
    sof = write_sof(tmp_path / "bias.sof", frames, tag="BIAS_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match="not DARK")


# One frame of three gets another value: (keyword, value, message pattern)
MIXES = {
    "arms": ("ESO SEQ ARM", "NIR", "mix of VIS and NIR"),
    "instruments": ("INSTRUME", "XSHOOTER", "mix of instruments"),
    "exptime": ("EXPTIME", 10.0, "differing exposure-times 5.0 and 10.0"),
    "binning-x": ("ESO DET BINX", 1, "mix of binnings"),
    "binning-y": ("ESO DET BINY", 1, "mix of binnings"),
    "readout-speed": ("ESO DET READ CURID", 2, "mix of readout speeds"),
    "gain": ("ESO DET OUT1 CONAD", 1.2, "mix of gain"),
    "readnoise": ("ESO DET CHIP RON", 4.5, "mix of readnoise"),
}


@pytest.mark.parametrize("case", list(MIXES))
def test_mixed_frames(
    case: str, base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyword, value, message = MIXES[case]
    frames = copy_frames(base_frames[:3], tmp_path / "raw")
    setval(frames[1], keyword, value)
    sof = write_sof(tmp_path / "mixed.sof", frames, tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=message)


def test_mixed_gain_soxspipe_numerics(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """soxspipe-0.17.4 numerics compare max(CONAD, GAIN): a CONAD mix is still a mix."""
    frames = copy_frames(base_frames[:3], tmp_path / "raw")
    setval(frames[2], "ESO DET OUT1 CONAD", 1.2)
    sof = write_sof(tmp_path / "mixed.sof", frames, tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws, "--numerics", "soxspipe-0.17.4"))
    assert_failed(code, err, ws, match="mix of gain")


def test_unknown_instrument(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = copy_frames(base_frames[:3], tmp_path / "raw")
    for f in frames:
        setval(f, "INSTRUME", "FOO")
    sof = write_sof(tmp_path / "foo.sof", frames, tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match="unknown instrument 'FOO'")


def test_missing_mjd_obs(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = copy_frames(base_frames[:3], tmp_path / "raw")
    fits.delval(frames[1], "MJD-OBS")
    sof = write_sof(tmp_path / "nomjd.sof", frames, tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=re.escape(frames[1].name) + ".*MJD-OBS")


# --------------------------------------------------------------------------------------------
# unreadable frames


def test_non_fits_file(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "x.fits"
    text.write_text("this is not a FITS file\n", encoding="utf-8")
    sof = write_sof(tmp_path / "text.sof", [*base_frames[:3], text], tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=r"x\.fits.*not a readable FITS file")


def test_directory_named_fits(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder.fits"
    folder.mkdir()
    sof = tmp_path / "dir.sof"
    sof.write_text(
        "\n".join(f"{p}  DARK_VIS" for p in [*base_frames[:3], folder]), encoding="utf-8"
    )
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match="folder.fits")


def truncate(frame: Path, dest: Path) -> Path:
    """A copy of ``frame`` cut in the middle of its pixel data."""
    data = frame.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def test_truncated_frame_too_few_left(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = truncate(base_frames[2], tmp_path / "SOXS.truncated.fits")
    sof = write_sof(tmp_path / "trunc.sof", [*base_frames[:2], cut], tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=r"SOXS\.truncated\.fits.*truncated")


def test_truncated_frame_dropped(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With 3 good frames left, the truncated one is dropped with a warning: product made."""
    cut = truncate(base_frames[3], tmp_path / "SOXS.truncated.fits")
    sof = write_sof(tmp_path / "trunc.sof", [*base_frames[:3], cut], tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert code == 0, err
    assert "Traceback" not in err
    assert "ERROR" not in err
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("WARNING:"), warnings[0]
    assert "SOXS.truncated.fits" in warnings[0]
    product = ws / "products" / "soxs_mdark" / "trunc.fits"
    assert product.is_file()
    assert fits.getval(product, "NCOMBINE") == 3
    assert_no_tmp(ws)
    log = product.with_suffix(".log").read_text(encoding="utf-8")
    assert "SOXS.truncated.fits" in log


def test_truncated_frame_is_named_even_when_the_warning_filter_is_lost(
    base_frames: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan silences astropy's "may have been truncated" warning with process-wide
    filters that another thread (a background import entering and leaving catch_warnings)
    can restore under it. Where warnings are errors the warning then arrives raised: it
    still names the frame as truncated, never an unexpected error."""
    import warnings

    from mdark_dask.errors import InputError
    from mdark_dask.io.fits import scan_frame

    cut = truncate(base_frames[3], tmp_path / "SOXS.truncated.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the other thread's restore, after the scan set its "ignore"
        monkeypatch.setattr(warnings, "simplefilter", lambda *args, **kwargs: None)
        with pytest.raises(InputError) as exc:
            scan_frame(cut, ())
    assert "truncated FITS file" in str(exc.value)
    assert "SOXS.truncated.fits" in str(exc.value)


def test_a_frame_whose_header_warns_is_scanned_again_when_the_filter_is_lost(
    base_frames: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real headers can make astropy warn (an illegal keyword such as Keck's GAIN.SPE).
    If another thread restores the warning filters during the scan, where warnings are
    errors the scan reads the frame once more instead of calling it unreadable."""
    import warnings

    from mdark_dask.io.fits import scan_frame

    frame = tmp_path / "odd-header.fits"
    data = bytearray(base_frames[0].read_bytes())
    end = data.index(b"END" + b" " * 77)  # insert a card with an illegal keyword name
    data[end : end + 80] = b"GAIN.SPE= 2.0".ljust(80) + b""
    data[end + 80 : end + 160] = b"END".ljust(80)
    frame.write_bytes(bytes(data))
    real = warnings.simplefilter
    lost = [True]

    def once_lost(*args: Any, **kwargs: Any) -> None:
        if lost.pop() if lost else False:
            return  # the first scan's "ignore" is lost to another thread
        real(*args, **kwargs)

    with warnings.catch_warnings():
        real("error")
        monkeypatch.setattr(warnings, "simplefilter", once_lost)
        scanned = scan_frame(frame, ("EXPTIME",))
    assert scanned.shape == scan_frame(base_frames[0], ()).shape
    assert lost == []  # the first attempt did lose its filter


# --------------------------------------------------------------------------------------------
# frame geometry


def test_frames_differ_in_shape(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_spec = DarkSetSpec(
        "soxs",
        "VIS",
        n_frames=1,
        exptime=5.0,
        binning=(2, 2),
        shape=(2048, 431),
        start="2026-01-11T09:00:00.000",
    )
    other = simulate_set(other_spec, tmp_path / "other")
    sof = write_sof(tmp_path / "shapes.sof", [*base_frames[:2], *other])
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=r"differ in shape.*\(2048, 429\).*\(2048, 431\)")


def test_frames_too_small_for_arm(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2x2 VIS frames need 2048 x 429 raw pixels; these hold 1024 x 429."""
    small = []
    for f in base_frames[:3]:
        with fits.open(f) as hdul:
            header = hdul[0].header.copy()
            data = hdul[0].data[:1024].copy()
        dest = tmp_path / "raw" / f.name
        dest.parent.mkdir(exist_ok=True)
        fits.PrimaryHDU(data, header).writeto(dest)
        small.append(dest)
    sof = write_sof(tmp_path / "small.sof", small, tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=r"1024x429 .*too small.*2048x429")


def test_frames_too_small_unbinned(
    base_frames: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same pixels labelled 1x1: the unbinned VIS region needs 4096 x 858."""
    frames = copy_frames(base_frames[:3], tmp_path / "raw")
    for f in frames:
        setval(f, "ESO DET BINX", 1)
        setval(f, "ESO DET BINY", 1)
    sof = write_sof(tmp_path / "small.sof", frames, tag="DARK_VIS")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws))
    assert_failed(code, err, ws, match=r"too small.*4096x858")


# --------------------------------------------------------------------------------------------
# settings files


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soxs-mdark:\n    frame-clipping-sigmaa: 3\n", "unknown key 'frame-clipping-sigmaa'"),
        ("bogus-top-level: 1\n", "unknown key 'bogus-top-level'"),
        ("soxs-mdark:\n    frame-clipping-sigma: three\n", "frame-clipping-sigma must be"),
        ("soxs-mdark:\n    stacked-clipping-iterations: 2.5\n", "must be an integer"),
        ("soxs-mdark: [unclosed\n", "not valid YAML"),
        ("soxs-mdark:\n  frame-clipping-sigma: 3\n bad-indent: 2\n", "not valid YAML"),
        ("instrument: xsh\n", "instrument xsh"),
        ("numerics: fastest\n", "numerics must be one of"),
    ],
    ids=[
        "unknown-key",
        "unknown-top-key",
        "wrong-type",
        "non-integer",
        "invalid-yaml",
        "invalid-yaml-indent",
        "instrument-mismatch",
        "bad-numerics",
    ],
)
def test_bad_settings_file(
    text: str,
    message: str,
    good_sof: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(text, encoding="utf-8")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(good_sof, ws, "-s", settings))
    assert_failed(code, err, ws, match=message)


def test_settings_file_missing(
    good_sof: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(good_sof, ws, "-s", tmp_path / "absent.yaml"))
    assert_failed(code, err, ws, match="absent.yaml")


def test_settings_file_not_text(
    good_sof: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A binary file given as settings (say, a FITS frame by mistake) is a settings error."""
    settings = tmp_path / "settings.yaml"
    settings.write_bytes(b"\xff\xfe\x00\x81 not yaml \x9c\n")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(good_sof, ws, "-s", settings))
    assert_failed(code, err, ws, match="settings")


# --------------------------------------------------------------------------------------------
# output


def test_output_under_regular_file(
    good_sof: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file", encoding="utf-8")
    ws = blocker / "ws"
    code, _, err = run(capsys, *mdark(good_sof, ws))
    assert_failed(code, err, tmp_path, match=f"cannot make workspace {ws}: {blocker} is a file")
    assert blocker.read_text(encoding="utf-8") == "a regular file"


def test_products_dir_is_a_file(
    good_sof: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "products").write_text("in the way", encoding="utf-8")
    code, _, err = run(capsys, *mdark(good_sof, ws))
    assert_failed(code, err, ws, match="cannot write")


def test_verbose_prints_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sof = tmp_path / "empty.sof"
    sof.write_text("", encoding="utf-8")
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(sof, ws, "-V"))
    assert code != 0
    assert "Traceback" in err
    lines = err.strip("\n").splitlines()
    assert lines[-1].startswith("ERROR:"), lines[-1]
    assert sum(line.startswith("ERROR:") for line in lines) == 1
    assert not leftovers(ws)


def _failing_writeto(exc: BaseException) -> Callable[..., None]:
    """A stand-in for ``HDUList.writeto`` that writes part of the file, then fails."""

    def writeto(self: fits.HDUList, fileobj: Any, *args: Any, **kwargs: Any) -> None:
        with open(fileobj, "wb") as fh:
            fh.write(b"SIMPLE  =                    T" + b" " * 2000)
        raise exc

    return writeto


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (KeyboardInterrupt(), "interrupted"),
        (ValueError("verification failed"), None),
    ],
    ids=["disk-full", "keyboard-interrupt", "unexpected-error"],
)
def test_interrupted_write_leaves_nothing(
    exc: BaseException,
    message: str | None,
    good_sof: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A product write that fails half-way leaves neither a product nor a temporary file."""
    monkeypatch.setattr(fits.HDUList, "writeto", _failing_writeto(exc))
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(good_sof, ws))
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR:"), err
    if message is not None:
        assert message in lines[0]
    products = ws / "products" / "soxs_mdark"
    assert not list(products.glob("*.fits"))
    assert not list(products.glob("*.tmp")) and not list(products.glob(".*.tmp"))
    assert not leftovers(ws), leftovers(ws)


# --------------------------------------------------------------------------------------------
# an existing product


def test_existing_product_kept_without_overwrite(
    good_sof: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    code, _, err = run(capsys, *mdark(good_sof, ws))
    assert code == 0, err
    assert not err.strip(), err
    product = ws / "products" / "soxs_mdark" / "good.fits"
    assert product.is_file()
    assert_no_tmp(ws)

    old = 1_000_000_000
    os.utime(product, ns=(old * 10**9, old * 10**9))
    code, out, err = run(capsys, *mdark(good_sof, ws))
    assert code == 0, err
    assert not err.strip(), err
    assert "already exists" in out and "-x" in out, out
    assert "MEAN COMBINING" not in out
    assert product.stat().st_mtime_ns == old * 10**9

    code, out, err = run(capsys, *mdark(good_sof, ws, "-x"))
    assert code == 0, err
    assert not err.strip(), err
    assert "already exists" not in out
    assert "MEAN COMBINING" in out
    assert product.stat().st_mtime_ns != old * 10**9
    assert sorted(p.name for p in product.parent.glob("*.fits")) == [
        "good.fits",
        "good_HOTPIX.fits",
        "good_NOISE.fits",
    ]
    assert_no_tmp(ws)


# --------------------------------------------------------------------------------------------
# command-line values


def test_negative_rows(good_sof: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--rows`` must be positive: a clear error, not the CLI's "unexpected" bug path.

    argparse may reject it (SystemExit, usage on stderr) or the recipe may (one ERROR line);
    either way: non-zero, no traceback, no product.
    """
    ws = tmp_path / "ws"
    capsys.readouterr()
    try:
        code = main([str(a) for a in mdark(good_sof, ws, "--rows", "-5")])
    except SystemExit as exc:  # argparse's own error
        _, err = capsys.readouterr()
        assert exc.code not in (0, None)
        assert "--rows" in err and "Traceback" not in err
        assert not leftovers(ws)
        return
    _, err = capsys.readouterr()
    assert_failed(code, err, ws, match="rows")


# --------------------------------------------------------------------------------------------
# the installed console script (mdark_dask.cli:console leaves with os._exit)


def test_console_script_reports_bad_input_and_exit_status(tmp_path: Path) -> None:
    run = console("mdark", str(tmp_path / "missing.sof"), "-o", str(tmp_path / "ws"), cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr == f"ERROR: sof file {tmp_path / 'missing.sof'} does not exist\n"


def test_console_script_flushes_everything_before_it_exits(good_sof: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run = console("mdark", str(good_sof), "-o", str(ws), *COMMON, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    # the whole report reached the pipe, down to its last line
    assert run.stdout.rstrip("\n").splitlines()[-1].startswith("Recipe Run Time: ")
    product = ws / "products" / "soxs_mdark" / "good.fits"
    with fits.open(product, checksum=True) as hdul:
        assert [h.name for h in hdul] == ["FLUX", "QUAL", "ERRS"]
    log = product.with_suffix(".log").read_text(encoding="utf-8")
    assert log.rstrip("\n").splitlines()[-1].startswith("Recipe Command: mdark-dask mdark ")


def test_a_night_sof_of_an_unknown_instrument_fails_that_set_only(
    base_frames: list[Path], good_sof: Path, tmp_path: Path
) -> None:
    """A sof's frames of an unknown instrument: that set fails with the reason, the other
    set of the night is made, and the night ends with its report and a non-zero exit."""
    import json

    frames = copy_frames(base_frames[:3], tmp_path / "foo")
    for frame in frames:
        setval(frame, "INSTRUME", "FOO")
    bad = write_sof(tmp_path / "foo.sof", frames)
    ws = tmp_path / "ws"
    run = console(
        "night", str(bad), str(good_sof), "-o", str(ws), "--cluster", "sync", *COMMON, cwd=tmp_path
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip() == "ERROR: 1 set(s) failed: foo"
    sets = {s["name"]: s for s in json.loads((ws / "night_report.json").read_text())["sets"]}
    assert sets["foo"]["status"] == "failed" and "unknown instrument 'FOO'" in sets["foo"]["reason"]
    assert sets["good"]["status"] == "done"
