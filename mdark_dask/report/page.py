"""The workspace's pages: ``qc/index.html`` (every night) and ``qc/nights/<night>.html``.

Static HTML (no script, nothing from the network), drawn from the workspace's record
(:mod:`mdark_dask.io.store`), never from a product's pixels: each night page has one row
per set with its QC values (units in the header, pass/fail colours, the acceptable range
on hover), links to its plots and product files, and a thumbnail per master dark, linked
as a small PNG file (written by the product's own task) with its width and height, so the
browser keeps its aspect ratio. A page's size grows with the sets of its night only; the
index has one row per night and the latest runs.

A run rewrites the pages of the nights it computed (or whose page is missing) and the
index: an up-to-date rerun of a month rewrites one small page.
"""

from __future__ import annotations

import html
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from mdark_dask.instruments import detector_temp_unit
from mdark_dask.io.atomic import write_text
from mdark_dask.numerics.qc import HOT_LABEL, MASKED_LABEL, NOISY_LABEL
from mdark_dask.plan.night import reason_kind
from mdark_dask.report.figures import PLOT_KINDS

#: QC columns of a night page: (keyword, what the reader sees). soxspipe's HOTPIX NUM
#: counts every masked pixel; the physical hot pixels are counted apart.
TABLE_QC: Final = (
    ("MDARK MEDIAN", "median"),
    ("RAW RON", "raw RON"),
    ("MASTER RON", "master RON"),
    ("HOTPIX NUM", MASKED_LABEL),
    ("HOTPIX FRAC", "masked fraction"),
    ("HOTPIX PHYS NUM", HOT_LABEL),
    ("NOISYPIX NUM", NOISY_LABEL),
)

#: The latest runs the index lists, and the left-out entries it shows (all are in JSON).
INDEX_RUNS: Final = 20
INDEX_LEFT_OUT: Final = 50

