"""The application layer: one way to make a product, whether through the command line or
the Python API, and the command's background imports."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import mdark_dask.api as md
from mdark_dask import app
from mdark_dask.errors import InputError, OutputError
from mdark_dask.report.draw import draw_all
from mdark_dask.report.figures import HistogramFigure, ImageFigure
from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof
from tests.commands import EXE


@pytest.fixture(scope="module")
def raw_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small X-shooter NIR set: its raw directory and its sof."""
    root = tmp_path_factory.mktemp("app")
    spec = DarkSetSpec("xsh", "NIR", n_frames=3, exptime=120.0, start="2026-01-11T11:00:00.000")
    frames = simulate_set(spec, root / "raw")
    return root / "raw", write_sof(root / sof_name(spec), frames)


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, check=False)


def test_a_product_written_by_the_api_is_the_commands_product(
    raw_set: tuple[Path, Path], tmp_path: Path
) -> None:
    """The API's lazy dataset and its writer give the command's files byte for byte."""
    _, sof = raw_set
    by_api = md.write_master(md.master_dark(sof).compute(), tmp_path / "api")
    done = _command("mdark", str(sof), "-o", str(tmp_path / "cli"), "--no-plots")
    assert done.returncode == 0, done.stderr
    cli = tmp_path / "cli" / "products" / "soxs_mdark"
    for suffix in (".fits", "_HOTPIX.fits", "_NOISE.fits"):
        ours = by_api.with_name(by_api.stem + suffix)
        theirs = cli / ours.name
        assert ours.read_bytes() == theirs.read_bytes(), ours.name


def test_a_product_written_by_the_api_is_up_to_date_for_a_later_night(
    raw_set: tuple[Path, Path], tmp_path: Path
) -> None:
    raw, _ = raw_set
    ws = tmp_path / "ws"
    night = md.plan_night(raw)
    (one,) = night.sets
    path = md.write_master(md.master_dark([f.path for f in one.frames]).compute(), ws)
    assert path.with_name(path.stem + "_HOTPIX.fits").is_file()
    assert path.with_name(path.stem + "_NOISE.fits").is_file()
    done = _command("night", str(raw), "-o", str(ws), "--cluster", "sync", "--no-plots")
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    assert "# REDUCING" not in done.stdout  # nothing was computed


def test_write_master_refuses_frames_changed_since(
    raw_set: tuple[Path, Path], tmp_path: Path
) -> None:
    _, sof = raw_set
    ds = md.master_dark(sof)
    changed = ds.assign_attrs(fingerprint="0" * 32)
    with pytest.raises(InputError, match="changed since"):
        md.write_master(changed, tmp_path)


def test_make_master_is_the_mdark_command(raw_set: tuple[Path, Path], tmp_path: Path) -> None:
    _, sof = raw_set
    path = md.make_master(sof, tmp_path, plots=False)
    assert path.is_file() and path.with_suffix(".log").is_file()
    log = path.with_suffix(".log").read_text(encoding="utf-8")
    assert "# VERIFYING INPUT FRAMES - ALL GOOD" in log  # what the command prints, silent or not
    assert md.plan(sof, tmp_path).up_to_date()


def test_printing_a_night_plan_is_a_short_summary(raw_set: tuple[Path, Path]) -> None:
    raw, _ = raw_set
    text = str(md.plan_night(raw))
    assert text.startswith("NightPlan: 1 set(s) of 3 dark frame(s)")
    assert len(text.splitlines()) == 2
    assert "ESO" not in repr(md.plan_night(raw))  # no header cards in the repr either


def test_the_console_script_ends_with_the_commands_status(tmp_path: Path) -> None:
    done = _command("mdark", str(tmp_path / "missing.sof"), "-o", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("ERROR: ") and done.stderr.count("\n") == 1


# --------------------------------------------------------------------------------------------
# The background imports and the QC figures' errors


def test_preload_runs_in_a_daemon_thread_after_its_event() -> None:
    event = threading.Event()
    thread = app.preload(plots=True, after=event)
    assert thread.daemon and thread.is_alive()  # waiting for the command's event
    event.set()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert "PIL.ImageDraw" in sys.modules and "PIL.PngImagePlugin" in sys.modules
    assert "astropy.io.fits" in sys.modules


def test_preload_swallows_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    import mdark_dask.report.draw as draw

    def broken() -> None:
        raise RuntimeError("no Pillow here")

    monkeypatch.setattr(draw, "preload", broken)
    thread = app.preload(plots=True)
    thread.join(timeout=60)
    assert not thread.is_alive()  # ended quietly: nothing propagated to the command


def test_a_figure_that_cannot_be_written_is_one_output_error(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the directory should be")
    image = np.zeros((5, 7))

    def figure(where: str) -> ImageFigure:
        return ImageFigure(
            str(tmp_path / where / "M_image.png"), "M", image, (5, 7), 1, "e-", (), ()
        )

    with pytest.raises(OutputError) as exc:
        draw_all([figure("blocked")])
    message = str(exc.value)
    assert message.startswith("cannot write the QC plots: ")
    assert "blocked" in message and "\n" not in message
    assert draw_all([figure("fine")])


def test_a_figure_that_fails_otherwise_raises_its_own_error(tmp_path: Path) -> None:
    bad = HistogramFigure(
        str(tmp_path / "h.png"), "B", np.linspace(0, 1, 5), np.zeros(9, np.int64), (), "e-"
    )
    with pytest.raises(ValueError):
        draw_all([bad])
