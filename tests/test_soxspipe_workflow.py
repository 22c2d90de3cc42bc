"""mdark-dask's masters in soxspipe 0.17.4's own workflow, proven by soxspipe itself.

* Downstream: ``soxspipe disp_solution`` on a simulated SOXS NIR arc whose spots sit on
  soxspipe's static line list, once with soxspipe's master dark and once with mdark-dask's
  ``--numerics soxspipe-0.17.4`` master: the same calibrated frame and fitted lines.
* Companions: the same with the hot-pixel map and the noise image listed in the sof.
* Workflow: ``soxspipe prep``, ``mdark-dask night --layout soxspipe``, ``soxspipe reduce
  all``: soxspipe's mdark step does not run, the arc step uses mdark-dask's master, and a
  master that failed QC is not used (soxspipe alone would have used it).
* Association: the night's association report names the master soxspipe's organiser puts
  in every sof.

The organiser needs soxspipe on Python 3.12 (:func:`tests.oracle.organiser_venv`); the
standalone recipes run in the usual oracle venv. Each soxspipe command has a timeout.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof
from tests.commands import console
from tests.oracle import (
    SoxspipeRun,
    oracle_venv,
    organiser_venv,
    run_soxspipe,
    run_soxspipe_mdark,
    settings_file,
    static_calibration,
)

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

#: soxspipe's NIR single-pinhole line list (``soxs_detector_parameters.yaml``).
LINE_LIST = "ArHgNeXe_clean_within_2.0pixel.fits"
MID_SLIT = 4
NIGHT = "2026-01-10"


def _spots(venv: Path) -> tuple[tuple[float, float, float], ...]:
    """One spot of 20000 e- per mid-slit line of soxspipe's static NIR line list."""
    table = Table.read(static_calibration(venv, LINE_LIST))
    mid = table[table["slit_index"] == MID_SLIT]
    return tuple((float(r["detector_x"]), float(r["detector_y"]), 2e4) for r in mid)


def _arc(venv: Path, start: str, exptime: float = 5.0, seed: int = 30, **kw: Any) -> DarkSetSpec:
    """A SOXS NIR single-pinhole arc (Ar and Hg lamps) with its spots on the line list."""
    return DarkSetSpec(
        "soxs",
        "NIR",
        n_frames=1,
        exptime=exptime,
        start=start,
        seed=seed,
        dpr_type="LAMP,WAVE",
        dpr_tech="ECHELLE,PINHOLE",
        slit="PINHOLE",
        lamps=("ARGO", "MERC"),
        spots=_spots(venv),
        obs_name=f"ARC_NIR_{seed}",
        **kw,
    )


def _darks(exptime: float, start: str, seed: int, **kw: Any) -> DarkSetSpec:
    return DarkSetSpec("soxs", "NIR", n_frames=3, exptime=exptime, start=start, seed=seed, **kw)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sof_lines(path: Path) -> list[tuple[str, str]]:
    """``(path, tag)`` of every line of a soxspipe sof."""
    return [
        (line.split()[0], line.split()[-1])
        for line in path.read_text().splitlines()
        if line.strip()
    ]


# --------------------------------------------------------------------------------------------
# Downstream and companions: soxs_disp_solution with one master or another


class DispSolution(NamedTuple):
    """What one ``soxspipe disp_solution`` run left: the calibrated pinhole frame it saved
    and its fitted lines."""

    calibrated: Path
    lines: Path


