"""The dashboard's performance report opens without a network: BokehJS is written into the
page, not loaded from a CDN (an observatory's network is often offline).

The command is run as users run it (the console script, a real in-process Dask cluster
with a scheduler) on a small simulated set.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from mdark_dask.simulate import DarkSetSpec, simulate_set
from tests.commands import EXE


def test_the_performance_report_carries_bokehjs_inline(tmp_path: Path) -> None:
    spec = DarkSetSpec("soxs", "VIS", n_frames=3, exptime=5.0, binning=(2, 2), shape=(2048, 429))
    simulate_set(spec, tmp_path / "raw")
    ws = tmp_path / "ws"
    args = ["night", str(tmp_path / "raw"), "-o", str(ws), "--cluster", "threads"]
    done = subprocess.run(
        [EXE, *args, "--no-plots", "--performance-report"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    html = (ws / "performance_report.html").read_text(encoding="utf-8")
    sources = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']([^\"']+)", html, flags=re.IGNORECASE)
    assert not [s for s in sources if re.match(r"(https?:)?//", s)], sources
    assert "cdn.bokeh.org" not in html
    # BokehJS itself, written into the page: its library object and its embedding call
    assert "Bokeh.embed" in html or "embed_items" in html
    assert re.search(r"root\.Bokeh\s*=|window\.Bokeh\s*=|Bokeh\s*=\s*root\.Bokeh", html)
    assert len(html) > 1_000_000  # the library (megabytes), not a link to it
