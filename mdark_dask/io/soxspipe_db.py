"""Record master darks in a soxspipe 0.17.4 workspace's database, as its own recipe does.

soxspipe's data organiser (``soxspipe prep``) predicts every master dark of a night in the
``product_frames`` table of ``<workspace>/soxspipe.db``; ``soxspipe reduce all`` then
associates masters to the later recipes through the ``cal_mdark`` view, which accepts a
master whose ``status`` is ``'pass'`` or NULL. soxspipe's ``soxs_mdark`` records its run
in two places (``base_recipe.__init__``, ``clean_up`` and ``report_output``):

* ``product_frames.status_<session>`` of the sof's row: ``'pass'``, or ``'fail'`` when a
  QC value is outside its acceptable range (the organiser copies it into ``status`` when
  it rebuilds the sofs, and drops the master from any sof it was associated with);
* one ``quality_control`` row per QC value, with the sof name, ``qc_order`` ``-1``, the
  flag and the range (``soxspipe prep`` re-judges them against the session's settings).

A master recorded here therefore reaches soxspipe exactly as one soxspipe made: a passing
one is used, a failed one never associated. A sof the organiser does not know (no row in
``product_frames``) is left alone and reported: soxspipe's own recipe would not add one.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

#: soxspipe's recipe name in ``quality_control.soxspipe_recipe``.
RECIPE = "soxs-mdark"
#: Session ids soxspipe accepts (``data_organiser.session_create``).
_SESSION = re.compile(r"^[0-9A-Za-z_-]{1,16}$")


@dataclass(frozen=True)
class QCValue:
    """One QC value as soxspipe's ``quality_control`` table holds it."""

    name: str
    value: float | int | None
    unit: str
    comment: str
    flag: str
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_master` did with one master: ``status`` is ``pass``/``fail``, or
    ``unknown`` when soxspipe's database has no such sof (nothing written)."""

    sof: str
    status: str


def database(workspace: Path) -> Path | None:
    """``<workspace>/soxspipe.db`` if the workspace was prepared by ``soxspipe prep``."""
    path = workspace / "soxspipe.db"
    return path if path.is_file() else None


def current_session(workspace: Path) -> str:
    """The workspace's current soxspipe session (``sessions/.sessionid``; ``base`` if none).

    Raises
    ------
    ValueError
        The file names a session soxspipe could not have made (it becomes a column name).
    """
    marker = workspace / "sessions" / ".sessionid"
    session = marker.read_text(encoding="utf-8").strip() if marker.is_file() else "base"
    if not _SESSION.match(session):
        raise ValueError(f"{marker}: not a soxspipe session id: {session!r}")
    return session


def record_master(
    db: Path,
    session: str,
    sof: str,
    qc: Sequence[QCValue],
    date_obs: str,
    keep_recorded: bool = False,
) -> Recorded:
    """Record one master dark's QC and status for sof ``sof`` (``<name>.sof``).

    The status is ``fail`` when any QC value failed, else ``pass``, as
    ``base_recipe.clean_up`` sets it; the QC rows replace the sof's earlier ones, as
    ``base_recipe.report_output`` does. One transaction: soxspipe sees all or nothing.
    With ``keep_recorded`` a sof that has a status already is left as it is (a master
    found up to date was recorded when it was made, with every QC value).
    """
    if not _SESSION.match(session):
        raise ValueError(f"not a soxspipe session id: {session!r}")
    status = "fail" if any(q.flag == "fail" for q in qc) else "pass"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    # closing: sqlite3's own context manager commits but leaves the connection open
    with contextlib.closing(sqlite3.connect(db, timeout=60.0)) as conn, conn:
        known = conn.execute(
            f'SELECT "status_{session}" FROM product_frames WHERE sof = ?', (sof,)
        ).fetchone()
        if known is None:
            return Recorded(sof, "unknown")
        if keep_recorded and known[0] in ("pass", "fail"):
            return Recorded(sof, str(known[0]))
        conn.execute(
            f'UPDATE product_frames SET "status_{session}" = ? WHERE sof = ?', (status, sof)
        )
        conn.execute("DELETE FROM quality_control WHERE sof_name = ?", (sof,))
        conn.executemany(
            "INSERT INTO quality_control (soxspipe_recipe, qc_name, qc_value, qc_unit, "
            "qc_comment, obs_date_utc, reduction_date_utc, sof_name, qc_order, qc_flag, "
            "qc_value_min, qc_value_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '-1', ?, ?, ?)",
            [
                (RECIPE, q.name, q.value, q.unit, q.comment, date_obs, now, sof, q.flag, q.lo, q.hi)
                for q in qc
            ],
        )
    return Recorded(sof, status)