def _disp_solution(
    venv: Path, workdir: Path, arc: Path, extra: list[tuple[Path, str]]
) -> DispSolution:
    """Run ``soxspipe disp_solution`` (intermediate products saved) on the arc and
    ``extra`` (path, tag), after checking the run went through to its product."""
    workdir.mkdir(parents=True)
    settings = settings_file(venv, "soxs").read_text()
    assert "save-intermediate-products: False" in settings
    settings = settings.replace(
        "save-intermediate-products: False", "save-intermediate-products: True"
    )
    (workdir / "soxspipe.yaml").write_text(settings)
    sof = workdir / "20260111T090000_NIR_3_DSOL_PINHOLE_10_0S_SOXS.sof"
    lines = [(arc, "LAMP,WAVE_NIR"), *extra]
    sof.write_text("".join(f"{p} {tag}\n" for p, tag in lines))
    run = run_soxspipe(
        venv,
        ["disp_solution", sof.name, "-s", "soxspipe.yaml", "-o", str(workdir), "-x"],
        workdir,
        timeout=150,
    )
    assert "Traceback" not in run.output, run.output[-3000:]
    product = workdir / "reduced" / NIGHT / "soxs-disp-solution" / f"{sof.stem}.fits"
    assert product.is_file(), run.output[-3000:]
    saved = re.search(r"Calibrated single pinhole frame: (\S+)", run.output)
    assert saved is not None, run.output[-3000:]
    (fitted,) = workdir.rglob(f"{sof.stem}_FITTED_LINES.fits")
    return DispSolution(workdir / saved[1], fitted)


@pytest.fixture(scope="module")
def downstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A night of SOXS NIR darks (5 s) and one 10 s arc; soxspipe's and mdark-dask's masters;
    disp_solution with mdark-dask's master (shared by the two tests below)."""
    venv = oracle_venv()
    if venv is None:
        pytest.skip("soxspipe 0.17.4 oracle unavailable (scripts/build_oracle.sh failed)")
    root = tmp_path_factory.mktemp("downstream")
    spec = _darks(5.0, "2026-01-11T08:00:00.000", seed=11)
    frames = simulate_set(spec, root / "raw")
    sof = write_sof(root / sof_name(spec), frames)
    # a 10 s arc: soxspipe scales the 5 s master, reading its EXPTIME too
    (arc,) = simulate_set(_arc(venv, "2026-01-11T09:00:00.000", exptime=10.0), root / "arc")
    theirs = run_soxspipe_mdark(sof, root / "soxspipe-mdark", "soxs", timeout=120).product
    made = console(
        "mdark",
        str(sof),
        "-o",
        str(root / "ws"),
        "--numerics",
        "soxspipe-0.17.4",
        "--no-plots",
        "-q",
        cwd=root,
    )
    assert made.returncode == 0, made.stderr
    ours = root / "ws" / "products" / "soxs_mdark" / f"{sof.stem}.fits"
    with_ours = _disp_solution(venv, root / "dsol-ours", arc, [(ours, "MASTER_DARK_NIR")])
    yield {
        "venv": venv,
        "root": root,
        "arc": arc,
        "theirs": theirs,
        "ours": ours,
        "with_ours": with_ours,
    }


def _assert_same_calibration(a: DispSolution, b: DispSolution) -> None:
    with fits.open(a.calibrated) as ha, fits.open(b.calibrated) as hb:
        for ext in (0, "QUAL", "ERRS"):
            x, y = ha[ext].data, hb[ext].data
            assert x.dtype == y.dtype and x.shape == y.shape, ext
            assert np.array_equal(x, y, equal_nan=True), ext
    la, lb = Table.read(a.lines), Table.read(b.lines)
    assert la.colnames == lb.colnames
    assert len(la) == len(lb) > 100  # the spots were found: a real dispersion solution
    for name in la.colnames:
        x, y = np.asarray(la[name]), np.asarray(lb[name])
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name
        assert np.array_equal(np.ma.getmaskarray(la[name]), np.ma.getmaskarray(lb[name])), name


def test_disp_solution_with_our_master_equals_soxspipes(
    downstream: dict[str, Any], tmp_path: Path
) -> None:
    with_theirs = _disp_solution(
        downstream["venv"],
        tmp_path / "dsol",
        downstream["arc"],
        [(downstream["theirs"], "MASTER_DARK_NIR")],
    )
    _assert_same_calibration(with_theirs, downstream["with_ours"])


