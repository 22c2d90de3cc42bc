"""Build the compiled kernels: one plain shared library per ``mdark_dask/numerics/_native/*.c``.

The kernels are plain C functions loaded with :mod:`ctypes` (``mdark_dask.numerics.native``),
not Python extension modules: no Python C API is involved. setuptools' ``build_ext`` is
used only for the platform's compiler, flags and linker; :class:`BuildLibraries` builds each
``_native/<name>.c`` into ``_native/<name>.so`` (``<name>.dll`` on Windows), a file name
without a CPython ABI tag, exporting no module init function and not linked with
libpython. Nothing in the wheel depends on the Python version, so :class:`BdistWheel`
tags it ``py3-none-<platform>``: one wheel serves every supported CPython.

Flags: ``-O3`` with ``-ffp-contract=off`` (never fuse ``a * b + c`` into one rounding: the
kernels must give numpy's and soxspipe's bits) and no fast-math of any kind. Hot loops
carry ``MD_CLONES`` (``_native/native.h``): GCC builds them for AVX-512, AVX2 and the
baseline, and picks one when the library loads. ``-Werror=missing-prototypes`` makes a
function exported without a prototype in ``native.h`` a build error, so that header
declares every function ``mdark_dask.numerics.native.FUNCTIONS`` describes.

A C compiler is required: :class:`BuildLibraries` first builds a one-line library, and
without a working compiler the build stops with one line that says so.

``pip install -e .`` builds every library in place. ``MDARK_NATIVE_ONLY=name1,name2 python
setup.py build_ext --inplace`` rebuilds just those, with the setuptools ``pyproject.toml``
asks for (77 or newer) installed. Everything else about the package is in
``pyproject.toml``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.errors import CCompilerError, ExecError, PlatformError

HERE = Path(__file__).resolve().parent
NATIVE = Path("mdark_dask", "numerics", "_native")
SOURCES = sorted((HERE / NATIVE).glob("*.c"))
HEADERS = sorted(str(p.relative_to(HERE)) for p in (HERE / NATIVE).glob("*.h"))
ONLY = {n for n in os.environ.get("MDARK_NATIVE_ONLY", "").split(",") if n}

#: The libraries' file name suffix (``mdark_dask.numerics.native.SUFFIX`` loads the same).
SUFFIX = ".dll" if sys.platform == "win32" else ".so"

if sys.platform == "win32":
    FLAGS = ["/O2", "/fp:precise"]
else:
    FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c11", "-Wall"]
    FLAGS += ["-Werror=missing-prototypes"]

NO_COMPILER = (
    "mdark-dask needs a C compiler (gcc or clang) to build its kernels: "
    "install one, e.g. apt-get install gcc"
)


class BuildLibraries(build_ext):
    """``build_ext`` making plain shared libraries of the extensions, after checking that
    the C compiler works."""

    def get_ext_filename(self, fullname: str) -> str:
        """``<package path>/<name>.so`` (``.dll``): no CPython ABI tag in the name."""
        return os.path.join(*fullname.split(".")) + SUFFIX

    def get_export_symbols(self, ext: Extension) -> list[str]:
        """The symbols the C exports itself (``MD_EXPORT``): no ``PyInit_<name>``."""
        return list(ext.export_symbols)

    def get_libraries(self, ext: Extension) -> list[str]:
        """The extension's own libraries only: never libpython."""
        return list(ext.libraries)

    def build_extensions(self) -> None:
        self.check_compiler()
        super().build_extensions()

    def check_compiler(self) -> None:
        """Compile and link a one-function library; stop the build with one clear line
        when that fails (no compiler, or one that cannot build a shared library).

        Raises
        ------
        setuptools.errors.PlatformError
            The compiler does not work.
        """
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp, "probe.c")
            source.write_text("int md_probe(void);\nint md_probe(void) { return 0; }\n")
            try:
                objects = self.compiler.compile([str(source)], output_dir=tmp)
                self.compiler.link_shared_object(objects, str(Path(tmp, f"probe{SUFFIX}")))
            except (CCompilerError, ExecError, PlatformError, OSError):
                raise PlatformError(NO_COMPILER) from None


class BdistWheel(bdist_wheel):
    """A platform wheel for any CPython 3: ``py3-none-<platform>``."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


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
            ".".join((*NATIVE.parts, src.stem)),
            sources=[str(src.relative_to(HERE))],
            include_dirs=[str(NATIVE)],
            depends=HEADERS,
            extra_compile_args=FLAGS,
        )
        for src in SOURCES
        if not ONLY or src.stem in ONLY
    ],
    cmdclass={"build_ext": BuildLibraries, "bdist_wheel": BdistWheel, "build_py": BuildPy},
)
