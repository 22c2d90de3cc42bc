"""The background kernel warm-up: it loads every compiled kernel the recipe calls, for
either numerics, and never raises into the command (its thread is a daemon)."""

from __future__ import annotations

import pytest

from mdark_dask import warmup


@pytest.mark.parametrize("numerics", ["accurate", "soxspipe-0.17.4"])
def test_load_kernels_calls_every_kernel(numerics: str) -> None:
    # raises if a kernel's signature moved away from what the warm-up calls
    warmup.load_kernels(numerics)


def test_start_runs_in_a_daemon_thread_that_finishes() -> None:
    thread = warmup.start(None)
    assert thread.daemon
    thread.join(timeout=120)
    assert not thread.is_alive()


def test_start_swallows_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(numerics: str = "accurate") -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(warmup, "load_kernels", broken)
    thread = warmup.start("accurate")
    thread.join(timeout=10)
    assert not thread.is_alive()  # ended quietly: nothing propagated to the command


def test_start_with_plots_also_imports_the_agg_canvas() -> None:
    import sys

    thread = warmup.start("accurate", plots=True)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert "matplotlib.backends.backend_agg" in sys.modules
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"


def test_start_loads_in_order_and_waits_for_its_event(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    called: list[str] = []
    monkeypatch.setattr(warmup, "load_kernels", lambda numerics="accurate": called.append("k"))
    monkeypatch.setattr(warmup, "load_writer", lambda: called.append("w"))
    monkeypatch.setattr(warmup, "load_matplotlib", lambda: called.append("m"))
    warmup.start("accurate", plots=True, kernels=False).join(timeout=30)
    assert called == ["w", "m"]
    called.clear()
    warmup.start("accurate", plots=False).join(timeout=30)
    assert called == ["k", "w"]
    called.clear()
    # the imports after the kernels wait for the command's event
    computing = threading.Event()
    thread = warmup.start("accurate", plots=True, after=computing)
    thread.join(timeout=0.5)
    assert called == ["k"] and thread.is_alive()
    computing.set()
    thread.join(timeout=30)
    assert called == ["k", "w", "m"]


def test_load_writer_imports_the_fits_writer() -> None:
    import sys

    warmup.load_writer()
    assert "astropy.io.fits" in sys.modules and "mdark_dask.io.product" in sys.modules


def test_in_background_returns_at_once_and_loads_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a night's worker runs on joining: it must not block the worker's event loop."""
    import threading

    release = threading.Event()
    loaded: list[str] = []

    def slow(numerics: str = "accurate") -> None:
        release.wait(30)
        loaded.append(numerics)

    monkeypatch.setattr(warmup, "load_kernels", slow)
    warmup.in_background("soxspipe-0.17.4", plots=False)
    assert loaded == []  # returned before the loading finished
    release.set()
    for thread in threading.enumerate():
        if thread.name == "mdark-load-kernels":
            thread.join(30)
    assert loaded == ["soxspipe-0.17.4"]
