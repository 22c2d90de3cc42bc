"""Root conftest: the Hypothesis profiles, and names for the doctests in ``mdark_dask/``
(a small simulated set).

The property tests draw the same examples on every run (profile ``repeatable``, the
default), so a run's verdict depends on the code and not on the draw: a test run on a
clean checkout passes or fails the same way twice. ``pytest --hypothesis-profile explore``
draws new examples each time (with the examples database), to look for what the fixed draw
misses; whatever it finds becomes an ``@example`` of its test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")


@pytest.fixture(scope="session")
def _doctest_set(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof

    root = tmp_path_factory.mktemp("doctest")
    spec = DarkSetSpec("xsh", "NIR", n_frames=3, exptime=120.0, start="2026-01-11T11:00:00.000")
    frames = simulate_set(spec, root / "raw")
    sof = write_sof(root / sof_name(spec), frames)
    return {"SOF": str(sof), "RAW_DIR": str(root / "raw"), "WORKSPACE": str(root / "ws")}


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> None:
    if isinstance(request.node, pytest.DoctestItem):
        doctest_namespace.update(request.getfixturevalue("_doctest_set"))
        Path(doctest_namespace["WORKSPACE"]).mkdir(exist_ok=True)
