"""The workspace's record of its products and runs: ``WORKSPACE/mdark-dask.db``.

Every run adds to it, so a workspace fed night by night, or a month in one command, ends
with the same table: one row per set (the latest outcome of that set wins: a recomputed
product replaces its row, never duplicates it) with its night, arm, exposure time, status,
QC values, product path, readout mode and mean MJD-OBS (what soxspipe's organiser matches
a frame to a master by), plus one row per run. The night pages, the index page, the
history page and ``night_report.json`` are all drawn from it, so none of them forgets
what an earlier run made, and none of them reads a product's pixels.

SQLite, from the standard library: one file that survives reruns, safe against a run
killed half way (each run's rows go in one transaction), and readable by any tool. Its
``.db`` suffix keeps it in place when ``soxspipe prep`` tidies a workspace's top level
(it moves every other kind of file into ``misc/``).
Writes happen under the workspace lock (:mod:`mdark_dask.io.lock`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

#: The store's file name in a workspace.
STORE_NAME: Final = "mdark-dask.db"

#: Columns of a product row, in order (``qc`` is JSON: {name: {value, unit, flag, lo, hi}}).
PRODUCT_COLUMNS: Final = (
    "name",
    "night",
    "instrument",
    "arm",
    "exptime",
    "frames",
    "date_obs",
    "temperature",
    "status",
    "reason",
    "qc_flag",
    "qc",
    "product",
    "fingerprint",
    "run",
    "rospeed",
    "mjd",
)

#: Columns of a run row.
RUN_COLUMNS: Final = (
    "run",
    "started_utc",
    "seconds",
    "command",
    "cluster",
    "report",
    "sets",
    "failed",
    "nights",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    name TEXT PRIMARY KEY, night TEXT, instrument TEXT, arm TEXT, exptime REAL,
    frames INTEGER, date_obs TEXT, temperature REAL, status TEXT, reason TEXT,
    qc_flag TEXT, qc TEXT, product TEXT, fingerprint TEXT, run TEXT, rospeed TEXT, mjd REAL
);
CREATE INDEX IF NOT EXISTS products_night ON products (night);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY, started_utc TEXT, seconds REAL, command TEXT, cluster TEXT,
    report TEXT, sets INTEGER, failed INTEGER, nights TEXT
);
"""


def store_path(workspace: Path) -> Path:
    """``WORKSPACE/mdark-dask.db``."""
    return workspace / STORE_NAME


@contextlib.contextmanager
def _connect(workspace: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(store_path(workspace), timeout=30.0)
    try:
        db.row_factory = sqlite3.Row
        db.executescript(_SCHEMA)
        _add_missing_columns(db)
        yield db
    finally:
        db.close()


#: Columns added to ``products`` since the first store, with their types: a store written by
#: an earlier version gains them (NULL in its old rows) when it is next opened.
_ADDED_COLUMNS: Final = (("rospeed", "TEXT"), ("mjd", "REAL"))


def _add_missing_columns(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(products)")}
    for name, kind in _ADDED_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE products ADD COLUMN {name} {kind}")


def record_run(
    workspace: Path, run: Mapping[str, Any], products: Iterable[Mapping[str, Any]]
) -> None:
    """Add one run and the rows of the sets it touched, in one transaction.

    ``products``: one mapping per set with :data:`PRODUCT_COLUMNS` (``qc`` any
    JSON-serialisable value); a set already recorded is replaced. ``run``: the
    :data:`RUN_COLUMNS` (``nights`` a list).
    """
    rows = [
        tuple(
            json.dumps(p.get(c)) if c == "qc" else p.get(c)
            for c in PRODUCT_COLUMNS  # same order as the INSERT below
        )
        for p in products
    ]
    run_row = tuple(json.dumps(run.get(c)) if c == "nights" else run.get(c) for c in RUN_COLUMNS)
    with _connect(workspace) as db, db:
        db.executemany(
            f"INSERT OR REPLACE INTO products ({', '.join(PRODUCT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(PRODUCT_COLUMNS))})",
            rows,
        )
        db.execute(
            f"INSERT OR REPLACE INTO runs ({', '.join(RUN_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
            run_row,
        )


def _product(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["qc"] = json.loads(record["qc"]) if record.get("qc") else {}
    return record


def products(workspace: Path, nights: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every recorded set (or those of ``nights``), ordered by night and name; empty when
    the workspace has no store yet."""
    if not store_path(workspace).is_file():
        return []
    with _connect(workspace) as db:
        if nights is None:
            rows = db.execute("SELECT * FROM products ORDER BY night, name").fetchall()
        else:
            marks = ", ".join("?" * len(nights))
            rows = db.execute(
                f"SELECT * FROM products WHERE night IN ({marks}) ORDER BY night, name",
                tuple(nights),
            ).fetchall()
    return [_product(r) for r in rows]


def runs(workspace: Path) -> list[dict[str, Any]]:
    """Every recorded run, oldest first."""
    if not store_path(workspace).is_file():
        return []
    with _connect(workspace) as db:
        rows = db.execute("SELECT * FROM runs ORDER BY started_utc, run").fetchall()
    return [{**dict(r), "nights": json.loads(r["nights"] or "[]")} for r in rows]
