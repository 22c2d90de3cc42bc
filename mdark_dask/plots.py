"""QC plots of a master dark: the image with its flagged pixels, and the pixel histogram;
the hot-pixel map, and the distributions of dark current and noise with their thresholds.

Written by the product's final task (matplotlib's Agg backend, no display), into
``<workspace>/qc/soxs_mdark/``. Only matplotlib's object API is used, never pyplot's
global state, so final tasks running in threads side by side cannot mix their figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mdark_dask.hotpix import HOT, NOISY, HotPixels
from mdark_dask.kernels import Master


def write_qc_plots(master: Master, directory: Path, name: str) -> tuple[str, ...]:
    """Write ``<name>_image.png`` and ``<name>_histogram.png``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.image import imsave

    directory.mkdir(parents=True, exist_ok=True)
    flux = master.flux
    bad = master.qual.astype(bool)
    # an image of ~600 pixels a side: every step-th pixel, and a display pixel red when any
    # pixel of its block is flagged, so no flagged pixel is hidden. Written as a plain
    # image (no axes): an order of magnitude cheaper than a figure, at the same information.
    ny, nx = flux.shape
    step = max(1, -(-max(ny, nx) // 600))
    small = flux[::step, ::step].astype(np.float64)
    sample = small[~bad[::step, ::step]]
    lo, hi = np.percentile(sample, [1, 99]) if sample.size else (0.0, 1.0)
    grey = np.clip((small - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    blocks = _blocks(bad, step)[: rgb.shape[0], : rgb.shape[1]]
    rgb[blocks] = (1.0, 0.0, 0.0)
    image = directory / f"{name}_image.png"
    imsave(_tmp(image), rgb[::-1], format="png")  # row 0 at the bottom, as in DS9
    os.replace(_tmp(image), image)

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
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
    os.replace(_tmp(hist), hist)
    return str(image), str(hist)


def write_frame_levels_plot(
    mjd: npt.NDArray[np.float64], levels: npt.NDArray[np.float64], directory: Path, name: str
) -> str:
    """Write ``<name>_frames.png``: each input frame's level and scatter against time.

    ``levels`` holds the per-frame ``(lo, hi, mean, std)`` of the level clip; a drifting
    level or a jump in scatter points at a frame worth a look.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    directory.mkdir(parents=True, exist_ok=True)
    minutes = (np.asarray(mjd, dtype=np.float64) - float(np.min(mjd))) * 24 * 60
    fig = Figure(figsize=(7, 4.5), dpi=80)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(minutes, levels[:, 2], "o-", color="tab:blue")
    top.set_ylabel("level [e-]")
    top.set_title(f"{name}\nper-frame level (clipped mean) and scatter (RAW RON)", fontsize=9)
    bottom.plot(minutes, levels[:, 3], "o-", color="tab:orange")
    bottom.set_ylabel("scatter [e-]")
    bottom.set_xlabel("minutes since the first frame (MJD-OBS)")
    fig.tight_layout()
    path = directory / f"{name}_frames.png"
    fig.savefig(_tmp(path), format="png")
    os.replace(_tmp(path), path)
    return str(path)


def _blocks(mask: npt.NDArray[np.bool_], step: int) -> npt.NDArray[np.bool_]:
    """Whether any pixel of each ``step`` x ``step`` block is set (no flag hidden)."""
    ny, nx = mask.shape
    pad = np.zeros((-(-ny // step) * step, -(-nx // step) * step), dtype=bool)
    pad[:ny, :nx] = mask
    blocks = pad.reshape(pad.shape[0] // step, step, pad.shape[1] // step, step)
    return np.asarray(blocks.any(axis=(1, 3)), dtype=bool)


def write_hotpix_plots(
    hot: HotPixels,
    noise: npt.NDArray[np.float32],
    noise_peel: npt.NDArray[np.float32],
    directory: Path,
    name: str,
) -> tuple[str, ...]:
    """Write ``<name>_hotpix_map.png`` and ``<name>_dark_current.png``; return their paths.

    The map shows hot pixels red, noisy ones blue, both magenta (a display pixel takes the
    flags of every pixel of its block). The second figure holds the distribution of dark
    current and of the two noise images, each with its threshold.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.image import imsave

    directory.mkdir(parents=True, exist_ok=True)
    bpm = hot.bpm
    ny, nx = bpm.shape
    step = max(1, -(-max(ny, nx) // 600))
    is_hot = _blocks((bpm & HOT) != 0, step)
    is_noisy = _blocks((bpm & NOISY) != 0, step)
    rgb = np.ones((*is_hot.shape, 3), dtype=np.float32)
    rgb[is_hot] = (0.85, 0.0, 0.0)
    rgb[is_noisy] = (0.0, 0.2, 0.9)
    rgb[is_hot & is_noisy] = (0.8, 0.0, 0.8)
    # hot red, noisy blue, both magenta; a plain image (no axes), row 0 at the bottom
    map_path = directory / f"{name}_hotpix_map.png"
    imsave(_tmp(map_path), rgb[::-1], format="png")
    os.replace(_tmp(map_path), map_path)

    fig = Figure(figsize=(7, 7))
    top, bottom = fig.subplots(2, 1)
    dark = hot.dark[np.isfinite(hot.dark)].astype(np.float64)
    spread = hot.level.std if hot.level.std > 0 else 1.0
    lo = min(float(dark.min()) if dark.size else 0.0, -5 * spread)
    hi = max(float(dark.max()) if dark.size else 1.0, 2 * hot.hot_threshold)
    # symmetric-log-like view: linear bins around the level, logarithmic above
    edges = np.unique(
        np.concatenate(
            [
                np.linspace(lo, 10 * spread, 120),
                np.geomspace(max(10 * spread, 1e-3), max(hi, 20 * spread), 80),
            ]
        )
    )
    counts, edges = np.histogram(np.clip(dark, edges[0], edges[-1]), bins=edges)
    top.stairs(counts, edges, fill=True, color="0.4")
    top.set_yscale("log")
    top.set_xscale("symlog", linthresh=10 * spread)
    top.axvline(hot.hot_threshold, color="red", ls="--",
                label=f"hot threshold {hot.hot_threshold:.3g} e-")  # fmt: skip
    top.set_xlabel("dark current over the exposure: master - robust level [e-]")
    top.set_ylabel("pixels")
    top.legend(fontsize=8)
    top.set_title(f"{name}: {hot.n_hot} hot pixels", fontsize=9)

    images = (
        (noise, hot.noise, "0.55", "frames kept by the stack clip"),
        (noise_peel, hot.noise_peel, "tab:blue", "all frames, isolated extremes peeled"),
    )
    finite = [np.asarray(im, dtype=np.float64) for im, *_ in images]
    finite = [v[np.isfinite(v)] for v in finite]
    tops = [c.threshold * 3 for _, c, *_ in images if np.isfinite(c.threshold)]
    tops += [float(np.percentile(v, 99.99)) for v in finite if v.size]
    n_hi = max(tops, default=1.0)
    n_hi = n_hi if np.isfinite(n_hi) and n_hi > 0 else 1.0
    for values, (_, clip, colour, label) in zip(finite, images, strict=True):
        if not values.size:
            continue
        counts, edges = np.histogram(np.clip(values, 0, n_hi), bins=200, range=(0, n_hi))
        bottom.stairs(counts, edges, color=colour, label=label)
        if np.isfinite(clip.threshold):
            bottom.axvline(clip.threshold, color=colour, ls="--",
                           label=f"threshold {clip.threshold:.3g} e-")  # fmt: skip
    bottom.set_yscale("log")
    bottom.legend(fontsize=7)
    bottom.set_xlabel("temporal scatter along the stack [e-]")
    bottom.set_ylabel("pixels")
    bottom.set_title(
        f"{hot.n_noisy} noisy pixels (peeled image; kept-frames image below 5 frames)",
        fontsize=9,
    )
    fig.tight_layout()
    dist_path = directory / f"{name}_dark_current.png"
    fig.savefig(_tmp(dist_path), dpi=90, format="png")
    os.replace(_tmp(dist_path), dist_path)
    return str(map_path), str(dist_path)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")
