"""Several nights in one workspace: a record that accumulates, pages per night, and
terminal output that stays short at any size.

Three nights of eight small sets each (24 sets: more than a screen's worth of rows) are
reduced once in one command and once night by night, through the console script:

* both ways give the same record of products (the store's ``products`` table, run ids
  aside) and the same ``night_report.json`` sets;
* a rerun of one night (``-x``) adds to the workspace: the report still holds every set,
  and only that night's page is rewritten;
* the whole run prints a summary by arm and exposure time, not a row per set.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from mdark_dask.report.progress import DETAIL_SETS
from mdark_dask.simulate import DarkSetSpec, simulate_set
from tests.commands import EXE

NIGHTS = ("2026-01-11", "2026-01-12", "2026-01-13")  # nights starting the day before
EXPTIMES = (5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0, 600.0)


def simulate_nights(raw: Path) -> None:
    for n, day in enumerate(NIGHTS):
        for i, exptime in enumerate(EXPTIMES):
            spec = DarkSetSpec(
                "soxs",
                "VIS",
                n_frames=3,
                exptime=exptime,
                binning=(2, 2),
                shape=(2048, 429),
                start=f"{day}T0{i}:00:00.000",
                seed=10 * n + i,
            )
            simulate_set(spec, raw / day)


def night(*args: str | Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [EXE, "night", *map(str, args), "--cluster", "sync", "--no-plots"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return done


def table(workspace: Path) -> list[tuple[object, ...]]:
    """The store's product rows, without the run that made them."""
    with sqlite3.connect(workspace / "mdark-dask.db") as db:
        columns = [c[1] for c in db.execute("PRAGMA table_info(products)") if c[1] != "run"]
        return db.execute(f"SELECT {', '.join(columns)} FROM products ORDER BY name").fetchall()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("archive")
    simulate_nights(root / "raw")
    whole = night(root / "raw", "-o", root / "whole")
    for day in NIGHTS:
        night(root / "raw" / day, "-o", root / "nightly")
    return {"root": root, "whole": whole}


def test_a_month_at_once_or_night_by_night_gives_the_same_record(
    archive: dict[str, object],
) -> None:
    root = archive["root"]
    assert isinstance(root, Path)
    whole, nightly = table(root / "whole"), table(root / "nightly")
    assert len(whole) == len(NIGHTS) * len(EXPTIMES)
    paths = [str(root / "whole"), str(root / "nightly")]
    assert [tuple(str(v).replace(paths[0], "WS") for v in r) for r in whole] == [
        tuple(str(v).replace(paths[1], "WS") for v in r) for r in nightly
    ]
    report = json.loads((root / "nightly" / "night_report.json").read_text(encoding="utf-8"))
    assert len(report["sets"]) == len(whole)
    assert len(report["runs"]) == len(NIGHTS)
    assert sorted({s["night"] for s in report["sets"]}) == [
        "2026-01-10",
        "2026-01-11",
        "2026-01-12",
    ]


def test_a_rerun_of_one_night_adds_to_the_workspace(
    archive: dict[str, object], tmp_path: Path
) -> None:
    root = archive["root"]
    assert isinstance(root, Path)
    ws = root / "whole"
    pages = {p.name: p.stat().st_mtime_ns for p in (ws / "qc" / "nights").glob("*.html")}
    assert len(pages) == len(NIGHTS)
    before = table(ws)
    night(root / "raw" / NIGHTS[1], "-o", ws, "-x")
    report = json.loads((ws / "night_report.json").read_text(encoding="utf-8"))
    assert len(report["sets"]) == len(NIGHTS) * len(EXPTIMES)  # not just the rerun's
    assert table(ws) == before  # the same products, recomputed: no duplicate row
    after = {p.name: p.stat().st_mtime_ns for p in (ws / "qc" / "nights").glob("*.html")}
    changed = sorted(name for name in pages if after[name] != pages[name])
    assert changed == ["2026-01-11.html"]  # the rerun night's page only
    index = (ws / "qc" / "index.html").read_text(encoding="utf-8")
    assert index.count('href="nights/') == len(NIGHTS)


def test_many_sets_print_a_summary_not_a_row_each(archive: dict[str, object]) -> None:
    whole = archive["whole"]
    assert isinstance(whole, subprocess.CompletedProcess)
    lines = whole.stdout.splitlines()
    assert len(NIGHTS) * len(EXPTIMES) > DETAIL_SETS
    assert len(lines) < 40, whole.stdout
    assert "3 nights: 2026-01-10 to 2026-01-12" in whole.stdout
    assert not any("_MDARK_" in line for line in lines), whole.stdout  # no row per set
    summary = [line for line in lines if re.match(r"SOXS\s+VIS\s+\d+\s+3\s+3$", line)]
    assert len(summary) == 2 * len(EXPTIMES)  # the plan and the closing summary


def test_progress_on_a_terminal_is_one_line_rewritten() -> None:
    import io

    from mdark_dask.cli import Tee
    from mdark_dask.plan.sets import SetOutcome
    from mdark_dask.report.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    out = Tee(screen)
    assert out.status is not None and Tee(io.StringIO()).status is None
    names = [f"set{i}" for i in range(DETAIL_SETS + 5)]
    progress = Progress(line=out, status=out.status, work=dict.fromkeys(names, 1.0))
    for i, name in enumerate(names, 1):
        failed = name == "set3"
        o = SetOutcome(
            name,
            "soxs",
            "VIS",
            5.0,
            3,
            "failed" if failed else "done",
            None,
            reason="broken frame" if failed else "",
        )
        progress(o, i, len(names), elapsed=float(i))
    out("closing")
    text = screen.getvalue()
    assert text.count("\n") == 2  # the failure and the closing line: the rest rewrites
    assert "FAILED set3: broken frame" in text
    assert f"[{len(names)}/{len(names)}] sets made, 1 failed; 25s, ETA 0s" in text


def test_the_eta_follows_the_pixels_done() -> None:
    from mdark_dask.report.progress import duration, eta

    assert eta(10.0, work_done=1.0, work_total=4.0) == 30.0  # a quarter done in 10 s
    assert eta(10.0, work_done=4.0, work_total=4.0) == 0.0
    assert [duration(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]
