"""Terminal tables and the recipe log, laid out as soxspipe's.

The QC and products tables are soxspipe's (``tabulate`` "pretty", right-aligned); the
log beside the product holds what the terminal showed and ends with the command that
reruns the recipe.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tabulate import tabulate

from mdark_dask.io.atomic import write_text
from mdark_dask.numerics.qc import QCRow
from mdark_dask.plan.product import ProductResult
from mdark_dask.plan.sets import SetOutcome


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "--"
    return f"{float(value):.3f}"


def qc_table(rows: Sequence[QCRow]) -> str:
    """The QC metrics table, sorted by name."""
    body = [
        [r.name, _fmt(r.value), r.unit, r.comment, r.flag]
        for r in sorted(rows, key=lambda r: r.name)
    ]
    return tabulate(
        body,
        headers=["qc_name", "qc_value", "qc_unit", "qc_comment", "qc_flag"],
        tablefmt="pretty",
        stralign="right",
        disable_numparse=True,
    )


def products_table(results: Sequence[ProductResult], verbose: bool = False) -> str:
    """The recipe products table (with the absolute path when verbose)."""
    headers = ["product_label", "file_name", "file_type", "obs_date_utc"]
    headers += ["file_path"] if verbose else []
    headers += ["label", "product_desc"]
    body = []
    for r in results:
        for label, path, desc in (
            ("MDARK", r.path, f"{r.arm} Master dark frame"),
            ("HOTPIX", r.hotpix_path, f"{r.arm} Hot and noisy pixel map"),
            ("NOISE", r.noise_path, f"{r.arm} Noise image (temporal scatter)"),
        ):
            if not path:
                continue
            row = [label, os.path.basename(path), "FITS", r.date_obs]
            row += [path] if verbose else []
            row += ["PROD", desc]
            body.append(row)
    return tabulate(
        body, headers=headers, tablefmt="pretty", stralign="right", disable_numparse=True
    )


def recipe_report(result: ProductResult, verbose: bool = False) -> str:
    """What the terminal shows after a product is made."""
    parts = [
        "# SOXS-MDARK QC METRICS",
        qc_table(result.qc),
        "",
        "# SOXS-MDARK RECIPE PRODUCTS & QC OUTPUTS",
        products_table([result], verbose),
    ]
    if result.plots:
        parts += ["", "QC plots: " + ", ".join(result.plots)]
    return "\n".join(parts)


def rerun_command(argv: Sequence[str]) -> str:
    """The exact command that reruns the recipe, overwriting its product."""
    words = ["mdark-dask", *argv]
    if "-x" not in words and "--overwrite" not in words:
        words.append("-x")
    return "Recipe Command: " + shlex.join(words)


def write_log(path: Path, text: str, argv: Sequence[str]) -> None:
    """Write the recipe log beside the product; the rerun command is its last line."""
    write_text(path, text.rstrip("\n") + "\n" + rerun_command(argv) + "\n")


def plan_table(rows: Sequence[tuple[str, str, str, float, int, str, str]]) -> str:
    """The dry-run plan: set, instrument, arm, exposure, frames, product, state."""
    return tabulate(
        [[n, i.upper(), a, f"{e:g}", f, p, st] for n, i, a, e, f, p, st in rows],
        headers=["set", "inst", "arm", "exptime s", "frames", "product", "state"],
        disable_numparse=True,
    )


def night_table(outcomes: Sequence[SetOutcome]) -> str:
    """The end-of-night summary: set, frames, product, QC, status, time."""
    body = [
        [
            o.name,
            o.frames,
            os.path.basename(o.product) if o.product else "--",
            o.qc_flag,
            o.status + (f": {o.reason}" if o.reason else ""),
            f"{o.seconds:.1f}",
        ]
        for o in sorted(outcomes, key=lambda o: o.name)
    ]
    return tabulate(
        body,
        headers=["set", "frames", "product", "QC", "status", "done at s"],
        disable_numparse=True,
    )


def qc_record(rows: Sequence[QCRow]) -> dict[str, dict[str, Any]]:
    """QC rows as JSON: {name: {value, unit, flag, lo, hi}}."""
    return {
        q.name: {"value": q.value, "unit": q.unit, "flag": q.flag, "lo": q.lo, "hi": q.hi}
        for q in rows
    }


def set_record(o: SetOutcome, run: str = "") -> dict[str, Any]:
    """One set's outcome as the run report and the workspace's store keep it."""
    entry = asdict(o)
    entry["qc"] = qc_record(o.qc)
    entry["qc_flag"] = o.qc_flag
    entry["run"] = run
    return entry


def write_json(path: Path, document: Mapping[str, Any]) -> Path:
    """Write a JSON document atomically; return its path."""
    return write_text(path, json.dumps(document, indent=2, default=str) + "\n")


def write_run_report(path: Path, record: dict[str, Any], outcomes: Sequence[SetOutcome]) -> Path:
    """Write the machine-readable report of a night run (JSON, atomically)."""
    run = str(record.get("run", ""))
    sets = [set_record(o, run) for o in sorted(outcomes, key=lambda o: o.name)]
    return write_json(path, {**record, "sets": sets})
