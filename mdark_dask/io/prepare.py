"""The reader's compiled kernel: stored FITS words to prepared float32 electrons.

Apart from :mod:`mdark_dask.io.fits` (which imports astropy) so that loading the kernel,
the first thing every run needs compiled, does not wait for astropy's import.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from numba import types as nbtypes
from numba.extending import intrinsic
from numba.np.numpy_support import as_dtype

# rows of the prepared window converted per band when the window's rows run across the
# raw rows (odd rotations): the band's output rows stay in the cache while its columns
# are read along the raw rows
_TRANSPOSE_BAND = 512


def _byteswap_typer(typingctx: Any, value: Any) -> Any:  # pragma: no cover
    """Typing and code of :data:`_byteswapped`: the scalar ``value`` with its bytes in
    reverse order, same type (single bytes unchanged).

    Floats are swapped through their bits (never through a float conversion), so every
    bit pattern, NaN payloads included, comes out as numpy's byte swap gives it.
    """
    if not isinstance(value, nbtypes.Integer | nbtypes.Float):
        return None
    width = 8 * as_dtype(value).itemsize
    is_float = isinstance(value, nbtypes.Float)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        (word,) = args
        if width == 8:
            return word
        if is_float:
            bits = context.get_value_type(getattr(nbtypes, f"uint{width}"))
            return builder.bitcast(builder.bswap(builder.bitcast(word, bits)), word.type)
        return builder.bswap(word)

    return value(value), codegen


#: ``_byteswapped(x)`` in compiled code: ``x`` with its bytes reversed (LLVM ``bswap``).
_byteswapped: Any = intrinsic(_byteswap_typer)


@numba.njit(cache=True, nogil=True, inline="always")
def _electron(word: Any, swap: bool, offset: float, gain: float) -> np.float32:  # pragma: no cover
    """``float32((float64(value) + offset) * gain)`` of one stored value (ref. §3.4)."""
    if swap:
        word = _byteswapped(word)
    value = np.float64(word)
    if offset != 0.0:
        # exact: the pseudo-unsigned offset of a 16- or 32-bit integer; skipped when zero,
        # which keeps a stored -0.0 negative
        value += offset
    return np.float32(value * gain)


@numba.njit(cache=True, nogil=True)
def prepare_window(
    flat: npt.NDArray[Any],
    start: int,
    row_step: int,
    col_step: int,
    swap: bool,
    offset: float,
    gain: float,
    out: npt.NDArray[np.float32],
) -> None:  # pragma: no cover
    """Fill ``out`` with the prepared window of a raw image, in one pass.

    Pixel ``(i, j)`` of the window is ``flat[start + i * row_step + j * col_step]`` of the
    raw image flattened in C order (steps in elements, negative when rotated), stored with
    its bytes swapped when ``swap``. Its value is :func:`_electron`: exactly the old
    ``float32(float64(raw + offset) * gain)`` of three numpy passes through a float64
    buffer. The loops follow memory: along the window's rows when they run along the raw
    rows (even rotations), else in bands of window rows read down the raw rows.
    """
    ny, nx = out.shape
    if col_step == 1 and flat.itemsize <= 2:
        # rows contiguous in memory (no rotation), 8/16-bit words: a loop LLVM vectorises
        for i in range(ny):
            base = start + i * row_step
            for j in range(nx):
                out[i, j] = _electron(flat[base + j], swap, offset, gain)
    elif abs(col_step) <= abs(row_step):
        for i in range(ny):
            base = start + i * row_step
            for j in range(nx):
                out[i, j] = _electron(flat[base + j * col_step], swap, offset, gain)
    else:
        for i0 in range(0, ny, _TRANSPOSE_BAND):
            i1 = min(ny, i0 + _TRANSPOSE_BAND)
            for j in range(nx):
                base = start + j * col_step
                for i in range(i0, i1):
                    out[i, j] = _electron(flat[base + i * row_step], swap, offset, gain)
