"""The notebooks run top to bottom on small simulated data."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _make_notebooks() -> ModuleType:
    """``notebooks/make_notebooks.py``, imported from its path."""
    spec = importlib.util.spec_from_file_location(
        "make_notebooks", NOTEBOOK_DIR / "make_notebooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client's datetime use
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "strip outputs"
    scratch = tmp_path / "tmp"  # the kernel's temporary directory
    scratch.mkdir()
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute(env={**os.environ, "TMPDIR": str(scratch)})
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    # the notebook removes the frames and products it wrote into the temporary directory
    assert sorted(p.name for p in scratch.iterdir() if p.name.startswith("mdark-")) == []


def test_there_are_three_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01-quickstart.ipynb",
        "02-clipping.ipynb",
        "03-cluster.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_what_make_notebooks_writes(path: Path) -> None:
    """Edit ``make_notebooks.py`` and rerun it: the notebooks are never edited by hand."""
    built = nbformat.writes(_make_notebooks().build(path.name))
    assert path.read_text(encoding="utf-8") == built + "\n", "rerun notebooks/make_notebooks.py"
