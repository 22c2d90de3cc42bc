"""The drawing process: the same PNG bytes as drawing in-thread, its errors reported, a
lost process replaced by in-thread drawing, and no fork from a process with threads.

The process is forked only from a single-threaded process, which a pytest process is
not (dask's and pytest's own threads), so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np

from mdark_dask import painter
from mdark_dask.cli import main
from mdark_dask.report import draw
from mdark_dask.report.figures import (
    DarkPanel,
    DistributionFigure,
    FramesFigure,
    HistogramFigure,
    NoisePanel,
    PlainImage,
)
from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof

FIGURES = textwrap.dedent(
    """
    import numpy as np
    from mdark_dask.report.figures import *

    def figures(d):
        rng = np.random.default_rng(3)
        edges = np.linspace(-5.0, 5.0, 41)
        counts = rng.integers(0, 1000, 40)
        rgb = rng.integers(0, 256, (13, 7, 3)).astype(np.uint8)
        return (
            PlainImage(f"{d}/M_image.png", rgb),
            FramesFigure(f"{d}/M_frames.png", "M", np.arange(5.0), np.arange(5.0) + 100,
                         np.full(5, 2.0)),
            HistogramFigure(f"{d}/M_histogram.png", "M", edges, counts, (-3.0, 3.0)),
            DistributionFigure(
                f"{d}/sub/M_dark_current.png", "M",
                DarkPanel(np.concatenate([edges, [10.0, 100.0]]), rng.integers(0, 9, 42),
                          2.0, 40.0, 3),
                NoisePanel(np.linspace(0.0, 9.0, 11),
                           (NoiseCurve(counts[:10], 4.0, "0.55", "kept"),
                            NoiseCurve(counts[10:20], float("nan"), "tab:blue", "peeled")), 2),
            ),
        )
    """
)


def run(body: str, tmp_path: Path) -> dict[str, object]:
    """Run ``body`` (which sets ``result``) in a fresh single-threaded interpreter."""
    code = FIGURES + textwrap.dedent(body) + "\nimport json; print(json.dumps(result))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_the_drawing_process_draws_what_the_thread_draws(tmp_path: Path) -> None:
    result = run(
        """
        import sys, os
        from mdark_dask import painter
        from mdark_dask.report import draw
        with painter.forked() as forked:
            pid = painter._process.pid
            paths = painter.draw(figures("proc"))
            alive = painter.drawing()
        try:
            os.waitpid(pid, os.WNOHANG)
            reaped = False
        except ChildProcessError:
            reaped = True
        here = draw.draw_all(figures("thread"))
        result = dict(forked=forked, alive=alive, reaped=reaped, paths=paths, here=here,
                      drawing_after=painter.drawing())
        """,
        tmp_path,
    )
    assert result["forked"] and result["alive"] and result["reaped"]
    assert not result["drawing_after"]
    paths, here = result["paths"], result["here"]
    assert isinstance(paths, list) and isinstance(here, list) and len(paths) == 4
    assert [Path(p).name for p in paths] == [Path(p).name for p in here]
    for a, b in zip(paths, here, strict=True):
        assert (tmp_path / a).read_bytes() == (tmp_path / b).read_bytes()
        assert (tmp_path / a).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing but the figures: no temporary names left behind
    assert sorted(p.name for p in (tmp_path / "proc").rglob("*") if p.is_file()) == sorted(
        Path(p).name for p in paths
    )


def test_the_parent_never_imports_matplotlib(tmp_path: Path) -> None:
    result = run(
        """
        import sys
        from mdark_dask import painter
        with painter.forked():
            painter.draw(figures("proc"))
        result = dict(mpl="matplotlib" in sys.modules, pil="PIL" in sys.modules)
        """,
        tmp_path,
    )
    assert result == {"mpl": False, "pil": False}


def test_a_figure_that_cannot_be_written_is_an_output_error_and_the_process_goes_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "blocked").write_text("a file where the directory should be")
    result = run(
        """
        from mdark_dask import painter
        from mdark_dask.errors import OutputError
        with painter.forked():
            try:
                painter.draw(figures("blocked"))
                error = None
            except OutputError as exc:
                error = str(exc)
            after = painter.draw(figures("fine"))
            alive = painter.drawing()
        try:  # the same error drawn in-thread
            painter.draw(figures("blocked"))
        except OutputError as exc:
            here = str(exc)
        result = dict(error=error, here=here, after=len(after), alive=alive)
        """,
        tmp_path,
    )
    assert result["error"] == result["here"]
    assert isinstance(result["error"], str)
    assert result["error"].startswith("cannot write the QC plots: ")
    assert "blocked" in result["error"] and "\n" not in result["error"]
    assert result["after"] == 4 and result["alive"] is True


def test_a_figure_that_fails_otherwise_is_a_drawing_error(tmp_path: Path) -> None:
    """A bug in a figure (here: counts of the wrong length) is one line naming it."""
    result = run(
        """
        import numpy as np
        from mdark_dask import painter
        from mdark_dask.report.figures import HistogramFigure
        bad = HistogramFigure("bad/h.png", "B", np.linspace(0, 1, 5), np.zeros(9, np.int64),
                              (0.2, 0.8))
        with painter.forked():
            try:
                painter.draw([bad])
                error = None
            except painter.DrawingError as exc:
                error = str(exc)
        result = dict(error=error)
        """,
        tmp_path,
    )
    assert isinstance(result["error"], str) and result["error"].startswith("ValueError: ")


def test_a_lost_process_is_replaced_by_the_thread(tmp_path: Path) -> None:
    result = run(
        """
        import os, signal
        from mdark_dask import painter
        with painter.forked():
            os.kill(painter._process.pid, signal.SIGKILL)
            os.waitpid(painter._process.pid, 0)
            paths = painter.draw(figures("after"))
            alive = painter.drawing()
        result = dict(paths=paths, alive=alive)
        """,
        tmp_path,
    )
    assert result["alive"] is False
    paths = result["paths"]
    assert isinstance(paths, list) and all((tmp_path / p).stat().st_size > 0 for p in paths)


def test_closed_pipes_are_replaced_by_the_thread(tmp_path: Path) -> None:
    """A drawing thread that still holds the process after its pipes were closed (the
    command stopping) draws in-thread instead of failing."""
    result = run(
        """
        from mdark_dask import painter
        with painter.forked():
            proc = painter._process
            proc.requests.close()
            paths = painter.draw(figures("closed"))
            alive = painter.drawing()
        result = dict(paths=len(paths), alive=alive)
        """,
        tmp_path,
    )
    assert result == {"paths": 4, "alive": False}


def test_no_fork_beside_other_threads(tmp_path: Path) -> None:
    """A process with another thread: the figures are drawn here, and the same."""
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        with painter.forked() as forked:
            assert not forked and not painter.drawing()
    finally:
        release.set()
        other.join()
    # no drawing process: painter.draw draws in this thread
    rng = np.random.default_rng(0)
    figure = PlainImage(
        str(tmp_path / "x" / "a.png"), rng.integers(0, 255, (3, 5, 3), dtype=np.uint8)
    )
    (path,) = painter.draw([figure])
    assert Path(path).read_bytes() == Path(draw.draw_all([figure])[0]).read_bytes()
    edges = np.linspace(0.0, 1.0, 3)
    panel = NoisePanel(edges, (), 0)
    # a panel of no image (all NaN) draws no curve and no legend, without warnings
    dist = DistributionFigure(
        str(tmp_path / "d.png"),
        "E",
        DarkPanel(edges, np.zeros(2, dtype=np.int64), 1.0, 2.0, 0),
        panel,
    )
    frames = FramesFigure(str(tmp_path / "f.png"), "E", np.zeros(1), np.zeros(1), np.zeros(1))
    hist = HistogramFigure(
        str(tmp_path / "h.png"), "E", edges, np.zeros(2, dtype=np.int64), (0.2, 0.8)
    )
    assert all(Path(p).stat().st_size > 0 for p in painter.draw([dist, frames, hist]))


def test_the_command_draws_in_its_own_process_what_a_thread_draws(tmp_path: Path) -> None:
    """End to end: ``mdark-dask mdark`` (one thread when it starts, so it forks its drawing
    process) writes the same five PNG files, byte for byte, as the recipe run in this
    process (several threads: drawn in-thread), and the same products."""
    spec = DarkSetSpec("soxs", "VIS", 3, 5.0, binning=(2, 2), shape=(2048, 429))
    sof = write_sof(tmp_path / "set.sof", simulate_set(spec, tmp_path / "raw"))
    exe = Path(sys.executable).with_name("mdark-dask")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mdark_dask.cli"]
    done = subprocess.run(
        [*cmd, "mdark", str(sof), "-o", str(tmp_path / "cli")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()  # so this process never forks: drawn in-thread
    try:
        assert main(["mdark", str(sof), "-o", str(tmp_path / "here")]) == 0
    finally:
        release.set()
        other.join()
    qc = Path("qc", "soxs_mdark")
    pngs = sorted(p.name for p in (tmp_path / "cli" / qc).iterdir())
    assert len(pngs) == 5 and all(name.endswith(".png") for name in pngs)
    assert pngs == sorted(p.name for p in (tmp_path / "here" / qc).iterdir())
    for name in pngs:
        a, b = (tmp_path / ws / qc / name for ws in ("cli", "here"))
        assert a.read_bytes() == b.read_bytes(), name
    products = Path("products", "soxs_mdark")
    for product in (tmp_path / "here" / products).glob("*.fits"):
        assert product.read_bytes() == (tmp_path / "cli" / products / product.name).read_bytes()
