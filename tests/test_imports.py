"""Start-up stays cheap: what each entry point imports (checked in fresh interpreters).

The heavy libraries are imported only where they are needed: ``dask.array`` and xarray
(which bring pandas and SciPy) by the array views of the API, distributed by the night
command, matplotlib by the history page (each master's QC plots are drawn with Pillow).
Timings are the benchmarks' business; these tests pin the structure that keeps them low.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# (SciPy's root package is light and astropy.units imports it; its subpackages are not)
HEAVY = (
    "dask.array",
    "xarray",
    "pandas",
    "distributed",
    "matplotlib",
    "scipy.sparse",
    "scipy.fft",
    "scipy.linalg",
)


def loaded_after(code: str) -> set[str]:
    """Which of :data:`HEAVY` are in ``sys.modules`` after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(run.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import mdark_dask",
        "import mdark_dask.cli",
        "import mdark_dask.api",
        "import mdark_dask.recipe, mdark_dask.scheduler",
        "import mdark_dask.app, mdark_dask.plan.product, mdark_dask.plan.sets",
        # the recipe's compiled kernels, called once
        "import numpy as np\n"
        "from mdark_dask.numerics import steps\n"
        "frame = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)\n"
        "steps.frame_level(frame, 3.0, 2, 'accurate')\n"
        "levels = np.zeros((5, 4))\nlevels[:, 1] = 2.0\n"
        "steps.stack_strip(np.stack([frame] * 5), levels, 3.0, 3.0, 2)",
    ],
)
def test_importing_pulls_in_nothing_heavy(code: str) -> None:
    assert loaded_after(code) == set()


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import contextlib, io\n"
        "from mdark_dask.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert loaded_after(code) == set()


def test_a_master_with_its_plots_never_imports_matplotlib(tmp_path: Path) -> None:
    """The QC plots are laid out and painted with Pillow: ``mdark`` with its five plots
    (and the pages' thumbnail) loads none of the heavy libraries."""
    from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof

    sof = write_sof(
        tmp_path / "set.sof",
        simulate_set(DarkSetSpec("soxs", "NIR", n_frames=3, exptime=5.0), tmp_path / "raw"),
    )
    code = (
        "import contextlib, io\n"
        "from mdark_dask.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['mdark', {str(sof)!r}, '-o', {str(tmp_path / 'ws')!r}]) == 0"
    )
    assert loaded_after(code) == set()
    assert len(list((tmp_path / "ws" / "qc" / "soxs_mdark").glob("*.png"))) == 6
