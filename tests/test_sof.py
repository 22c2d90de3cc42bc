"""Set-of-files text: ``parse_sof``, ``read_sof``, ``format_sof`` and ``resolve_inputs``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdark_dask.errors import InputError
from mdark_dask.io.sof import SofEntry, format_sof, parse_sof, read_sof
from mdark_dask.plan.product import resolve_inputs
from mdark_dask.simulate import write_sof


def touch(path: Path) -> Path:
    """An empty stand-in frame (the sof code never opens frames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path.resolve()


@pytest.fixture
def frames(tmp_path: Path) -> list[Path]:
    return [touch(tmp_path / "raw" / f"SOXS.2026-01-11T08:2{i}:00.000.fits") for i in range(3)]


# --------------------------------------------------------------------------------------------
# parse_sof


def test_comments_and_blank_lines_skipped(frames: list[Path], tmp_path: Path) -> None:
    text = (
        "# a comment line\n"
        "\n"
        f"{frames[0]}  DARK_VIS\n"
        "   \n"
        "#" + f"{frames[1]}  DARK_VIS\n"  # a commented-out frame
        "\t\n"
        f"{frames[2]}  DARK_VIS\n"
        "\n"
    )
    entries = parse_sof(text, tmp_path)
    assert entries == (
        SofEntry(str(frames[0]), "DARK_VIS"),
        SofEntry(str(frames[2]), "DARK_VIS"),
    )


@pytest.mark.parametrize(
    ("line_tag", "expected"),
    [
        ("", None),
        ("  DARK_VIS", "DARK_VIS"),
        ("  BIAS_NIR", "BIAS_NIR"),
        ("\tWHATEVER", "WHATEVER"),
    ],
    ids=["missing", "right", "wrong", "tab"],
)
def test_tags_optional_and_not_checked(
    line_tag: str, expected: str | None, frames: list[Path], tmp_path: Path
) -> None:
    entries = parse_sof(f"{frames[0]}{line_tag}", tmp_path)
    assert entries == (SofEntry(str(frames[0]), expected),)


def test_windows_line_endings(frames: list[Path], tmp_path: Path) -> None:
    text = "\r\n".join(f"{p}  DARK_VIS" for p in frames) + "\r\n"
    entries = parse_sof(text, tmp_path)
    assert [e.path for e in entries] == [str(p) for p in frames]
    assert all(e.tag == "DARK_VIS" for e in entries)


def test_relative_paths_beside_the_sof(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    night = tmp_path / "night"
    frame = touch(night / "raw" / "a.fits")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sof = night / "set.sof"
    sof.write_text("raw/a.fits  DARK_VIS\n./raw/a.fits\n", encoding="utf-8")
    entries = read_sof(sof)
    assert [e.path for e in entries] == [str(frame), str(frame)]


def test_relative_paths_beside_the_sof_win_over_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside = touch(tmp_path / "sofs" / "raw" / "a.fits")
    touch(tmp_path / "cwd" / "raw" / "a.fits")
    monkeypatch.chdir(tmp_path / "cwd")
    entries = parse_sof("raw/a.fits  DARK_VIS", tmp_path / "sofs")
    assert entries[0].path == str(beside)


def test_relative_paths_fall_back_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """soxspipe workspaces list ``./raw/...`` relative to the workspace root."""
    frame = touch(tmp_path / "ws" / "raw" / "a.fits")
    (tmp_path / "ws" / "sof").mkdir()
    monkeypatch.chdir(tmp_path / "ws")
    sof = tmp_path / "ws" / "sof" / "set.sof"
    sof.write_text("./raw/a.fits  DARK_VIS", encoding="utf-8")
    entries = read_sof(sof)
    assert entries == (SofEntry(str(frame), "DARK_VIS"),)
    assert Path(entries[0].path).is_absolute()


def test_home_directory_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = touch(tmp_path / "home" / "raw" / "a.fits")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    entries = parse_sof("~/raw/a.fits  DARK_VIS", tmp_path)
    assert entries[0].path == str(frame)


@pytest.mark.parametrize(
    "name",
    [
        "SOXS.2026-01-11T08:29:24.123.fits.gz",
        "SOXS.2026-01-11T08:29:24.123.fits.fz",
        "folder.fits/frame.fits",
        "a.fits.fits",
    ],
)
def test_names_kept_whole(name: str, tmp_path: Path) -> None:
    """Unlike soxspipe 0.17.4 the path is the whole first field, not cut after ``.fits``."""
    frame = touch(tmp_path / name)
    entries = parse_sof(f"{frame}  DARK_VIS\n{name}", tmp_path)
    assert [e.path for e in entries] == [str(frame), str(frame)]
    assert entries[0].tag == "DARK_VIS" and entries[1].tag is None


def test_missing_relative_path_is_kept_beside_the_sof(tmp_path: Path) -> None:
    entries = parse_sof("raw/absent.fits  DARK_VIS", tmp_path)
    assert entries == (SofEntry(str(tmp_path / "raw" / "absent.fits"), "DARK_VIS"),)


# --------------------------------------------------------------------------------------------
# read_sof


@pytest.mark.parametrize("text", ["", "\n\n  \n", "# nothing\n#  at all"])
def test_empty_sof_is_an_error(text: str, tmp_path: Path) -> None:
    sof = tmp_path / "empty.sof"
    sof.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="lists no frames") as info:
        read_sof(sof)
    assert "\n" not in str(info.value)


def test_missing_frame_is_an_error(frames: list[Path], tmp_path: Path) -> None:
    sof = tmp_path / "set.sof"
    absent = tmp_path / "raw" / "SOXS.absent.fits"
    sof.write_text(f"{frames[0]}  DARK_VIS\n{absent}  DARK_VIS", encoding="utf-8")
    with pytest.raises(InputError, match=r"SOXS\.absent\.fits") as info:
        read_sof(sof)
    assert "missing" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_sof_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothere\.sof") as info:
        read_sof(tmp_path / "nothere.sof")
    assert "\n" not in str(info.value)


def test_binary_sof_is_an_error(tmp_path: Path) -> None:
    sof = tmp_path / "binary.sof"
    sof.write_bytes(b"\xff\xfe\x00\x81\n")
    with pytest.raises(InputError) as info:
        read_sof(sof)
    assert "\n" not in str(info.value)


def test_read_sof_of_write_sof(frames: list[Path], tmp_path: Path) -> None:
    sof = write_sof(tmp_path / "set.sof", frames, tag="DARK_VIS")
    assert read_sof(sof) == tuple(SofEntry(str(p), "DARK_VIS") for p in frames)


# --------------------------------------------------------------------------------------------
# format_sof


def test_format_layout() -> None:
    text = format_sof(["/data/a.fits", "/data/longer.fits"], ["DARK_VIS", "DARK_NIR"])
    assert text == "/data/a.fits       DARK_VIS\n/data/longer.fits  DARK_NIR"
    assert not text.endswith("\n")
    lines = text.split("\n")
    # tags start in one column, two spaces after the longest path
    assert {line.index("DARK") for line in lines} == {len("/data/longer.fits") + 2}


def test_format_same_as_simulator(frames: list[Path], tmp_path: Path) -> None:
    sof = write_sof(tmp_path / "set.sof", frames, tag="DARK_VIS")
    paths = [str(p) for p in frames]
    assert sof.read_text(encoding="utf-8") == format_sof(paths, ["DARK_VIS"] * len(paths))


def test_format_round_trip(frames: list[Path], tmp_path: Path) -> None:
    paths = [str(frames[0]), str(frames[1]) + "x", str(frames[2])]
    touch(Path(paths[1]))
    tags = ["DARK_VIS", "DARK_VIS", "BIAS_VIS"]
    text = format_sof(paths, tags)
    entries = parse_sof(text, tmp_path / "elsewhere")
    assert [e.path for e in entries] == paths
    assert [e.tag for e in entries] == tags
    again = format_sof([e.path for e in entries], [e.tag or "" for e in entries])
    assert again == text


def test_format_needs_one_tag_per_path() -> None:
    with pytest.raises(ValueError):
        format_sof(["/a.fits", "/b.fits"], ["DARK_VIS"])


# --------------------------------------------------------------------------------------------
# resolve_inputs


def test_resolve_sof_input(frames: list[Path], tmp_path: Path) -> None:
    sof = write_sof(tmp_path / "20260111T082000_VIS_1X1_1_MDARK_5_0S_SOXS.sof", frames, "DARK_VIS")
    paths, name = resolve_inputs([str(sof)])
    assert paths == [str(p) for p in frames]
    assert name == "20260111T082000_VIS_1X1_1_MDARK_5_0S_SOXS"


def test_resolve_missing_sof(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        resolve_inputs([str(tmp_path / "absent.sof")])


def test_resolve_directory_and_files(frames: list[Path], tmp_path: Path) -> None:
    touch(tmp_path / "raw" / ".hidden.fits")
    touch(tmp_path / "raw" / "notes.txt")
    paths, name = resolve_inputs([str(tmp_path / "raw")])
    assert [Path(p).resolve() for p in paths] == frames
    assert name is None
    paths, name = resolve_inputs([str(f) for f in reversed(frames)])
    assert paths == [str(f) for f in reversed(frames)]
    assert name is None


@pytest.mark.parametrize("inputs", [[], ["absent.fits"]], ids=["none", "missing"])
def test_resolve_bad_inputs(
    inputs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError):
        resolve_inputs(inputs)


def test_resolve_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no FITS frames"):
        resolve_inputs([str(tmp_path)])
