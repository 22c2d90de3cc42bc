"""The night overview page: ``WORKSPACE/qc/night_report.html``.

One static HTML file (no scripts, images embedded as data URIs so it can be mailed or
archived alone): the summary table of every set with QC values coloured by pass/fail,
a thumbnail of each master dark, and the night's trends (MDARK MEDIAN and RAW RON per
arm against exposure time).
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdark_dask.plan.sets import SetOutcome

TREND_QC = ("MDARK MEDIAN", "RAW RON")
TABLE_QC = (
    "HOTPIX NUM",
    "HOTPIX FRAC",
    "MDARK MEDIAN",
    "RAW RON",
    "MASTER RON",
    "HOTPIX PHYS NUM",
    "NOISYPIX NUM",
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #eee; } td.name { text-align: left; font-family: monospace; }
td.pass { background: #dff3df; } td.fail { background: #f8d0d0; font-weight: bold; }
td.failed { background: #f8d0d0; text-align: left; } td.na { color: #999; }
.thumbs { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 260px; font-size: 0.75em; word-break: break-all; }
figure img { width: 260px; border: 1px solid #ccc; }
"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _thumbnail(path: str) -> str | None:
    """A small PNG of a product's FLUX with flagged pixels in red, as a data URI.

    Drawn directly with Pillow (every ``step``-th pixel, grey from the 1st to the 99th
    percentile of the unflagged ones, red where flagged, row 0 at the bottom): a
    matplotlib figure per product would cost far more for the same picture.
    """
    from PIL import Image

    from mdark_dask.io.product import read_product

    try:
        product = read_product(path)
    except (OSError, KeyError):
        return None
    flux, qual = product.flux, product.qual != 0
    step = max(1, -(-max(flux.shape) // 256))
    small = flux[::step, ::step].astype(np.float64)
    bad = qual[::step, ::step]  # sampled like the image: a glance, not an inventory
    good = small[~bad]
    lo, hi = np.percentile(good, [1, 99]) if good.size else (0.0, 1.0)
    with np.errstate(invalid="ignore"):
        grey = np.clip((small - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    grey = np.nan_to_num(grey, nan=0.0)
    rgb = np.repeat((grey * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    rgb[bad] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(rgb[::-1]).save(buf, format="PNG")
    return _data_uri(buf.getvalue())


def _trends(outcomes: Sequence[SetOutcome]) -> str | None:
    """MDARK MEDIAN and RAW RON per arm against exposure time, as a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    points: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for o in outcomes:
        values = {q.name: q.value for q in o.qc}
        for name in TREND_QC:
            if values.get(name) is not None:
                arm = f"{o.instrument.upper()} {o.arm}"
                points.setdefault(name, {}).setdefault(arm, []).append(
                    (o.exptime, float(values[name]))  # type: ignore[arg-type]
                )
    if not points:
        return None
    fig = Figure(figsize=(10, 3.6), dpi=90)
    # fixed margins: tight_layout measures every label by drawing the figure once more
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    for i, name in enumerate(TREND_QC):
        ax = fig.add_subplot(1, len(TREND_QC), i + 1)
        for arm, xy in sorted(points.get(name, {}).items()):
            x, y = zip(*sorted(xy), strict=True)
            ax.plot(x, y, "o-", label=arm)
        ax.set_xlabel("exposure time [s]")
        ax.set_ylabel(f"{name} [e-]")
        ax.set_title(name)
        ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return _data_uri(buf.getvalue())


def _cell(o: SetOutcome, name: str) -> str:
    row = next((q for q in o.qc if q.name == name), None)
    if row is None or row.value is None:
        return '<td class="na">--</td>'
    value = row.value
    text = f"{value:d}" if isinstance(value, int) else f"{float(value):.4g}"
    cls = "fail" if row.flag == "fail" else "pass"
    limits = f"{row.lo} &lt; v &lt; {row.hi}" if row.lo is not None else "no range"
    return f'<td class="{cls}" title="{limits}">{text}</td>'


def render(outcomes: Sequence[SetOutcome], record: dict[str, Any]) -> str:
    """The whole page as a string."""
    ordered = sorted(outcomes, key=lambda o: o.name)
    head = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in ("set", "inst", "arm", "exptime s", "frames", "status", *TABLE_QC)
    )
    rows = []
    for o in ordered:
        status = html.escape(o.status + (f": {o.reason}" if o.reason else ""))
        cls = "failed" if not o.ok else "name"
        cells = "".join(_cell(o, name) for name in TABLE_QC)
        rows.append(
            f'<tr id="set-{html.escape(o.name)}"><td class="name">{html.escape(o.name)}</td>'
            f"<td>{o.instrument.upper()}</td><td>{html.escape(o.arm)}</td><td>{o.exptime:g}</td>"
            f'<td>{o.frames}</td><td class="{cls}">{status}</td>{cells}</tr>'
        )
    thumbs = []
    for o in ordered:
        uri = _thumbnail(o.product) if o.product and os.path.exists(o.product) else None
        if uri:
            thumbs.append(
                f'<figure><img alt="{html.escape(o.name)}" src="{uri}">'
                f"<figcaption>{html.escape(o.name)}</figcaption></figure>"
            )
    trend = _trends(ordered)
    left_out = "".join(
        f"<tr><td class='name'>{html.escape(str(k['what']))}</td>"
        f"<td class='name'>{html.escape(str(k['reason']))}</td></tr>"
        for k in record.get("left_out", [])
    )
    done = sum(o.ok for o in ordered)
    left_table = (
        f"<table><tr><th>what</th><th>reason</th></tr>{left_out}</table>"
        if left_out
        else "<p>Nothing.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mdark-dask night report</title><style>{_STYLE}</style></head>
<body>
<h1>Master darks of the night</h1>
<p>{done} of {len(ordered)} sets have their product &middot; mdark-dask
{html.escape(str(record.get("mdark_dask_version", "")))} &middot; started
{html.escape(str(record.get("started_utc", "")))} UTC &middot; cluster:
{html.escape(str(record.get("cluster", "")))}</p>
<h2>Sets</h2>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>Trends</h2>
{f'<img alt="trends" src="{trend}">' if trend else "<p>No QC values to plot.</p>"}
<h2>Master darks (flagged pixels in red)</h2>
<div class="thumbs">{"".join(thumbs) or "<p>No products.</p>"}</div>
<h2>Left out</h2>
{left_table}
</body></html>
"""


def write_overview(path: Path, outcomes: Sequence[SetOutcome], record: dict[str, Any]) -> Path:
    """Write the page atomically; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render(outcomes, record), encoding="utf-8")
    os.replace(tmp, path)
    return path
