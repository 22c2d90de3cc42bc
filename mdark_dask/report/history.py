"""The detectors' history across nights: ``qc/history.html`` and ``qc/history.png``.

Drawn from the workspace's record (:mod:`mdark_dask.io.store`), which every run adds to:
each QC value against the date of its master, one panel per arm and QC value, one series
per exposure time, the accepted range shaded; and, for each arm and exposure time, the
hot pixels that appeared and disappeared between its two latest masters (from their
hot-pixel maps). Masters of one exposure time are compared because a pixel's hot flag
depends on it: a faint hot pixel crosses the threshold in a long dark and not in a short
one, so two exposure times would report changes that are not the detector's.
The page is one figure and one small table whatever the size of the archive; every value
is in the store's ``products`` table.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from mdark_dask.io.atomic import write_text
from mdark_dask.numerics.qc import HOT_LABEL
from mdark_dask.report.axes import Entry, axes_items, date_ticks, legend, nice_ticks, ticks
from mdark_dask.report.canvas import Item, Lines, Markers, Panel, Picture, Rect, write_png

#: The QC values plotted, with the words the pages use for them.
HISTORY_QC: Final = (
    ("MDARK MEDIAN", "median"),
    ("RAW RON", "raw RON"),
    ("MASTER RON", "master RON"),
    ("HOTPIX PHYS NUM", HOT_LABEL),
)

#: Statuses of a set that has its product.
WITH_PRODUCT: Final = ("done", "up to date")


@dataclass(frozen=True)
class Series:
    """One QC value of one arm and exposure time across masters, in date order."""

    arm: str
    exptime: float
    qc: str
    unit: str
    dates: tuple[str, ...]
    values: tuple[float, ...]
    lo: float | None
    hi: float | None


def series(rows: Sequence[Mapping[str, Any]]) -> list[Series]:
    """Every (arm, exposure time, QC value) series of the rows that have a product."""
    groups: dict[tuple[str, float, str], list[tuple[str, float, Any, Any]]] = {}
    units: dict[str, str] = {}
    for r in rows:
        if r["status"] not in WITH_PRODUCT or not r.get("date_obs"):
            continue
        arm = f"{str(r['instrument']).upper()} {r['arm']}"
        for name, _ in HISTORY_QC:
            q = r["qc"].get(name) or {}
            if q.get("value") is not None:
                units[name] = str(q.get("unit") or "")
                groups.setdefault((arm, float(r["exptime"]), name), []).append(
                    (str(r["date_obs"]), float(q["value"]), q.get("lo"), q.get("hi"))
                )
    found = []
    for (arm, exptime, name), points in sorted(groups.items()):
        points.sort()
        _, _, lo, hi = points[-1]  # the range the latest master was judged by
        found.append(
            Series(
                arm,
                exptime,
                name,
                units.get(name, ""),
                tuple(p[0] for p in points),
                tuple(p[1] for p in points),
                lo,
                hi,
            )
        )
    return found


@dataclass(frozen=True)
class HotChange:
    """Hot pixels of one arm's latest master of one exposure time against its previous
    one of that exposure time."""

    arm: str
    exptime: float
    previous: str
    latest: str
    appeared: int
    disappeared: int
    kept: int


def hot_change(previous: np.ndarray, latest: np.ndarray, hot_bit: int = 1) -> tuple[int, int, int]:
    """(appeared, disappeared, kept) hot pixels between two maps of one shape."""
    before, after = (previous & hot_bit) != 0, (latest & hot_bit) != 0
    return int((after & ~before).sum()), int((before & ~after).sum()), int((after & before).sum())


def hot_changes(rows: Sequence[Mapping[str, Any]]) -> list[HotChange]:
    """For each arm and exposure time, its two latest masters with maps of the same
    shape, compared."""
    from mdark_dask.io.product import read_hotpix_map
    from mdark_dask.numerics.hotpix import HOT

    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["status"] in WITH_PRODUCT and r.get("product") and r.get("date_obs"):
            arm = f"{str(r['instrument']).upper()} {r['arm']}"
            groups.setdefault((arm, float(r["exptime"])), []).append(r)
    changes = []
    for (arm, exptime), sets in sorted(groups.items()):
        sets.sort(key=lambda r: str(r["date_obs"]))
        maps = []
        for r in reversed(sets):  # the latest first, until two of one shape
            path = str(r["product"])[: -len(".fits")] + "_HOTPIX.fits"
            try:
                maps.append((r["name"], read_hotpix_map(path)))
            except OSError:
                continue
            if len(maps) == 2:
                if maps[0][1].shape == maps[1][1].shape:
                    break
                maps.pop()
        if len(maps) == 2 and maps[0][1].shape == maps[1][1].shape:
            (latest, new), (previous, old) = maps
            appeared, disappeared, kept = hot_change(old, new, HOT)
            changes.append(HotChange(arm, exptime, previous, latest, appeared, disappeared, kept))
    return changes


#: Colours of the exposure-time series, in order (matplotlib's "tab10").
SERIES_COLOURS: Final = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: The fill of an accepted range.
BAND: Final = "#e9f5e9"
#: Pixels of one panel's cell, and of the panel's margins in it (left, top, right, bottom).
CELL: Final = (360, 220)
MARGINS: Final = (62.0, 26.0, 78.0, 42.0)


def days(dates: Sequence[str]) -> np.ndarray:
    """Days since 1970-01-01 (UTC) of ISO dates (``DATE-OBS``)."""
    seconds = np.array([d.rstrip("Z") for d in dates], dtype="datetime64[ms]").astype(np.int64)
    return seconds.astype(np.float64) / 86_400_000.0


def picture(found: Sequence[Series]) -> Picture | None:
    """The history's panels as a picture: one row per arm, one panel per QC value, one
    series per exposure time on a common date axis, the accepted range shaded (what the
    latest master was judged by); None when there is nothing to show."""
    if not found:
        return None
    arms = sorted({s.arm for s in found})
    names = [name for name, _ in HISTORY_QC]
    labels = dict(HISTORY_QC)
    when = np.concatenate([days(s.dates) for s in found])
    t_lo, t_hi = float(when.min()), float(when.max())
    pad = max((t_hi - t_lo) * 0.04, 0.02)
    xlim = (t_lo - pad, t_hi + pad)
    first, last = (str(np.datetime64(math.floor(t), "D"))[:4] for t in (t_lo, t_hi))
    xlabel = f"DATE-OBS (UTC), {first}" + (f" to {last}" if last != first else "")
    exptimes = sorted({s.exptime for s in found})
    colours = {t: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, t in enumerate(exptimes)}
    width, height = CELL[0] * len(names), CELL[1] * len(arms)
    items: list[Item] = []
    panels: list[Panel] = []
    for i, arm in enumerate(arms):
        for j, name in enumerate(names):
            mine = [s for s in found if s.arm == arm and s.qc == name]
            left, top = j * CELL[0] + MARGINS[0], i * CELL[1] + MARGINS[1]
            box = (left, top, (j + 1) * CELL[0] - MARGINS[2], (i + 1) * CELL[1] - MARGINS[3])
            ylim = _value_range(mine)
            unit = next((s.unit for s in mine if s.unit), "")
            p = Panel(
                f"{arm} {name}",
                box,
                xlim,
                ylim,
                xlabel=xlabel,
                ylabel=unit,
                title=f"{arm}: {labels[name]} ({name})",
                xticks=date_ticks(*xlim, 3),
                yticks=ticks(nice_ticks(*ylim, 4)),
            )
            panels.append(p)
            ranges = {
                (float(s.lo), float(s.hi)) for s in mine if s.lo is not None and s.hi is not None
            }
            for lo, hi in sorted(ranges):
                lo_px, hi_px = p.py([lo, hi])
                band = (box[0], max(box[1], float(hi_px)), box[2], min(box[3], float(lo_px)))
                if band[3] > band[1]:
                    items.append(Rect(band, "", BAND))
            for s in mine:
                points = np.column_stack([p.px(days(s.dates)), p.py(s.values)])
                tint = colours[s.exptime]
                items.append(Lines(points, tint, 1.2, clip=box))
                items.append(Markers(points[:, 0], points[:, 1], ".", 4.5, tint, clip=box))
            items += axes_items(p)
            entries = [Entry("line", colours[s.exptime], f"{s.exptime:g} s") for s in mine]
            items += legend(entries, box[2] + 6.0, box[1], "lt", title="exptime")
    return Picture((width, height), tuple(items), tuple(panels))


def _value_range(mine: Sequence[Series]) -> tuple[float, float]:
    """The y range of a panel: its values and accepted ranges, with a margin."""
    values = [v for s in mine for v in s.values if math.isfinite(v)]
    values += [float(b) for s in mine for b in (s.lo, s.hi) if b is not None]
    if not values:
        return (0.0, 1.0)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 if hi > lo else max(abs(lo) * 0.05, 1.0)
    return (lo - pad, hi + pad)


def draw(found: Sequence[Series], path: Path) -> tuple[int, int] | None:
    """Draw the panels into a PNG; returns its (width, height) in pixels, or None."""
    pic = picture(found)
    if pic is None:
        return None
    write_png(pic, path)
    return pic.size


def render(size: tuple[int, int] | None, changes: Sequence[HotChange], n_rows: int) -> str:
    """The history page."""
    figure = (
        f'<img alt="QC history" src="history.png" width="{size[0]}" height="{size[1]}"'
        ' style="max-width: 100%; height: auto">'
        if size
        else "<p>No master with QC values yet.</p>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(c.arm)}</td><td>{c.exptime:g} s</td>"
        f"<td>{html.escape(c.previous)}</td>"
        f"<td>{html.escape(c.latest)}</td><td>{c.appeared}</td><td>{c.disappeared}</td>"
        f"<td>{c.kept}</td></tr>"
        for c in changes
    )
    table = (
        "<table><tr><th>arm</th><th>exposure</th><th>previous master</th>"
        "<th>latest master</th>"
        f"<th>hot pixels appeared</th><th>disappeared</th><th>kept</th></tr>{rows}</table>"
        if rows
        else "<p>No arm has two masters of one exposure time to compare yet.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QC history</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; }}
</style></head><body>
<p><a href="index.html">all nights</a></p>
<h1>QC history of the master darks</h1>
<p>{n_rows} sets recorded. Each QC value against the date of its master, per arm, one
line per exposure time; the shaded band is the accepted range. Every value is in the
workspace's <code>mdark-dask.db</code>, table <code>products</code>.</p>
{figure}
<h2>Hot pixels since the previous master of each arm and exposure time</h2>
{table}
</body></html>
"""


def write_history(workspace: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``qc/history.png`` and ``qc/history.html`` from every store row."""
    size = draw(series(rows), workspace / "qc" / "history.png")
    return write_text(workspace / "qc" / "history.html", render(size, hot_changes(rows), len(rows)))
