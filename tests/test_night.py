"""``mdark-dask night``: planning, grouping, left-out files, sofs, reruns and failures.

Functional tests of the night scheduler through the real CLI (``cli.main``) and, where a
test needs to act between planning and computing, through ``plan.night.plan_night``,
``plan.sets.plan_sets`` and ``scheduler.run_plans`` directly. Everything runs in-process
(``--cluster sync``) on small frames:

* SOXS VIS binned 2x2 in 2048 x 429 raw pixels (the smallest frame that holds the binned
  science region);
* X-shooter UVB binned 2x2 in 1500 x 1048 raw pixels, for an X-shooter set in every night.

The standard night (:func:`night`) holds three sets: SOXS VIS 5 s, SOXS VIS 10 s and
X-shooter UVB 5 s (in a subdirectory, so the recursive search is exercised too).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from mdark_dask.app import write_sofs
from mdark_dask.cli import main
from mdark_dask.plan.night import plan_night
from mdark_dask.plan.sets import plan_sets
from mdark_dask.scheduler import run_plans
from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof

# --------------------------------------------------------------------------------------------
# specs of the standard night

VIS_SMALL: dict[str, Any] = {"binning": (2, 2), "shape": (2048, 429)}
UVB_SMALL: dict[str, Any] = {"binning": (2, 2), "shape": (1500, 1048)}

VIS5 = DarkSetSpec("soxs", "VIS", exptime=5.0, start="2026-01-11T08:29:24.123", seed=0, **VIS_SMALL)
VIS10 = DarkSetSpec(
    "soxs", "VIS", exptime=10.0, start="2026-01-11T09:00:00.000", seed=1, **VIS_SMALL
)
UVB5 = DarkSetSpec("xsh", "UVB", exptime=5.0, start="2026-01-11T10:00:00.000", seed=2, **UVB_SMALL)
SPECS = (VIS5, VIS10, UVB5)
PRODUCTS = Path("products") / "soxs_mdark"
OLD_NS = 1_600_000_000 * 10**9  # 2020-09-13: an mtime no run of these tests can produce


def name_of(spec: DarkSetSpec) -> str:
    """The set (and product) name the organiser gives a spec: its sof name minus ``.sof``."""
    return sof_name(spec).removesuffix(".sof")


@dataclass(frozen=True)
class Night:
    """A copy of the standard night that a test may edit."""

    raw: Path
    frames: dict[str, list[Path]]  # set name -> frames in MJD order
    ws: Path

    def names(self) -> list[str]:
        return sorted(self.frames)


@pytest.fixture(scope="module")
def night_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The standard night, simulated once per module (never edited: tests copy it)."""
    raw = tmp_path_factory.mktemp("night_src")
    simulate_set(VIS5, raw)
    simulate_set(VIS10, raw)
    simulate_set(UVB5, raw / "xsh")
    return raw


@pytest.fixture
def night(night_source: Path, tmp_path: Path) -> Night:
    """A private copy of the standard night (mtimes kept) and an empty workspace path."""
    raw = tmp_path / "raw"
    shutil.copytree(night_source, raw)
    frames = {
        name_of(VIS5): sorted(p for p in raw.glob("SOXS.*.fits") if _exptime(p) == 5.0),
        name_of(VIS10): sorted(p for p in raw.glob("SOXS.*.fits") if _exptime(p) == 10.0),
        name_of(UVB5): sorted((raw / "xsh").glob("XSHOO.*.fits")),
    }
    assert all(len(v) == 3 for v in frames.values()), frames
    return Night(raw, frames, tmp_path / "ws")


def _exptime(path: Path) -> float:
    return float(fits.getval(path, "EXPTIME"))


# --------------------------------------------------------------------------------------------
# helpers


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def night_args(inputs: Iterable[str | Path], ws: Path, *extra: str | Path) -> list[str | Path]:
    """``night INPUT... -o WS --cluster sync --no-plots EXTRA...``."""
    return ["night", *inputs, "-o", ws, "--cluster", "sync", "--no-plots", *extra]


def run_night(
    capsys: pytest.CaptureFixture[str], inputs: Iterable[str | Path], ws: Path, *extra: str | Path
) -> tuple[int, str, str]:
    return run(capsys, *night_args(inputs, ws, *extra))


def report(ws: Path) -> dict[str, Any]:
    """The run report of the last night in ``ws``."""
    data: dict[str, Any] = json.loads((ws / "night_report.json").read_text(encoding="utf-8"))
    return data


