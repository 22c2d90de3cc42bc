"""The workspace's record (``mdark-dask.db``): a store written by an earlier version is
opened and extended in place, its rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mdark_dask.io import store

#: The ``products`` table as the first stores had it (before ``rospeed`` and ``mjd``).
OLD_PRODUCTS = """
CREATE TABLE products (
    name TEXT PRIMARY KEY, night TEXT, instrument TEXT, arm TEXT, exptime REAL,
    frames INTEGER, date_obs TEXT, temperature REAL, status TEXT, reason TEXT,
    qc_flag TEXT, qc TEXT, product TEXT, fingerprint TEXT, run TEXT
);
"""


def row(name: str, **values: object) -> dict[str, object]:
    base: dict[str, object] = {c: None for c in store.PRODUCT_COLUMNS}
    base.update(name=name, night="2026-01-10", instrument="soxs", arm="NIR", exptime=5.0)
    base.update(status="done", qc={"MDARK MEDIAN": {"value": 27.6, "flag": "pass"}})
    return {**base, **values}


RUN = {"run": "r2", "started_utc": "2026-01-12T10:00:00", "sets": 1, "failed": 0, "nights": []}


def test_an_older_store_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    with sqlite3.connect(store.store_path(tmp_path)) as db:
        db.executescript(OLD_PRODUCTS)
        db.execute("INSERT INTO products (name, status, qc) VALUES ('old', 'done', '{}')")
    (old,) = store.products(tmp_path)
    assert old["name"] == "old" and old["rospeed"] is None and old["mjd"] is None
    store.record_run(tmp_path, RUN, [row("new", rospeed="3", mjd=61051.35)])
    rows = {r["name"]: r for r in store.products(tmp_path)}
    assert set(rows) == {"old", "new"}
    assert (rows["new"]["rospeed"], rows["new"]["mjd"]) == ("3", 61051.35)
    assert rows["new"]["qc"]["MDARK MEDIAN"]["value"] == 27.6


def test_a_recomputed_set_replaces_its_row(tmp_path: Path) -> None:
    store.record_run(tmp_path, {**RUN, "run": "r1"}, [row("a", mjd=1.0)])
    store.record_run(tmp_path, RUN, [row("a", mjd=2.0, status="up to date")])
    (only,) = store.products(tmp_path)
    assert (only["mjd"], only["status"], only["run"]) == (2.0, "up to date", None)
    assert sorted(r["run"] for r in store.runs(tmp_path)) == ["r1", "r2"]
