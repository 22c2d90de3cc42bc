"""The compiled-kernel loader (:mod:`mdark_dask.numerics.native`): every library the recipe needs
is built and loads; a missing one is one clear error, not a traceback from ctypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mdark_dask.numerics import native

LIBRARIES = sorted(p.stem for p in native.HERE.glob("*.c"))


def test_every_c_source_has_its_built_library() -> None:
    assert "prepare" in LIBRARIES
    for name in LIBRARIES:
        assert native.library(name) is native.library(name)  # loaded once per process


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
    import importlib.machinery

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / f"broken{suffix}").write_bytes(b"not a shared library")
    monkeypatch.setattr(native, "HERE", tmp_path)
    with pytest.raises(native.NativeError, match="cannot load compiled kernels broken"):
        native.library("broken")
    native.library.cache_clear()


def test_bind_types_the_function_by_its_signature() -> None:
    fn = native.bind("prepare", "prepare_i16", "v:pnnnidd" + "pnn")
    words = np.array([1, -2, 3, 4], dtype=np.int16)
    out = np.empty((2, 2), dtype=np.float32)
    fn(words.ctypes.data, 0, 2, 1, 0, 0.0, 2.0, out.ctypes.data, 2, 2)
    assert out.tolist() == [[2.0, -4.0], [6.0, 8.0]]
    assert fn.restype is None


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
