"""Lazy prepared stacks: raw frame paths to a dask-backed ``(frame, y, x)`` float32 array.

The caller decides the chunks (:mod:`mdark_dask.plan.sizing`); the reader never does.
Stacks are chunked in full-width row strips holding every frame of the strip, so
the per-pixel stack clip needs no shuffle. The per-frame view (one chunk per whole
frame) serves the whole-frame level statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mdark_dask.io.fits import StackReader

if TYPE_CHECKING:
    import dask.array as da


def _from_reader(reader: StackReader, chunks: tuple[int, int, int]) -> da.Array:
    import dask.array as da  # only the array views need it; the recipe's graph does not

    return da.from_array(
        reader,
        chunks=chunks,
        lock=False,
        asarray=False,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        inline_array=True,
    )


def strip_stack(reader: StackReader, rows: int) -> da.Array:
    """Prepared stack chunked in full-width row strips of all frames, ``rows`` high."""
    n, _, nx = reader.shape
    return _from_reader(reader, (n, rows, nx))


def frame_stack(reader: StackReader) -> da.Array:
    """Prepared stack with one chunk per whole frame (for whole-frame statistics)."""
    _, ny, nx = reader.shape
    return _from_reader(reader, (1, ny, nx))