def statuses(ws: Path) -> dict[str, str]:
    """Set name -> status in the last run report."""
    return {s["name"]: s["status"] for s in report(ws)["sets"]}


def product(ws: Path, name: str) -> Path:
    return ws / PRODUCTS / f"{name}.fits"


def age(paths: Iterable[Path]) -> None:
    """Give files an old, known mtime so a rewrite is detected whatever the clock's grain."""
    for p in paths:
        os.utime(p, ns=(OLD_NS, OLD_NS))


def mtimes(paths: Iterable[Path]) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in paths}


def products_of(ws: Path) -> list[Path]:
    """The master darks (not the hot-pixel maps and noise images written beside them)."""
    beside = ("_HOTPIX", "_NOISE")
    return sorted(p for p in (ws / PRODUCTS).glob("*.fits") if not p.stem.endswith(beside))


def assert_clean_failure_output(err: str) -> None:
    assert "Traceback" not in err, err
    assert "unexpected" not in err, err


def left_out(ws: Path) -> dict[str, str]:
    """``what`` -> ``reason`` of the report's ``left_out`` list."""
    entries = report(ws)["left_out"]
    return {e["what"]: e["reason"] for e in entries}


def line_with(text: str, *needles: str) -> str | None:
    """The first line of ``text`` holding every needle, or None."""
    for line in text.splitlines():
        if all(n in line for n in needles):
            return line
    return None


def mjd_order(paths: Sequence[Path]) -> list[str]:
    return [str(p) for p in sorted(paths, key=lambda p: float(fits.getval(p, "MJD-OBS")))]


# --------------------------------------------------------------------------------------------
# grouping (headers only)


def test_two_exposure_times_make_two_sets(night: Night) -> None:
    plan = plan_night([str(night.raw)])
    vis = {s.exptime: s for s in plan.sets if s.instrument == "soxs" and s.arm == "VIS"}
    assert sorted(vis) == [5.0, 10.0]
    for exptime, s in vis.items():
        assert len(s.frames) == 3
        assert {f.get("EXPTIME") for f in s.frames} == {exptime}
    assert vis[5.0].name == name_of(VIS5)
    assert vis[10.0].name == name_of(VIS10)
    assert plan.skipped == ()


def test_arms_and_instruments_make_separate_sets(tmp_path: Path) -> None:
    """Simultaneous darks of three X-shooter arms and a SOXS arm: one set each."""
    start = "2026-01-12T08:00:00.000"
    specs = [
        DarkSetSpec("xsh", "UVB", exptime=30.0, start=start, seed=3, **UVB_SMALL),
        DarkSetSpec(
            "xsh", "VIS", exptime=30.0, start=start, seed=3, binning=(2, 2), shape=(2000, 1029)
        ),
        DarkSetSpec("xsh", "NIR", exptime=30.0, start=start, seed=3, shape=(1076, 2044)),
        DarkSetSpec("soxs", "VIS", exptime=30.0, start=start, seed=3, **VIS_SMALL),
    ]
    for spec in specs:  # same DATE-OBS, so one directory per arm (file names would clash)
        simulate_set(spec, tmp_path / "raw" / f"{spec.instrument}_{spec.arm}")
    plan = plan_night([str(tmp_path / "raw")])
    assert plan.skipped == ()
    got = {(s.instrument, s.arm): s for s in plan.sets}
    assert sorted(got) == sorted((s.instrument, s.arm) for s in specs)
    for spec in specs:
        s = got[(spec.instrument, spec.arm)]
        assert len(s.frames) == 3
        assert {Path(f.path).parent.name for f in s.frames} == {f"{spec.instrument}_{spec.arm}"}
        assert s.name == name_of(spec)


