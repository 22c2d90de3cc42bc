"""QC metrics of a master dark and their pass/fail, as soxspipe 0.17.4 defines them.

Pure: numbers in, frozen rows out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from mdark_dask.numerics.hotpix import HotPixels
from mdark_dask.numerics.steps import Master

#: The words for the two pixel counts that must never be mistaken for each other, in
#: every table, plot, header comment and page: soxspipe's ``HOTPIX NUM`` counts every pixel
#: of the master's QUAL mask (mostly the 3-sigma tail of the post-stack clip); the
#: physical count (``HOTPIX PHYS NUM``) only pixels whose dark current is above the
#: hot-pixel threshold. ``NOISYPIX NUM`` counts pixels whose temporal scatter is too high.
MASKED_LABEL: Final = "masked (soxspipe QC)"
HOT_LABEL: Final = "hot pixels"
NOISY_LABEL: Final = "noisy pixels"


@dataclass(frozen=True)
class QCRow:
    """One QC metric as soxspipe reports it."""

    name: str
    value: float | int | None
    unit: str
    comment: str
    to_header: bool
    flag: str = "pass"
    lo: float | None = None
    hi: float | None = None


def qc_rows(
    master: Master,
    hot: HotPixels | None = None,
    temperatures: tuple[float | None, float | None] | None = None,
) -> tuple[QCRow, ...]:
    """QC rows in soxspipe's order of creation.

    ``temperatures``: the detector's and the common path's (SOXS only; None for
    X-shooter, whose products carry none). With ``hot``, the physical hot- and
    noisy-pixel counts follow (:func:`hotpix_rows`); they are not for the master's
    header, whose QC must stay soxspipe's.
    """
    n_bad = int(master.qual.sum())
    rows = [
        QCRow("HOTPIX NUM", n_bad, "", "Masked pixels (soxspipe QC)", True),
        QCRow(
            "HOTPIX FRAC",
            float(f"{n_bad / master.qual.size:.6f}"),
            "",
            "Masked fraction (soxspipe QC)",
            True,
        ),
        QCRow(
            "MDARK MEDIAN",
            master.mdark_median,
            "electrons",
            "[e-] Median flux level of master dark",
            True,
        ),
        QCRow("RAW RON", master.raw_ron, "electrons", "[e-] RON in single DARK", True),
        QCRow("MASTER RON", master.master_ron, "electrons", "[e-] Combined RON in MDARK", True),
    ]
    if temperatures is not None:
        det, cpath = temperatures
        rows.append(QCRow("DETECTOR TEMP", det, "kelvin", "[K] temp of detector", False))
        rows.append(QCRow("CPATH TEMP", cpath, "celsius", "[C] temp of common path", False))
    if hot is not None:
        rows.extend(hotpix_rows(hot))
    return tuple(rows)


#: Names of the rows of :func:`hotpix_rows`.
HOTPIX_QC = ("HOTPIX PHYS NUM", "HOTPIX PHYS FRAC", "NOISYPIX NUM", "NOISYPIX FRAC")


def hotpix_rows(hot: HotPixels) -> tuple[QCRow, ...]:
    """Physical hot- and noisy-pixel counts and fractions (:mod:`mdark_dask.numerics.hotpix`).

    ``to_header`` is False: they go into the hot-pixel map's header, not the master's.
    Fractions are rounded to 6 decimals like soxspipe's HOTPIX FRAC.
    """
    size = hot.bpm.size
    n_hot, n_noisy = hot.n_hot, hot.n_noisy
    return (
        QCRow("HOTPIX PHYS NUM", n_hot, "", "Hot pixels (dark current)", False),
        QCRow(
            "HOTPIX PHYS FRAC",
            float(f"{n_hot / size:.6f}"),
            "",
            "Hot-pixel fraction (dark current)",
            False,
        ),
        QCRow("NOISYPIX NUM", n_noisy, "", "Noisy pixels (temporal scatter)", False),
        QCRow(
            "NOISYPIX FRAC",
            float(f"{n_noisy / size:.6f}"),
            "",
            "Noisy fraction (temporal scatter)",
            False,
        ),
    )


def apply_ranges(
    rows: tuple[QCRow, ...], ranges: Mapping[str, tuple[float, float]]
) -> tuple[QCRow, ...]:
    """Flag rows outside their acceptable range: pass needs ``lo < value < hi``.

    A missing value (e.g. an absent temperature keyword) is reported, never failed.
    """
    out = []
    for row in rows:
        bounds = ranges.get(row.name.lower())
        if bounds is None:
            out.append(row)
            continue
        lo, hi = bounds
        fail = row.value is not None and not lo < float(row.value) < hi
        out.append(replace(row, flag="fail" if fail else "pass", lo=lo, hi=hi))
    return tuple(out)


def failed(rows: tuple[QCRow, ...]) -> tuple[str, ...]:
    """Names of the failed QC rows."""
    return tuple(r.name for r in rows if r.flag == "fail")


def soxspipe_rows(rows: Sequence[QCRow]) -> tuple[QCRow, ...]:
    """The QC rows soxspipe knows: all but the physical hot- and noisy-pixel counts
    (:data:`HOTPIX_QC`), which are mdark-dask's own."""
    return tuple(r for r in rows if r.name not in HOTPIX_QC)


def soxspipe_status(rows: Sequence[QCRow]) -> str:
    """A master's status for soxspipe's organiser: ``fail`` when a QC value soxspipe knows
    is outside its range, else ``pass`` (what the soxspipe database records and what the
    association report says soxspipe will use)."""
    return "fail" if failed(soxspipe_rows(rows)) else "pass"
