"""QC plots of a master dark: the image with its flagged pixels, and the pixel histogram.

Written by the product's final task (matplotlib's Agg backend, no display), into
``<workspace>/qc/soxs_mdark/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mdark_dask.kernels import Master


def write_qc_plots(master: Master, directory: Path, name: str) -> tuple[str, ...]:
    """Write ``<name>_image.png`` and ``<name>_histogram.png``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    flux = master.flux
    bad = master.qual.astype(bool)
    good = flux[~bad]
    lo, hi = np.percentile(good, [1, 99]) if good.size else (0.0, 1.0)

    fig, ax = plt.subplots(figsize=(6, 6 * min(2.0, flux.shape[0] / flux.shape[1])))
    # a figure shows ~600 pixels a side: display every step-th pixel, and mark a display
    # pixel red when any pixel of its block is flagged, so no flagged pixel is hidden
    ny, nx = flux.shape
    step = max(1, -(-max(ny, nx) // 600))
    ax.imshow(
        flux[::step, ::step], origin="lower", cmap="gray", vmin=lo, vmax=hi,
        interpolation="nearest", extent=(0, nx, 0, ny),
    )  # fmt: skip
    pad = np.zeros((-(-ny // step) * step, -(-nx // step) * step), dtype=bool)
    pad[:ny, :nx] = bad
    blocks = pad.reshape(pad.shape[0] // step, step, pad.shape[1] // step, step).any(axis=(1, 3))
    overlay = np.zeros((*blocks.shape, 4), dtype=np.float32)
    overlay[blocks] = (1.0, 0.0, 0.0, 1.0)
    ax.imshow(overlay, origin="lower", interpolation="nearest", extent=(0, nx, 0, ny))
    ax.set_title(f"{name}\nmaster dark [e-]; {int(bad.sum())} flagged pixels in red", fontsize=8)
    image = directory / f"{name}_image.png"
    fig.savefig(_tmp(image), dpi=90, format="png")
    plt.close(fig)
    os.replace(_tmp(image), image)

    fig, ax = plt.subplots(figsize=(7, 4))
    level = master.master_mean
    combined = master.combined
    values = combined[np.isfinite(combined)].astype(np.float64) + level
    b_lo, b_hi = master.post_bounds.lo + level, master.post_bounds.hi + level
    span = max(b_hi - b_lo, 1e-3)
    rng = (b_lo - span, b_hi + span)
    counts, edges = np.histogram(values, bins=200, range=rng)
    ax.stairs(counts, edges, fill=True, color="0.4")
    ax.set_yscale("log")
    for x, label in ((b_lo, "post-stack clip"), (b_hi, None)):
        ax.axvline(x, color="red", ls="--", label=label)
    ax.set_xlabel("master dark [e-]")
    ax.set_ylabel("pixels")
    ax.set_title(f"{name}: stacked pixels (before filling) and post-stack clip bounds", fontsize=9)
    ax.legend(fontsize=8)
    hist = directory / f"{name}_histogram.png"
    fig.savefig(_tmp(hist), dpi=90, format="png")
    plt.close(fig)
    os.replace(_tmp(hist), hist)
    return str(image), str(hist)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")
