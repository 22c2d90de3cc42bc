"""The association report: which master soxspipe 0.17.4 calibrates each frame with.

Pure tests on headers made up here; ``tests/test_soxspipe_workflow.py`` holds the report
to soxspipe's own organiser, and ``test_pick_is_soxspipes_cal_mdark_view`` below holds the
choice to the organiser's SQL view itself.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mdark_dask.io.fits import RawFrame
from mdark_dask.numerics.qc import QCRow
from mdark_dask.plan.association import (
    PAGE_HEADERS,
    Master,
    associate,
    page_rows,
    pick,
    record_rows,
    recorded_masters,
    summary_lines,
)
from mdark_dask.plan.night import NightPlan, NightSet
from mdark_dask.plan.sets import SetOutcome, outcome
from tests.oracle import oracle_venv


def frame(
    name: str,
    mjd: float,
    exptime: float,
    dpr_type: str = "DARK",
    tech: str = "IMAGE",
    arm: str = "NIR",
    inst: str = "SOXS",
    curid: int | None = 3,
    tpl: str | None = None,
) -> RawFrame:
    cards: list[tuple[str, object]] = [
        ("INSTRUME", inst),
        ("ESO SEQ ARM", arm),
        ("MJD-OBS", mjd),
        ("DATE-OBS", "2026-01-11T08:00:00.000"),
        ("EXPTIME", exptime),
        ("ESO DPR TYPE", dpr_type),
        ("ESO DPR TECH", tech),
        ("ESO DPR CATG", "CALIB"),
        ("ESO TPL START", tpl or name),
    ]
    if curid is not None:
        cards.append(("ESO DET READ CURID", curid))
    return RawFrame(f"/raw/{name}.fits", 0, (4, 4), 16, None, 0.0, 1.0, tuple(cards))


def dark_set(name: str, mjd: float, exptime: float, median: float, flag: str = "pass") -> tuple:
    frames = tuple(frame(f"{name}-{i}", mjd + i * 1e-4, exptime) for i in range(3))
    qc = (QCRow("MDARK MEDIAN", median, "electrons", "", True, flag),)
    s = NightSet(name, frames, (), "soxs", "NIR", exptime)
    return s, outcome(s, "done", product=f"/ws/{name}.fits", qc=qc)


def plan(sets: list[tuple], others: list[RawFrame]) -> tuple[NightPlan, list[SetOutcome]]:
    return NightPlan(tuple(s for s, _ in sets), (), tuple(others)), [o for _, o in sets]


def test_nearest_exposure_time_then_nearest_time_and_never_a_failed_master() -> None:
    night, outcomes = plan(
        [
            dark_set("D5_EARLY", 100.0, 5.0, 2000.0, "fail"),
            dark_set("D60", 100.1, 60.0, 40.0),
            dark_set("D5_LATE", 100.5, 5.0, 12.0),
        ],
        [
            frame("arc5", 100.05, 5.0, "LAMP,WAVE", "ECHELLE,PINHOLE"),
            frame("arc40", 100.05, 40.0, "LAMP,WAVE", "ECHELLE,PINHOLE"),
        ],
    )
    rows = {r.frames[0]: r for r in associate(night, outcomes)}
    arc5, arc40 = rows["/raw/arc5.fits"], rows["/raw/arc40.fits"]
    assert arc5.master == "D5_LATE" and arc5.recipe == "disp_solution"
    assert any("D5_EARLY failed QC" in w for w in arc5.warnings)
    assert arc5.d_exptime == 0 and not any("scales" in w for w in arc5.warnings)
    assert arc40.master == "D60" and arc40.d_exptime == -20.0
    # pedestal from the passing masters: 12 e- at 5 s, 40 e- at 60 s -> 9.45 e-
    (scaled,) = [w for w in arc40.warnings if "scales" in w]
    left = (1 - 40 / 60) * (12 - (28 / 55) * 5)
    assert f"{left:+.0f} e-" in scaled and "pedestal 9.5 e-" in scaled


def test_int_exposure_times_decide_the_scaling() -> None:
    # base_recipe.detrend subtracts as is when int(EXPTIME) of both agree
    night, outcomes = plan(
        [dark_set("D5", 100.0, 5.0, 12.0)],
        [
            frame("same_int", 100.0, 5.4, "LAMP,WAVE", "ECHELLE,PINHOLE"),
            frame("other_int", 100.0, 6.0, "LAMP,WAVE", "ECHELLE,PINHOLE"),
        ],
    )
    rows = {r.frames[0]: r for r in associate(night, outcomes)}
    assert rows["/raw/same_int.fits"].note == "" and not rows["/raw/same_int.fits"].warnings
    assert rows["/raw/other_int.fits"].note == "scaled x1.2"


def test_frames_without_a_dark_say_why() -> None:
    night, outcomes = plan(
        [dark_set("D5", 100.0, 5.0, 12.0)],
        [
            frame("vis", 100.0, 5.0, "LAMP,WAVE", "ECHELLE,PINHOLE", arm="VIS", curid=1),
            frame("nod", 100.0, 5.0, "OBJECT", "ECHELLE,SLIT,NODDING"),
            frame("xsh", 100.0, 5.0, "LAMP,FMTCHK", "ECHELLE,PINHOLE", inst="SHOOT"),
            frame("nomode", 100.0, 5.0, "LAMP,FLAT", "ECHELLE,SLIT", curid=None),
            frame("slow", 100.0, 5.0, "LAMP,FLAT", "ECHELLE,SLIT", curid=1),
            frame("bias", 100.0, 0.0, "BIAS"),
        ],
    )
    rows = {r.frames[0].rsplit("/", 1)[-1]: r for r in associate(night, outcomes)}
    assert "bias.fits" not in rows
    assert all(r.master is None for r in rows.values())
    assert "master biases" in rows["vis.fits"].note
    assert "takes no dark" in rows["nod.fits"].note
    assert "X-shooter" in rows["xsh.fits"].note
    assert rows["nomode.fits"].warnings == (
        "no passing master in the workspace matches (the frame has no readout mode)",
    )
    assert rows["slow.fits"].warnings == ("no passing master in the workspace matches",)


def test_a_template_is_one_row_at_its_mean_time() -> None:
    flats = [frame(f"f{i}", 100.0 + i, 20.0, "LAMP,FLAT", "ECHELLE,SLIT", tpl="T1") for i in (0, 1)]
    night, outcomes = plan(
        [dark_set("A", 100.4, 20.0, 1.0), dark_set("B", 100.6, 20.0, 1.0)], flats
    )
    (row,) = associate(night, outcomes)
    assert len(row.frames) == 2 and row.mjd == 100.5
    assert row.master == "A"  # 0.0999 d from the mean; B 0.1001 d


def test_output_is_bounded() -> None:
    arcs = [frame(f"a{i}", 100.0 + i, float(i), "LAMP,WAVE", "IMAGE") for i in range(1, 300)]
    night, outcomes = plan([dark_set("D", 100.0, 1.0, 1.0)], arcs)
    rows = associate(night, outcomes)
    assert len(rows) == 299
    lines = summary_lines(rows, limit=6)
    assert len(lines) == 1 + 6 + 1 and "more kind(s)" in lines[-1]
    table = page_rows(rows, limit=50)
    assert len(table) == 51 and all(len(r) == len(PAGE_HEADERS) for r in table)
    assert "249 more" in table[-1][0]
    # the night page gets the run record's JSON: the same rows
    entries = json.loads(json.dumps([a.as_dict() for a in rows]))
    assert record_rows(entries, limit=50) == table


masters_st = st.lists(
    st.tuples(
        st.sampled_from([1.0, 5.0, 10.0, 60.0, 300.0]),
        st.floats(61051.0, 61052.0),
        st.sampled_from(["pass", "fail", None]),
        st.sampled_from(["3", "2"]),
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture(scope="module")
def organiser_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = oracle_venv()
    if venv is None:
        pytest.skip("soxspipe 0.17.4 oracle unavailable (scripts/build_oracle.sh failed)")
    (template,) = venv.glob("lib/python3*/site-packages/soxspipe/resources/soxspipe.db")
    path = tmp_path_factory.mktemp("organiser") / "soxspipe.db"
    shutil.copyfile(template, path)
    return path


@pytest.mark.oracle
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    masters=masters_st,
    exptime=st.sampled_from([2.0, 5.0, 30.0, 120.0]),
    mjd=st.floats(61051.0, 61052.0),
    rospeed=st.sampled_from(["3", "2"]),
)
def test_pick_is_soxspipes_cal_mdark_view(
    organiser_db: Path, masters: list[tuple], exptime: float, mjd: float, rospeed: str
) -> None:
    """soxspipe's own ``cal_mdark`` view, from its template database, picks the same."""
    keys = [(abs(exptime - t), abs(mjd - m)) for t, m, _, r in masters if r == rospeed]
    assume(len(set(keys)) == len(keys))  # the view breaks ties arbitrarily
    with sqlite3.connect(organiser_db) as conn:
        conn.execute("DELETE FROM product_frames")
        rows = [
            (f"M{i}.sof", f"M{i}.fits", "mdark", 1, 1, status, "NIR", r, t, m)
            for i, (t, m, status, r) in enumerate(masters)
        ]
        rows.append(
            ("DS.sof", "DS.fits", "disp_solution", 2, 0, None, "NIR", rospeed, exptime, mjd)
        )
        conn.executemany(
            "INSERT INTO product_frames (sof, file, recipe, recipe_order, complete, status, "
            '"eso seq arm", rospeed, exptime, "mjd-obs") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            rows,
        )
        found = conn.execute("SELECT file FROM cal_mdark WHERE sof = 'DS.sof'").fetchall()
    conn.close()
    ours = [
        Master(f"M{i}", "soxs", "NIR", r, t, m, "fail" if status == "fail" else "pass")
        for i, (t, m, status, r) in enumerate(masters)
    ]
    chosen, _ = pick(ours, "NIR", rospeed, exptime, mjd)
    assert [Path(f).stem for (f,) in found] == ([chosen.name] if chosen else [])


