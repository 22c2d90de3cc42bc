"""A picture as a frozen value of what is drawn, and the one painter that rasterises it.

A QC plot is laid out (:mod:`mdark_dask.report.draw`) as a :class:`Picture`: its size in
pixels, the items drawn in order (text, lines, filled polygons, rectangles, raster
images, markers) and the panels (axes) with their data limits, labels and ticks. The
layout is pure, so the tests read what a plot shows as values; :func:`paint` is the only
code that touches pixels, with Pillow.

Why not matplotlib: a QC plot is made for every master dark, on the product's critical
path, and matplotlib's import and its text and tick machinery cost as much CPU as the
recipe's own work on a small set. The plots need only text, lines, polygons, rasters and
markers in boxes, which Pillow draws directly (see ``docs/design.md`` for the numbers).

Coordinates are pixels of the final image, x to the right and y down, as Pillow counts
them. The picture is painted :data:`SUPERSAMPLE` times larger and reduced, so lines and
markers are anti-aliased as well as the text.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from PIL import Image as PILImage

F64 = npt.NDArray[np.float64]

#: The picture is painted this many times larger, then reduced (anti-aliasing).
SUPERSAMPLE: Final = 2

#: (left, top, right, bottom) pixels.
Box = tuple[float, float, float, float]

#: A colour: a name Pillow knows ("red"), ``#rrggbb``, or a grey level in [0, 1] as text.
NAMED: Final = {
    "tab:blue": "#1f77b4",
    "tab:orange": "#ff7f0e",
}


def colour(name: str) -> str | tuple[int, int, int]:
    """A colour as Pillow takes it: the tableau names above, a grey level such as ``"0.6"``
    (0 black, 1 white, as matplotlib reads it), or Pillow's own names.

    >>> colour("0.5"), colour("tab:blue"), colour("red")
    ((128, 128, 128), '#1f77b4', 'red')
    """
    if name in NAMED:
        return NAMED[name]
    try:
        grey = float(name)
    except ValueError:
        return name
    level = round(min(max(grey, 0.0), 1.0) * 255)
    return (level, level, level)


@dataclass(frozen=True)
class Text:
    """A line (or lines) of text at ``(x, y)``.

    ``anchor`` is Pillow's two letters: horizontal ``l``/``m``/``r``, vertical
    ``a`` (ascender), ``t``, ``m``, ``s`` (baseline), ``b``, ``d``; text turned by
    ``angle`` 90 (reading upwards) is anchored by its turned box (``l``/``m``/``r``,
    ``t``/``m``/``b``).
    """

    x: float
    y: float
    text: str
    size: float
    anchor: str = "la"
    colour: str = "black"
    angle: int = 0


@dataclass(frozen=True, eq=False)
class Lines:
    """A polyline through ``points`` (n x 2 pixels; NaN rows break it), solid or dashed."""

    points: F64
    colour: str
    width: float = 1.0
    dash: tuple[float, float] | None = None
    clip: Box | None = None


@dataclass(frozen=True, eq=False)
class Polygon:
    """A filled polygon (``points``, n x 2 pixels), without an outline."""

    points: F64
    colour: str
    clip: Box | None = None


@dataclass(frozen=True)
class Rect:
    """A rectangle: outlined, filled, or both (a colour of "" is none)."""

    box: Box
    outline: str = "black"
    fill: str = ""
    width: float = 1.0


@dataclass(frozen=True, eq=False)
class Raster:
    """An image stretched over ``box`` with the nearest pixel: ``pixels`` are grey levels
    (rows x cols uint8) or colours (rows x cols x 3), row 0 drawn at the top."""

    pixels: npt.NDArray[np.uint8]
    box: Box
    clip: Box | None = None


@dataclass(frozen=True, eq=False)
class Markers:
    """The same marker at every ``(x, y)`` pixel: ``o`` circle, ``x`` cross, ``s`` square
    (outlined), ``.`` dot (filled), of ``size`` pixels across."""

    x: F64
    y: F64
    shape: str
    size: float
    colour: str
    width: float = 1.0
    clip: Box | None = None


Item = Text | Lines | Polygon | Rect | Raster | Markers


@dataclass(frozen=True)
class Panel:
    """An axes box and what it shows: what the tests read of a plot.

    ``box`` is in pixels; ``xlim``/``ylim`` are the data at its left/right and
    bottom/top edges; ``ylog`` says the y axis is logarithmic. Ticks are (value, label).
    """

    name: str
    box: Box
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    ylog: bool = False
    xlabel: str = ""
    ylabel: str = ""
    title: str = ""
    xticks: tuple[tuple[float, str], ...] = ()
    yticks: tuple[tuple[float, str], ...] = ()

    @property
    def width(self) -> float:
        """Pixels across."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Pixels down."""
        return self.box[3] - self.box[1]

    def px(self, x: npt.ArrayLike) -> F64:
        """Pixel columns of data ``x``."""
        lo, hi = self.xlim
        return self.box[0] + (np.asarray(x, dtype=np.float64) - lo) / (hi - lo) * self.width

    def py(self, y: npt.ArrayLike) -> F64:
        """Pixel rows of data ``y`` (clamped to the box's bottom below a log axis's 0)."""
        v = np.asarray(y, dtype=np.float64)
        lo, hi = self.ylim
        if self.ylog:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.log10(np.maximum(v, lo))
            lo, hi = math.log10(lo), math.log10(hi)
        return self.box[3] - (v - lo) / (hi - lo) * self.height


