"""Write the notebooks (without outputs): ``python notebooks/make_notebooks.py``.

The notebooks are executed by ``tests/test_notebooks.py`` on small simulated data.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    (
        "md",
        """# mdark-dask quickstart

Simulate a small night of raw darks, plan it (headers only), reduce every set on a local
Dask cluster (watch it in the dashboard), then open a master dark with xarray and look at
it and its flagged pixels.""",
    ),
    (
        "code",
        """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster

import mdark_dask.api as md
from mdark_dask.simulate import DarkSetSpec, simulate_set

scratch = tempfile.TemporaryDirectory(prefix="mdark-quickstart-")  # removed in the last cell
root = Path(scratch.name)
specs = [
    DarkSetSpec("soxs", "VIS", 3, 60.0, binning=(2, 2), start="2026-01-11T01:00:00.000", seed=1),
    DarkSetSpec("soxs", "VIS", 3, 300.0, binning=(2, 2), start="2026-01-11T02:00:00.000", seed=2),
    DarkSetSpec("xsh", "NIR", 3, 120.0, start="2026-01-11T03:00:00.000", seed=3),
]
for spec in specs:
    simulate_set(spec, root / "raw")
print(len(list((root / "raw").iterdir())), "raw frames in", root / "raw")""",
    ),
    ("md", "## Plan the night: the sets, from headers only (nothing is computed)"),
    (
        "code",
        """night = md.plan_night(root / "raw")
for s in night.sets:
    print(f"{s.name:45s} {s.instrument} {s.arm} {s.exptime:6g} s  {len(s.frames)} frames")
print("left out:", night.skipped)""",
    ),
    ("md", "## Reduce every set on a LocalCluster; the dashboard link shows the task stream"),
    (
        "code",
        """cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
client = Client(cluster)
print("Dashboard:", client.dashboard_link)
outcomes = md.run_night(night, client, root / "ws")
for o in outcomes:
    print(o.name, o.status, o.qc_flag)""",
    ),
    ("md", "## Open a master dark with xarray and plot it with its flagged pixels"),
    (
        "code",
        """product = next(o.product for o in outcomes if o.arm == "NIR")
ds = md.open_product(product)
print(ds)
print("QC:", ds.attrs["qc"])""",
    ),
    (
        "code",
        """fig, axes = plt.subplots(1, 2, figsize=(10, 5))
lo, hi = np.percentile(ds.flux.values[ds.qual.values == 0], [1, 99])
ds.flux.plot.imshow(ax=axes[0], vmin=lo, vmax=hi, cmap="gray")
axes[0].set_title("master dark [e-]")
ys, xs = np.nonzero(ds.qual.values)
axes[1].scatter(xs, ys, s=2, c="red")
axes[1].set_xlim(0, ds.sizes["x"])
axes[1].set_ylim(0, ds.sizes["y"])
axes[1].set_title(f"{len(xs)} flagged pixels (QUAL)")
plt.show()""",
    ),
    ("md", "## Clean up: close the cluster, remove the simulated frames and the products"),
    (
        "code",
        """client.close()
cluster.close()
scratch.cleanup()""",
    ),
]

CLIPPING = [
    (
        "md",
        """# What the three clips do

soxspipe's `soxs_mdark` (and mdark-dask) clip three times:

1. **level clip** per frame: a 3-sigma mean/std clip of the whole frame gives the frame's
   level (subtracted) and scatter (RAW RON);
2. **stack clip** per pixel: a median / MAD-std clip along the frame axis rejects cosmic
   rays and other outliers before the mean;
3. **post-stack clip** of the master: a mean/std clip flags the outlying pixels (HOTPIX).

And the two numerics: `soxspipe-0.17.4` reproduces soxspipe's float32 sums (astropy #17185),
`accurate` sums in float64.""",
    ),
    (
        "code",
        """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.stats import sigma_clip

import mdark_dask.api as md
from mdark_dask.numerics import steps
from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof

scratch = tempfile.TemporaryDirectory(prefix="mdark-clipping-")  # removed in the last cell
root = Path(scratch.name)
spec = DarkSetSpec("soxs", "VIS", 7, 300.0, binning=(2, 2), seed=5)
sof = write_sof(root / sof_name(spec), simulate_set(spec, root / "raw"))
stack = md.open_stack(sof).compute()
stack""",
    ),
    ("md", "## 1. The level clip of one frame"),
    (
        "code",
        """frame = stack.values[0]
level = steps.frame_level(frame, 3, 3, "accurate")
print(f"level {level.mean:.2f} e-, scatter {level.std:.3f} e-")
print(f"clip bounds [{level.lo:.1f}, {level.hi:.1f}] e-")
plt.hist(frame.ravel(), bins=300, log=True, color="0.5")
for b in (level.lo, level.hi):
    plt.axvline(b, color="red", ls="--")