def test_companions_listed_in_a_sof_change_nothing(
    downstream: dict[str, Any], tmp_path: Path
) -> None:
    ours: Path = downstream["ours"]
    hotpix = ours.with_name(f"{ours.stem}_HOTPIX.fits")
    noise = ours.with_name(f"{ours.stem}_NOISE.fits")
    with_companions = _disp_solution(
        downstream["venv"],
        tmp_path / "dsol",
        downstream["arc"],
        [
            (ours, "MASTER_DARK_NIR"),
            (hotpix, "HOT_PIXEL_MAP_NIR"),
            (noise, "MASTER_DARK_NOISE_NIR"),
        ],
    )
    _assert_same_calibration(with_companions, downstream["with_ours"])


# --------------------------------------------------------------------------------------------
# Workflow and association: soxspipe's organiser on a workspace with mdark-dask's masters


def _prep(venv: Path, ws: Path) -> SoxspipeRun:
    run = run_soxspipe(venv, ["prep", "."], ws, timeout=120)
    assert "Traceback" not in run.output and (ws / "soxspipe.db").is_file(), run.output
    return run


def _night(ws: Path) -> dict[str, Any]:
    run = console(
        "night",
        str(ws / "raw"),
        "-o",
        str(ws),
        "--layout",
        "soxspipe",
        "--numerics",
        "soxspipe-0.17.4",
        "--cluster",
        "threads",
        "--no-plots",
        cwd=ws,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "soxspipe database" in run.stdout
    report: dict[str, Any] = json.loads((ws / "night_report.json").read_text())
    return report


@pytest.fixture
def venv() -> Path:
    """soxspipe 0.17.4 with its data organiser (Python 3.12 or newer)."""
    found = organiser_venv()
    if found is None:
        pytest.skip("soxspipe 0.17.4 on Python >= 3.12 unavailable (its organiser needs it)")
    return found


def test_reduce_all_uses_our_masters_and_never_a_failed_one(venv: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    # a 5 s master that fails MDARK MEDIAN (a 1000 ADU pedestal), a 60 s one that passes,
    # and a 5 s arc: by exposure time soxspipe would take the failing one
    simulate_set(_darks(5.0, "2026-01-11T08:00:00.000", seed=1, pedestal=1000.0), ws)
    simulate_set(_darks(60.0, "2026-01-11T08:10:00.000", seed=2), ws)
    simulate_set(_arc(venv, "2026-01-11T09:00:00.000", seed=3), ws)
    failing, passing = (
        "20260111T080000_NIR_3_MDARK_5_0S_SOXS",
        "20260111T081000_NIR_3_MDARK_60_0S_SOXS",
    )
    _prep(venv, ws)
    (dsol,) = (ws / "sof").glob("*_DSOL_*.sof")
    assert f"{failing}.fits" in dsol.read_text()  # soxspipe alone: the failing master

    report = _night(ws)
    masters = ws / "reduced" / NIGHT / "soxs-mdark"
    before = {p.name: _digest(p) for p in masters.glob("*.fits")}
    assert {f"{failing}.fits", f"{passing}.fits"} <= set(before)
    flags = {s["name"]: s["qc_flag"] for s in report["sets"]}
    assert flags[failing].startswith("fail") and flags[passing] == "pass"

    run = run_soxspipe(venv, ["reduce", "all", "."], ws, timeout=240)
    assert "soxspipe mdark" not in run.output  # its mdark step never ran
    assert {p.name: _digest(p) for p in masters.glob("*.fits")} == before
    (dsol,) = (ws / "sof").glob("*_DSOL_*.sof")
    darks = [p for p, tag in _sof_lines(dsol) if tag == "MASTER_DARK_NIR"]
    assert darks == [f"./reduced/{NIGHT}/soxs-mdark/{passing}.fits"]
    assert "Recipe Command: soxspipe disp_solution" in run.output
    assert f"{passing}.fits" in run.output and f"{failing}.fits" not in run.output
    product = ws / "reduced" / NIGHT / "soxs-disp-solution" / f"{dsol.stem}.fits"
    assert product.is_file(), run.output[-3000:]


def _frame(start: str, exptime: float, seed: int, n: int = 1, **kw: Any) -> DarkSetSpec:
    return DarkSetSpec("soxs", "NIR", n_frames=n, exptime=exptime, start=start, seed=seed, **kw)


def test_association_report_names_the_organisers_master(venv: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    simulate_set(_darks(5.0, "2026-01-11T08:00:00.000", seed=1, pedestal=1000.0), ws)
    simulate_set(_darks(60.0, "2026-01-11T08:10:00.000", seed=2), ws)
    simulate_set(_darks(5.0, "2026-01-11T12:00:00.000", seed=3), ws)
    lamp = {"lamps": ("ARGO", "MERC")}
    frames = [
        # nearest exposure time, then nearest time; the failing 08:00 master is skipped
        _frame(
            "2026-01-11T08:30:00.000",
            5.0,
            10,
            dpr_type="LAMP,WAVE",
            dpr_tech="ECHELLE,PINHOLE",
            slit="PINHOLE",
            obs_name="ARC_A",
            **lamp,
        ),
        _frame(
            "2026-01-11T09:00:00.000",
            40.0,
            11,
            dpr_type="LAMP,WAVE",
            dpr_tech="ECHELLE,PINHOLE",
            slit="PINHOLE",
            obs_name="ARC_B",
            **lamp,
        ),
        _frame(
            "2026-01-11T11:00:00.000",
            2.0,
            12,
            dpr_type="LAMP,FLAT",
            dpr_tech="ECHELLE,PINHOLE",
            slit="PINHOLE",
            obs_name="OC",
            lamps=("QTH",),
        ),
        _frame(
            "2026-01-11T11:30:00.000",
            20.0,
            13,
            n=5,  # soxspipe's organiser plans an mflat from 5 frames on
            dpr_type="LAMP,FLAT",
            dpr_tech="ECHELLE,SLIT",
            slit="SLIT1.0",
            obs_name="FLAT",
            lamps=("QTH",),
        ),
        _frame(
            "2026-01-11T11:40:00.000",
            30.0,
            14,
            dpr_type="LAMP,WAVE",
            dpr_tech="ECHELLE,MULTI-PINHOLE",
            slit="MULT_PIN",
            obs_name="MPH",
            **lamp,
        ),
    ]
    for spec in frames:
        simulate_set(spec, ws)
    _prep(venv, ws)
    report = _night(ws)
    _prep(venv, ws)  # soxspipe re-associates around the recorded QC, as `reduce all` does

    organiser = _organisers_choice(ws)
    rows = report["association"]
    ours = {name: row["master"] for row in rows for name in row["frames"]}
    assert len(ours) == sum(spec.n_frames for spec in frames)
    assert ours == organiser
    picked = set(organiser.values())
    assert "20260111T080000_NIR_3_MDARK_5_0S_SOXS" not in picked  # failed QC
    assert picked == {
        "20260111T120000_NIR_3_MDARK_5_0S_SOXS",
        "20260111T081000_NIR_3_MDARK_60_0S_SOXS",
    }


def _organisers_choice(ws: Path) -> dict[str, str]:
    """Raw frame name -> master stem, as soxspipe's organiser associates them: from the
    sofs it wrote, and for sets still waiting for other calibrations from its
    ``cal_mdark`` view (frames found by their template start)."""
    chosen: dict[str, str] = {}
    for sof in (ws / "sof").glob("*.sof"):
        lines = _sof_lines(sof)
        darks = [Path(p).stem for p, tag in lines if tag == "MASTER_DARK_NIR"]
        for path, _ in lines:
            if darks and "/raw/" in path:
                chosen[Path(path).name] = darks[0]
    with sqlite3.connect(ws / "soxspipe.db") as conn:
        waiting = conn.execute(
            "SELECT r.file, c.file FROM cal_mdark c JOIN product_frames p ON p.sof = c.sof "
            'JOIN raw_frames r ON r."eso tpl start" = p."eso tpl start" '
            "WHERE r.\"eso dpr type\" != 'DARK'"
        ).fetchall()
    conn.close()
    for raw, master in waiting:
        chosen.setdefault(raw, Path(master).stem)
    return chosen
