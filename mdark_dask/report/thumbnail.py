"""The small picture of a master dark on the night page: ``qc/soxs_mdark/<name>_thumb.png``.

Written by the product's final task, from the arrays it already holds, so the pages never
read a product's pixels again. Grey from the 1st to the 99th percentile of the unflagged
pixels, every ``step``-th pixel in both directions (the frame's aspect ratio is kept),
row 0 at the bottom as the plots show it. Flagged pixels are not painted: at this size
soxspipe's QUAL tail would bury the image, and the hot-pixel plot shows them properly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from mdark_dask.report.axes import grey_levels
from mdark_dask.report.canvas import Picture, Raster, write_png

#: The thumbnail's longer side at most, in pixels.
MAX_SIDE: Final = 256


def thumbnail_grey(
    flux: npt.NDArray[np.floating], qual: npt.NDArray[np.integer], max_side: int = MAX_SIDE
) -> npt.NDArray[np.uint8]:
    """The thumbnail as grey levels, ``(ceil(ny/step), ceil(nx/step))``, row 0 first."""
    step = max(1, -(-max(flux.shape) // max_side))
    small = flux[::step, ::step].astype(np.float64)
    good = small[(qual[::step, ::step] == 0) & np.isfinite(small)]
    lo, hi = np.percentile(good, [1, 99]) if good.size else (0.0, 1.0)
    return grey_levels(small, float(lo), float(hi), nan=0.0)


def write_thumbnail(path: Path, grey: npt.NDArray[np.uint8]) -> Path:
    """Write the thumbnail PNG atomically (row 0 at the bottom), pixel for pixel."""
    ny, nx = grey.shape
    picture = Picture((nx, ny), (Raster(grey[::-1], (0.0, 0.0, float(nx), float(ny))),))
    write_png(picture, path, supersample=1)
    return path
