"""The history across nights as values: the series drawn from the workspace's rows, the
panels laid out on one date axis with the accepted ranges, and the hot pixels that
appeared or disappeared between two maps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mdark_dask.report import history
from mdark_dask.report.canvas import Lines, Markers, Rect, Text


def row(
    arm: str, exptime: float, date: str, median: float, status: str = "done"
) -> dict[str, object]:
    """A store row as :func:`mdark_dask.io.store` gives it (only what the history reads)."""
    qc = {
        "MDARK MEDIAN": {"value": median, "unit": "e-", "lo": 10.0, "hi": 40.0},
        "RAW RON": {"value": 7.2, "unit": "e-", "lo": None, "hi": None},
    }
    return {
        "status": status,
        "instrument": "soxs",
        "arm": arm,
        "exptime": exptime,
        "date_obs": date,
        "qc": qc,
    }


ROWS = [
    row("NIR", 5.0, "2026-01-12T08:00:00.000", 21.0),
    row("NIR", 5.0, "2026-01-10T08:00:00.000", 20.0),
    row("NIR", 60.0, "2026-01-11T08:00:00.000", 30.0),
    row("VIS", 600.0, "2026-01-11T09:00:00.000", 2.0),
    row("NIR", 5.0, "2026-01-13T08:00:00.000", 99.0, status="failed"),  # no product
]


def test_series_per_arm_exposure_and_value_in_date_order() -> None:
    found = history.series(ROWS)
    nir5 = [s for s in found if s.arm == "SOXS NIR" and s.exptime == 5.0]
    median = next(s for s in nir5 if s.qc == "MDARK MEDIAN")
    assert median.dates == ("2026-01-10T08:00:00.000", "2026-01-12T08:00:00.000")
    assert median.values == (20.0, 21.0) and (median.lo, median.hi) == (10.0, 40.0)
    assert {(s.arm, s.exptime) for s in found} == {
        ("SOXS NIR", 5.0),
        ("SOXS NIR", 60.0),
        ("SOXS VIS", 600.0),
    }


def test_the_panels_share_one_date_axis_and_shade_the_accepted_range(tmp_path: Path) -> None:
    found = history.series(ROWS)
    pic = history.picture(found)
    assert pic is not None
    # one row per arm, one panel per QC value of the history
    assert len(pic.panels) == 2 * len(history.HISTORY_QC)
    assert len({p.xlim for p in pic.panels}) == 1
    p = pic.panel("SOXS NIR MDARK MEDIAN")
    assert p.title == "SOXS NIR: median (MDARK MEDIAN)" and p.ylabel == "e-"
    assert p.xlabel == "DATE-OBS (UTC), 2026"
    lo, hi = p.xlim
    t = history.days(["2026-01-10T08:00:00", "2026-01-12T08:00:00"])
    assert lo < t[0] and hi > t[1]
    # each exposure time's values as points at their dates, in the panel
    lines = [i for i in pic.items if isinstance(i, Lines) and i.clip == p.box]
    five = next(ln for ln in lines if ln.points.shape[0] == 2)
    np.testing.assert_allclose(five.points[:, 0], p.px(t))
    np.testing.assert_allclose(five.points[:, 1], p.py([20.0, 21.0]))
    dots = [i for i in pic.items if isinstance(i, Markers) and i.clip == p.box]
    assert sorted(d.x.size for d in dots) == [1, 2]
    # the accepted range: a band from the upper bound down to the lower one
    (band,) = [
        i
        for i in pic.items
        if isinstance(i, Rect)
        and i.fill == history.BAND
        and i.box[0] == p.box[0]
        and p.box[1] <= i.box[1] < p.box[3]
    ]  # one band for the two exposure times judged by one range
    assert band.box[0] == p.box[0] and band.box[2] == p.box[2]
    assert math.isclose(band.box[1], float(p.py(40.0)))
    assert math.isclose(band.box[3], float(p.py(10.0)))
    assert p.ylim[0] < 10.0 and p.ylim[1] > 40.0
    words = [i.text for i in pic.items if isinstance(i, Text)]
    assert "5 s" in words and "60 s" in words and "600 s" in words and "exptime" in words
    size = history.draw(found, tmp_path / "history.png")
    assert size == pic.size
    from PIL import Image

    with Image.open(tmp_path / "history.png") as png:
        assert png.size == pic.size


def test_nothing_to_draw() -> None:
    assert history.picture([]) is None


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([(1, 1), (3, 5), (17, 4)]),
    fraction=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
)
def test_hot_pixels_appeared_disappeared_and_kept(
    seed: int, shape: tuple[int, int], fraction: float
) -> None:
    rng = np.random.default_rng(seed)
    old = (rng.random(shape) < fraction).astype(np.uint8) | (rng.random(shape) < 0.3) * 2
    new = (rng.random(shape) < fraction).astype(np.uint8) | (rng.random(shape) < 0.3) * 2
    before = {tuple(p) for p in np.argwhere(old & 1)}
    after = {tuple(p) for p in np.argwhere(new & 1)}
    assert history.hot_change(old, new, 1) == (
        len(after - before),
        len(before - after),
        len(after & before),
    )


def test_hot_pixels_are_compared_within_one_arm_and_exposure_time(tmp_path: Path) -> None:
    """The latest two masters of each arm and exposure time are compared, never a short
    dark with a long one (their hot flags differ with the exposure time alone); an arm
    and exposure time with one master, or with maps of two shapes, is not in the table."""
    from astropy.io import fits

    def master(
        name: str, arm: str, exptime: float, date: str, hot: np.ndarray
    ) -> dict[str, object]:
        fits.PrimaryHDU(hot.astype(np.uint8)).writeto(tmp_path / f"{name}_HOTPIX.fits")
        r = row(arm, exptime, date, 20.0)
        return {**r, "name": name, "product": str(tmp_path / f"{name}.fits")}

    a = np.zeros((3, 4), np.uint8)
    b, c, d = a.copy(), a.copy(), a.copy()
    a[0, 0] = a[1, 1] = 1  # the oldest 5 s map, superseded
    b[0, 0] = b[2, 3] = 1
    b[1, 2] = 2  # noisy only: not a hot pixel
    c[2, 3] = c[0, 1] = c[0, 2] = 3
    d[:] = 1  # a long dark: everything hot
    rows = [
        master("late5", "NIR", 5.0, "2026-01-12T08:00:00", c),
        master("old5", "NIR", 5.0, "2026-01-10T08:00:00", a),
        master("mid5", "NIR", 5.0, "2026-01-11T08:00:00", b),
        master("last60", "NIR", 60.0, "2026-01-13T08:00:00", d),
        master("vis", "VIS", 600.0, "2026-01-11T09:00:00", a),
        master("vis_big", "VIS", 600.0, "2026-01-12T09:00:00", np.zeros((5, 5), np.uint8)),
    ]
    (change,) = history.hot_changes(rows)
    assert (change.arm, change.exptime, change.previous, change.latest) == (
        "SOXS NIR",
        5.0,
        "mid5",
        "late5",
    )
    assert (change.appeared, change.disappeared, change.kept) == (2, 1, 1)
    page = history.render(None, [change], len(rows))
    assert "<td>SOXS NIR</td><td>5 s</td><td>mid5</td><td>late5</td>" in page
