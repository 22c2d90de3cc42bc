"""Tools enforce taste: ruff and mypy --strict stay clean (config in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (it is in the 'test' extra)")
    return found


def test_ruff_clean() -> None:
    run = subprocess.run(
        [_tool("ruff"), "check", "mdark_dask", "tests", "benchmarks", "notebooks", "conftest.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]


def test_ruff_format_clean() -> None:
    run = subprocess.run(
        [_tool("ruff"), "format", "--check", "mdark_dask", "tests", "benchmarks", "conftest.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-1000:]


@pytest.mark.slow
def test_mypy_strict_clean() -> None:
    run = subprocess.run(
        [_tool("mypy")], cwd=ROOT, capture_output=True, text=True, check=False
    )  # config: [tool.mypy] strict, files = mdark_dask
    assert run.returncode == 0, run.stdout[-3000:]
