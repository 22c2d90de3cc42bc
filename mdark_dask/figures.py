"""What each QC plot shows, as frozen values: small arrays and numbers, no matplotlib.

The QC plots are made in two steps. :mod:`mdark_dask.plots` reduces the whole-frame images
to these values (thumbnails, histogram counts, bounds: compiled passes that release the
GIL), and :mod:`mdark_dask.drawing` draws them with matplotlib. A value is a few hundred
kilobytes at most and pickles cheaply, so the drawing can happen in another thread or in
another process (:mod:`mdark_dask.painter`) while the product is written, and that process
needs only numpy and matplotlib to read them: this module imports nothing else.

They compare by identity (``eq=False``): a field-wise ``==`` of arrays has no single truth
value, and nothing needs figures as dictionary keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class PlainImage:
    """An RGB image without axes, one display pixel per sampled block.

    Attributes
    ----------
    path : str
        The PNG file to write.
    rgb : ndarray of uint8, shape (rows, cols, 3)
        Row 0 is the image's first row, drawn at the bottom (as DS9 shows it).
    """

    path: str
    rgb: U8


@dataclass(frozen=True, eq=False)
class FramesFigure:
    """Each input frame's clipped level and scatter against time.

    Attributes
    ----------
    path, name : str
        The PNG file; the product's name (the title).
    minutes, level, scatter : ndarray of float64
        Minutes since the first frame's MJD-OBS; per-frame clipped mean and standard
        deviation, in frame order.
    """

    path: str
    name: str
    minutes: F64
    level: F64
    scatter: F64


@dataclass(frozen=True, eq=False)
class HistogramFigure:
    """The stacked master's pixel histogram with the post-stack clip bounds.

    Attributes
    ----------
    path, name : str
        The PNG file; the product's name.
    edges : ndarray of float64
        Bin edges, electrons.
    counts : ndarray of int64
        Pixels per bin (``edges.size - 1`` of them).
    bounds : tuple of float
        The post-stack clip's lower and upper bound, electrons.
    """

    path: str
    name: str
    edges: F64
    counts: I64
    bounds: tuple[float, float]


@dataclass(frozen=True, eq=False)
class DarkPanel:
    """The dark-current distribution: bins even in the symmetric-log coordinate.

    Attributes
    ----------
    edges : ndarray of float64
        Bin edges in electrons (not yet in the symmetric-log coordinate).
    counts : ndarray of int64
        Pixels per bin.
    linthresh : float
        Half-width of the linear part of the symmetric-log coordinate.
    hot_threshold : float
        Dark current above which a pixel is hot.
    n_hot : int
        Hot pixels found.
    """

    edges: F64
    counts: I64
    linthresh: float
    hot_threshold: float
    n_hot: int


@dataclass(frozen=True, eq=False)
class NoiseCurve:
    """One noise image's distribution.

    Attributes
    ----------
    counts : ndarray of int64
        Pixels per bin of :attr:`NoisePanel.edges`.
    threshold : float
        Its noisy-pixel threshold (NaN: none, not drawn).
    colour, label : str
        How it is drawn and named in the legend.
    """

    counts: I64
    threshold: float
    colour: str
    label: str


@dataclass(frozen=True, eq=False)
class NoisePanel:
    """The two noise images' distributions on common bins.

    Attributes
    ----------
    edges : ndarray of float64
        Bin edges from 0, electrons.
    curves : tuple of NoiseCurve
        The images that have any counted pixel, in drawing order.
    n_noisy : int
        Noisy pixels found.
    """

    edges: F64
    curves: tuple[NoiseCurve, ...]
    n_noisy: int


@dataclass(frozen=True, eq=False)
class DistributionFigure:
    """Dark current above, noise below.

    Attributes
    ----------
    path, name : str
        The PNG file; the product's name.
    dark : DarkPanel
    noise : NoisePanel
    """

    path: str
    name: str
    dark: DarkPanel
    noise: NoisePanel


#: Any of the QC figures; :func:`mdark_dask.drawing.draw` draws each to its path.
Figure = PlainImage | FramesFigure | HistogramFigure | DistributionFigure
