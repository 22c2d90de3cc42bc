"""Process-wide settings the console script makes before a command starts.

A library should not retune its host process; the ``mdark-dask`` command owns its own, so
:func:`mdark_dask.cli.console` (and nothing else) calls :func:`tune` first thing:

* **One BLAS thread.** numpy (and SciPy, when installed) load OpenBLAS, whose thread pool
  spins for a while after any call; no step of the recipe uses BLAS for pixel work and the
  Dask threads already fill every core, so the spinning only takes CPU from them (5% of a
  20-frame NIR run's CPU time in ``perf``). The variables are set only where the user has
  not set them, and before numpy is imported (later they are ignored).
* **No garbage collection while modules import.** Importing astropy, dask and
  matplotlib creates some million objects, and the cyclic collector walks the young ones
  again and again while they pile up: 5% of the run's CPU, on the single thread that the
  start-up is. Imports make no garbage worth collecting. :func:`settle`, called once the
  command's modules are loaded, moves every object so far out of the collector's sight
  (``gc.freeze``) and turns it back on, so the run itself collects cycles as usual and
  never walks the imported modules again.
* **Large frees go back to the OS** (:mod:`mdark_dask.malloc`).
"""

from __future__ import annotations

import gc
import os
from typing import Final

#: Thread-count variables of the BLAS and OpenMP runtimes numpy and SciPy may load.
BLAS_THREAD_VARIABLES: Final = (
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
)

_paused = False
_tuned = False


def tuned() -> bool:
    """Whether :func:`tune` ran: this process is the command's own (the console script),
    not a host that calls the command's code (the tests, a notebook)."""
    return _tuned


def tune() -> None:
    """One BLAS thread (unless set), the collector paused, large frees unmapped."""
    global _paused, _tuned
    _tuned = True
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    if gc.isenabled():
        gc.disable()
        _paused = True
    from mdark_dask.malloc import release_large_frees

    release_large_frees()


def tune_worker() -> None:
    """In a worker process of a cluster this command started (and so owns): the collector
    paused until :func:`settle`. Its thread counts are set by distributed's nanny
    already, and its allocator is left to the cluster's settings."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def settle() -> None:
    """Resume the collector paused by :func:`tune`, after freezing what exists so far.

    Does nothing unless :func:`tune` paused it, so a command run in-process (the tests,
    a notebook) keeps its host's collector exactly as it was.
    """
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
