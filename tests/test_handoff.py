"""``--layout soxspipe``: masters where soxspipe's organiser looks, recorded in its database.

The commands run as users run them (the console script); the database is soxspipe's own
template (``resources/soxspipe.db`` of the oracle venv). ``tests/test_soxspipe_workflow.py``
runs soxspipe's ``prep`` and ``reduce all`` on such a workspace.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from mdark_dask.io.soxspipe_db import QCValue, current_session, record_master
from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof
from tests.commands import console
from tests.oracle import oracle_venv

SPEC = DarkSetSpec("soxs", "NIR", n_frames=3, exptime=5.0, start="2026-01-11T08:29:24.123", seed=4)
NAME = sof_name(SPEC)[: -len(".sof")]
NIGHT_DIR = Path("reduced") / "2026-01-10" / "soxs-mdark"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("handoff")
    write_sof(root / f"{NAME}.sof", simulate_set(SPEC, root / "raw"))
    return root


def test_night_writes_masters_where_soxspipe_looks(raw: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    args = ("night", str(raw / "raw"), "-o", str(ws), "--layout", "soxspipe")
    run = console(*args, "--cluster", "sync", "--no-plots", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    names = {p.name for p in (ws / NIGHT_DIR).iterdir()}
    assert {f"{NAME}.fits", f"{NAME}_HOTPIX.fits", f"{NAME}_NOISE.fits"} <= names
    assert not (ws / "products").exists()
    assert "soxspipe.db not found, QC status not recorded" in run.stdout
    record = json.loads((ws / "night_report.json").read_text())
    assert record["sets"][0]["product"] == str(ws / NIGHT_DIR / f"{NAME}.fits")
    assert record["association"] == []  # no arcs, flats or science in this night
    again = console(*args, "--cluster", "sync", "--no-plots", cwd=tmp_path)
    assert "up to date" in again.stdout


def test_mdark_takes_the_layout_too(raw: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    args = ("mdark", str(raw / f"{NAME}.sof"), "-o", str(ws), "--layout", "soxspipe")
    run = console(*args, "--no-plots", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (ws / NIGHT_DIR / f"{NAME}.fits").is_file()


@pytest.fixture
def template_db(tmp_path: Path) -> Path:
    venv = oracle_venv()
    if venv is None:
        pytest.skip("soxspipe 0.17.4 oracle unavailable (scripts/build_oracle.sh failed)")
    (template,) = venv.glob("lib/python3*/site-packages/soxspipe/resources/soxspipe.db")
    db = tmp_path / "soxspipe.db"
    shutil.copyfile(template, db)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO product_frames (sof, file, recipe, complete) VALUES (?, ?, 'mdark', 1)",
            [("A.sof", "A.fits"), ("B.sof", "B.fits")],
        )
        conn.execute(
            "INSERT INTO quality_control (soxspipe_recipe, qc_name, qc_value, sof_name) "
            "VALUES ('soxs-mdark', 'STALE', '1', 'A.sof')"
        )
    conn.close()
    return db


@pytest.mark.oracle
def test_record_master_as_soxspipes_recipe_records_it(template_db: Path) -> None:
    median = QCValue("MDARK MEDIAN", 12.5, "electrons", "[e-] median", "pass", -15.0, 50.0)
    bad = QCValue("MDARK MEDIAN", 2500.0, "electrons", "[e-] median", "fail", -15.0, 50.0)
    ron = QCValue("RAW RON", 7.2, "electrons", "[e-] RON", "pass", 0.0, 50.0)
    assert record_master(template_db, "base", "A.sof", [median, ron], "2026-01-11").status == "pass"
    assert record_master(template_db, "base", "B.sof", [bad, ron], "2026-01-11").status == "fail"
    assert record_master(template_db, "base", "C.sof", [ron], "2026-01-11").status == "unknown"
    # a master found up to date keeps what was recorded when it was made
    assert record_master(template_db, "base", "B.sof", [ron], "2026-01-11", True).status == "fail"
    with sqlite3.connect(template_db) as conn:
        status = dict(conn.execute("SELECT sof, status_base FROM product_frames").fetchall())
        qc = conn.execute(
            "SELECT sof_name, soxspipe_recipe, qc_name, CAST(qc_value AS REAL), qc_flag, "
            "qc_order, CAST(qc_value_min AS REAL) FROM quality_control ORDER BY sof_name, qc_name"
        ).fetchall()
    conn.close()
    assert status == {"A.sof": "pass", "B.sof": "fail"}
    assert qc == [
        ("A.sof", "soxs-mdark", "MDARK MEDIAN", 12.5, "pass", "-1", -15.0),
        ("A.sof", "soxs-mdark", "RAW RON", 7.2, "pass", "-1", 0.0),
        ("B.sof", "soxs-mdark", "MDARK MEDIAN", 2500.0, "fail", "-1", -15.0),
        ("B.sof", "soxs-mdark", "RAW RON", 7.2, "pass", "-1", 0.0),
    ]


@pytest.mark.oracle
def test_mdark_records_its_master_on_the_rerun_prep_asks_for(
    raw: Path, template_db: Path, tmp_path: Path
) -> None:
    """``mdark --layout soxspipe`` before ``soxspipe prep`` says to run prep first; run
    again once the workspace holds soxspipe's database, the master already made is
    recorded with its status, as ``night`` records its up-to-date masters."""
    ws = tmp_path / "ws"
    args = ("mdark", str(raw / f"{NAME}.sof"), "-o", str(ws), "--layout", "soxspipe")
    first = console(*args, "--no-plots", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "soxspipe prep" in first.stdout
    with sqlite3.connect(template_db) as conn:
        conn.execute(
            "INSERT INTO product_frames (sof, file, recipe, complete) VALUES (?, ?, 'mdark', 1)",
            (f"{NAME}.sof", f"{NAME}.fits"),
        )
    conn.close()
    shutil.copyfile(template_db, ws / "soxspipe.db")  # what soxspipe prep leaves
    again = console(*args, "--no-plots", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stdout
    with sqlite3.connect(ws / "soxspipe.db") as conn:
        (status,) = conn.execute(
            "SELECT status_base FROM product_frames WHERE sof = ?", (f"{NAME}.sof",)
        ).fetchone()
    conn.close()
    assert status == "pass"


def test_session_ids_are_soxspipes(tmp_path: Path) -> None:
    assert current_session(tmp_path) == "base"
    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / ".sessionid").write_text("night_2")
    assert current_session(tmp_path) == "night_2"
    (tmp_path / "sessions" / ".sessionid").write_text('x"; DROP TABLE raw_frames; --')
    with pytest.raises(ValueError, match="not a soxspipe session id"):
        current_session(tmp_path)


def arc(start: str) -> DarkSetSpec:
    """One SOXS NIR arc of 60 s (a frame soxspipe's disp_solution calibrates with a dark)."""
    return DarkSetSpec(
        "soxs",
        "NIR",
        n_frames=1,
        exptime=60.0,
        start=start,
        seed=9,
        dpr_type="LAMP,WAVE",
        dpr_tech="ECHELLE,PINHOLE",
        slit="PINHOLE",
    )


def test_night_reports_which_master_calibrates_each_frame(raw: Path, tmp_path: Path) -> None:
    """The default layout: the association in the terminal and the JSON report."""
    (frame,) = simulate_set(arc("2026-01-11T09:00:00.000"), tmp_path / "arc")
    ws = tmp_path / "ws"
    args = ("night", str(raw / "raw"), str(frame), "-o", str(ws))
    run = console(*args, "--cluster", "sync", "--no-plots", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (ws / "products" / "soxs_mdark" / f"{NAME}.fits").is_file()
    assert "soxspipe database" not in run.stdout
    assert "# CALIBRATION BY SOXSPIPE 0.17.4: 1 non-dark frame(s), 1 with a warning" in run.stdout
    assert f"1 NIR disp_solution frame(s) <- {NAME} (d exptime +55 s): scaled x12" in run.stdout
    (row,) = json.loads((ws / "night_report.json").read_text())["association"]
    assert row["frames"] == [frame.name] and row["master"] == NAME
    assert (row["recipe"], row["d_exptime"], row["note"]) == ("disp_solution", 55.0, "scaled x12")
    assert row["warnings"][0].startswith("soxspipe scales the master by 12, pedestal included")
    # 09:00:00 minus the mean of 08:29:24.123, +11 s and +22 s
    assert abs(row["d_hours"] - 0.5069) < 1e-3
    # and on the night's page, its warning in red
    page = (ws / "qc" / "nights" / "2026-01-10.html").read_text(encoding="utf-8")
    assert f'<td class="failed">{frame.name}</td>' in page
    assert f'<td class="failed">{NAME}</td>' in page


def test_the_association_takes_a_master_of_an_earlier_run(tmp_path: Path) -> None:
    """soxspipe chooses among every master it knows, with no time window: a 60 s arc of
    the next night is calibrated with this night's 60 s master (recorded by an earlier
    run), not scaled from the next night's own 5 s one."""
    long_darks = DarkSetSpec(
        "soxs", "NIR", n_frames=3, exptime=60.0, start="2026-01-11T07:00:00.000", seed=5
    )
    first = simulate_set(long_darks, tmp_path / "first")
    ws = tmp_path / "ws"
    options = ("-o", str(ws), "--cluster", "sync", "--no-plots")
    run = console("night", str(tmp_path / "first"), *options, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    earlier = sof_name(long_darks)[: -len(".sof")]
    assert len(first) == 3 and (ws / "products" / "soxs_mdark" / f"{earlier}.fits").is_file()
    short_darks = DarkSetSpec(
        "soxs", "NIR", n_frames=3, exptime=5.0, start="2026-01-12T08:00:00.000", seed=6
    )
    simulate_set(short_darks, tmp_path / "second")
    (frame,) = simulate_set(arc("2026-01-12T09:00:00.000"), tmp_path / "second")
    run = console("night", str(tmp_path / "second"), *options, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (row,) = json.loads((ws / "night_report.json").read_text())["association"]
    assert row["frames"] == [frame.name] and row["recipe"] == "disp_solution"
    assert row["master"] == earlier and row["d_exptime"] == 0.0 and row["note"] == ""
    assert f"1 NIR disp_solution frame(s) <- {earlier}" in run.stdout
