"""Build the compiled kernels: one shared library per ``mdark_dask/numerics/_native/*.c`` file.

The kernels are plain C functions loaded with :mod:`ctypes` (``mdark_dask.native``), not
Python extension modules: ctypes releases the GIL around every call, and no Python C API
is involved. setuptools builds them as extensions only to get the platform's compiler,
flags and file names. Everything else about the package is in ``pyproject.toml``.

Flags: ``-O3`` with ``-ffp-contract=off`` (never fuse ``a * b + c`` into one rounding: the
kernels must give numpy's and soxspipe's bits) and no fast-math of any kind. Hot loops
carry ``MD_CLONES`` (``_native/native.h``): GCC builds them for AVX-512, AVX2 and the
baseline, and picks one when the library loads.

``MDARK_NATIVE_ONLY=name1,name2 python setup.py build_ext --inplace`` rebuilds just those.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SOURCES = sorted((HERE / "mdark_dask" / "numerics" / "_native").glob("*.c"))
ONLY = {n for n in os.environ.get("MDARK_NATIVE_ONLY", "").split(",") if n}

if sys.platform == "win32":
    FLAGS = ["/O2", "/fp:precise"]
else:
    FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c11", "-Wall"]


class BuildPy(build_py):
    """Ship ``configs/`` inside the package (``mdark_dask/configs``) in wheels."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "mdark_dask" / "configs"
        target.mkdir(parents=True, exist_ok=True)
        for path in (HERE / "configs").glob("*.yaml"):
            shutil.copy(path, target / path.name)


setup(
    ext_modules=[
        Extension(
            f"mdark_dask.numerics._native.{src.stem}",
            sources=[str(src.relative_to(HERE))],
            include_dirs=["mdark_dask/numerics/_native"],
            depends=["mdark_dask/numerics/_native/native.h"],
            extra_compile_args=FLAGS,
        )
        for src in SOURCES
        if not ONLY or src.stem in ONLY
    ],
    cmdclass={"build_py": BuildPy},
)
