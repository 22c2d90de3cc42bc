"""The pictures' layout helpers as properties (round ticks, their labels, date ticks) and
the painter on awkward pictures: items off the canvas, clipped, dashed, rotated, empty."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mdark_dask.report import axes, canvas
from mdark_dask.report.canvas import Lines, Markers, Panel, Picture, Polygon, Raster, Rect, Text

HYP = settings(max_examples=200, deadline=None)

finite = st.floats(-1e7, 1e7, allow_nan=False, allow_infinity=False)


@HYP
@given(lo=finite, span=st.floats(1e-6, 1e7), bins=st.integers(1, 8))
def test_nice_ticks_are_few_round_evenly_spaced_and_inside(
    lo: float, span: float, bins: int
) -> None:
    # (no range is narrower than a millionth of its level: a flat image's stretch is padded
    # to that, :func:`mdark_dask.report.draw.stretch_limits`)
    span = max(span, 1e-6 * max(abs(lo), 1.0))
    hi = lo + span
    values = axes.nice_ticks(lo, hi, bins)
    assert 1 <= values.size <= bins + 1
    tol = 1e-9 * max(abs(lo), abs(hi))
    assert np.all(values >= lo - tol) and np.all(values <= hi + tol)
    if values.size >= 2:
        steps = np.diff(values)
        step = float(np.median(steps))
        np.testing.assert_allclose(steps, step, rtol=1e-6, atol=tol)
        mantissa = step / 10.0 ** math.floor(math.log10(step))
        assert any(math.isclose(mantissa, m, rel_tol=1e-4) for m in (1.0, 2.0, 5.0, 10.0))
        # every value a whole number of steps, so the labels are round
        k = values / step
        np.testing.assert_allclose(k, np.round(k), atol=1e-4)


@HYP
@given(
    lo=st.one_of(st.floats(-1e5, 1e5), st.sampled_from([1.0, -1.0, 0.5, 2300.0])),
    span=st.one_of(st.floats(1e-4, 1e6), st.just(0.0)),
    bins=st.integers(2, 6),
)
def test_tick_labels_tell_every_tick_apart_and_read_back(lo: float, span: float, bins: int) -> None:
    span = max(span, 1e-6 * max(abs(lo), 1.0))
    values = axes.nice_ticks(lo, lo + span, bins)
    labels = axes.tick_labels(values)
    assert len(set(labels)) == len(labels)
    if values.size >= 2:
        step = float(values[1] - values[0])
        for value, label in zip(values.tolist(), labels, strict=True):
            assert math.isclose(float(label), value, abs_tol=step * 1e-6)


@HYP
@given(
    lo=st.floats(7300.0, 25000.0),  # 1990 to 2038, in days since 1970
    span=st.floats(0.01, 4000.0),
    bins=st.integers(2, 6),
)
def test_date_ticks_are_few_and_inside(lo: float, span: float, bins: int) -> None:
    ticks = axes.date_ticks(lo, lo + span, bins)
    assert len(ticks) <= bins + 1
    assert all(lo - 1e-6 <= t <= lo + span + 1e-6 for t, _ in ticks)
    labels = [label for _, label in ticks]
    assert len(set(labels)) == len(labels)


def test_date_ticks_of_hours_days_and_years() -> None:
    night = axes.date_ticks(20464.0 + 1 / 24, 20464.0 + 8 / 24)
    assert [label for _, label in night] == ["03:00", "06:00"]
    # across midnight the day is named where it starts
    two = axes.date_ticks(20464.6, 20465.3)
    assert [label for _, label in two] == ["18:00", "01-12", "06:00"]
    assert all(len(label) == 4 for _, label in axes.date_ticks(18000.0, 21000.0))


@HYP
@given(
    kind=st.sampled_from(["text", "turned", "lines", "dashes", "polygon", "rect", "raster"]),
    x=st.floats(-50.0, 90.0),
    y=st.floats(-50.0, 70.0),
    clip=st.booleans(),
)
def test_the_painter_copes_with_items_anywhere(kind: str, x: float, y: float, clip: bool) -> None:
    """Items partly or wholly off the canvas, clipped or not, paint without error and
    leave the picture its size."""
    box = (5.0, 5.0, 35.0, 25.0) if clip else None
    pts = np.array([[x, y], [x + 20.0, y + 7.0], [np.nan, np.nan], [x - 3.0, y + 30.0]])
    item: canvas.Item
    if kind == "text":
        item = Text(x, y, "a\nbc", 8.0, "ma")
    elif kind == "turned":
        item = Text(x, y, "label", 8.0, "rm", "red", 90)
    elif kind == "lines":
        item = Lines(pts, "tab:blue", 1.5, clip=box)
    elif kind == "dashes":
        item = Lines(pts, "0.3", 1.0, (3.0, 2.0), clip=box)
    elif kind == "polygon":
        item = Polygon(pts[[0, 1, 3]], "0.4", clip=box)
    elif kind == "rect":
        item = Rect((x, y, x + 10.0, y + 4.0), "black", "white")
    else:
        item = Raster(np.arange(12, dtype=np.uint8).reshape(3, 4), (x, y, x + 8, y + 6), box)
    image = canvas.paint(Picture((40, 30), (item,)))
    assert image.size == (40, 30)


def test_clipping_keeps_marks_inside_their_box() -> None:
    box = (10.0, 10.0, 30.0, 20.0)
    xs, ys = np.array([10.0, 30.0, 45.0]), np.array([10.0, 20.0, 15.0])
    marks = Markers(xs, ys, "o", 6.0, "red", clip=box)
    grey = np.asarray(canvas.paint(Picture((50, 30), (marks,))).convert("L"))
    outside = np.ones_like(grey, dtype=bool)
    outside[10:20, 10:30] = False
    assert grey[outside].min() == 255 and grey[~outside].min() < 255


def test_a_panel_maps_its_limits_to_its_box() -> None:
    p = Panel("p", (10.0, 20.0, 110.0, 70.0), (0.0, 5.0), (1.0, 1000.0), ylog=True)
    np.testing.assert_allclose(p.px([0.0, 5.0]), [10.0, 110.0])
    np.testing.assert_allclose(p.py([1.0, 1000.0, 31.622776601683793]), [70.0, 20.0, 45.0])
    assert p.py([0.0])[0] == 70.0  # a zero count sits on the floor of a log axis
