"""Load the compiled kernels (``mdark_dask/numerics/_native/*.c``) and call them through ctypes.

Each ``_native/<name>.c`` is built by ``setup.py`` into a plain shared library,
``_native/<name>.so`` (``<name>.dll`` on Windows), named after the Python module that
calls it: :mod:`mdark_dask.numerics.levelclip` calls the library ``levelclip``,
:mod:`mdark_dask.io.prepare` the library ``prepare``, and so on. No Python C API is
involved, so one build serves every CPython version.

Why C through ctypes: a shared library is loaded at once and costs little memory, where
a JIT compiler would cost every command and every cluster worker its import and its
first-call compilation before the first frame is clipped. ctypes releases the GIL for the
duration of every call, so the Dask threads run the kernels in parallel.

:data:`FUNCTIONS` is the one description of the C functions on the Python side: for each
function its library and its ctypes types. The prototypes it must match are those of
``_native/native.h`` (``tests/test_native.py`` compares the two, type for type). The C
functions take raw pointers, sizes and strides; the wrappers in each kernel module check
dtypes, shapes and contiguity before calling (a wrong pointer is a crash, not an
exception).
"""

from __future__ import annotations

import ctypes
import functools
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from mdark_dask.errors import MdarkError

HERE = Path(__file__).resolve().parent / "_native"

#: The file name suffix of the built libraries (``setup.py`` gives them the same one).
SUFFIX = ".dll" if sys.platform == "win32" else ".so"

#: The ctypes types of the C parameter and return types of ``native.h``. Any pointer is
#: passed as ``c_void_p``: an array's ``.ctypes.data``, a ctypes array, ``ctypes.byref``
#: of a ctypes value, or ``None`` for NULL.
POINTER = ctypes.c_void_p
INT64 = ctypes.c_int64  # int64_t: sizes, indices, strides, counts
INT32 = ctypes.c_int32  # int32_t: flags and status codes
DOUBLE = ctypes.c_double
FLOAT = ctypes.c_float


class Signature(NamedTuple):
    """Where a C function is and how ctypes calls it."""

    #: The library (``_native/<library>.c``) that defines the function.
    library: str
    #: The ctypes return type; ``None`` for ``void``.
    restype: Any
    #: The ctypes types of the parameters, in order.
    argtypes: tuple[Any, ...]


#: The parameters shared by the reader's ``prepare_<word type>`` functions: ``flat, start,
#: row_step, col_step, swap, offset, gain, out, ny, nx``.
_PREPARE = (POINTER, INT64, INT64, INT64, INT32, DOUBLE, DOUBLE, POINTER, INT64, INT64)
#: The parameters of the level clips: ``x, size, sigma, maxiters, soxspipe, out``.
_LEVEL_CLIP = (POINTER, INT64, DOUBLE, INT64, INT32, POINTER)

