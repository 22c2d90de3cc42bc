"""Load the compiled kernels, then matplotlib, in a background thread while a command starts.

The kernels are C libraries (:mod:`mdark_dask.numerics.native`): loading them costs a few
milliseconds, but the first call of each module also imports numpy and the wrapper modules
and binds the ctypes functions, which the header scan and the graph building need not wait
for. matplotlib's import (~0.3 s of Python) is the larger part: done while the frames are
clipped (the kernels release the GIL) it is off the run's critical path.

Warming up never changes a result: the kernels are called on a few tiny arrays and the
outputs are dropped. A failure here is ignored; the real call then reports it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Final

#: Seconds the background imports wait for their ``after`` event at most (a command that
#: fails before computing never sets it; the thread is a daemon anyway).
AFTER_TIMEOUT: Final = 30.0


def load_kernels(numerics: str = "accurate") -> None:
    """Call each compiled kernel of the recipe once, on tiny arrays of the dtypes the
    recipe uses, so that their cached machine code is loaded.

    Parameters
    ----------
    numerics : {"accurate", "soxspipe-0.17.4"}
        The numerics whose level-clip specialisations to load first.
    """
    import numpy as np

    from mdark_dask.io.prepare import prepare_window
    from mdark_dask.numerics import steps

    # the reader: big-endian 16-bit words with BZERO, as raw frames are stored
    out = np.empty((2, 2), dtype=np.float32)
    prepare_window(np.zeros(4, dtype=np.int16), 0, 2, 1, True, 32768.0, 1.0, out)
    # then in the order the run needs them: the level clip, the stack clip, the final
    # task's kernels (the level tasks can start while the later ones load)
    frame = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    modes = [
        m for m in dict.fromkeys((numerics, "accurate", "soxspipe-0.17.4")) if m in steps.NUMERICS
    ]
    for mode in modes:
        steps.frame_level(frame, 3.0, 2, mode)
    levels = np.zeros((5, 4), dtype=np.float64)
    levels[:, 1] = 2.0
    strip = steps.stack_strip(np.stack([frame] * 5), levels, 3.0, 3.0, 2)
    for mode in modes:
        steps.global_clip_bounds(frame, 3.0, 2, mode)  # the post-stack clip
    from mdark_dask.numerics.hotpix import find_hot_pixels

    find_hot_pixels(
        strip["flux"], strip["mask"], strip["noise"], strip["noise_peel"], 1.0, 3.0, None, 3.0, 2
    )
    # the QC plots' counting kernels (matplotlib itself is prefetched separately)
    from mdark_dask.report import figures

    figures.block_or(strip["mask"], 2)
    edges = np.linspace(0.0, 1.0, 5)
    for clip in (False, True):
        figures.bin_counts(frame, 0.0, edges, clip=clip)
    figures.quantile_bound(frame, 0.99)
    figures.finite_range(frame)


def load_writer() -> None:
    """Import what writes the products: :mod:`mdark_dask.io.product` and astropy's FITS
    writer (~0.15 s of Python, most of it ``astropy.units``). The header scan reads plain
    frames without astropy (:mod:`mdark_dask.io.header`), so only the final task needs it."""
    import mdark_dask.io.product  # noqa: F401


def load_matplotlib() -> None:
    """Import matplotlib's Agg canvas and figure (~0.3 s of Python) for the QC plots
    (:func:`mdark_dask.report.draw.preload`)."""
    from mdark_dask.report.draw import preload

    preload()


def start(
    numerics: str | None = None,
    plots: bool = False,
    kernels: bool = True,
    settle: bool = False,
    after: threading.Event | None = None,
) -> threading.Thread:
    """In a daemon thread (it never holds up the exit): :func:`load_kernels` (unless not
    ``kernels``), then :func:`load_writer`, then :func:`load_matplotlib` when ``plots``;
    with ``settle``, then :func:`mdark_dask.process.settle` (the collector back on once
    the modules are in).

    One thread does it all, one step after the other: the imports are Python and would
    only take turns with each other (and with the command's own imports) for the GIL,
    while the frames are clipped by kernels that release it. ``after``: the imports wait
    until the caller sets this event (the command, once its own imports and header scan
    are done), so they never take turns with those for the GIL: the command's imports are
    on the critical path, these only have to be done by the time the final task runs.
    """

    def run() -> None:
        if kernels:
            with contextlib.suppress(Exception):
                load_kernels(numerics or "accurate")
        if after is not None:
            after.wait(AFTER_TIMEOUT)
        with contextlib.suppress(Exception):
            load_writer()
        if plots:
            with contextlib.suppress(Exception):
                load_matplotlib()
        if settle:
            from mdark_dask.process import settle as resume

            resume()

    thread = threading.Thread(target=run, name="mdark-load-kernels", daemon=True)
    thread.start()
    return thread


def in_background(numerics: str = "accurate", plots: bool = True, own: bool = False) -> None:
    """:func:`start` the loading and return at once: what a night's worker runs on joining.

    ``client.run`` calls a function in the worker's event loop, so a blocking load (0.6 s:
    the kernels, then matplotlib) held up the arrival of the worker's first tasks, and the
    night's submission behind it. In a thread, the first tasks start at once and wait only
    for the kernels they call; matplotlib loads while they clip.

    ``own``: the worker belongs to a cluster this command started, so it is tuned as the
    command's own process is (:func:`mdark_dask.process.tune_worker`) while it loads.
    """
    if own:
        from mdark_dask.process import tune_worker

        tune_worker()
    start(numerics, plots=plots, settle=own)
