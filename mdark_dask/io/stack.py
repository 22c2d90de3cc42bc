"""Lazy prepared stacks: raw frame paths to a dask-backed ``(frame, y, x)`` float32 array.

The chunking policy is one pure function, :func:`strip_rows`; the reader never decides
chunks. Stacks are chunked in full-width row strips holding every frame of the strip, so
the per-pixel stack clip needs no shuffle. The per-frame view (one chunk per whole
frame) serves the whole-frame level statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from mdark_dask.io.fits import FrameReader, StackReader
from mdark_dask.plan.frameset import FrameSet

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

#: Target bytes of float32 stack per strip task. With the tiled kernel a 24 MB strip is
#: ~50-70 ms of clipping on one core; two such inputs in flight (one per thread) are the
#: strip phase's memory. 32 MB put the peak of a 10-frame SOXS VIS run at 356-371 MB,
#: 24 MB at 335 MB (soxspipe: 1033 MB), at the same speed.
TARGET_STRIP_BYTES: Final = 24 * 2**20


#: Bytes of float32 stack a strip task reads and clips at a time (:meth:`StackReader.row_blocks`):
#: a strip read whole was a fresh array the kernel zeroes page by page, and was clipped
#: from memory rather than cache. 8 MiB blocks made a 20-frame NIR strip 10% faster than
#: whole (1 MiB ones lose it again to the calls per block).
BLOCK_BYTES: Final = 8 * 2**20


def strip_rows(n_frames: int, rows: int, cols: int, target: int = TARGET_STRIP_BYTES) -> int:
    """Rows per strip so that one strip of all frames is about ``target`` bytes.

    >>> strip_rows(20, 2040, 2040)
    154
    >>> strip_rows(3, 37, 53)
    37
    """
    per_row = max(1, n_frames * cols * 4)
    return int(max(1, min(rows, target // per_row)))


def stack_reader(frameset: FrameSet) -> StackReader:
    """The picklable reader of a set's prepared frames."""
    return StackReader(
        tuple(
            FrameReader(raw, frameset.spec.rotation_k, frameset.region, frameset.gain)
            for raw in frameset.frames
        )
    )


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


def strip_stack(frameset: FrameSet, rows: int | None = None) -> da.Array:
    """Prepared stack chunked in full-width row strips of all frames."""
    reader = stack_reader(frameset)
    n, ny, nx = reader.shape
    return _from_reader(reader, (n, rows or strip_rows(n, ny, nx), nx))


def frame_stack(frameset: FrameSet) -> da.Array:
    """Prepared stack with one chunk per whole frame (for whole-frame statistics)."""
    reader = stack_reader(frameset)
    _, ny, nx = reader.shape
    return _from_reader(reader, (1, ny, nx))


def prepared_stack(frameset: FrameSet, rows: int | None = None) -> xr.DataArray:
    """The lazy prepared stack as an ``xarray.DataArray`` (frame, y, x) in electrons.

    Coordinates per frame: ``file``, ``mjd_obs``, ``exptime``; the arm and instrument are
    attributes. Nothing is read until the array is computed.
    """
    import xarray as xr

    kw = frameset.spec.keywords
    frames = frameset.frames
    return xr.DataArray(
        strip_stack(frameset, rows),
        dims=("frame", "y", "x"),
        coords={
            "file": ("frame", [f.name for f in frames]),
            "mjd_obs": ("frame", [float(f.get(kw.mjd_obs)) for f in frames]),
            "exptime": ("frame", [float(f.get(kw.exptime)) for f in frames]),
            "arm": ("frame", [frameset.arm] * len(frames)),
        },
        name="electrons",
        attrs={
            "instrument": frameset.instrument,
            "arm": frameset.arm,
            "gain": frameset.gain,
            "ron": frameset.ron,
            "units": "electron",
        },
    )