#: Thumbnails are shown at most this tall (CSS pixels); their width follows the aspect.
THUMB_HEIGHT: Final = 200

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #eee; } th small { font-weight: normal; color: #555; }
td.name { text-align: left; font-family: monospace; }
td.pass { background: #dff3df; } td.fail { background: #f8d0d0; font-weight: bold; }
td.failed { background: #f8d0d0; text-align: left; } td.na { color: #999; }
th.name, th.links { text-align: left; }
td.links { text-align: left; font-size: 0.9em; min-width: 15em; }
td.unit { white-space: nowrap; }
td.links a { white-space: nowrap; } td.links span { color: #555; }
.thumbs { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-end; }
figure { margin: 0; font-size: 0.75em; word-break: break-all; max-width: 260px; }
figure img { border: 1px solid #ccc; display: block; }
"""


def png_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG file from its header, or None if it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def shown_size(size: tuple[int, int], height: int = THUMB_HEIGHT) -> tuple[int, int]:
    """The size a thumbnail is shown at: at most ``height`` tall and 256 wide, never
    enlarged, aspect ratio kept (to the rounding of a pixel)."""
    width, tall = size
    scale = min(1.0, height / tall, 256 / width)
    return max(1, round(width * scale)), max(1, round(tall * scale))


def _esc(value: object) -> str:
    return html.escape(str(value))


def _number(value: float | int) -> str:
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return f"{int(value):d}"
    return f"{float(value):.4g}"


def _qc_cell(qc: Mapping[str, Any], name: str) -> str:
    row = qc.get(name)
    if not row or row.get("value") is None:
        return '<td class="na">--</td>'
    lo, hi = row.get("lo"), row.get("hi")
    limits = f"accepted: {lo} to {hi}" if lo is not None or hi is not None else "no range"
    cls = "fail" if row.get("flag") == "fail" else "pass"
    return f'<td class="{cls}" title="{_esc(limits)}">{_number(row["value"])}</td>'


def _unit(rows: Iterable[Mapping[str, Any]], name: str) -> str:
    for r in rows:
        unit = (r["qc"].get(name) or {}).get("unit")
        if unit:
            return str(unit)
    return ""


#: A set's product files (suffix, link text), in the order the night page lists them.
PRODUCT_LINKS: Final = (
    (".fits", "master"),
    ("_HOTPIX.fits", "hot-pixel map"),
    ("_NOISE.fits", "noise image"),
    (".log", "log"),
)
#: A set's QC plots (suffix, link text), in the order the night page lists them.
PLOT_LINKS: Final = tuple((f"_{kind}.png", label) for kind, label in PLOT_KINDS)


def _links(row: Mapping[str, Any], qc_dir: Path, product_dir: Path) -> str:
    """Relative links from a night page to a set's product files and its plots, a line
    each; only what exists is linked."""
    name = row["name"]
    lines = []
    for title, directory, href, links in (
        ("files", product_dir, "../../products/soxs_mdark", PRODUCT_LINKS),
        ("plots", qc_dir, "../soxs_mdark", PLOT_LINKS),
    ):
        found = [
            f'<a href="{href}/{_esc(name)}{suffix}">{label}</a>'
            for suffix, label in links
            if (directory / f"{name}{suffix}").exists()
        ]
        if found:
            lines.append(f"<span>{title}:</span> " + " &middot; ".join(found))
    return "<br>".join(lines) or "--"


def _association_table(entries: Sequence[Mapping[str, Any]]) -> str:
    """Which master soxspipe will calibrate each frame of the night with
    (:mod:`mdark_dask.plan.association`); rows with a warning in red."""
    from mdark_dask.plan.association import PAGE_HEADERS, record_rows

    if not entries:
        return "<p>No science, arc or flat frame of this night was among the inputs.</p>"
    rows = record_rows(entries)
    flags = [bool(e.get("warnings")) for e in entries[: len(rows)]]
    body = "".join(
        f"<tr>{''.join(f'<td class={cls}>{_esc(cell)}</td>' for cell in row)}</tr>"
        for row, warned in zip(rows, flags + [False] * (len(rows) - len(flags)), strict=True)
        for cls in ['"failed"' if warned else '"name"']
    )
    head = "".join(f"<th>{_esc(h)}</th>" for h in PAGE_HEADERS)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_night(
    night: str,
    rows: Sequence[Mapping[str, Any]],
    workspace: Path,
    association: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The page of one night, from its store rows and the association of its frames."""
    qc_dir, product_dir = workspace / "qc" / "soxs_mdark", workspace / "products" / "soxs_mdark"
    head = '<th class="name">set</th>' + "".join(
        f"<th>{_esc(h)}</th>"
        for h in ("inst", "arm", "exptime [s]", "frames", "detector temp.", "status")
    )
    for name, label in TABLE_QC:
        unit = _unit(rows, name)
        head += f'<th title="{_esc(name)}">{_esc(label)}'
        head += f"<br><small>{_esc(name)}{f' [{_esc(unit)}]' if unit else ''}</small></th>"
    head += '<th class="links">files and plots</th>'
    body, thumbs = [], []
    for r in rows:
        status = r["status"] + (f": {r['reason']}" if r.get("reason") else "")
        ok = r["status"] in ("done", "up to date")
        cls = "name" if ok else "failed"
        temp = (
            f"{r['temperature']:.2f} {detector_temp_unit(str(r['arm']))}"
            if r.get("temperature") is not None
            else "--"
        )
        cells = "".join(_qc_cell(r["qc"], name) for name, _ in TABLE_QC)
        body.append(
            f'<tr id="set-{_esc(r["name"])}"><td class="name">{_esc(r["name"])}</td>'
            f"<td>{_esc(str(r['instrument']).upper())}</td><td>{_esc(r['arm'])}</td>"
            f"<td>{float(r['exptime']):g}</td><td>{r['frames']}</td>"
            f'<td class="unit">{temp}</td>'
            f'<td class="{cls}">{_esc(status)}</td>{cells}'
            f'<td class="links">{_links(r, qc_dir, product_dir)}</td></tr>'
        )
        thumb = qc_dir / f"{r['name']}_thumb.png"
        size = png_size(thumb) if ok else None
        if size is not None:
            width, height = shown_size(size)
            thumbs.append(
                f'<figure><a href="#set-{_esc(r["name"])}"><img alt="{_esc(r["name"])}" '
                f'src="../soxs_mdark/{_esc(thumb.name)}" width="{width}" height="{height}">'
                f"</a><figcaption>{_esc(r['name'])}</figcaption></figure>"
            )
    done = sum(r["status"] in ("done", "up to date") for r in rows)
    failed_qc = sum(str(r.get("qc_flag", "")).startswith("fail") for r in rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Master darks of the night {_esc(night)}</title><style>{_STYLE}</style></head>
<body>
<p><a href="../index.html">all nights</a></p>
<h1>Master darks of the night starting {_esc(night)}</h1>
<p>{done} of {len(rows)} sets have their product; {failed_qc} fail a QC range.
QC values are green inside their accepted range (hover a value to see it) and red
outside. <em>masked (soxspipe QC)</em> counts every pixel soxspipe's HOTPIX NUM counts
(hot, cold and noisy pixels, and the tail of the post-stack clip); <em>hot pixels</em>
counts the physical hot pixels only.</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
<h2>Master darks</h2>
<p>Grey from the 1st to the 99th percentile of each master; row 0 at the bottom.</p>
<div class="thumbs">{"".join(thumbs) or "<p>No products.</p>"}</div>
<h2>The masters soxspipe will calibrate this night's frames with</h2>
<p>By soxspipe 0.17.4's own rule (same arm and readout mode, the nearest exposure time,
then the nearest time, among every master the workspace holds, from any night; masters
that failed QC are not used).</p>
{_association_table(association)}
</body></html>
"""


def render_index(
    nights: Mapping[str, Sequence[Mapping[str, Any]]],
    runs: Sequence[Mapping[str, Any]],
    left_out: Sequence[Mapping[str, Any]],
    last_report: str,
) -> str:
    """The index: one row per night (``nights``: the store rows of each), the latest
    runs, the last run's left-out files."""
    body = []
    for night, sets in sorted(nights.items(), reverse=True):
        done = sum(s["status"] in ("done", "up to date") for s in sets)
        failed = len(sets) - done
        qc_fail = sum(str(s.get("qc_flag", "")).startswith("fail") for s in sets)
        arms = ", ".join(sorted({f"{str(s['instrument']).upper()} {s['arm']}" for s in sets}))
        body.append(
            f'<tr><td class="name"><a href="nights/{_esc(night)}.html">{_esc(night)}</a></td>'
            f"<td>{len(sets)}</td><td>{done}</td>"
            f'<td class="{"fail" if failed else "pass"}">{failed}</td>'
            f'<td class="{"fail" if qc_fail else "pass"}">{qc_fail}</td>'
            f'<td class="name">{_esc(arms)}</td></tr>'
        )
    run_rows = "".join(
        f"<tr><td>{_esc(r['started_utc'])}</td><td>{r['sets']}</td><td>{r['failed']}</td>"
        f"<td>{len(r['nights'])}</td><td>{float(r['seconds'] or 0):.1f}</td>"
        f'<td class="name">{_esc(r["command"])}</td>'
        f'<td class="name"><a href="../{_esc(r["report"])}">{_esc(r["report"])}</a></td></tr>'
        for r in list(runs)[-INDEX_RUNS:][::-1]
    )
    counts = Counter(reason_kind(str(k["reason"])) for k in left_out)
    summary = ", ".join(f"{n} {_esc(kind)}" for kind, n in counts.most_common()) or "nothing"
    shown = "".join(
        f"<tr><td class='name'>{_esc(k['what'])}</td><td class='name'>{_esc(k['reason'])}</td></tr>"
        for k in left_out[:INDEX_LEFT_OUT]
    )
    more = (
        f"<p>and {len(left_out) - INDEX_LEFT_OUT} more, listed in "
        f'<a href="../{_esc(last_report)}">{_esc(last_report)}</a>.</p>'
        if len(left_out) > INDEX_LEFT_OUT
        else ""
    )
    left_table = f"<table><tr><th>what</th><th>reason</th></tr>{shown}</table>" if shown else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mdark-dask workspace</title><style>{_STYLE}</style></head>
<body>
<h1>Master darks, night by night</h1>
<p>{sum(map(len, nights.values()))} sets in {len(nights)} nights.
<a href="history.html">QC history</a>.</p>
<table><thead><tr><th>night</th><th>sets</th><th>with product</th><th>failed</th>
<th>failing a QC range</th><th>arms</th></tr></thead><tbody>{"".join(body)}</tbody></table>
<h2>Latest runs</h2>
<table><thead><tr><th>started (UTC)</th><th>sets</th><th>failed</th><th>nights</th>
<th>seconds</th><th>command</th><th>report</th></tr></thead><tbody>{run_rows}</tbody></table>
<h2>Left out by the latest run</h2>
<p>{summary}.</p>
{left_table}{more}
</body></html>
"""


def night_page(workspace: Path, night: str) -> Path:
    """Where the page of ``night`` goes."""
    return workspace / "qc" / "nights" / f"{night or 'unknown'}.html"


def write_pages(
    workspace: Path,
    rows: Sequence[Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    left_out: Sequence[Mapping[str, Any]],
    touched: Iterable[str],
    last_report: str,
    association: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write the pages of the ``touched`` nights (and of any night without a page) and
    the index, from every store row and this run's association entries; return the
    index's path."""
    from mdark_dask.plan.names import night_of_mjd

    by_night: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_night.setdefault(r["night"] or "unknown", []).append(r)
    frames: dict[str, list[Mapping[str, Any]]] = {}
    for entry in association:
        frames.setdefault(night_of_mjd(float(entry["mjd_obs"])), []).append(entry)
    wanted = set(touched)
    for night, sets in by_night.items():
        page = night_page(workspace, night)
        if night in wanted or not page.exists():
            write_text(page, render_night(night, sets, workspace, frames.get(night, ())))
    return write_text(
        workspace / "qc" / "index.html", render_index(by_night, runs, left_out, last_report)
    )