def test_exptimes_closer_than_a_hundredth_group_then_fail_exact_check(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    """60.001 s and 60.002 s round to the same organiser exposure (0.01 s), so they form one
    set, but the recipe compares EXPTIME exactly (as soxspipe's does): that set fails with the
    recipe's reason and the other sets of the night still get their products."""
    spec = DarkSetSpec(
        "soxs", "VIS", exptime=60.001, start="2026-01-11T12:00:00.000", seed=7, **VIS_SMALL
    )
    frames = simulate_set(spec, night.raw / "close")
    fits.setval(frames[-1], "EXPTIME", value=60.002)

    plan = plan_night([str(night.raw)])
    close = [s for s in plan.sets if {f.path for f in s.frames} & {str(p) for p in frames}]
    assert len(close) == 1, "60.001 s and 60.002 s darks should group together"
    (s,) = close
    assert len(s.frames) == 3
    assert s.name == name_of(spec)
    assert s.name.endswith("_MDARK_60_0S_SOXS")

    code, out, err = run_night(capsys, [night.raw], night.ws)
    assert code != 0
    assert_clean_failure_output(err)
    assert s.name in err
    sets = {e["name"]: e for e in report(night.ws)["sets"]}
    assert sets[s.name]["status"] == "failed"
    assert sets[s.name]["reason"] == "Input frames have differing exposure-times 60.001 and 60.002"
    assert sets[s.name]["product"] is None
    assert not product(night.ws, s.name).exists()
    for name in night.names():
        assert sets[name]["status"] == "done"
        assert product(night.ws, name).is_file()
    assert line_with(out, s.name, "differing exposure-times")


@pytest.fixture(scope="module")
def many_arms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DarkSetSpec]]:
    """One set of every arm, readout mode and binning flavour (headers matter, not pixels)."""
    raw = tmp_path_factory.mktemp("many_arms")
    specs = [
        DarkSetSpec(
            "soxs", "NIR", exptime=5.0, start="2026-01-11T08:29:24.123", seed=10, shape=(2044, 2044)
        ),
        DarkSetSpec(
            "soxs",
            "VIS",
            exptime=600.0,
            start="2026-01-11T09:00:00.000",
            seed=11,
            binning=(1, 2),
            shape=(2048, 858),
        ),
        DarkSetSpec(
            "soxs",
            "VIS",
            exptime=0.5,
            start="2026-01-11T09:30:00.000",
            seed=12,
            read_speed=2,
            **VIS_SMALL,
        ),
        DarkSetSpec(
            "xsh", "UVB", exptime=5.0, start="2026-01-11T10:00:00.000", seed=13, **UVB_SMALL
        ),
        DarkSetSpec(
            "xsh",
            "VIS",
            exptime=0.5,
            start="2026-01-11T10:30:00.000",
            seed=14,
            binning=(2, 2),
            shape=(2000, 1029),
            read_speed="1pt/100k/hg",
        ),
        DarkSetSpec(
            "xsh",
            "NIR",
            exptime=120.0,
            start="2026-01-11T11:00:00.000",
            seed=15,
            shape=(1076, 2044),
        ),
    ]
    for i, spec in enumerate(specs):
        simulate_set(spec, raw / f"set{i}")
    return raw, specs


def test_set_names_are_the_organiser_names(
    many_arms: tuple[Path, list[DarkSetSpec]], tmp_path: Path
) -> None:
    """Names equal ``simulate.sof_name`` (checked against soxspipe prep), X-shooter too."""
    raw, specs = many_arms
    plan = plan_night([str(raw)])
    assert plan.skipped == ()
    assert sorted(s.name for s in plan.sets) == sorted(name_of(s) for s in specs)
    assert {s.instrument for s in plan.sets} == {"soxs", "xsh"}
    by_name = {s.name: s for s in plan.sets}
    for spec in specs:
        s = by_name[name_of(spec)]
        assert (s.instrument, s.arm, s.exptime) == (spec.instrument, spec.arm, spec.exptime)
        assert s.sof is None
    written = write_sofs(plan, tmp_path / "sof")
    assert sorted(p.name for p in written) == sorted(sof_name(s) for s in specs)
    assert sorted(p.name for p in (tmp_path / "sof").iterdir()) == sorted(
        sof_name(s) for s in specs
    )


# --------------------------------------------------------------------------------------------
# left-out files and groups


