"""The compiled-kernel loader (:mod:`mdark_dask.numerics.native`): every library the recipe needs
is built and loads; a missing one is one clear error, not a traceback from ctypes; and the
one table of C signatures, :data:`~mdark_dask.numerics.native.FUNCTIONS`, says exactly what
the prototypes of ``_native/native.h`` say (a wrong type there is a crash, not an error)."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from mdark_dask.numerics import native

LIBRARIES = sorted(p.stem for p in native.HERE.glob("*.c"))

#: The ctypes type of each C type the prototypes may use (a pointer is ``*``); any other
#: C type (``int``, ``long``, ``size_t``: widths that vary by platform) fails the check.
CTYPES: dict[str, Any] = {
    "*": ctypes.c_void_p,
    "int64_t": ctypes.c_int64,
    "int32_t": ctypes.c_int32,
    "double": ctypes.c_double,
    "float": ctypes.c_float,
    "void": None,
}


class Prototype(NamedTuple):
    library: str
    restype: str
    params: tuple[str, ...]


def c_type(declaration: str) -> str:
    """The C type of a parameter or return declaration for :data:`CTYPES`: ``"*"`` for
    any pointer, else the type without qualifiers (``"const float *restrict v"`` is
    ``"*"``, ``"int64_t n"`` is ``"int64_t"``)."""
    if "*" in declaration:
        return "*"
    words = [w for w in declaration.split() if w not in ("const", "restrict", "volatile")]
    return words[0]


def parse_prototypes(header: str) -> dict[str, Prototype]:
    """The ``MD_EXPORT`` prototypes of ``header`` by name, each in the library of the
    ``/* library: <name> ...`` comment that opens its section."""
    out: dict[str, Prototype] = {}
    for section in header.split("/* library: ")[1:]:
        library = section.split()[0]
        code = re.sub(r"/\*.*?\*/", " ", section, flags=re.DOTALL)
        for match in re.finditer(r"MD_EXPORT\s+([^;(]*?)\b(\w+)\s*\(([^)]*)\)\s*;", code):
            restype, name, params = match.groups()
            args = [p for p in params.split(",") if p.strip() not in ("", "void")]
            assert name not in out, f"{name} is declared twice"
            out[name] = Prototype(library, c_type(restype), tuple(c_type(p) for p in args))
    return out


PROTOTYPES = parse_prototypes((native.HERE / "native.h").read_text(encoding="utf-8"))


def test_the_parser_reads_a_prototype() -> None:
    header = """/* library: demo (x.py) */
    /* a comment, MD_EXPORT void nothing(void); */
    MD_EXPORT int64_t f(const float *restrict v, int64_t n,
                        double x, int32_t flag);
    MD_EXPORT void g(void);"""
    assert parse_prototypes(header) == {
        "f": Prototype("demo", "int64_t", ("*", "int64_t", "double", "int32_t")),
        "g": Prototype("demo", "void", ()),
    }


def test_every_prototype_has_its_table_entry_and_no_more() -> None:
    assert len(PROTOTYPES) > 40  # the parser found the header's prototypes
    assert sorted(PROTOTYPES) == sorted(native.FUNCTIONS)


@pytest.mark.parametrize("name", sorted(PROTOTYPES))
def test_the_table_entry_is_the_prototype(name: str) -> None:
    proto, entry = PROTOTYPES[name], native.FUNCTIONS[name]
    assert entry.library == proto.library
    assert entry.restype is CTYPES[proto.restype]
    assert proto.restype != "*"  # a returned pointer would need c_void_p's int handling
    assert len(entry.argtypes) == len(proto.params)
    for position, (argtype, param) in enumerate(zip(entry.argtypes, proto.params, strict=True)):
        assert argtype is CTYPES[param], f"{name}: parameter {position} is {param}"
    assert hasattr(native.library(entry.library), name)


def test_every_library_has_its_c_source_and_its_header_section() -> None:
    assert sorted({p.library for p in PROTOTYPES.values()}) == LIBRARIES


def test_every_c_source_has_its_built_library() -> None:
    assert "prepare" in LIBRARIES
    for name in LIBRARIES:
        assert native.library(name) is native.library(name)  # loaded once per process
        assert (native.HERE / f"{name}{native.SUFFIX}").exists()


def test_a_missing_library_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    native.library.cache_clear()
    monkeypatch.setattr(native, "HERE", tmp_path)
    try:
        with pytest.raises(native.NativeError, match="compiled kernels 'prepare' are missing"):
            native.library("prepare")
    finally:
        monkeypatch.undo()
        native.library.cache_clear()


def test_a_library_that_does_not_load_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / f"broken{native.SUFFIX}").write_bytes(b"not a shared library")
    monkeypatch.setattr(native, "HERE", tmp_path)
    with pytest.raises(native.NativeError, match="cannot load compiled kernels broken"):
        native.library("broken")
    native.library.cache_clear()


def test_bind_types_the_function_by_its_table_entry() -> None:
    fn = native.bind("prepare_i16")
    assert native.bind("prepare_i16") is fn  # bound once per process
    words = np.array([1, -2, 3, 4], dtype=np.int16)
    out = np.empty((2, 2), dtype=np.float32)
    fn(words.ctypes.data, 0, 2, 1, 0, 0.0, 2.0, out.ctypes.data, 2, 2)
    assert out.tolist() == [[2.0, -4.0], [6.0, 8.0]]
    assert fn.restype is None
    assert tuple(fn.argtypes) == native.FUNCTIONS["prepare_i16"].argtypes
    with pytest.raises(KeyError):
        native.bind("no_such_function")


def test_float_suffix_names_the_c_function_and_refuses_what_c_cannot_read() -> None:
    assert native.float_suffix(np.zeros(3, np.float32)) == "f32"
    assert native.float_suffix(np.zeros(0, np.float64)) == "f64"
    for bad in (
        np.zeros(3, np.int16),
        np.zeros((2, 2), np.float32),
        np.zeros(6, np.float32)[::2],
        np.zeros(3, ">f8"),
    ):
        with pytest.raises(ValueError):
            native.float_suffix(bad)