plt.xlabel("e-")
plt.title("frame 1 and its level-clip bounds")
plt.show()""",
    ),
    (
        "md",
        """## 2. The stack clip of one pixel: a cosmic ray is rejected, the rest averaged

The stack clip is astropy's `sigma_clip` with the median and the MAD-std, as soxspipe
calls it, on each pixel's values along the frames.""",
    ),
    (
        "code",
        """levels = np.array([list(steps.frame_level(f, 3, 3, "accurate")) for f in stack.values])
sub = stack.values - levels[:, 2][:, None, None]
y, x = np.unravel_index(np.argmax(np.ptp(sub, axis=0)), sub.shape[1:])  # the most disturbed pixel
values = sub[:, y, x]
clip = sigma_clip(values, sigma=3, maxiters=3, cenfunc="median", stdfunc="mad_std")
keep = ~np.ma.getmaskarray(clip)
plt.plot(np.arange(len(values)), values, "o", color="0.6", label="frames")
plt.plot(np.arange(len(values))[~keep], values[~keep], "rx", ms=12, label="clipped")
plt.axhline(values[keep].mean(), color="blue", label="mean of kept")
plt.xlabel("frame")
plt.ylabel("e- above level")
plt.legend()
plt.title(f"pixel ({y}, {x})")
plt.show()""",
    ),
    ("md", "## 3. The post-stack clip, and the two numerics side by side"),
    (
        "code",
        """accurate = md.master_dark(sof, numerics="accurate").compute()
compat = md.master_dark(sof, numerics="soxspipe-0.17.4").compute()
for name, ds in (("accurate", accurate), ("soxspipe-0.17.4", compat)):
    print(f"{name:16s}", {k: round(v, 4) for k, v in md.qc(ds).items()})
differ = (accurate.qual != compat.qual).sum().item()
print("QUAL pixels that differ:", differ)
fig, axes = plt.subplots(1, 2, figsize=(9, 6))
for ax, (name, ds) in zip(axes, (("accurate", accurate), ("soxspipe-0.17.4", compat)), strict=True):
    ax.imshow(ds.qual, origin="lower", cmap="Reds", interpolation="nearest")
    ax.set_title(f"{name}: {int(ds.hotpix_num)} flagged")
plt.show()""",
    ),
    ("md", "## Clean up: remove the simulated frames"),
    ("code", "scratch.cleanup()"),
]

CLUSTER = [
    (
        "md",
        """# Submitting a night to a remote scheduler

A `LocalCluster` started here stands in for a remote one: we only use its address, exactly
as with `dask scheduler` on another host (see `cluster/README.md`). Workers must see the raw
frames and the workspace under the same paths.""",
    ),
    (
        "code",
        """import tempfile
from pathlib import Path

from distributed import Client, LocalCluster, performance_report

import mdark_dask.api as md
from mdark_dask.simulate import DarkSetSpec, simulate_set

scratch = tempfile.TemporaryDirectory(prefix="mdark-cluster-")  # removed in the last cell
root = Path(scratch.name)
for i, exptime in enumerate((30.0, 60.0, 120.0)):
    simulate_set(DarkSetSpec("xsh", "NIR", 3, exptime, start=f"2026-01-11T0{i + 1}:00:00.000",
                             seed=i), root / "raw")
remote = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
address = remote.scheduler_address
print("scheduler at", address)""",
    ),
    ("md", "## Connect by address, submit the night, watch it, save the performance report"),
    (
        "code",
        """client = Client(address)
print("Dashboard:", client.dashboard_link)
night = md.plan_night(root / "raw")
report = root / "performance_report.html"
with performance_report(filename=str(report)):
    outcomes = md.run_night(night, client, root / "ws")
for o in outcomes:
    print(f"{o.name:45s} {o.status:10s} {o.qc_flag}")
print("performance report:", report, report.stat().st_size, "bytes")""",
    ),
    ("md", "## Clean up: close the cluster, remove the simulated frames and the products"),
    (
        "code",
        """client.close()
remote.close()
scratch.cleanup()""",
    ),
]


NOTEBOOKS = {
    "01-quickstart.ipynb": QUICKSTART,
    "02-clipping.ipynb": CLIPPING,
    "03-cluster.ipynb": CLUSTER,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name``, with no outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    # cell ids from the notebook's name and the cell's place: rewriting changes no id
    stem = name.removesuffix(".ipynb")
    nb.cells = [
        nbformat.v4.new_markdown_cell(src, id=f"{stem}-{i}")
        if kind == "md"
        else nbformat.v4.new_code_cell(src, id=f"{stem}-{i}")
        for i, (kind, src) in enumerate(NOTEBOOKS[name])
    ]
    return nb


def write(name: str) -> Path:
    """Write the notebook ``name`` beside this script."""
    path = HERE / name
    nbformat.write(build(name), path)
    return path


if __name__ == "__main__":
    for name in NOTEBOOKS:
        print(write(name))
