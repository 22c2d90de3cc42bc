"""One set of raw darks planned as one product: printable, picklable, no pixels.

:func:`plan_product` scans the headers of a sof, a directory or a list of frames,
verifies them as one set and resolves its settings; :class:`ProductPlan` then knows
everything the recipe's graph needs, where the product goes and whether the workspace
already holds it up to date.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mdark_dask._version import __version__
from mdark_dask.errors import InputError
from mdark_dask.io.fits import RawFrame, is_fits_name
from mdark_dask.io.sof import read_sof
from mdark_dask.numerics.qc import QCRow
from mdark_dask.plan import sizing
from mdark_dask.plan.frameset import FrameSet, identify, scan_frames, verify_frames
from mdark_dask.plan.names import layout_product_dir, qc_dir, set_name
from mdark_dask.settings import Settings, load_settings


@dataclass(frozen=True)
class ProductPlan:
    """Everything needed to produce one master dark; printable, picklable, no pixels.

    Attributes
    ----------
    name : str
        Product basename without ``.fits`` (the sof basename, or the organiser's name).
    frameset : FrameSet
        The verified raw frames.
    settings : Settings
        Resolved science settings.
    workspace : str
        Workspace root.
    rows : int or None
        Rows per strip (an execution setting: never changes a byte); None = automatic.
    plots : bool
        Whether the final task writes QC plots.
    task_bytes : int or None
        Prepared bytes per level and strip task (an execution setting); None = the
        one-product sizes of :mod:`mdark_dask.plan.sizing`.
    layout : str
        Where in the workspace the product goes (:data:`mdark_dask.plan.names.LAYOUTS`):
        ``mdark-dask`` (``products/soxs_mdark/``) or ``soxspipe``
        (``reduced/<night>/soxs-mdark/``, where soxspipe's organiser looks for it).
    """

    name: str
    frameset: FrameSet
    settings: Settings
    workspace: str
    rows: int | None = None
    plots: bool = True
    task_bytes: int | None = None
    layout: str = "mdark-dask"

    @property
    def product_path(self) -> Path:
        """``<workspace>/products/soxs_mdark/<name>.fits``, or in the ``soxspipe`` layout
        ``<workspace>/reduced/<night>/soxs-mdark/<name>.fits``."""
        directory = layout_product_dir(Path(self.workspace), self.name, self.layout)
        return directory / f"{self.name}.fits"

    @property
    def hotpix_path(self) -> Path:
        """The hot-pixel map beside the product: ``<name>_HOTPIX.fits``."""
        return self.product_path.with_name(f"{self.name}_HOTPIX.fits")

    @property
    def noise_path(self) -> Path:
        """The noise image beside the product: ``<name>_NOISE.fits``."""
        return self.product_path.with_name(f"{self.name}_NOISE.fits")

    @property
    def log_path(self) -> Path:
        """The recipe log beside the product."""
        return self.product_path.with_suffix(".log")

    @property
    def qc_dir(self) -> Path:
        """Directory of the QC plots."""
        return qc_dir(Path(self.workspace))

    @property
    def thumbnail_path(self) -> Path:
        """The night page's picture of the master: ``<qc_dir>/<name>_thumb.png``."""
        return self.qc_dir / f"{self.name}_thumb.png"

    @property
    def fingerprint(self) -> str:
        """Digest of everything that decides the product: frames, settings, version.

        Frames count by path, size and modification time; execution settings (rows,
        cluster) do not count. Written into the product header so a rerun can tell
        whether the product is up to date.
        """
        fs = self.frameset
        record = {
            "version": __version__,
            "settings": repr(self.settings),
            "gain": fs.gain,
            "ron": fs.ron,
            "frames": [(f.path, f.size, f.mtime_ns) for f in fs.frames],
        }
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def files(self) -> tuple[str, str, str]:
        """The product's files: master dark, hot-pixel map, noise image."""
        return (str(self.product_path), str(self.hotpix_path), str(self.noise_path))

    def up_to_date(self, verify: bool = False) -> bool:
        """Whether the product and its hot-pixel map and noise image exist, complete, and
        were made from the same frames and settings (:func:`product_check`)."""
        return product_check((self.files, self.fingerprint, verify)) is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(frames, rows, cols)`` of the prepared stack."""
        return self.frameset.shape

    def level_groups(self) -> list[tuple[int, int]]:
        """The frames of each level task (:func:`mdark_dask.plan.sizing.level_groups`)."""
        return sizing.level_groups(self.shape, self.task_bytes)

    def strip_bounds(self) -> list[tuple[int, int]]:
        """The rows of each strip task (:func:`mdark_dask.plan.sizing.strip_bounds`)."""
        return sizing.strip_bounds(self.shape, self.rows, self.task_bytes)


#: What :func:`product_check` checks: the product's files (master first), the
#: fingerprint they must record, and whether to verify their data checksums too.
ProductCheck = tuple[tuple[str, ...], str, bool]


def product_check(check: ProductCheck) -> tuple[QCRow, ...] | None:
    """The QC rows of an up-to-date product, or None (see
    :func:`mdark_dask.io.product.products_state`): without ``verify``, from its headers
    and lengths alone; with it, every data checksum as well."""
    # astropy's FITS module loads here, not with the plan: the header scan needs none
    from mdark_dask.io.product import products_state

    files, fingerprint, verify = check
    return products_state(files, fingerprint, verify)


def check_batch(checks: Sequence[ProductCheck]) -> list[tuple[QCRow, ...] | None]:
    """:func:`product_check` of each; one task of a mapper (a thread, a worker)."""
    return [product_check(c) for c in checks]


def resolve_inputs(inputs: Sequence[str]) -> tuple[list[str], str | None]:
    """Expand a sof, a directory or FITS paths into frame paths and the sof's name.

    Returns
    -------
    paths : list of str
        Frame paths in the order given.
    name : str or None
        The product name for a sof input; None for directory and list inputs (their name
        comes from the frames, see :func:`mdark_dask.plan.names.set_name`).
    """
    if not inputs:
        raise InputError("no input: give a .sof file, a directory or FITS frames")
    if len(inputs) == 1 and inputs[0].lower().endswith(".sof"):
        sof = Path(inputs[0])
        if not sof.exists():
            raise InputError(f"sof file {sof} does not exist")
        return [e.path for e in read_sof(sof)], sof.name[: -len(".sof")]
    paths: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if is_fits_name(f))
            if not found:
                raise InputError(f"directory {item} holds no FITS frames")
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(os.path.abspath(item))
        else:
            raise InputError(f"{item}: no such file or directory")
    return paths, None


def plan_product(
    inputs: Sequence[str],
    workspace: str | Path,
    settings_path: Path | None = None,
    numerics: str | None = None,
    rows: int | None = None,
    plots: bool = True,
    layout: str = "mdark-dask",
) -> ProductPlan:
    """Scan and verify the frames of one set and resolve its settings (no pixels read)."""
    paths, name = resolve_inputs(inputs)
    if not paths:
        raise InputError("No image frames were passed to the recipe")
    good, bad = scan_frames(paths)
    return plan_frames(
        good, bad, name, workspace, settings_path, numerics, rows, plots, layout=layout
    )


def plan_frames(
    good: Sequence[RawFrame],
    bad: Sequence[tuple[str, str]],
    name: str | None,
    workspace: str | Path,
    settings_path: Path | None = None,
    numerics: str | None = None,
    rows: int | None = None,
    plots: bool = True,
    task_bytes: int | None = None,
    layout: str = "mdark-dask",
) -> ProductPlan:
    """Plan a product from already scanned frames (a night's sets come this way).

    The settings are chosen by instrument and arm, and the numerics they name decide how
    the set's gain is read, so the frames are identified first and verified once.
    """
    instrument, arm = identify(good, bad)
    settings = load_settings(instrument, arm, settings_path, numerics)
    frameset = verify_frames(good, bad, settings.numerics)
    return ProductPlan(
        name=name or set_name(frameset.frames),
        frameset=frameset,
        settings=settings,
        workspace=str(Path(workspace).resolve()),
        rows=rows,
        plots=plots,
        task_bytes=task_bytes,
        layout=layout,
    )


@dataclass(frozen=True)
class ProductResult:
    """What the final task reports back: small, no arrays.

    ``path`` is the master dark; ``hotpix_path`` and ``noise_path`` the hot-pixel map and
    the noise image beside it. ``qc`` holds soxspipe's rows and the physical hot/noisy
    counts (HOTPIX PHYS NUM/FRAC, NOISYPIX NUM/FRAC).
    """

    name: str
    path: str
    arm: str
    instrument: str
    n_frames: int
    qc: tuple[QCRow, ...]
    date_obs: str
    plots: tuple[str, ...] = ()
    seconds: float = 0.0
    hotpix_path: str = ""
    noise_path: str = ""

    @property
    def paths(self) -> tuple[str, ...]:
        """Every product file written: master dark, hot-pixel map, noise image."""
        return tuple(p for p in (self.path, self.hotpix_path, self.noise_path) if p)
