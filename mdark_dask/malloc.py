"""Hand large freed arrays back to the operating system (glibc only).

glibc serves an allocation from its heap unless it is at least the *mmap threshold*, which
starts at 128 KiB and rises (up to 32 MiB) every time a mapped block is freed. After the
first few frame-sized arrays come and go, later ones of the same size are carved from the
heap and, once freed, stay in the process: the peak RSS of one ``mdark`` run on 20 SOXS
NIR frames was ~450 MB, of which ~85 MB were such freed blocks. Fixing the threshold at
1 MiB (which also stops its adjustment) maps every array of a megabyte or more on its own
and unmaps it on free: ~365 MB, with no measurable change in run time now that the reader
fills preallocated arrays instead of churning through float64 scratch blocks.

Set only by the command-line entry point: a library should not retune its host's
allocator.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Final

#: ``M_MMAP_THRESHOLD`` of glibc's ``mallopt``.
M_MMAP_THRESHOLD: Final = -3

#: Allocations of at least this many bytes are mapped on their own and unmapped on free.
MMAP_THRESHOLD_BYTES: Final = 1 << 20


def release_large_frees(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where there is no glibc
    (macOS, musl) or the call fails, which changes nothing but memory use."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname; the search below costs 15 ms
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
