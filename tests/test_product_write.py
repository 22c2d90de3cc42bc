"""The final task's writes never change an array its plotting thread reads.

astropy writes a writeable little-endian array by byteswapping it in place, checksumming
and writing it, then swapping it back. The final task draws its QC plots in a second
thread from the same arrays it writes (a plot drawn while an array is swapped would show
byte-swapped values), so the products are built from read-only views, which astropy swaps into
copies: the same bytes in the file, and the plots and the writes need no ordering.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
from astropy.io import fits

from mdark_dask import recipe
from mdark_dask.io.fits import write_atomic
from mdark_dask.io.product import build_noise_hdul
from mdark_dask.plan.product import plan_product
from mdark_dask.report import figures
from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof

SPEC = DarkSetSpec("soxs", "VIS", n_frames=3, exptime=5.0, binning=(2, 2), shape=(2048, 429))


def _watch_during_writes(image: np.ndarray[Any, Any], hdul: Any, path: Path) -> set[float]:
    """Values a second thread sees at one pixel of ``image`` while ``hdul`` is written."""
    seen: set[float] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(float(image[1000, 1000]))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(4):
            write_atomic(hdul, path)
    finally:
        stop.set()
        watcher.join()
    return seen


def test_astropy_swaps_a_writeable_array_in_place_while_writing_it(tmp_path: Path) -> None:
    """The hazard itself: a reader thread sees a writeable array change during the write."""
    noise = np.full((2048, 2048), 7.5, dtype=np.float32)
    hdul = fits.HDUList([fits.PrimaryHDU(noise)])
    seen = _watch_during_writes(noise, hdul, tmp_path / "n.fits")
    assert float(noise[1000, 1000]) == 7.5  # swapped back afterwards
    assert 7.5 in seen
    if len(seen) == 1:  # the read-only views below are what protect the plots
        pytest.skip("this astropy did not expose a mid-write swap to the reader this time")


def test_products_are_written_from_read_only_views_that_never_change(tmp_path: Path) -> None:
    noise = np.full((2048, 2048), 7.5, dtype=np.float32)
    hdul = build_noise_hdul(noise, noise, fits.Header())
    for hdu in hdul:
        assert not hdu.data.flags.writeable
        assert np.shares_memory(hdu.data, noise)  # a view: no copy held beside the image
    assert _watch_during_writes(noise, hdul, tmp_path / "n.fits") == {7.5}
    assert noise.flags.writeable  # the caller's own array is left as it was
    with fits.open(tmp_path / "n.fits", checksum=True) as written:
        assert written[0].data[1000, 1000] == np.float32(7.5)
        assert written[1].data.dtype == np.dtype(">f4")


def test_final_task_writes_the_maps_before_the_master_and_draws_every_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sof = write_sof(tmp_path / "set.sof", simulate_set(SPEC, tmp_path / "raw"))
    plan = plan_product([str(sof)], tmp_path / "ws")
    levels, joined = recipe.stacked_graph(plan)
    strip, frame_levels = dask.compute(joined, levels, scheduler="sync")
    before = {k: v.copy() for k, v in strip.items()}

    events: list[tuple[str, str, float]] = []
    lock = threading.Lock()

    master_writing = threading.Event()

    def timed(name: str, func: Any, pause: float) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            with lock:
                events.append((name, "start", time.perf_counter()))
            if name == "write master":
                master_writing.set()
            if name == "master plots":
                # held until the master's write has begun (or 10 s): writes that waited
                # for the plots would never begin, and the order below would fail
                master_writing.wait(10.0)
            time.sleep(pause)  # widen the window a race would need
            result = func(*args, **kwargs)
            with lock:
                events.append((name, "end", time.perf_counter()))
            return result

        return run

    write = recipe.write_atomic

    def write_named(hdul: Any, dest: Path) -> Path:
        kind = (
            "noise"
            if dest.name.endswith("_NOISE.fits")
            else ("hotpix" if dest.name.endswith("_HOTPIX.fits") else "master")
        )
        for hdu in hdul:
            assert hdu.data.dtype == np.uint8 or not hdu.data.flags.writeable, (kind, hdu.name)
        return timed(f"write {kind}", write, 0.05)(hdul, dest)  # type: ignore[no-any-return]

    monkeypatch.setattr(recipe, "write_atomic", write_named)
    # each plotting step (reduce to figures, draw), named by the figures it builds
    draw = recipe._draw
    steps = {
        figures.master_figures: ("master plots", 0.2),
        figures.hotpix_figures: ("hotpix plots", 0),
    }

    def draw_named(build: Any, *args: Any) -> Any:
        name, pause = steps.get(build, ("frames plot", 0))
        return timed(name, draw, pause)(build, *args)

    monkeypatch.setattr(recipe, "_draw", draw_named)

    result = recipe.finalize_product(strip, frame_levels, plan)

    at = {(name, edge): t for name, edge, t in events}
    # the maps before the master (a master with its fingerprint always has them)
    assert at[("write hotpix", "end")] <= at[("write master", "start")]
    assert at[("write noise", "end")] <= at[("write master", "start")]
    # the writes did not wait for the plots (the master's plots pause 0.2 s)
    assert at[("write master", "start")] < at[("master plots", "end")]
    assert len(result.plots) == 5 and all(Path(p).is_file() for p in result.plots)
    for key, value in before.items():
        np.testing.assert_array_equal(strip[key], value)


def test_a_failed_qc_plot_fails_the_set_and_leaves_no_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plots do not hold up the writes, so the master may be in place when a plot
    fails: it is taken away again, so that a rerun does not find it up to date."""
    sof = write_sof(tmp_path / "set.sof", simulate_set(SPEC, tmp_path / "raw"))
    plan = plan_product([str(sof)], tmp_path / "ws")
    levels, joined = recipe.stacked_graph(plan)
    strip, frame_levels = dask.compute(joined, levels, scheduler="sync")

    def broken(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)  # after the master's write
        raise OSError("no space left for the plot")

    monkeypatch.setattr(figures, "hotpix_figures", broken)
    with pytest.raises(OSError, match="no space left"):
        recipe.finalize_product(strip, frame_levels, plan)
    assert not plan.product_path.exists()
    assert not list(plan.product_path.parent.glob(".*.tmp"))
    monkeypatch.undo()
    result = recipe.finalize_product(strip, frame_levels, plan)  # the rerun makes it
    assert Path(result.path).is_file() and len(result.plots) == 5


def test_a_whole_run_emits_no_warning_even_when_the_filters_are_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warning filters are process-wide and not thread-safe: the plotting threads, or an
    import in the preload thread, can restore them under a block that silenced a warning.
    So the run must not rely on silencing: with every warning an error and every
    ``simplefilter`` call lost, a run (threads, QC plots) still succeeds. (Too-long header
    comments, which astropy would warn about, are cut beforehand.)"""
    import warnings

    from mdark_dask.cli import main

    sof = write_sof(tmp_path / "set.sof", simulate_set(SPEC, tmp_path / "raw"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(warnings, "simplefilter", lambda *args, **kwargs: None)
        code = main(["mdark", str(sof), "-o", str(tmp_path / "ws"), "-x"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Warning" not in err
    header = fits.getheader(tmp_path / "ws" / "products" / "soxs_mdark" / "set.fits")
    card = header.cards["ESO QC MDARK MEDIAN"]
    assert card.comment == "[e-] Median flux level of ma"  # astropy's own cut, made here
    assert len(card.image) == 80