@dataclass(frozen=True, eq=False)
class Picture:
    """A whole plot: ``size`` (width, height) pixels, ``items`` drawn in order on white,
    ``panels`` by name."""

    size: tuple[int, int]
    items: tuple[Item, ...]
    panels: tuple[Panel, ...] = ()

    def panel(self, name: str) -> Panel:
        """The panel called ``name``."""
        return next(p for p in self.panels if p.name == name)

    def texts(self) -> tuple[str, ...]:
        """Every text drawn: titles, labels, tick labels, legends, notes."""
        return tuple(i.text for i in self.items if isinstance(i, Text))


@functools.lru_cache(maxsize=64)
def font(size: int) -> Any:
    """Pillow's own font (Aileron, a plain sans-serif carried inside Pillow) at ``size``
    pixels: the same on every installation, with nothing to find on disk."""
    from PIL import ImageFont

    return ImageFont.load_default(size)


def paint(picture: Picture, supersample: int = SUPERSAMPLE) -> PILImage.Image:
    """The picture's pixels (RGB): every item in order on white."""
    from PIL import Image, ImageDraw

    s = supersample
    w, h = picture.size
    image = Image.new("RGB", (w * s, h * s), "white")
    pen = ImageDraw.Draw(image)
    for item in picture.items:
        clip = getattr(item, "clip", None)
        if clip is None:
            _paint(image, pen, item, s, (0.0, 0.0))
            continue
        # drawn on a copy of the clip box, pasted back: Pillow draws without clipping
        x0, y0 = round(clip[0] * s), round(clip[1] * s)
        region = (x0, y0, round(clip[2] * s), round(clip[3] * s))
        part = image.crop(region)
        _paint(part, ImageDraw.Draw(part), item, s, (x0, y0))
        image.paste(part, region[:2])
    return image.reduce(s) if s > 1 else image


def _xy(points: F64, s: int, offset: tuple[float, float]) -> list[tuple[float, float]]:
    return [(x * s - offset[0], y * s - offset[1]) for x, y in points.tolist()]


def _paint(image: Any, pen: Any, item: Item, s: int, offset: tuple[float, float]) -> None:
    if isinstance(item, Text):
        _text(image, pen, item, s)
    elif isinstance(item, Lines):
        _lines(pen, item, s, offset)
    elif isinstance(item, Polygon):
        if item.points.shape[0] >= 3:
            pen.polygon(_xy(item.points, s, offset), fill=colour(item.colour))
    elif isinstance(item, Rect):
        x0, y0, x1, y1 = (v * s for v in item.box)
        pen.rectangle(
            (x0, y0, x1 - 1, y1 - 1),
            outline=colour(item.outline) if item.outline else None,
            fill=colour(item.fill) if item.fill else None,
            width=max(1, round(item.width * s)),
        )
    elif isinstance(item, Raster):
        _raster(image, item, s, offset)
    else:
        _markers(pen, item, s, offset)