def test_left_out_files_and_groups_are_reported(
    night: Night, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = night.raw
    # a bias frame
    bias_spec = DarkSetSpec(
        "soxs",
        "VIS",
        n_frames=1,
        exptime=5.0,
        dpr_type="BIAS",
        start="2026-01-11T11:00:00.000",
        seed=20,
        **VIS_SMALL,
    )
    (bias,) = simulate_set(bias_spec, raw / "bias")
    # a non-FITS file with a FITS name (found by the directory search)
    not_fits = raw / "notes.fits"
    not_fits.write_text("observing log, not a FITS file\n" * 20, encoding="utf-8")
    # a non-FITS file given explicitly on the command line
    readme = tmp_path / "readme.txt"
    readme.write_text("hello\n", encoding="utf-8")
    # a truncated FITS file (a copy of a good frame, cut in the pixel data)
    truncated = raw / "SOXS.truncated.fits"
    data = night.frames[name_of(VIS5)][0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    # a complete template of only 2 frames
    two_spec = DarkSetSpec(
        "soxs",
        "VIS",
        n_frames=2,
        exptime=20.0,
        start="2026-01-11T12:00:00.000",
        seed=21,
        **VIS_SMALL,
    )
    simulate_set(two_spec, raw / "two")
    # an incomplete template: 3 of its NEXP 4 frames
    four_spec = DarkSetSpec(
        "soxs",
        "VIS",
        n_frames=4,
        exptime=30.0,
        start="2026-01-11T13:00:00.000",
        seed=22,
        **VIS_SMALL,
    )
    four = simulate_set(four_spec, raw / "four")
    four[-1].unlink()

    # (an input that does not exist is an error before any work: tests/test_workspace.py)
    code, out, err = run_night(capsys, [raw, readme], night.ws)
    assert code == 0, err  # left-out files are not failed sets
    assert_clean_failure_output(err)

    expected = {
        str(bias): r"not a dark \(DPR TYPE BIAS\)",
        str(not_fits): r"not a readable FITS file",
        str(readme): r"not a readable FITS file",
        str(truncated): r"truncated",
        name_of(two_spec): r"only 2 frame\(s\); at least 3 needed",
        name_of(four_spec): r"incomplete template: 3 of 4 frames",
    }
    got = left_out(night.ws)
    assert sorted(got) == sorted(expected), got
    for what, pattern in expected.items():
        assert re.search(pattern, got[what]), (what, got[what])
        # the terminal shows the same: the thing left out and its reason on one line
        assert line_with(out, what, got[what]), f"{what}: {got[what]} not in the output"
    assert "6 file(s) or group(s) left out" in out

    # the good sets are untouched by their awkward neighbours
    assert statuses(night.ws) == dict.fromkeys(night.names(), "done")
    assert [p.stem for p in products_of(night.ws)] == night.names()


# --------------------------------------------------------------------------------------------
# sof inputs


def test_sof_input_is_reduced_as_given(
    night: Night, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sof = write_sof(tmp_path / "my_vis_darks.sof", night.frames[name_of(VIS5)])
    code, out, err = run_night(capsys, [sof], night.ws)
    assert code == 0, err
    assert statuses(night.ws) == {"my_vis_darks": "done"}
    assert [p.name for p in products_of(night.ws)] == ["my_vis_darks.fits"]
    assert "my_vis_darks" in out


def test_directory_and_sofs_together(
    night: Night, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Frames named by a sof are reduced as that sof's set, not a second time by grouping."""
    vis5 = night.frames[name_of(VIS5)]
    sof = write_sof(tmp_path / "sofs" / "my_vis_darks.sof", vis5)
    extra_spec = DarkSetSpec(
        "soxs", "VIS", exptime=15.0, start="2026-01-11T14:00:00.000", seed=30, **VIS_SMALL
    )
    extra = simulate_set(extra_spec, tmp_path / "elsewhere")
    other_sof = write_sof(tmp_path / "sofs" / "other.sof", extra)

    plan = plan_night([str(night.raw), str(sof), str(other_sof)])
    names = sorted(s.name for s in plan.sets)
    assert names == sorted(["my_vis_darks", "other", name_of(VIS10), name_of(UVB5)])
    by_name = {s.name: s for s in plan.sets}
    assert [f.path for f in by_name["my_vis_darks"].frames] == [str(p) for p in vis5]
    assert by_name["my_vis_darks"].sof == str(sof)

    code, _, err = run_night(capsys, [night.raw, sof, other_sof], night.ws)
    assert code == 0, err
    assert statuses(night.ws) == dict.fromkeys(names, "done")
    assert [p.stem for p in products_of(night.ws)] == names
    # sofs are only written for grouped sets; given sofs stay where they are
    assert sorted(p.name for p in (night.ws / "sof").iterdir()) == sorted(
        f"{n}.sof" for n in (name_of(VIS10), name_of(UVB5))
    )


# --------------------------------------------------------------------------------------------
# --dry-run

PLAN_HEADER = re.compile(r"^set\s+inst\s+arm\s+exptime s\s+frames\s+product\s+state\s*$", re.M)


def test_dry_run_prints_the_plan_and_writes_nothing(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.relative_to(night.raw) for p in night.raw.rglob("*"))
    code, out, err = run_night(capsys, [night.raw], night.ws, "--dry-run")
    assert code == 0, err
    assert PLAN_HEADER.search(out), out
    for spec in SPECS:
        name = name_of(spec)
        row = line_with(out, name, str(product(night.ws.resolve(), name)), "to do")
        assert row, f"no plan row for {name}"
        cells = row.split()
        assert cells[1:5] == [spec.instrument.upper(), spec.arm, f"{spec.exptime:g}", "3"]
    assert not night.ws.exists(), sorted(night.ws.rglob("*"))
    assert sorted(p.relative_to(night.raw) for p in night.raw.rglob("*")) == before
    assert "REDUCING" not in out


def test_dry_run_after_a_run_shows_up_to_date_sets(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    files = [p for p in night.ws.rglob("*") if p.is_file()]
    age(files)
    code, out, err = run_night(capsys, [night.raw], night.ws, "--dry-run")
    assert code == 0, err
    assert mtimes(files) == dict.fromkeys((p.name for p in files), OLD_NS)
    assert sorted(p for p in night.ws.rglob("*") if p.is_file()) == sorted(files)
    for name in night.names():
        assert line_with(out, name, "up to date"), out
    for name in night.names():
        # the plan names the existing product of an up-to-date set (issue 4: the dry-run
        # table has the product path of every set)
        assert line_with(out, name, str(product(night.ws.resolve(), name)), "up to date"), out


# --------------------------------------------------------------------------------------------
# sof files of the night


def test_sofs_list_absolute_paths_in_mjd_order(night: Night, tmp_path: Path) -> None:
    # file names sorting against time: the sof must follow MJD-OBS, not the names
    vis5 = night.frames[name_of(VIS5)]
    renamed = []
    for i, p in enumerate(vis5):
        target = p.with_name(f"{'zyx'[i]}_dark.fits")
        p.rename(target)
        renamed.append(target)
    plan = plan_night([str(night.raw)])
    written = write_sofs(plan, night.ws / "sof")
    assert sorted(p.name for p in written) == sorted(sof_name(s) for s in SPECS)
    for spec in SPECS:
        text = (night.ws / "sof" / sof_name(spec)).read_text(encoding="utf-8")
        lines = text.splitlines()
        tag = f"DARK_{spec.arm}"
        assert all(re.fullmatch(rf"/\S+ {{2,}}{tag}", line) for line in lines), text
        paths = [line.split()[0] for line in lines]
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in paths)
        assert paths == mjd_order([Path(p) for p in paths])
    vis5_lines = (night.ws / "sof" / sof_name(VIS5)).read_text(encoding="utf-8").splitlines()
    assert [line.split()[0] for line in vis5_lines] == [str(p) for p in renamed]


def test_unchanged_sof_is_not_rewritten(night: Night) -> None:
    plan = plan_night([str(night.raw)])
    written = write_sofs(plan, night.ws / "sof")
    age(written)
    again = write_sofs(plan_night([str(night.raw)]), night.ws / "sof")
    assert again == written
    assert mtimes(again) == dict.fromkeys((p.name for p in again), OLD_NS)
    assert not [p for p in (night.ws / "sof").iterdir() if p.name.startswith(".")]
    # a set whose frame list changed (a frame renamed) gets its sof rewritten, atomically;
    # the other sofs stay untouched
    moved = night.frames[name_of(VIS10)][1]
    moved.rename(moved.with_name("renamed.fits"))
    write_sofs(plan_night([str(night.raw)]), night.ws / "sof")
    after = mtimes(sorted((night.ws / "sof").glob("*.sof")))
    assert after[sof_name(VIS10)] != OLD_NS
    assert str(moved.with_name("renamed.fits")) in (night.ws / "sof" / sof_name(VIS10)).read_text(
        encoding="utf-8"
    )
    assert after[sof_name(VIS5)] == after[sof_name(UVB5)] == OLD_NS
    assert not [p for p in (night.ws / "sof").iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------------------------
# products


def test_night_product_is_byte_identical_to_mdark(
    night: Night, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    for name in night.names():
        sof = night.ws / "sof" / f"{name}.sof"
        alone = tmp_path / f"ws_{name}"
        code, _, err = run(capsys, "mdark", sof, "-o", alone, "--no-plots")
        assert code == 0, err
        one = product(alone, name).read_bytes()
        assert one == product(night.ws, name).read_bytes(), f"{name} differs from mdark's"


def test_rerun_skips_up_to_date_sets_and_x_redoes_them(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    made = products_of(night.ws)
    sofs = sorted((night.ws / "sof").glob("*.sof"))
    assert [p.stem for p in made] == night.names() == [p.stem for p in sofs]
    age([*made, *sofs])

    code, out, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    assert statuses(night.ws) == dict.fromkeys(night.names(), "up to date")
    for name in night.names():
        assert line_with(out, name, "up to date"), out
    assert "REDUCING" not in out
    assert mtimes(made) == dict.fromkeys((p.name for p in made), OLD_NS)
    assert mtimes(sofs) == dict.fromkeys((p.name for p in sofs), OLD_NS)
    for entry in report(night.ws)["sets"]:
        assert entry["product"] == str(product(night.ws.resolve(), entry["name"]))

    code, _, err = run_night(capsys, [night.raw], night.ws, "-x")
    assert code == 0, err
    assert statuses(night.ws) == dict.fromkeys(night.names(), "done")
    assert all(t != OLD_NS for t in mtimes(made).values())


def test_touched_frame_redoes_only_its_set(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    made = products_of(night.ws)
    age(made)
    frame = night.frames[name_of(VIS10)][1]
    new = frame.stat().st_mtime_ns + 3600 * 10**9
    os.utime(frame, ns=(new, new))

    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    expected = dict.fromkeys(night.names(), "up to date")
    expected[name_of(VIS10)] = "done"
    assert statuses(night.ws) == expected
    after = mtimes(made)
    assert after[f"{name_of(VIS10)}.fits"] != OLD_NS
    assert after[f"{name_of(VIS5)}.fits"] == after[f"{name_of(UVB5)}.fits"] == OLD_NS


def test_changed_settings_redo_every_set(
    night: Night, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    first = {p.name: p.read_bytes() for p in products_of(night.ws)}
    settings = tmp_path / "settings.yaml"
    settings.write_text("soxs-mdark:\n    frame-clipping-sigma: 4.5\n", encoding="utf-8")

    code, _, err = run_night(capsys, [night.raw], night.ws, "-s", settings)
    assert code == 0, err
    assert statuses(night.ws) == dict.fromkeys(night.names(), "done")
    second = {p.name: p.read_bytes() for p in products_of(night.ws)}
    assert all(second[n] != first[n] for n in first)

    # the same settings again: nothing to do
    code, _, err = run_night(capsys, [night.raw], night.ws, "-s", settings)
    assert code == 0, err
    assert statuses(night.ws) == dict.fromkeys(night.names(), "up to date")
    # and back to the defaults: everything again, identical to the first products
    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    assert statuses(night.ws) == dict.fromkeys(night.names(), "done")
    assert {p.name: p.read_bytes() for p in products_of(night.ws)} == first


# --------------------------------------------------------------------------------------------
# interrupted runs


def test_interrupted_run_completes_on_rerun(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill midway: one product missing, a half-written temporary file beside the others."""
    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    victim = product(night.ws, name_of(VIS10))
    whole = victim.read_bytes()
    victim.unlink()
    stray = victim.with_name(f".{victim.name}.123.tmp")
    stray.write_bytes(whole[: len(whole) // 2])
    age(products_of(night.ws))

    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    expected = dict.fromkeys(night.names(), "up to date")
    expected[name_of(VIS10)] = "done"
    assert statuses(night.ws) == expected
    assert victim.read_bytes() == whole  # remade, complete, identical
    with fits.open(victim, checksum=True) as hdul:  # a bad checksum warns: an error here
        assert hdul[0].header["NAXIS"] >= 0
    assert [p.stem for p in products_of(night.ws)] == night.names()


def test_truncated_product_is_not_up_to_date(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    """A product cut short at its final name (an interrupted copy, a full disk) must be
    remade: its header alone (and the fingerprint in it) does not make it complete."""
    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    victim = product(night.ws, name_of(VIS10))
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) // 2])

    code, _, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    assert statuses(night.ws)[name_of(VIS10)] == "done", "a truncated product was kept"
    assert victim.read_bytes() == whole


# --------------------------------------------------------------------------------------------
# failures and exit status


def test_failed_set_gives_non_zero_exit_and_others_complete(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    """One frame of VIS10 rewritten one column wider, with the same header cards."""
    frame = night.frames[name_of(VIS10)][1]
    with fits.open(frame) as hdul:
        header = hdul[0].header.copy()
        data = np.pad(np.asarray(hdul[0].data), ((0, 0), (0, 1)), mode="edge")
    fits.PrimaryHDU(data=data, header=header).writeto(frame, overwrite=True)

    code, out, err = run_night(capsys, [night.raw], night.ws)
    assert code != 0
    assert_clean_failure_output(err)
    assert err.strip().splitlines() == [f"ERROR: 1 set(s) failed: {name_of(VIS10)}"]
    sets = {e["name"]: e for e in report(night.ws)["sets"]}
    bad = sets[name_of(VIS10)]
    assert bad["status"] == "failed"
    assert bad["product"] is None
    assert bad["reason"] == "Input frames differ in shape: (2048, 429) and (2048, 430)"
    assert line_with(out, name_of(VIS10), "differ in shape")
    for name in (name_of(VIS5), name_of(UVB5)):
        assert sets[name]["status"] == "done"
        assert Path(sets[name]["product"]).is_file()
    assert [p.stem for p in products_of(night.ws)] == [name_of(VIS5), name_of(UVB5)]
    assert "2 of 3 sets have their product" in out


def _plan_then_corrupt(night: Night) -> tuple[list[Any], Path]:
    """Plan the night, then cut one VIS10 frame short: it breaks while computing."""
    plan = plan_night([str(night.raw)])
    todo, settled = plan_sets(plan, night.ws, None, None, overwrite=False, plots=False)
    assert settled == [] and len(todo) == 3
    frame = night.frames[name_of(VIS10)][1]
    os.truncate(frame, frame.stat().st_size // 2)
    return list(todo), frame


def test_compute_failure_stays_with_its_set(night: Night) -> None:
    todo, _ = _plan_then_corrupt(night)
    seen: list[tuple[str, int, int]] = []
    outcomes = run_plans(todo, None, lambda o, done, total, _t: seen.append((o.name, done, total)))
    by_name = {o.name: o for o in outcomes}
    assert sorted(by_name) == night.names()
    bad = by_name[name_of(VIS10)]
    assert bad.status == "failed" and not bad.ok
    assert bad.reason and "\n" not in bad.reason
    assert bad.product is None
    for name in (name_of(VIS5), name_of(UVB5)):
        assert by_name[name].status == "done"
        assert Path(str(by_name[name].product)).is_file()
    assert [done for _, done, _ in seen] == [1, 2, 3]
    assert {total for _, _, total in seen} == {3}
    assert not product(night.ws, name_of(VIS10)).exists()
    assert not [p for p in (night.ws / PRODUCTS).iterdir() if p.name.endswith(".tmp")]


def test_compute_failure_reason_names_the_frame(night: Night) -> None:
    """The reason of a set that broke while reading pixels says which frame broke."""
    todo, frame = _plan_then_corrupt(night)
    outcomes = {o.name: o for o in run_plans(todo, None)}
    reason = outcomes[name_of(VIS10)].reason
    assert frame.name in reason, reason


# --------------------------------------------------------------------------------------------
# the run report


def test_night_report_structure(night: Night, capsys: pytest.CaptureFixture[str]) -> None:
    (night.raw / "junk.fits").write_bytes(b"\x00" * 100)
    code, out, err = run_night(capsys, [night.raw], night.ws)
    assert code == 0, err
    data = report(night.ws)
    assert str(night.ws / "night_report.json") in out
    for key in ("sets", "left_out", "command", "cluster"):
        assert key in data, key
    assert isinstance(data["command"], str)
    assert data["command"].startswith("mdark-dask night ")
    assert str(night.raw) in data["command"] and "--cluster sync" in data["command"]
    assert "synchronous" in data["cluster"]
    assert data["left_out"] == [
        {"what": str(night.raw / "junk.fits"), "reason": "not a readable FITS file"}
    ]
    assert [s["name"] for s in data["sets"]] == night.names()
    # this run's own report, beside the workspace's record of every run
    assert data["runs"][-1] == f"runs/{data['run']}.json"
    own = json.loads((night.ws / data["runs"][-1]).read_text(encoding="utf-8"))
    assert [s["name"] for s in own["sets"]] == night.names()
    for s in data["sets"]:
        assert s["status"] == "done"
        assert s["run"] == data["run"] and s["night"] == "2026-01-10"
        assert s["product"] == str(product(night.ws.resolve(), s["name"]))
        assert s["reason"] == ""
        assert s["frames"] == 3
        assert s["qc_flag"] == "pass"
        assert {"MDARK MEDIAN", "RAW RON", "MASTER RON", "HOTPIX NUM", "HOTPIX FRAC"} <= set(
            s["qc"]
        )
        for name, qc in s["qc"].items():
            assert set(qc) == {"value", "unit", "flag", "lo", "hi"}, name
            assert isinstance(qc["value"], int | float) and np.isfinite(qc["value"]), name
            assert qc["flag"] == "pass", name
    by_name = {s["name"]: s for s in data["sets"]}
    assert by_name[name_of(UVB5)]["instrument"] == "xsh"
    assert by_name[name_of(UVB5)]["arm"] == "UVB"
    assert by_name[name_of(VIS10)]["exptime"] == 10.0
    # SOXS products carry the temperature QCs, X-shooter ones do not
    assert "DETECTOR TEMP" in by_name[name_of(VIS5)]["qc"]
    assert "DETECTOR TEMP" not in by_name[name_of(UVB5)]["qc"]


def test_workspace_inside_the_input_directory(
    night: Night, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mdark-dask night . -o ./ws``: on a rerun the workspace is not searched (its
    products are not raw frames, nor left out); the sets are the same and up to date. A
    product copied elsewhere in the tree is still found, and left out as a product."""
    ws = night.raw / "ws"
    code, _, err = run_night(capsys, [night.raw], ws)
    assert code == 0, err
    assert left_out(ws) == {}
    stray = night.raw / "copied" / "master.fits"
    stray.parent.mkdir()
    shutil.copy(product(ws, name_of(VIS5)), stray)
    code, _, err = run_night(capsys, [night.raw], ws)
    assert code == 0, err
    assert statuses(ws) == dict.fromkeys(night.names(), "up to date")
    assert left_out(ws) == {str(stray): "a product, not a raw frame"}


def test_run_plans_gives_the_largest_sets_the_highest_priority(night: Night) -> None:
    """On a cluster the sets are submitted largest first (dask runs higher priorities
    first), so a large set never runs alone at the end of the night."""
    from mdark_dask.cluster import connect

    plan = plan_night([str(night.raw)])
    todo, _ = plan_sets(plan, night.ws, None, None, overwrite=False, plots=False)
    sizes = {p.name: sum(f.shape[0] * f.shape[1] for f in p.frameset.frames) for _, p in todo}
    asked: dict[str, int] = {}
    with connect("threads") as conn:
        client = conn.client
        real = client.compute

        def compute(graph: Any, priority: int = 0) -> Any:
            asked[graph.key[len("finalize-") :].rsplit("-", 1)[0]] = priority
            return real(graph, priority=priority)

        client.compute = compute  # type: ignore[method-assign]
        with client.as_current():  # as the night's profile() makes it
            outcomes = run_plans(todo, client)
    assert all(o.status == "done" for o in outcomes)
    assert sorted(asked, key=asked.__getitem__) == sorted(sizes, key=sizes.__getitem__)
    assert len(set(asked.values())) == len(asked)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("not a dark (DPR TYPE BIAS)", "not a dark"),
        ("only 2 frame(s); at least 3 needed", "only 2 frame(s)"),
        ("incomplete template: 3 of 5 frames", "incomplete template"),
        ("cannot read: it's truncated", "cannot read"),
        ("unknown instrument 'LRISBLUE'", "unknown instrument 'LRISBLUE'"),
        # Keck's INSTRUME holds a colon: the value is one kind, not cut at the colon
        (
            "unknown instrument 'HIRES: High Resolution Echelle Spectrometer'",
            "unknown instrument 'HIRES: High Resolution Echelle Spectrometer'",
        ),
    ],
)
def test_a_reason_counts_by_its_kind(reason: str, kind: str) -> None:
    from mdark_dask.plan.night import reason_kind

    assert reason_kind(reason) == kind


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab ':;(s)", max_size=24))
def test_a_reason_kind_is_a_prefix_and_the_old_cut_without_quotes(reason: str) -> None:
    """The kind is the start of the reason; without a quote it is the reason up to its first
    colon, semicolon or `` (``."""
    from mdark_dask.plan.night import reason_kind

    kind = reason_kind(reason)
    assert reason.lstrip().startswith(kind)
    if "'" not in reason:
        assert kind == reason.split(" (")[0].split(":")[0].split(";")[0].strip()
