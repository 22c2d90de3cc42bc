"""The drawing process: a process pool of one that draws the QC figures while the final
task computes and writes. The same PNG bytes as drawing in a thread, errors reported as
they are, a lost process replaced by drawing in the thread, and no fork beside threads.

A process with threads (pytest's) never forks one, so each case runs in a fresh
interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mdark_dask.report.draw import DrawingProcess, InThread

FIGURES = textwrap.dedent(
    """
    import numpy as np
    from mdark_dask.report.figures import *

    def figures(d):
        rng = np.random.default_rng(3)
        edges = np.linspace(-5.0, 5.0, 41)
        counts = rng.integers(0, 1000, 40)
        image = rng.normal(10.0, 1.0, (13, 7))
        hot = Marks("hot pixels: 2", "red", "o", np.array([1.0, 5.0]), np.array([0.0, 12.0]))
        lines = (Line(-3.0, "lower bound -3 e-", "red", True),
                 Line(3.0, "upper bound 3 e-", "red", True))
        return (
            ImageFigure(f"{d}/M_image.png", "M", image, (13, 7), 1, "e-/s", (hot,),
                        ("a note",)),
            FramesFigure(f"{d}/M_frames.png", "M", tuple("abcde"), "frame", np.arange(5.0) + 100,
                         np.full(5, 2.0), (97.0, 107.0), (0.0, 2.5), ("f (left out: why)",)),
            HistogramFigure(f"{d}/M_histogram.png", "M", edges, counts, lines, "e-"),
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


def test_the_process_draws_the_bytes_a_thread_draws(tmp_path: Path) -> None:
    result = run(
        """
        import os
        from mdark_dask.report.draw import DrawingProcess, InThread
        drawer = DrawingProcess()
        there = drawer.draw(figures("process"))
        drawer.close()
        here = InThread().draw(figures("thread"))
        result = dict(same=[open(a, "rb").read() == open(b, "rb").read()
                            for a, b in zip(there, here)], n=len(there))
        """,
        tmp_path,
    )
    assert result == {"same": [True, True, True], "n": 3}


def test_errors_come_back_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the directory should be")
    result = run(
        """
        import numpy as np
        from mdark_dask.errors import OutputError
        from mdark_dask.report.draw import DrawingProcess
        drawer = DrawingProcess()
        try:
            drawer.draw(figures("blocked"))
            unwritable = None
        except OutputError as exc:
            unwritable = str(exc)
        bad = HistogramFigure("bad/h.png", "B", np.linspace(0, 1, 5), np.zeros(9, np.int64),
                              (), "e-")
        try:
            drawer.draw([bad])
            broken = None
        except ValueError as exc:
            broken = type(exc).__name__
        after = len(drawer.draw(figures("fine")))  # the process carries on
        drawer.close()
        result = dict(unwritable=unwritable, broken=broken, after=after)
        """,
        tmp_path,
    )
    message = result["unwritable"]
    assert isinstance(message, str) and message.startswith("cannot write the QC plots: ")
    assert "blocked" in message and "\n" not in message
    assert result["broken"] == "ValueError"
    assert result["after"] == 3


def test_a_lost_process_is_replaced_by_the_thread(tmp_path: Path) -> None:
    result = run(
        """
        import os, signal
        from mdark_dask.report.draw import DrawingProcess
        drawer = DrawingProcess()
        drawer.draw(figures("first"))
        for pid in list(drawer._pool._processes):
            os.kill(pid, signal.SIGKILL)
        paths = drawer.draw(figures("after"))
        drawer.close()
        result = dict(n=len(paths), exist=all(os.path.isfile(p) for p in paths))
        """,
        tmp_path,
    )
    assert result == {"n": 3, "exist": True}


def test_no_fork_beside_other_threads() -> None:
    """pytest's process has threads (or may have): a drawing process is not possible."""
    import threading

    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: (ready.set(), stop.wait(30)))
    thread.start()
    try:
        ready.wait(10)
        assert not DrawingProcess.possible()
    finally:
        stop.set()
        thread.join()


def test_on_a_cluster_it_draws_in_the_workers_thread() -> None:
    import pickle

    assert isinstance(pickle.loads(pickle.dumps(DrawingProcess.__new__(DrawingProcess))), InThread)


@pytest.mark.parametrize("command", ["mdark", "demo"])
def test_the_command_draws_what_the_api_draws(command: str, tmp_path: Path) -> None:
    """End to end through the console script (which makes a drawing process) and in this
    process (which draws in threads): the same PNG bytes."""
    from mdark_dask.cli import main
    from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof

    exe = str(Path(sys.executable).with_name("mdark-dask"))
    if command == "demo":
        args = ["demo", "--frames", "3"]
        done = subprocess.run([exe, *args, "-o", str(tmp_path / "a")], capture_output=True)
        assert done.returncode == 0, done.stderr
        assert main([*args, "-o", str(tmp_path / "b")]) == 0
    else:
        spec = DarkSetSpec("soxs", "VIS", n_frames=3, exptime=600.0)
        sof = write_sof(tmp_path / "set.sof", simulate_set(spec, tmp_path / "raw"))
        done = subprocess.run([exe, "mdark", str(sof), "-o", str(tmp_path / "a")], timeout=300)
        assert done.returncode == 0
        assert main(["mdark", str(sof), "-o", str(tmp_path / "b")]) == 0
    ours = sorted((tmp_path / "a" / "qc" / "soxs_mdark").glob("*.png"))
    assert len(ours) >= 5
    for png in ours:
        other = tmp_path / "b" / "qc" / "soxs_mdark" / png.name
        assert png.read_bytes() == other.read_bytes(), png.name
