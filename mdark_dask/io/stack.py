"""Lazy prepared stacks: raw frame paths to a dask-backed ``(frame, y, x)`` float32 array.

The chunking policy is :mod:`mdark_dask.plan.sizing`'s; the reader never decides
chunks. Stacks are chunked in full-width row strips holding every frame of the strip, so
the per-pixel stack clip needs no shuffle. The per-frame view (one chunk per whole
frame) serves the whole-frame level statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mdark_dask.io.fits import FrameReader, StackReader
from mdark_dask.plan.frameset import FrameSet
from mdark_dask.plan.sizing import strip_rows

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr


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

    Coordinates per frame: ``file``, ``mjd_obs``, ``exptime``, ``arm``; the instrument,
    arm, gain and read noise are attributes. Nothing is read until the array is computed.
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
