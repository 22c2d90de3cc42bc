"""The night overview page, checked in a real headless Chromium (Debian's package).

``.ci/run`` installs chromium when it is missing; elsewhere the browser test is skipped
with a reason when no chromium binary exists.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mdark_dask.cli import main
from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name

SPECS = (
    DarkSetSpec("soxs", "VIS", 3, 5.0, binning=(2, 2), start="2026-01-11T01:00:00.000", seed=1),
    DarkSetSpec("soxs", "VIS", 3, 10.0, binning=(2, 2), start="2026-01-11T02:00:00.000", seed=2),
    DarkSetSpec("xsh", "NIR", 3, 120.0, start="2026-01-11T03:00:00.000", seed=3),
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("overview")
    for spec in SPECS:
        simulate_set(spec, root / "raw")
    (root / "raw" / "junk.fits").write_text("not a FITS file")
    ws = root / "ws"
    assert main(["night", str(root / "raw"), "-o", str(ws), "--cluster", "sync", "--no-plots"]) == 0
    return ws


def test_page_lists_every_set_and_what_was_left_out(night: Path) -> None:
    page = (night / "qc" / "night_report.html").read_text(encoding="utf-8")
    for spec in SPECS:
        assert f'id="set-{sof_name(spec)[:-4]}"' in page
    assert page.count("<figure>") == len(SPECS)  # one thumbnail per master dark
    assert 'alt="trends"' in page
    assert "junk.fits" in page and "not a readable FITS file" in page
    assert "<script" not in page  # static: nothing to fail at load time


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium binary (Debian package 'chromium'; .ci/run installs it)")
    return exe


def test_page_loads_in_headless_chromium(night: Path, tmp_path: Path) -> None:
    exe = _chromium()
    url = (night / "qc" / "night_report.html").resolve().as_uri()
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for spec in SPECS:
        assert sof_name(spec)[:-4] in dom.stdout
    shot = tmp_path / "page.png"
    run = subprocess.run(
        [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1200,1600",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    console_errors = [
        line for line in run.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line
    ]
    assert console_errors == []
