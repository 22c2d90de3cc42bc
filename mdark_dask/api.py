"""Python API: the command line's code paths, lazy until asked, on xarray.

::

    import mdark_dask.api as md

    ds = md.master_dark("ws/sof/20260111T082924_NIR_3_MDARK_5_0S_SOXS.sof")  # lazy
    ds = ds.compute()                         # one compute of the command line's graph
    path = md.write_master(ds, "ws")          # its writer: master, hot-pixel map, noise
    night = md.plan_night("raw/")             # headers only; print(night) is a summary
    outcomes = md.run_night(night, None, "ws")  # None: in this process; or a Client

A product written here is the command line's product, byte for byte, and a later
``mdark-dask night`` over the same frames takes it as up to date. Every function has a
runnable example in its docstring (the doctests run on simulated frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np

from mdark_dask import app
from mdark_dask.errors import InputError
from mdark_dask.io.stack import strip_stack
from mdark_dask.plan.frameset import FrameSet
from mdark_dask.plan.night import NightPlan
from mdark_dask.plan.product import ProductPlan, plan_product
from mdark_dask.plan.sizing import strip_rows
from mdark_dask.recipe import Reduced, reduce_master, stacked_graph, write_products

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

    from mdark_dask.plan.sets import SetOutcome

# dask.array and xarray (which pull in pandas and SciPy) are imported by the functions
# that build arrays, so importing the API stays cheap

QC_NAMES = ("HOTPIX NUM", "HOTPIX FRAC", "MDARK MEDIAN", "RAW RON", "MASTER RON")


def _inputs(inputs: str | Path | Sequence[str | Path]) -> list[str]:
    if isinstance(inputs, str | Path):
        return [str(inputs)]
    return [str(i) for i in inputs]


def _silent(text: str = "", final: bool = False) -> None:
    """A printer that prints nothing: the API returns what the commands print."""


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


def prepared_stack(frameset: FrameSet, rows: int | None = None) -> xr.DataArray:
    """The lazy prepared stack as an ``xarray.DataArray`` (frame, y, x) in electrons.

    Coordinates per frame: ``file``, ``mjd_obs``, ``exptime``, ``arm``; the instrument,
    arm, gain and read noise are attributes. Nothing is read until the array is computed.
    """
    import xarray as xr

    kw = frameset.spec.keywords
    frames = frameset.frames
    return xr.DataArray(
        strip_stack(frameset.reader(), rows or strip_rows(*frameset.shape)),
        dims=("frame", "y", "x"),
        coords={
            "file": ("frame", [f.name for f in frames]),
            "mjd_obs": ("frame", [float(f.get(kw.mjd_obs)) for f in frames]),
            "exptime": ("frame", [float(f.get(kw.exptime)) for f in frames]),
            "arm": ("frame", [frameset.arm] * len(frames)),
        },
        name="electrons",
        attrs={
            "instrument": frameset.instrument,
            "arm": frameset.arm,
            "gain": frameset.gain,
            "ron": frameset.ron,
            "units": "electron",
        },
    )


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


def _boxed(reduced: Reduced) -> np.ndarray[Any, np.dtype[np.object_]]:
    """``reduced`` as a 0-d object array (an array of its fields would be made of a tuple)."""
    box = np.empty((), dtype=object)
    box[()] = reduced
    return box


def _qc_value(reduced: Reduced, name: str) -> float:
    return float(next(r.value for r in reduced.qc if r.name == name) or 0.0)


def master_dark(
    inputs: str | Path | Sequence[str | Path],
    settings: str | Path | None = None,
    numerics: str | None = None,
    rows: int | None = None,
) -> xr.Dataset:
    """Build one master dark lazily, as an ``xarray.Dataset``, with the command line's graph.

    Data variables, all dask-backed so that one ``.compute()`` runs the graph once:
    ``flux`` (e-), ``qual`` (1 = flagged) and ``errs`` (e-) as in the product;
    ``hotpix`` (the hot-pixel map: bit 1 hot, bit 2 noisy) and ``noise`` (e-); the QC
    values as 0-d variables (``hotpix_num``, ``hotpix_frac``, ``mdark_median``,
    ``raw_ron``, ``master_ron``); and ``reduced``, everything :func:`write_master` writes.
    Attributes: instrument, arm, numerics, frames, exposure, the product name, the inputs
    and the plan's fingerprint.

    Examples
    --------
    >>> ds = master_dark(SOF)
    >>> sorted(ds.data_vars)[:4], ds.flux.shape
    (['errs', 'flux', 'hotpix', 'hotpix_frac'], (2040, 1056))
    >>> ds = ds.compute()
    >>> int(ds.hotpix_num) == int(ds.qual.sum())
    True
    """
    import dask.array as da
    import xarray as xr

    p = plan(inputs, settings=settings, numerics=numerics)
    p = ProductPlan(p.name, p.frameset, p.settings, p.workspace, rows, plots=False)
    levels, joined = stacked_graph(p)
    reduced = dask.delayed(reduce_master, pure=True)(joined, levels, p)
    shape = p.shape[1:]

    def image(value: Any, dtype: Any) -> da.Array:
        return da.from_delayed(value, shape=shape, dtype=dtype)

    def scalar(name: str) -> da.Array:
        value = dask.delayed(_qc_value, pure=True)(reduced, name)
        return da.from_delayed(value, shape=(), dtype=np.float64)

    electrons = {"units": "electron"}
    data_vars = {
        "flux": (("y", "x"), image(reduced.master.flux, np.float32), electrons),
        "qual": (("y", "x"), image(reduced.master.qual, np.uint8), {"flag": "1 = flagged"}),
        "errs": (("y", "x"), image(reduced.master.errs, np.float32), electrons),
        "hotpix": (("y", "x"), image(reduced.hot.bpm, np.uint8), {"bits": "1 hot, 2 noisy"}),
        "noise": (("y", "x"), image(reduced.noise, np.float32), electrons),
        **{name.lower().replace(" ", "_"): ((), scalar(name)) for name in QC_NAMES},
        "reduced": (
            (),
            da.from_delayed(dask.delayed(_boxed, pure=True)(reduced), shape=(), dtype=object),
        ),
    }
    fs = p.frameset
    attrs = {
        "name": p.name,
        "instrument": fs.instrument,
        "arm": fs.arm,
        "numerics": p.settings.numerics,
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
    """Write a master-dark dataset of :func:`master_dark` with the command line's writer.

    The master dark, its hot-pixel map and its noise image go to
    ``<workspace>/products/soxs_mdark/``, with the header the command line writes, so a
    later ``mdark-dask night`` over the same frames and settings takes them as up to date.
    A dataset not yet computed is computed first.

    Raises
    ------
    InputError
        The frames changed since the dataset was made (their fingerprint differs).

    Examples
    --------
    >>> path = write_master(master_dark(SOF).compute(), WORKSPACE)
    >>> path.name
    '20260111T110000_NIR_MDARK_120_0S_XSHOOTER.fits'
    """
    p = plan(ds.attrs["inputs"], workspace, ds.attrs.get("settings") or None, ds.attrs["numerics"])
    if p.fingerprint != ds.attrs["fingerprint"]:
        raise InputError(f"the frames of {p.name} changed since the dataset was made")
    reduced = ds["reduced"].values.item()
    from mdark_dask.app import locked_workspace

    with locked_workspace(Path(workspace)):
        return Path(write_products(reduced, p).path)


def make_master(
    inputs: str | Path | Sequence[str | Path],
    workspace: str | Path,
    settings: str | Path | None = None,
    numerics: str | None = None,
    overwrite: bool = True,
    plots: bool = True,
) -> Path:
    """Make one master dark exactly as ``mdark-dask mdark`` does (its products, QC plots
    and recipe log); the master's path.

    Examples
    --------
    >>> make_master(SOF, WORKSPACE).name
    '20260111T110000_NIR_MDARK_120_0S_XSHOOTER.fits'
    """
    made = app.mdark(
        _inputs(inputs),
        workspace,
        settings=settings,
        numerics=numerics,
        overwrite=overwrite,
        plots=plots,
        out=_silent,
    )
    if made is None:
        return plan(inputs, workspace, settings, numerics).product_path
    return Path(made.path)


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

    from mdark_dask.io.product import read_product

    product = read_product(path)
    attrs: dict[str, Any] = dict(product.cards)
    attrs["qc"] = {
        k.removeprefix("ESO QC "): v for k, v in product.cards.items() if k.startswith("ESO QC ")
    }
    electrons = {"units": "electron"}
    data_vars = {
        "flux": (("y", "x"), product.flux, electrons),
        "qual": (("y", "x"), product.qual),
        "errs": (("y", "x"), product.errs, electrons),
    }
    return xr.Dataset(data_vars, attrs=attrs)


def plan_night(inputs: str | Path | Sequence[str | Path], client: Any = None) -> NightPlan:
    """Plan a night from headers: the sets (printable values) and what is left out.

    The headers are read in threads, or on the workers of ``client`` (a
    ``distributed.Client``) when given.

    Examples
    --------
    >>> night = plan_night(RAW_DIR)
    >>> [(s.arm, len(s.frames)) for s in night.sets]
    [('NIR', 3)]
    >>> print(night)  # doctest: +ELLIPSIS
    NightPlan: 1 set(s) of 3 dark frame(s); 0 left out
      20260111T110000_NIR_MDARK_120_0S_XSHOOTER: XSH NIR, 3 frames of 120 s
    """
    from mdark_dask.plan.night import plan_night as _plan_night
    from mdark_dask.scheduler import mapper_for

    return _plan_night(_inputs(inputs), mapper=mapper_for(client))


def run_night(
    night: NightPlan | str | Path | Sequence[str | Path],
    client: Any,
    workspace: str | Path,
    settings: str | Path | None = None,
    numerics: str | None = None,
    overwrite: bool = False,
    plots: bool = True,
    verify: bool = False,
) -> list[SetOutcome]:
    """Reduce every set of a night, as ``mdark-dask night`` does (sofs, products, QC
    plots, the run report and the night page), on ``client``: a ``distributed.Client``
    the caller owns, a cluster spec such as ``"local"``, or None to compute in this
    process one set at a time. Returns one outcome per set. ``verify`` reads existing
    products in full to verify them before taking them as up to date.

    Examples
    --------
    >>> outcomes = run_night(plan_night(RAW_DIR), None, WORKSPACE, overwrite=True)
    >>> [o.status for o in outcomes]
    ['done']
    """
    sets: Any = night if isinstance(night, NightPlan) else _inputs(night)
    run = app.night(
        sets,
        workspace,
        settings=settings,
        numerics=numerics,
        overwrite=overwrite,
        plots=plots,
        cluster="sync" if client is None else client,
        out=_silent,
        verify=verify,
    )
    return list(run.outcomes)
