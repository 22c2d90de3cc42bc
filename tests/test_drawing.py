"""The QC plots drawn by the console script (in its final task's threads) are the PNG bytes
the API draws in this process: drawing depends on nothing but the figure.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.commands import EXE


@pytest.mark.parametrize("command", ["mdark", "demo"])
def test_the_command_draws_what_the_api_draws(command: str, tmp_path: Path) -> None:
    """End to end through the console script and in this process: the same PNG bytes."""
    from mdark_dask.cli import main
    from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof

    if command == "demo":
        args = ["demo", "--frames", "3"]
        done = subprocess.run([EXE, *args, "-o", str(tmp_path / "a")], capture_output=True)
        assert done.returncode == 0, done.stderr
        assert main([*args, "-o", str(tmp_path / "b")]) == 0
    else:
        spec = DarkSetSpec("soxs", "VIS", n_frames=3, exptime=600.0)
        sof = write_sof(tmp_path / "set.sof", simulate_set(spec, tmp_path / "raw"))
        done = subprocess.run([EXE, "mdark", str(sof), "-o", str(tmp_path / "a")], timeout=300)
        assert done.returncode == 0
        assert main(["mdark", str(sof), "-o", str(tmp_path / "b")]) == 0
    ours = sorted((tmp_path / "a" / "qc" / "soxs_mdark").glob("*.png"))
    assert len(ours) >= 5
    for png in ours:
        other = tmp_path / "b" / "qc" / "soxs_mdark" / png.name
        assert png.read_bytes() == other.read_bytes(), png.name