def _text(image: Any, pen: Any, t: Text, s: int) -> None:
    from PIL import Image, ImageDraw

    f = font(max(1, round(t.size * s)))
    fill = colour(t.colour)
    if t.angle == 0:
        if "\n" in t.text:
            pen.multiline_text(
                (t.x * s, t.y * s), t.text, font=f, fill=fill, anchor=t.anchor, align="center"
            )
        else:
            pen.text((t.x * s, t.y * s), t.text, font=f, fill=fill, anchor=t.anchor)
        return
    _, _, right, bottom = f.getbbox(t.text, anchor="lt")
    mask = Image.new("L", (max(1, int(right) + 1), max(1, int(bottom) + 1)), 0)
    ImageDraw.Draw(mask).text((0, 0), t.text, font=f, fill=255, anchor="lt")
    mask = mask.rotate(t.angle, expand=True)
    mw, mh = mask.size
    dx = {"l": 0.0, "m": mw / 2, "r": float(mw)}[t.anchor[0]]
    dy = {"t": 0.0, "a": 0.0, "m": mh / 2, "b": float(mh), "s": float(mh), "d": float(mh)}[
        t.anchor[1]
    ]
    image.paste(fill, (round(t.x * s - dx), round(t.y * s - dy)), mask)


def _lines(pen: Any, item: Lines, s: int, offset: tuple[float, float]) -> None:
    width = max(1, round(item.width * s))
    fill = colour(item.colour)
    pts = np.asarray(item.points, dtype=np.float64)
    breaks = ~np.all(np.isfinite(pts), axis=1)
    runs = np.split(pts, np.flatnonzero(breaks))
    for run in runs:
        run = run[np.all(np.isfinite(run), axis=1)]
        if run.shape[0] < 2:
            continue
        if item.dash is None:
            pen.line(_xy(run, s, offset), fill=fill, width=width)
        else:
            for a, b in _dashes(run, item.dash):
                pen.line(_xy(np.array([a, b]), s, offset), fill=fill, width=width)


def _dashes(run: F64, dash: tuple[float, float]) -> list[tuple[F64, F64]]:
    """The dashes along a polyline: ``dash[0]`` pixels on, ``dash[1]`` off (a dash over a
    corner is drawn straight)."""
    on, off = dash
    period = max(on + off, 1e-3)
    seg = np.hypot(*np.diff(run, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    starts = np.arange(0.0, float(cum[-1]), period)[:10_000]

    def at(d: F64) -> F64:
        i = np.clip(np.searchsorted(cum, d, side="right") - 1, 0, seg.size - 1)
        frac = np.where(seg[i] > 0, (d - cum[i]) / np.where(seg[i] > 0, seg[i], 1.0), 0.0)
        return run[i] + (run[i + 1] - run[i]) * frac[:, None]

    a, b = at(starts), at(np.minimum(starts + on, cum[-1]))
    return list(zip(a, b, strict=True))


def _raster(image: Any, item: Raster, s: int, offset: tuple[float, float]) -> None:
    from PIL import Image

    x0, y0, x1, y1 = (round(v * s - o) for v, o in zip(item.box, offset * 2, strict=True))
    if x1 <= x0 or y1 <= y0 or not item.pixels.size:
        return
    mode = "L" if item.pixels.ndim == 2 else "RGB"
    tile = Image.fromarray(np.ascontiguousarray(item.pixels), mode)
    image.paste(tile.resize((x1 - x0, y1 - y0), Image.Resampling.NEAREST), (x0, y0))


def _markers(pen: Any, m: Markers, s: int, offset: tuple[float, float]) -> None:
    r = m.size * s / 2
    width = max(1, round(m.width * s))
    fill = colour(m.colour)
    for x, y in zip((m.x * s - offset[0]).tolist(), (m.y * s - offset[1]).tolist(), strict=True):
        box = (x - r, y - r, x + r, y + r)
        if m.shape == "o":
            pen.ellipse(box, outline=fill, width=width)
        elif m.shape == "x":
            pen.line((x - r, y - r, x + r, y + r), fill=fill, width=width)
            pen.line((x - r, y + r, x + r, y - r), fill=fill, width=width)
        elif m.shape == "s":
            pen.rectangle(box, outline=fill, width=width)
        else:
            pen.ellipse(box, fill=fill)


def write_png(picture: Picture, path: Path, supersample: int = SUPERSAMPLE) -> None:
    """Paint the picture and write it as PNG through a temporary name (fast zlib level:
    these noisy images compress little better at the default)."""
    from mdark_dask.io.atomic import replacing

    with replacing(path) as tmp:
        paint(picture, supersample).save(tmp, format="PNG", compress_level=1)


def preload(font_sizes: tuple[float, ...] = ()) -> None:
    """Import Pillow's drawing and PNG code and open the fonts of ``font_sizes`` (pixels,
    as painted), so the first picture does not wait for them."""
    import PIL.Image
    import PIL.ImageDraw
    import PIL.ImageFont
    import PIL.PngImagePlugin  # noqa: F401

    for size in font_sizes:
        font(max(1, round(size * SUPERSAMPLE)))