def test_the_status_soxspipe_sees_ignores_mdark_dasks_own_pixel_counts() -> None:
    """The association report and the soxspipe database judge a master by one rule: a
    failed physical hot- or noisy-pixel range is mdark-dask's, not soxspipe's."""
    from mdark_dask.numerics.qc import HOTPIX_QC, QCRow, soxspipe_status

    def row(name: str, flag: str) -> QCRow:
        return QCRow(name, 1.0, "", "", True, flag)

    ours = [row(name, "fail") for name in HOTPIX_QC]
    assert soxspipe_status([row("MDARK MEDIAN", "pass"), *ours]) == "pass"
    assert soxspipe_status([row("MDARK MEDIAN", "fail"), *ours]) == "fail"
    assert soxspipe_status([]) == "pass"


def stored(name: str, mjd: float | None, exptime: float, **qc_flags: str) -> dict[str, object]:
    """A store row of a SOXS NIR master (as :func:`mdark_dask.io.store.products` gives it)."""
    qc = {"MDARK MEDIAN": {"value": 12.0, "flag": "pass"}}
    qc.update({name.replace("_", " "): {"value": 1.0, "flag": f} for name, f in qc_flags.items()})
    return {
        "name": name,
        "instrument": "soxs",
        "arm": "NIR",
        "exptime": exptime,
        "status": "done",
        "product": f"/ws/{name}.fits",
        "rospeed": "3",
        "mjd": mjd,
        "qc": qc,
    }


