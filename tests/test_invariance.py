"""Execution settings never change product bytes.

One small simulated set (SOXS VIS 2x2: a 2048 x 404 science region, 3 frames) is reduced
with strips of 1, 7, 64 rows and the automatic height, on the sync, threads and processes
schedulers, each into its own workspace, in both numerics. Every product of one numerics
must be byte-identical to the others.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from mdark_dask.instruments import ARMS
from mdark_dask.numerics.steps import NUMERICS
from mdark_dask.plan.product import ProductPlan, plan_product
from mdark_dask.scheduler import compute_products
from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof

BASELINE = "sync-rows=auto"
# (scheduler, rows): every strip height on the in-process scheduler, and the parallel
# schedulers with a strip height that splits the frame unevenly (2048 = 32 x 64; 7 does not
# divide it).
RUNS: tuple[tuple[str, int | None], ...] = (
    ("sync", 1),
    ("sync", 7),
    ("sync", 64),
    ("threads", None),
    ("threads", 7),
    ("processes", 64),
)


def label(scheduler: str, rows: int | None) -> str:
    return f"{scheduler}-rows={'auto' if rows is None else rows}"


@pytest.fixture(scope="module")
def sof(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = DarkSetSpec("soxs", "VIS", n_frames=3, binning=(2, 2), exptime=60)
    assert ARMS[("soxs", "VIS")].trimmed_shape(2, 2) == (2048, 404)
    root = tmp_path_factory.mktemp("invariance")
    return write_sof(root / "vis_2x2.sof", simulate_set(spec, root / "raw"))


@pytest.fixture(scope="module")
def products(sof: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """{numerics: {run label: product path}}; one compute call per scheduler."""

    def plan(numerics: str, scheduler: str, rows: int | None) -> ProductPlan:
        ws = tmp_path_factory.mktemp(f"ws-{numerics}-{scheduler}-{rows}")
        return plan_product([str(sof)], ws, numerics=numerics, rows=rows, plots=False)

    out: dict[str, dict[str, Path]] = {n: {} for n in NUMERICS}
    baseline = [plan(n, "sync", None) for n in NUMERICS]
    for n, result in zip(NUMERICS, compute_products(baseline, "sync"), strict=True):
        out[n][BASELINE] = Path(result.path)
    # The other runs write later: a product must not depend on when it was written either.
    time.sleep(1.1)
    for scheduler in ("sync", "threads", "processes"):
        runs = [(n, rows) for n in NUMERICS for s, rows in RUNS if s == scheduler]
        plans = [plan(n, scheduler, rows) for n, rows in runs]
        for (n, rows), p, result in zip(
            runs, plans, compute_products(plans, scheduler), strict=True
        ):
            assert Path(result.path) == p.product_path
            out[n][label(scheduler, rows)] = Path(result.path)
    return out


def _without_checksum_timestamps(data: bytes) -> bytes:
    """The file with the CHECKSUM cards blanked and the DATASUM comments cut.

    astropy stamps the write time into both cards' comments, and CHECKSUM covers the header
    including that comment; everything else, DATASUM values included, is compared.
    """
    cards = [data[i : i + 80] for i in range(0, len(data), 80)]
    out = []
    for card in cards:
        if card.startswith(b"CHECKSUM= "):
            card = b"CHECKSUM= (blanked)".ljust(80)
        elif card.startswith(b"DATASUM = "):
            card = card.split(b"/")[0].ljust(80)
        out.append(card)
    return b"".join(out)


@pytest.mark.parametrize("numerics", NUMERICS)
def test_products_agree_except_checksum_write_time(
    products: dict[str, dict[str, Path]], numerics: str
) -> None:
    runs = products[numerics]
    assert len(runs) == 1 + len(RUNS)
    reference = runs[BASELINE].read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(runs[BASELINE], checksum=True) as hdul:  # valid checksums
            assert [h.data.shape for h in hdul] == [(2048, 404)] * 3
    differing = [
        name
        for name, path in runs.items()
        if _without_checksum_timestamps(path.read_bytes())
        != _without_checksum_timestamps(reference)
    ]
    assert not differing, f"{numerics}: products differ from {BASELINE}: {differing}"


@pytest.mark.parametrize("numerics", NUMERICS)
def test_product_bytes_identical_across_execution_settings(
    products: dict[str, dict[str, Path]], numerics: str
) -> None:
    """Execution settings never change product bytes (the whole file)."""
    runs = products[numerics]
    reference = runs[BASELINE].read_bytes()
    differing = [name for name, path in runs.items() if path.read_bytes() != reference]
    assert not differing, f"{numerics}: product bytes differ from {BASELINE}: {differing}"


def test_numerics_reach_the_product(products: dict[str, dict[str, Path]]) -> None:
    """Sanity: the two numerics give different masters on this set, so the comparisons
    above compare what each numerics computes."""
    accurate = products["accurate"][BASELINE]
    soxspipe = products["soxspipe-0.17.4"][BASELINE]
    with fits.open(accurate) as a, fits.open(soxspipe) as s:
        assert not (np.array_equal(a[0].data, s[0].data) and np.array_equal(a[1].data, s[1].data))
