"""Settings of the console script's own process, made before a command starts.

A library should not retune its host process; the ``mdark-dask`` command owns its own, so
:func:`mdark_dask.cli.console` (and nothing else) calls :func:`configure` first thing:

* **One BLAS thread.** numpy loads OpenBLAS, whose thread pool spins for a while after
  any call; no step of the recipe uses BLAS for pixel work and the Dask threads already
  fill every core, so the spinning would only take CPU from them. The variables are set
  only where the user has not set them, and before numpy is imported (later they are
  ignored).
* **Large frees go back to the operating system.** glibc serves an allocation from its
  heap unless it is at least the *mmap threshold*, which rises every time a mapped block
  is freed; after the first frame-sized arrays come and go, later ones are carved from
  the heap and, once freed, stay in the process. Fixing the threshold at 1 MiB maps
  every array of a megabyte or more on its own and unmaps it on free, which lowers the
  command's peak memory at no cost in time.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

#: Thread-count variables of the BLAS and OpenMP runtimes numpy and SciPy may load.
BLAS_THREAD_VARIABLES: Final = (
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
)

#: ``M_MMAP_THRESHOLD`` of glibc's ``mallopt``.
M_MMAP_THRESHOLD: Final = -3

#: Allocations of at least this many bytes are mapped on their own and unmapped on free.
MMAP_THRESHOLD_BYTES: Final = 1 << 20


_configured = False


def configure() -> None:
    """One BLAS thread (unless set) and large frees unmapped."""
    global _configured
    _configured = True
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    release_large_frees()


def settle_imports() -> None:
    """In the console script's own process only: move every object made so far (the
    modules the command imported) out of the cyclic collector's sight (``gc.freeze``),
    so its later full collections, during the run and at exit, do not walk them again.
    A host that runs the command's code in its own process keeps its collector as is."""
    if _configured:
        import gc

        gc.freeze()


def release_large_frees(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where there is no glibc
    (macOS, musl) or the call fails, which changes nothing but memory use."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        from ctypes.util import find_library

        try:
            libc = ctypes.CDLL(find_library("c") or "libc.so")
        except OSError:
            return False
    try:
        mallopt = libc.mallopt
    except AttributeError:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
