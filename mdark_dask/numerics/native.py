"""Load the compiled kernels (``mdark_dask/numerics/_native/*.c``) and call them through ctypes.

Why C through ctypes rather than numba: the kernels were numba functions, and a numba
process pays 0.35-0.4 s of interpreter time (numba's import, its first-call initialisation
of LLVM and its registries, the cache loads) and ~100 MB of memory before the first
frame is clipped, on the single thread that a command's start-up is, in every command
and every cluster worker. A shared library loads in a millisecond and a few hundred
kilobytes. ctypes releases the GIL for the duration of every call, so the Dask threads
clip in parallel as before.

The C functions take raw pointers, sizes and strides; the wrappers in each kernel module
check dtypes, shapes and contiguity before calling (a wrong pointer is a crash, not an
exception).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mdark_dask.errors import MdarkError

HERE = Path(__file__).resolve().parent / "_native"

#: ctypes argument types, by the letters used in :func:`bind` signatures.
CTYPES: dict[str, Any] = {
    "p": ctypes.c_void_p,  # a pointer (``array.ctypes.data``)
    "n": ctypes.c_int64,  # a size, index or stride (int64_t)
    "i": ctypes.c_int32,  # a small int or flag (int32_t)
    "d": ctypes.c_double,
    "f": ctypes.c_float,
    "v": None,  # the return type void
}


class NativeError(MdarkError):
    """The compiled kernels are missing (the package was not built) or do not load."""


@functools.cache
def library(name: str) -> ctypes.CDLL:
    """The shared library built from ``_native/<name>.c``, loaded once per process."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = HERE / f"{name}{suffix}"
        if path.exists():
            try:
                return ctypes.CDLL(str(path))
            except OSError as exc:
                raise NativeError(f"cannot load compiled kernels {path.name}: {exc}") from None
    raise NativeError(
        f"compiled kernels '{name}' are missing: reinstall mdark-dask with a C compiler "
        "(pip install -e . builds them)"
    )


@functools.cache
def bind(name: str, function: str, signature: str) -> Any:
    """The C function ``function`` of library ``name``, typed by ``signature``:
    return letter, then argument letters (:data:`CTYPES`), e.g. ``"v:ppnd"``.

    Bound once per process (the kernel modules call this on every use): ctypes keeps one
    function object per name, so binding it anew would only retype the same object.
    """
    restype, _, args = signature.partition(":")
    fn = getattr(library(name), function)
    fn.restype = CTYPES[restype]
    fn.argtypes = [CTYPES[c] for c in args]
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
