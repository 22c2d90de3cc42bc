"""Names soxspipe gives things: the data organiser's sof names and night dates, and the
workspace's layout.

Pure string and path functions: the one place a set is named from its headers, shared by
a single product (directory and list inputs) and a night's sets. The simulator names the
sets it writes from their specs (:func:`mdark_dask.simulate.sof_name`);
``tests/test_night.py`` holds the two names equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mdark_dask.instruments import XSH_WIN_BIN, instrument_of, keywords_of

if TYPE_CHECKING:
    from mdark_dask.io.fits import RawFrame

NIGHT_OFFSET = timedelta(hours=15)


def _clean(name: str) -> str:
    """soxspipe's five clean-up passes over an upper-cased name."""
    name = name.upper()
    for _ in range(5):
        name = name.replace("_--_", "_").replace(" ", "").replace(".", "_").replace("__", "_")
    return name


def exptime_field(exptime: float) -> str:
    """``5.0`` -> ``5.0s`` (exposure rounded to 0.01 s, as the organiser groups it)."""
    return f"{round(float(exptime), 2)}s"


def rospeed_of(instrument: str, read_speed: object) -> str | None:
    """The organiser's ``rospeed`` of a frame or master (:func:`rospeed_field`); None (SQL
    NULL, which matches nothing) where the header has no readout mode."""
    return None if read_speed is None else rospeed_field(instrument, read_speed)


def rospeed_field(instrument: str, read_speed: object) -> str:
    """Readout-mode field: SOXS ``ESO DET READ CURID``; X-shooter ``fast``/``slow``, as the
    data organiser names the readout speeds ``1pt/400k/lg`` and ``1pt/100k/hg``."""
    if read_speed is None:
        return "--"
    if instrument == "xsh":
        text = str(read_speed).lower()
        if text.startswith("1pt/400k/lg"):
            return "fast"
        if text.startswith("1pt/100k/hg"):
            return "slow"
        return text.replace("/", "")
    return str(read_speed)


def organiser_sof_name(
    *,
    date_obs: str,
    arm: str,
    binning: tuple[int, int] | None,
    rospeed: str,
    exptime: float,
    instrume: str,
    recipe: str = "MDARK",
) -> str:
    """The soxspipe data organiser's sof name of a set of frames.

    Parameters
    ----------
    date_obs : str
        Earliest ``DATE-OBS`` of the set (ISO); the fraction of a second is dropped.
    arm : str
        ``ESO SEQ ARM``.
    binning : (binx, biny) or None
        None where the frames carry no binning keyword (SOXS NIR).
    rospeed : str
        See :func:`rospeed_field`.
    exptime : float
        Exposure time in seconds.
    instrume : str
        ``INSTRUME``.

    Examples
    --------
    >>> organiser_sof_name(date_obs="2026-01-11T08:29:24.123", arm="NIR", binning=None,
    ...                    rospeed="3", exptime=5.0, instrume="SOXS")
    '20260111T082924_NIR_3_MDARK_5_0S_SOXS.sof'
    >>> organiser_sof_name(date_obs="2026-01-11T09:00:00.000", arm="VIS", binning=(1, 1),
    ...                    rospeed="1", exptime=600, instrume="SOXS")
    '20260111T090000_VIS_1X1_1_MDARK_600_0S_SOXS.sof'
    """
    stamp = date_obs.split(".")[0].replace("-", "").replace(":", "")
    bins = f"{binning[0]}x{binning[1]}" if binning else "--"
    fields = [stamp, arm, bins, rospeed, recipe, "--", "--", exptime_field(exptime), instrume]
    return _clean("_".join(fields)) + ".sof"


def binning_of(frame: RawFrame) -> tuple[int, int] | None:
    """``(binx, biny)`` of a raw frame as the organiser names it: X-shooter's window
    binning or SOXS's detector binning; None for NIR arms and frames without binning."""
    instrument = instrument_of(frame.get("INSTRUME"))
    kw = keywords_of(instrument)
    keys = XSH_WIN_BIN if instrument == "xsh" else ("ESO DET BINX", "ESO DET BINY")
    x, y = frame.get(keys[0]), frame.get(keys[1])
    if str(frame.get(kw.arm)) == "NIR" or x is None or y is None:
        return None
    return int(x), int(y)


def set_name(frames: Sequence[RawFrame]) -> str:
    """The organiser's sof name of a set of raw darks of one setup, without ``.sof``.

    The setup is read from the first frame and the time stamp from the earliest
    ``DATE-OBS`` (``UNKNOWN`` when no frame has one).
    """
    first = frames[0]
    instrument = instrument_of(first.get("INSTRUME"))
    kw = keywords_of(instrument)
    dates = sorted(str(f.get(kw.date_obs)) for f in frames if f.get(kw.date_obs))
    name = organiser_sof_name(
        date_obs=dates[0] if dates else "UNKNOWN",
        arm=str(first.get(kw.arm)),
        binning=binning_of(first),
        rospeed=rospeed_field(instrument, first.get(kw.read_speed)),
        exptime=float(first.get(kw.exptime)),
        instrume=str(first.get(kw.instrume)),
    )
    return name[: -len(".sof")]


def night_of_sof(name: str) -> str | None:
    """Night start date ``YYYY-MM-DD`` of a sof name's leading timestamp minus 15 h."""
    try:
        stamp = datetime.strptime(name.split("_")[0], "%Y%m%dT%H%M%S")
    except ValueError:
        return None
    return (stamp - NIGHT_OFFSET).strftime("%Y-%m-%d")


def night_of_mjd(mjd: float) -> str:
    """Night start date of an MJD-OBS (minus 15 h)."""
    epoch = datetime(1858, 11, 17)
    return (epoch + timedelta(days=float(mjd)) - NIGHT_OFFSET).strftime("%Y-%m-%d")


#: Workspace layouts: mdark-dask's own, and the one soxspipe's data organiser reads.
LAYOUTS = ("mdark-dask", "soxspipe")


def product_dir(workspace: Path) -> Path:
    """Where products and their logs go (the ``mdark-dask`` layout)."""
    return workspace / "products" / "soxs_mdark"


def soxspipe_product_dir(workspace: Path, name: str) -> Path:
    """Where soxspipe 0.17.4 expects the master dark of sof ``name``.

    The organiser predicts every product at ``./reduced/<night start date>/soxs-<recipe>/
    <sof stem>.fits`` (``data_organiser.predict_product_frames``) and a recipe skips a sof
    whose product exists there (``base_recipe.__init__`` through
    ``toolkit.predict_product_path``); the night is the sof name's time stamp minus 15 h.
    A name without a time stamp gives ``reduced/soxs-mdark``, where soxspipe's
    ``predict_product_path`` collapses the empty night to.
    """
    night = night_of_sof(name)
    base = workspace / "reduced"
    return (base / night if night else base) / "soxs-mdark"


def layout_product_dir(workspace: Path, name: str, layout: str = "mdark-dask") -> Path:
    """The directory of product ``name`` in ``layout`` (one of :data:`LAYOUTS`).

    Raises
    ------
    ValueError
        ``layout`` is none of them (a caller's mistake: the command line offers only them).
    """
    if layout == "soxspipe":
        return soxspipe_product_dir(workspace, name)
    if layout == "mdark-dask":
        return product_dir(workspace)
    raise ValueError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")


def qc_dir(workspace: Path) -> Path:
    """Where QC plots go."""
    return workspace / "qc" / "soxs_mdark"
