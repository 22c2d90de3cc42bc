"""The night overview page, checked in a real headless Chromium (Debian's package).

``.ci/run`` installs chromium when it is missing; elsewhere the browser test is skipped
with a reason when no chromium binary exists.
"""

from __future__ import annotations

import html
import json
import re
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


def test_the_night_page_lists_every_set_with_its_files(night: Path) -> None:
    page = (night / "qc" / "nights" / "2026-01-10.html").read_text(encoding="utf-8")
    for spec in SPECS:
        name = sof_name(spec)[:-4]
        assert f'id="set-{name}"' in page
        assert f'href="../../products/soxs_mdark/{name}.fits"' in page
        assert f'src="../soxs_mdark/{name}_thumb.png"' in page
    assert page.count("<figure>") == len(SPECS)  # one thumbnail per master dark
    assert "MDARK MEDIAN [electrons]" in page and "masked (soxspipe QC)" in page
    assert "<script" not in page and "data:image" not in page  # static, files linked


def test_the_night_page_links_every_file_and_plot_of_a_set(tmp_path: Path) -> None:
    """Every product file and every QC plot of a set is linked from its row, files and plots
    on a line each, and every link of the page leads to a file."""
    spec = SPECS[1]
    simulate_set(spec, tmp_path / "raw")
    ws = tmp_path / "ws"
    assert main(["night", str(tmp_path / "raw"), "-o", str(ws), "--cluster", "sync"]) == 0
    nights = ws / "qc" / "nights"
    page = (nights / "2026-01-10.html").read_text(encoding="utf-8")
    name = sof_name(spec)[:-4]
    (row,) = re.findall(rf'<tr id="set-{name}">.*?</tr>', page, re.S)
    links = re.findall(r'href="([^"]+)"', row)
    written = [
        p
        for p in [*ws.glob(f"products/soxs_mdark/{name}*"), *ws.glob(f"qc/soxs_mdark/{name}_*")]
        if not p.name.endswith("_thumb.png")
    ]
    assert len(written) == 8  # master, hot-pixel map, noise image and five plots
    assert sorted((nights / link).resolve() for link in links) == sorted(
        p.resolve() for p in written
    )
    files, plots = re.search(r'<td class="links">(.*?)</td>', row, re.S).group(1).split("<br>")
    assert files.startswith("<span>files:</span>") and plots.startswith("<span>plots:</span>")
    assert ">hot pixels<" in plots and ">dark current<" in plots
    for link in re.findall(r'href="([^"]+)"', page):
        if link.startswith("#"):
            assert f'id="{link[1:]}"' in page, link
        else:
            assert (nights / link).exists(), link
    assert "-110.00 \N{DEGREE SIGN}C" in row  # the VIS detector's temperature, in its unit


def test_the_index_links_every_night_and_counts_what_was_left_out(night: Path) -> None:
    index = (night / "qc" / "index.html").read_text(encoding="utf-8")
    assert 'href="nights/2026-01-10.html"' in index
    assert "junk.fits" in index and "not a readable FITS file" in index
    assert 'href="history.html"' in index and (night / "qc" / "history.png").is_file()


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium binary (Debian package 'chromium'; .ci/run installs it)")
    return exe


#: Appended to a copy of a page (beside it, so its relative links hold): once everything
#: has loaded, every image's natural and rendered sizes, as JSON in a <pre>.
PROBE = """<script>
window.addEventListener("load", () => {
  const sizes = [...document.images].map(i => ({src: i.getAttribute("src"),
    natural: [i.naturalWidth, i.naturalHeight], shown: [i.width, i.height]}));
  const pre = document.createElement("pre"); pre.id = "probe";
  pre.textContent = JSON.stringify(sizes); document.body.appendChild(pre);
});
</script>"""


def browse(exe: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.mark.parametrize("page", ["nights/2026-01-10.html", "index.html", "history.html"])
def test_pages_load_in_headless_chromium_with_every_image_unstretched(
    night: Path, tmp_path: Path, page: str
) -> None:
    exe = _chromium()
    original = night / "qc" / page
    probe = original.with_name(f"probe-{original.name}")
    probe.write_text(
        original.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
        encoding="utf-8",
    )
    dom = browse(exe, probe, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, flags=re.S)
    assert found, dom.stdout[-2000:]
    images = json.loads(html.unescape(found.group(1)))
    if page.startswith("nights/"):
        assert len(images) == len(SPECS)
    for image in images:
        (nw, nh), (w, h) = image["natural"], image["shown"]
        assert nw > 0 and nh > 0, f"{image['src']} did not load"
        # the aspect ratio shown is the image's, to the rounding of a pixel
        assert abs(w / h - nw / nh) <= (1 / min(w, h)) * (nw / nh) + 0.02, image
    shot = tmp_path / "page.png"
    run = browse(
        exe,
        original,
        tmp_path / "profile",
        "--window-size=1200,1600",
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={shot}",
    )
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    console_errors = [
        line for line in run.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line
    ]
    assert console_errors == []
