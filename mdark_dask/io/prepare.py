"""The reader's compiled kernel: stored FITS words to prepared float32 electrons.

Kept apart from :mod:`mdark_dask.io.fits` (which imports astropy) so that the kernel, the
first thing every run needs, does not wait for astropy's import. The loop itself is C
(``numerics/_native/prepare.c``), called through :mod:`mdark_dask.numerics.native` with the
GIL released.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from mdark_dask.numerics.native import bind

#: The C function per stored word type (native byte order; ``swap`` reverses it).
_FUNCTIONS = {
    "u1": "prepare_u8",
    "i1": "prepare_i8",
    "u2": "prepare_u16",
    "i2": "prepare_i16",
    "u4": "prepare_u32",
    "i4": "prepare_i32",
    "u8": "prepare_u64",
    "i8": "prepare_i64",
    "f4": "prepare_f32",
    "f8": "prepare_f64",
}


def prepare_window(
    flat: npt.NDArray[Any],
    start: int,
    row_step: int,
    col_step: int,
    swap: bool,
    offset: float,
    gain: float,
    out: npt.NDArray[np.float32],
) -> None:
    """Fill ``out`` with the prepared window of a raw image, in one pass.

    Pixel ``(i, j)`` of the window is ``flat[start + i * row_step + j * col_step]`` of the
    raw image flattened in C order (steps in elements, negative when rotated), stored with
    its bytes swapped when ``swap``. Its value is ``float32((float64(word) + offset) *
    gain)`` (the offset added only when non-zero, which keeps a stored -0.0 negative):
    the same bits as converting to float64 with numpy, multiplying by the gain and
    rounding to float32, as soxspipe prepares a raw frame.

    Raises
    ------
    ValueError
        ``flat`` is not a one-dimensional contiguous array of a FITS word type in native
        order, ``out`` not a 2-D float32 array, or the window reaches outside ``flat``.
    """
    code = f"{flat.dtype.kind}{flat.dtype.itemsize}"
    if code not in _FUNCTIONS or not flat.dtype.isnative:
        raise ValueError(f"cannot prepare stored words of type {flat.dtype}")
    if flat.ndim != 1 or not flat.flags.c_contiguous:
        raise ValueError("the stored words must be one contiguous array")
    if out.dtype != np.float32 or out.ndim != 2:
        raise ValueError(f"out is {out.dtype} with {out.ndim} axes, not 2-D float32")
    ny, nx = out.shape
    if ny == 0 or nx == 0:
        return
    corners = [start + i * row_step + j * col_step for i in (0, ny - 1) for j in (0, nx - 1)]
    if min(corners) < 0 or max(corners) >= flat.size:
        raise ValueError("the window reaches outside the stored image")
    target = out if out.flags.c_contiguous else np.empty((ny, nx), dtype=np.float32)
    bind(_FUNCTIONS[code])(
        flat.ctypes.data,
        start,
        row_step,
        col_step,
        int(bool(swap)),
        float(offset),
        float(gain),
        target.ctypes.data,
        ny,
        nx,
    )
    if target is not out:
        out[...] = target