def test_recorded_masters_carry_the_status_soxspipe_records() -> None:
    rows = [
        stored("OK", 90.0, 60.0, HOTPIX_PHYS_NUM="fail"),  # mdark-dask's own count: no matter
        stored("BAD", 90.1, 60.0, RAW_RON="fail"),
        stored("OLD", None, 60.0),  # recorded before the store kept the mean MJD
        {**stored("FAILED", 90.2, 60.0), "status": "failed", "product": None},
    ]
    masters = {m.name: m for m in recorded_masters(rows)}
    assert set(masters) == {"OK", "BAD"}
    assert (masters["OK"].status, masters["BAD"].status) == ("pass", "fail")
    assert masters["OK"] == Master("OK", "soxs", "NIR", "3", 60.0, 90.0, "pass", 12.0)


def test_an_earlier_master_is_chosen_as_soxspipe_would_and_this_run_decides_its_own() -> None:
    """No time window: a master recorded nights earlier with the frame's exposure time is
    nearer than tonight's; a set of this run is taken as this run left it, whatever the
    record says of it."""
    night, outcomes = plan(
        [dark_set("D5", 100.0, 5.0, 12.0), dark_set("D60_REDONE", 100.0, 60.0, 40.0, "fail")],
        [frame("arc60", 100.05, 60.0, "LAMP,WAVE", "ECHELLE,PINHOLE")],
    )
    recorded = recorded_masters([stored("D60_OLD", 90.0, 60.0), stored("D60_REDONE", 99.0, 60.0)])
    (row,) = associate(night, outcomes, recorded)
    assert row.master == "D60_OLD" and row.d_exptime == 0.0
    assert row.d_hours == pytest.approx((100.05 - 90.0) * 24)
    assert any("D60_REDONE failed QC" in w for w in row.warnings)  # this run's verdict
    (alone,) = associate(night, outcomes)
    assert alone.master == "D5" and alone.note == "scaled x12"
