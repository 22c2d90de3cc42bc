"""Hand a night's master darks to a soxspipe workspace (``--layout soxspipe``).

The masters are already where soxspipe's organiser expects them
(:func:`mdark_dask.plan.names.soxspipe_product_dir`), so ``soxspipe reduce all`` skips its
own mdark step for them (a recipe whose product exists raises ``FileExistsError``, which
``reduce all`` passes over). What remains is their QC status: when the workspace holds
soxspipe's database, each master is recorded there as soxspipe's own recipe records it
(:mod:`mdark_dask.io.soxspipe_db`), so a master that failed QC is never associated.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from mdark_dask.io.soxspipe_db import QCValue, current_session, database, record_master
from mdark_dask.numerics.qc import QCRow, soxspipe_rows


class Made(NamedTuple):
    """A master to record: its sof name (without ``.sof``), QC rows, first DATE-OBS, and
    whether it was made by this run (else found up to date: its QC rows are those of its
    header, and a status already recorded stays)."""

    name: str
    qc: Sequence[QCRow]
    date_obs: str
    fresh: bool = True


def qc_values(rows: Sequence[QCRow]) -> list[QCValue]:
    """soxspipe's QC rows of a master (the physical hot/noisy counts are mdark-dask's own
    and stay out of soxspipe's table)."""
    return [
        QCValue(r.name, r.value, r.unit, r.comment, r.flag, r.lo, r.hi) for r in soxspipe_rows(rows)
    ]


def hand_off(workspace: Path, masters: Sequence[Made]) -> str:
    """Record every master of ``masters`` (those with QC rows: made or up to date) in
    ``workspace``'s soxspipe database.

    Returns one line for the terminal: how many masters were recorded
    as passing and failing, and which sofs soxspipe does not know; or why nothing was
    recorded (no database: run ``soxspipe prep`` first, then this command again).
    """
    db = database(workspace)
    if db is None:
        return (
            f"soxspipe layout: {workspace / 'soxspipe.db'} not found, QC status not recorded "
            "(prepare the workspace with `soxspipe prep` first, then rerun)"
        )
    try:
        session = current_session(workspace)
        done = [
            record_master(db, session, f"{m.name}.sof", qc_values(m.qc), m.date_obs, not m.fresh)
            for m in masters
            if m.qc
        ]
    except (sqlite3.Error, ValueError, OSError) as exc:
        return f"WARNING: soxspipe database {db} not updated: {exc}"
    passed = sum(r.status == "pass" for r in done)
    failed = [r.sof for r in done if r.status == "fail"]
    unknown = [r.sof for r in done if r.status == "unknown"]
    line = (
        f"soxspipe database {db} (session {session}): {passed} master(s) recorded as "
        f"passing, {len(failed)} as failing QC (never associated)"
    )
    if unknown:
        shown = ", ".join(unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        line += f"; not in soxspipe's plan, left alone: {shown}"
    return line
