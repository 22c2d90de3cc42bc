"""Python API: the same code paths as the command line, lazy until asked, on xarray.

::

    import mdark_dask.api as md
    stack = md.open_stack("ws/sof/20260111T082924_NIR_3_MDARK_5_0S_SOXS.sof")  # lazy
    master = md.master_dark(stack.attrs["inputs"]).compute()                  # one compute
    md.write_master(master, "ws")                                           # CLI's writer
    night = md.plan_night("raw/")                                           # headers only
    outcomes = md.run_night(night, client, "ws")                            # any Client

Every function here is documented with a runnable example in its docstring (doctests run
on simulated frames in ``tests/test_api.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np

from mdark_dask.io.fits import read_header, write_atomic
from mdark_dask.io.product import build_hdul, primary_header, set_card
from mdark_dask.io.stack import prepared_stack
from mdark_dask.numerics import steps
from mdark_dask.numerics.qc import apply_ranges, qc_rows
from mdark_dask.plan.night import NightPlan
from mdark_dask.recipe import ProductPlan, plan_product, stacked_graph

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

# dask.array and xarray (which pull in pandas and SciPy) are imported by the functions
# that build arrays, so importing the API stays cheap

QC_NAMES = ("HOTPIX NUM", "HOTPIX FRAC", "MDARK MEDIAN", "RAW RON", "MASTER RON")


def _inputs(inputs: str | Path | Sequence[str | Path]) -> list[str]:
    if isinstance(inputs, str | Path):
        return [str(inputs)]
    return [str(i) for i in inputs]


def plan(
    inputs: str | Path | Sequence[str | Path],
    workspace: str | Path = ".",
    settings: str | Path | None = None,
    numerics: str | None = None,
) -> ProductPlan:
    """Scan and verify one set of raw darks (headers only) and resolve its settings.

    Examples
    --------
    >>> p = plan(SOF, WORKSPACE)
    >>> p.frameset.arm, len(p.frameset.frames), p.settings.numerics
    ('NIR', 3, 'accurate')
    """
    path = Path(settings) if settings is not None else None
    return plan_product(_inputs(inputs), workspace, path, numerics)


def open_stack(
    inputs: str | Path | Sequence[str | Path],
    numerics: str | None = None,
    rows: int | None = None,
) -> xr.DataArray:
    """The prepared frames (trimmed, rotated, in electrons) as a lazy ``(frame, y, x)`` stack.

    Coordinates per frame: ``file``, ``mjd_obs``, ``exptime``, ``arm``. Nothing is read
    until the array is computed.

    Examples
    --------
    >>> stack = open_stack(SOF)
    >>> stack.dims, stack.shape, str(stack.dtype)
    (('frame', 'y', 'x'), (3, 2040, 1056), 'float32')
    >>> float(stack.isel(frame=0, y=100, x=100)) > 0
    True
    """
    p = plan(inputs, numerics=numerics)
    stack = prepared_stack(p.frameset, rows)
    stack.attrs["inputs"] = _inputs(inputs)
    return stack


def master_dark(
    inputs: str | Path | Sequence[str | Path],
    settings: str | Path | None = None,
    numerics: str | None = None,
    rows: int | None = None,
) -> xr.Dataset:
    """Build one master dark lazily, as an ``xarray.Dataset``.

    Data variables ``flux`` (e-), ``qual`` (1 = flagged) and ``errs`` (e-) and the QC values
    as 0-d variables (``hotpix_num``, ``hotpix_frac``, ``mdark_median``, ``raw_ron``,
    ``master_ron``) are dask-backed: one ``.compute()`` runs the same graph as the CLI.
    Attributes: instrument, arm, numerics, the product name and the inputs.

    Examples
    --------
    >>> ds = master_dark(SOF)
    >>> sorted(ds.data_vars)[:3], ds.flux.shape
    (['errs', 'flux', 'hotpix_frac'], (2040, 1056))
    >>> ds = ds.compute()
    >>> int(ds.hotpix_num) == int(ds.qual.sum())
    True
    """
    import dask.array as da
    import xarray as xr

    p = plan(inputs, settings=settings, numerics=numerics)
    p = ProductPlan(p.name, p.frameset, p.settings, p.workspace, rows, plots=False)
    s = p.settings
    levels, strip = stacked_graph(p)
    master = dask.delayed(steps.finalize, pure=True, nout=None)(
        strip,
        dask.delayed(np.concatenate, pure=True)(levels),
        s.frame_sigma,
        s.frame_iterations,
        s.numerics,
    )
    shape = p.frameset.spec.trimmed_shape(*p.frameset.binning)

    def image(field: str, dtype: Any) -> da.Array:
        return da.from_delayed(getattr(master, field), shape=shape, dtype=dtype)

    def scalar(value: Any, dtype: Any) -> da.Array:
        return da.from_delayed(value, shape=(), dtype=dtype)

    qual = image("qual", np.uint8)
    n_bad = qual.sum(dtype=np.int64)
    data_vars = {
        "flux": (("y", "x"), image("flux", np.float32), {"units": "electron"}),
        "qual": (("y", "x"), qual, {"flag_meanings": "1 = flagged (soxspipe QUAL)"}),
        "errs": (("y", "x"), image("errs", np.float32), {"units": "electron"}),
        "hotpix_num": ((), n_bad),
        "hotpix_frac": ((), da.round(n_bad / qual.size, 6)),
        "mdark_median": ((), scalar(master.mdark_median, np.float64), {"units": "electron"}),
        "raw_ron": ((), scalar(master.raw_ron, np.float64), {"units": "electron"}),
        "master_ron": ((), scalar(master.master_ron, np.float64), {"units": "electron"}),
    }
    fs = p.frameset
    attrs = {
        "name": p.name,
        "instrument": fs.instrument,
        "arm": fs.arm,
        "numerics": s.numerics,
        "n_frames": len(fs.frames),
        "exptime": fs.exptime,
        "inputs": _inputs(inputs),
        "settings": str(settings) if settings is not None else "",
        "fingerprint": p.fingerprint,
    }
    return xr.Dataset(data_vars, attrs=attrs)


def qc(ds: xr.Dataset) -> dict[str, float]:
    """The QC values of a computed master-dark dataset, by soxspipe's QC names.

    Examples
    --------
    >>> sorted(qc(master_dark(SOF).compute()))
    ['HOTPIX FRAC', 'HOTPIX NUM', 'MASTER RON', 'MDARK MEDIAN', 'RAW RON']
    """
    return {name: float(ds[name.lower().replace(" ", "_")]) for name in QC_NAMES}


def write_master(ds: xr.Dataset, workspace: str | Path) -> Path:
    """Write a computed master-dark dataset with the CLI's product writer.

    The header is rebuilt from the inputs' headers and the settings recorded in
    ``ds.attrs``; the file goes to ``<workspace>/products/soxs_mdark/<name>.fits``.

    Examples
    --------
    >>> path = write_master(master_dark(SOF).compute(), WORKSPACE)
    >>> path.name
    '20260111T110000_NIR_MDARK_120_0S_XSHOOTER.fits'
    """
    settings = ds.attrs.get("settings") or None
    p = plan(ds.attrs["inputs"], workspace, settings, ds.attrs["numerics"])
    flux = np.asarray(ds["flux"].values, dtype=np.float32)
    qual = np.asarray(ds["qual"].values, dtype=np.uint8)
    errs = np.asarray(ds["errs"].values, dtype=np.float32)
    master = steps.Master(
        flux=flux,
        qual=qual,
        errs=errs,
        master_mean=float("nan"),
        mdark_median=float(ds["mdark_median"]),
        raw_ron=float(ds["raw_ron"]),
        master_ron=float(ds["master_ron"]),
        post_bounds=steps.Bounds(np.nan, np.nan),
        combined=flux,
    )
    rows = apply_ranges(qc_rows(master, p.frameset), p.settings.qc_ranges)
    header = primary_header(read_header(p.frameset.frames[0].path), p.frameset, p.settings, rows)
    from mdark_dask.recipe import FINGERPRINT_KEY

    set_card(header, FINGERPRINT_KEY, p.fingerprint, "frames+settings digest")
    return write_atomic(build_hdul(master, header), p.product_path)


def open_product(path: str | Path) -> xr.Dataset:
    """Open a master-dark product file as an ``xarray.Dataset`` (flux, qual, errs).

    The primary header's cards are the attributes; the ``ESO QC`` values are also
    collected under ``attrs["qc"]``.

    Examples
    --------
    >>> ds = open_product(write_master(master_dark(SOF).compute(), WORKSPACE))
    >>> ds.attrs["ESO PRO CATG"], ds.flux.dims
    ('MASTER_DARK_NIR', ('y', 'x'))
    """
    import xarray as xr
    from astropy.io import fits

    with fits.open(path) as hdul:
        header = hdul[0].header
        attrs: dict[str, Any] = {
            k: header[k] for k in header if k and k not in ("COMMENT", "HISTORY")
        }
        attrs["qc"] = {
            k.removeprefix("ESO QC "): header[k] for k in header if k.startswith("ESO QC ")
        }
        data_vars = {
            "flux": (
                ("y", "x"),
                np.asarray(hdul["FLUX"].data, dtype=np.float32),
                {"units": "electron"},
            ),
            "qual": (("y", "x"), np.asarray(hdul["QUAL"].data, dtype=np.uint8)),
            "errs": (
                ("y", "x"),
                np.asarray(hdul["ERRS"].data, dtype=np.float32),
                {"units": "electron"},
            ),
        }
    return xr.Dataset(data_vars, attrs=attrs)


def plan_night(inputs: str | Path | Sequence[str | Path]) -> NightPlan:
    """Plan a night from headers: the sets (printable values) and what is left out.

    Examples
    --------
    >>> night = plan_night(RAW_DIR)
    >>> [(s.arm, len(s.frames)) for s in night.sets]
    [('NIR', 3)]
    """
    from mdark_dask.plan.night import plan_night as _plan_night

    return _plan_night(_inputs(inputs))


def run_night(
    night: NightPlan,
    client: Any,
    workspace: str | Path,
    settings: str | Path | None = None,
    numerics: str | None = None,
    overwrite: bool = False,
) -> list[Any]:
    """Reduce every set of a planned night on a ``distributed.Client`` (or ``None`` for
    in-process); the same code path as ``mdark-dask night``. Returns one outcome per set.

    Examples
    --------
    >>> outcomes = run_night(plan_night(RAW_DIR), None, WORKSPACE, overwrite=True)
    >>> [o.status for o in outcomes]
    ['done']
    """
    from mdark_dask.plan.night import write_sofs
    from mdark_dask.scheduler import plan_sets, run_plans

    ws = Path(workspace)
    path = Path(settings) if settings is not None else None
    todo, settled = plan_sets(night, ws, path, numerics, overwrite)
    write_sofs(night, ws / "sof")
    return settled + run_plans(todo, client)
