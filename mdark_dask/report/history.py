"""The detectors' history across nights: ``qc/history.html`` and ``qc/history.png``.

Drawn from the workspace's record (:mod:`mdark_dask.io.store`), which every run adds to:
each QC value against the date of its master, one panel per arm and QC value, one series
per exposure time, the accepted range shaded; and, for each arm, the hot pixels that
appeared and disappeared between its two latest masters (from their hot-pixel maps).
The page is one figure and one small table whatever the size of the archive; every value
is in the store's ``products`` table.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from mdark_dask.io.atomic import write_text
from mdark_dask.numerics.qc import HOT_LABEL

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
    """Hot pixels of one arm's latest master against its previous one."""

    arm: str
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
    """For each arm, its two latest masters with maps of the same shape, compared."""
    from mdark_dask.io.product import read_hotpix_map
    from mdark_dask.numerics.hotpix import HOT

    by_arm: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["status"] in WITH_PRODUCT and r.get("product") and r.get("date_obs"):
            by_arm.setdefault(f"{str(r['instrument']).upper()} {r['arm']}", []).append(r)
    changes = []
    for arm, sets in sorted(by_arm.items()):
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
            changes.append(HotChange(arm, previous, latest, appeared, disappeared, kept))
    return changes


def draw(found: Sequence[Series], path: Path) -> tuple[int, int] | None:
    """Draw the panels into a PNG; returns its (width, height) in pixels, or None."""
    if not found:
        return None
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    from mdark_dask.report.draw import write_figure

    arms = sorted({s.arm for s in found})
    names = [name for name, _ in HISTORY_QC]
    dpi = 80
    fig = Figure(figsize=(4 * len(names), 2.6 * len(arms)), dpi=dpi)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.1, top=0.92, hspace=0.6, wspace=0.3)
    labels = dict(HISTORY_QC)
    for i, arm in enumerate(arms):
        for j, name in enumerate(names):
            ax = fig.add_subplot(len(arms), len(names), i * len(names) + j + 1)
            mine = [s for s in found if s.arm == arm and s.qc == name]
            for s in mine:
                dates = np.array(s.dates, dtype="datetime64[s]")
                ax.plot(dates, s.values, "o-", ms=3, label=f"{s.exptime:g} s")
                if s.lo is not None and s.hi is not None:
                    ax.axhspan(float(s.lo), float(s.hi), color="tab:green", alpha=0.08)
            unit = next((s.unit for s in mine if s.unit), "")
            ax.set_title(f"{arm}: {labels[name]} ({name})", fontsize=9)
            ax.set_ylabel(unit, fontsize=7)
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
            locator = AutoDateLocator()  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
            ax.tick_params(labelsize=7)
            if mine:
                ax.legend(fontsize=6, title="exptime", title_fontsize=6)
    write_figure(fig, path)
    width, height = fig.canvas.get_width_height()
    return int(width), int(height)


def render(size: tuple[int, int] | None, changes: Sequence[HotChange], n_rows: int) -> str:
    """The history page."""
    figure = (
        f'<img alt="QC history" src="history.png" width="{size[0]}" height="{size[1]}"'
        ' style="max-width: 100%; height: auto">'
        if size
        else "<p>No master with QC values yet.</p>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(c.arm)}</td><td>{html.escape(c.previous)}</td>"
        f"<td>{html.escape(c.latest)}</td><td>{c.appeared}</td><td>{c.disappeared}</td>"
        f"<td>{c.kept}</td></tr>"
        for c in changes
    )
    table = (
        "<table><tr><th>arm</th><th>previous master</th><th>latest master</th>"
        f"<th>hot pixels appeared</th><th>disappeared</th><th>kept</th></tr>{rows}</table>"
        if rows
        else "<p>No arm has two masters to compare yet.</p>"
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
<h2>Hot pixels since the previous master of each arm</h2>
{table}
</body></html>
"""


def write_history(workspace: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``qc/history.png`` and ``qc/history.html`` from every store row."""
    size = draw(series(rows), workspace / "qc" / "history.png")
    return write_text(workspace / "qc" / "history.html", render(size, hot_changes(rows), len(rows)))