#: Every exported C function of ``_native/native.h``: its :class:`Signature`.
FUNCTIONS: dict[str, Signature] = {
    # masked.c: numpy 2.1's sums
    "md_pairwise_f32": Signature("masked", FLOAT, (POINTER, INT64)),
    "md_pairwise_f64": Signature("masked", DOUBLE, (POINTER, INT64)),
    "md_sum_f32": Signature("masked", FLOAT, (POINTER, INT64)),
    "md_sum_f64": Signature("masked", DOUBLE, (POINTER, INT64)),
    "md_masked_mean_std": Signature("masked", INT32, (POINTER, POINTER, INT64, POINTER)),
    # levelclip.c: the whole-frame mean/std clip
    "md_clip_bounds": Signature("levelclip", INT32, _LEVEL_CLIP),
    "md_level_bounds": Signature("levelclip", INT32, _LEVEL_CLIP),
    "md_level_stats": Signature("levelclip", INT32, _LEVEL_CLIP),
    "md_float32_bounds": Signature("levelclip", None, (DOUBLE, DOUBLE, POINTER)),
    "md_kept_sum": Signature("levelclip", INT64, (POINTER, INT64, FLOAT, FLOAT, INT32, POINTER)),
    "md_kept_squares": Signature(
        "levelclip", INT32, (POINTER, INT64, FLOAT, FLOAT, DOUBLE, INT32, POINTER)
    ),
    # stackclip.c: the per-pixel stack clip
    "stackclip_median_sorted": Signature("stackclip", DOUBLE, (POINTER, INT64, INT64)),
    "stackclip_kth_deviation": Signature(
        "stackclip", DOUBLE, (POINTER, INT64, INT64, DOUBLE, INT64)
    ),
    "stackclip_mad_std": Signature("stackclip", DOUBLE, (POINTER, INT64, INT64, DOUBLE)),
    "stackclip_clip_bounds_sorted": Signature(
        "stackclip", None, (POINTER, INT64, DOUBLE, INT64, POINTER)
    ),
    "stackclip_batcher_network": Signature("stackclip", INT64, (INT64, POINTER)),
    "stackclip_sort_columns": Signature("stackclip", None, (POINTER, INT64, POINTER, INT64, INT64)),
    "stackclip_kth_deviation_tile": Signature(
        "stackclip", None, (POINTER, INT64, INT64, INT64, POINTER, INT64, POINTER)
    ),
    "stackclip_bounds_tile": Signature(
        "stackclip",
        None,
        (POINTER, INT64, INT64, INT64, DOUBLE, POINTER, POINTER, POINTER, POINTER),
    ),
    "stackclip_stack_strip": Signature(
        "stackclip",
        INT32,
        (
            *(POINTER, INT64, INT64, INT64),  # e, nf, ny, nx
            *(POINTER, POINTER, POINTER),  # level_lo, level_hi, level_mean
            *(FLOAT, DOUBLE, INT64),  # ron2, sigma, maxiters
            *(POINTER, POINTER, POINTER, POINTER, POINTER),  # flux, errs, mask, noise, noise_peel
            *(DOUBLE, DOUBLE, INT64),  # ron, peel_sigma, width
        ),
    ),
    # hotpix.c: order statistics and the pixel map
    "middle_pair_f32": Signature(
        "hotpix", INT64, (POINTER, INT64, POINTER, DOUBLE, DOUBLE, INT64, POINTER, POINTER)
    ),
    "middle_pair_f64": Signature(
        "hotpix", INT64, (POINTER, INT64, POINTER, DOUBLE, DOUBLE, INT64, POINTER, POINTER)
    ),
    "subtract_f32": Signature("hotpix", None, (POINTER, INT64, DOUBLE, POINTER)),
    "subtract_f64": Signature("hotpix", None, (POINTER, INT64, DOUBLE, POINTER)),
    "flags_f32": Signature(
        "hotpix", None, (POINTER, DOUBLE, POINTER, POINTER, DOUBLE, DOUBLE, DOUBLE, POINTER, INT64)
    ),
    "flags_f64": Signature(
        "hotpix", None, (POINTER, DOUBLE, POINTER, POINTER, DOUBLE, DOUBLE, DOUBLE, POINTER, INT64)
    ),
    # prepare.c: stored FITS words to float32 electrons, one function per word type
    "prepare_u8": Signature("prepare", None, _PREPARE),
    "prepare_i8": Signature("prepare", None, _PREPARE),
    "prepare_u16": Signature("prepare", None, _PREPARE),
    "prepare_i16": Signature("prepare", None, _PREPARE),
    "prepare_u32": Signature("prepare", None, _PREPARE),
    "prepare_i32": Signature("prepare", None, _PREPARE),
    "prepare_u64": Signature("prepare", None, _PREPARE),
    "prepare_i64": Signature("prepare", None, _PREPARE),
    "prepare_f32": Signature("prepare", None, _PREPARE),
    "prepare_f64": Signature("prepare", None, _PREPARE),
    # figures.c: the QC plots' counting passes
    "finite_range_f32": Signature("figures", None, (POINTER, INT64, POINTER)),
    "finite_range_f64": Signature("figures", None, (POINTER, INT64, POINTER)),
    "bin_counts_f32": Signature(
        "figures",
        None,
        (POINTER, INT64, DOUBLE, POINTER, INT64, INT64, INT64, INT32, INT32, POINTER),
    ),
    "bin_counts_f64": Signature(
        "figures",
        None,
        (POINTER, INT64, DOUBLE, POINTER, INT64, INT64, INT64, INT32, INT32, POINTER),
    ),
    "octave_counts": Signature("figures", None, (POINTER, INT64, POINTER)),
}


class NativeError(MdarkError):
    """The compiled kernels are missing (the package was not built) or do not load."""


@functools.cache
def library(name: str) -> ctypes.CDLL:
    """The shared library built from ``_native/<name>.c``, loaded once per process.

    Raises
    ------
    NativeError
        The library was not built, or does not load.
    """
    path = HERE / f"{name}{SUFFIX}"
    if not path.exists():
        raise NativeError(
            f"compiled kernels '{name}' are missing: reinstall mdark-dask with a C compiler "
            "(pip install -e . builds them)"
        )
    try:
        return ctypes.CDLL(str(path))
    except OSError as exc:
        raise NativeError(f"cannot load compiled kernels {path.name}: {exc}") from None


@functools.cache
def bind(name: str) -> Any:
    """The C function ``name``, from its library and typed, both by :data:`FUNCTIONS`.

    Bound once per process (the kernel modules call this on every use): ctypes keeps one
    function object per name, so binding it anew would only retype the same object.

    Raises
    ------
    KeyError
        ``name`` is not in :data:`FUNCTIONS`.
    NativeError
        Its library is missing or does not load.
    """
    signature = FUNCTIONS[name]
    fn = getattr(library(signature.library), name)
    fn.restype = signature.restype
    fn.argtypes = list(signature.argtypes)
    return fn


def float_suffix(v: npt.NDArray[Any]) -> str:
    """``"f32"`` or ``"f64"``: the suffix of the C function for ``v``, which must be one
    flat contiguous float32 or float64 array in native order (the C reads raw memory: a
    wrong array there is a crash, not an exception).

    Raises
    ------
    ValueError
        ``v`` is not such an array.
    """
    if v.ndim != 1 or not v.flags.c_contiguous or not v.dtype.isnative:
        raise ValueError("the values must be one flat contiguous array in native order")
    if v.dtype == np.float32:
        return "f32"
    if v.dtype == np.float64:
        return "f64"
    raise ValueError(f"no compiled kernel for values of type {v.dtype}")
