"""From raw frame paths to one verified set of darks, checked as soxspipe 0.17.4 checks it.

A :class:`FrameSet` is a frozen value: the frames in MJD order and everything the recipe
needs to prepare them (arm geometry, binning, gain, read noise). Building one scans
headers only; no pixel is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from mdark_dask.errors import InputError
from mdark_dask.instruments import (
    SOXS_KEYWORDS,
    XSH_KEYWORDS,
    XSH_WIN_BIN,
    ArmSpec,
    arm_spec,
    instrument_of,
    keywords_of,
)
from mdark_dask.io.fits import FrameReader, RawFrame, StackReader, scan_frame
from mdark_dask.numerics.steps import Numerics
from mdark_dask.plan.names import binning_of

MIN_FRAMES: Final = 3

SCAN_KEYWORDS: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(
        [v for kw in (SOXS_KEYWORDS, XSH_KEYWORDS) for v in vars(kw).values() if v]
        + list(XSH_WIN_BIN)
    )
)


@dataclass(frozen=True)
class FrameSet:
    """A verified set of raw darks of one instrument, arm and exposure time.

    Attributes
    ----------
    frames : tuple of RawFrame
        Sorted by ``MJD-OBS``.
    spec : ArmSpec
        Geometry and fallbacks of the arm.
    binning : (ybin, xbin)
        Trim binning (soxspipe's ``[CDELT2, CDELT1]``); 1x1 for NIR.
    gain, ron : float
        e-/ADU and e-, from the headers or the detector-parameter fallback.
    exptime : float
        Exposure time in seconds.
    dropped : tuple of (path, reason)
        Frames left out with a warning (truncated files).
    """

    frames: tuple[RawFrame, ...]
    spec: ArmSpec
    binning: tuple[int, int]
    gain: float
    ron: float
    exptime: float
    dropped: tuple[tuple[str, str], ...] = ()

    @property
    def instrument(self) -> str:
        """``soxs`` or ``xsh``."""
        return self.spec.instrument

    @property
    def arm(self) -> str:
        """``VIS``, ``NIR`` or ``UVB``."""
        return self.spec.arm

    @property
    def region(self) -> tuple[int, int, int, int]:
        """Science pixels (rs, re, cs, ce) of the rotated raw frame."""
        return self.spec.science_region(*self.binning)

    def first(self, keyword: str) -> Any:
        """A keyword's value in the earliest frame."""
        return self.frames[0].get(keyword)

    def last(self, keyword: str) -> Any:
        """A keyword's value in the latest frame (soxspipe's temperature rule)."""
        return self.frames[-1].get(keyword)

    @property
    def win_binning(self) -> tuple[int, int] | None:
        """(binx, biny) as the organiser names the set; None when absent or NIR."""
        return binning_of(self.frames[0])

    def temperatures(self) -> tuple[float | None, float | None] | None:
        """The detector's and the common path's temperatures in the latest frame (as
        soxspipe reads them), for SOXS; None for X-shooter."""
        if self.instrument != "soxs":
            return None
        kw = self.spec.keywords
        det_kw = kw.detector_temp_nir if self.arm == "NIR" else kw.detector_temp_vis
        det = self.last(det_kw) if det_kw else None
        cpath = self.last(kw.cpath_temp) if kw.cpath_temp else None
        return det, cpath

    def reader(self) -> StackReader:
        """The picklable reader of the set's prepared frames (trimmed, rotated, e-)."""
        return StackReader(
            tuple(
                FrameReader(raw, self.spec.rotation_k, self.region, self.gain)
                for raw in self.frames
            )
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(frames, rows, cols)`` of the prepared (trimmed, rotated) stack."""
        return (len(self.frames), *self.spec.trimmed_shape(*self.binning))


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def _mix(label: str, values: Sequence[Any]) -> InputError:
    return InputError(f"Input frames are a mix of {label}: {' and '.join(map(str, values))}")


_T = TypeVar("_T")

#: A ``map``-like callable: ``mapper(function, items)`` gives ``function(item)`` for every
#: item, in order. The builtin ``map`` runs in this thread;
#: :mod:`mdark_dask.scheduler` makes one of a thread pool and one of a cluster's workers.
Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]

#: Files per scan task, at most: enough that a task's overhead is small beside its reads,
#: few enough that a long scan reports progress and spreads over many workers.
SCAN_BATCH: Final = 128


def scan_batch(paths: Sequence[str]) -> list[RawFrame | str]:
    """Scan the headers of ``paths``: a :class:`RawFrame`, or the reason it cannot be
    scanned, per path. One task of :func:`scan_paths`; it runs wherever the mapper sends
    it (a thread, a worker), so it takes and returns only plain picklable values."""
    out: list[RawFrame | str] = []
    for path in paths:
        try:
            out.append(scan_frame(path, SCAN_KEYWORDS))
        except InputError as exc:
            out.append(str(exc))
    return out


def batches(items: Sequence[_T], most: int = SCAN_BATCH) -> list[tuple[_T, ...]]:
    """``items`` in consecutive batches of at most ``most``, at least 64 batches where
    there are as many items (so every worker of a cluster gets some), none empty."""
    size = max(1, min(most, -(-len(items) // 64)))
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def scan_paths(
    paths: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    mapper: Mapper = map,
) -> dict[str, RawFrame | str]:
    """Scan every header once: path -> :class:`RawFrame`, or the reason it cannot be
    scanned.

    The files are scanned in batches (:func:`scan_batch`), one ``mapper`` call each, so
    the scan runs where the mapper runs them: in this thread with the builtin ``map``, in
    threads or on a cluster's workers with :mod:`mdark_dask.scheduler`'s mappers.
    ``progress(done, total)`` is called after each batch (for long scans).
    """
    unique = list(dict.fromkeys(paths))
    chunks = batches(unique)
    scanned: dict[str, RawFrame | str] = {}
    for batch, results in zip(chunks, mapper(scan_batch, chunks), strict=True):
        scanned.update(zip(batch, results, strict=True))
        if progress is not None:
            progress(len(scanned), len(unique))
    return scanned


def frame_error(path: str, reason: str) -> str:
    """One line naming a frame and what is wrong with it."""
    return f"{path}: {reason}"


def split_scan(
    paths: Sequence[str], scanned: dict[str, RawFrame | str]
) -> tuple[list[RawFrame], list[tuple[str, str]]]:
    """The readable frames and the (path, reason) of the rest among ``paths``, in their
    order, from a scan (:func:`scan_paths`) that covered them. A reason does not repeat
    the path (:func:`frame_error` puts it back where one line must stand alone)."""
    good: list[RawFrame] = []
    bad: list[tuple[str, str]] = []
    for path in paths:
        result = scanned[path]
        if isinstance(result, str):
            bad.append((path, result.removeprefix(f"{path}: ")))
        else:
            good.append(result)
    return good, bad


def scan_frames(
    paths: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    mapper: Mapper = map,
) -> tuple[list[RawFrame], list[tuple[str, str]]]:
    """Scan every header (:func:`scan_paths`); return the readable frames and the
    (path, reason) of the rest, both in the order of ``paths``."""
    return split_scan(paths, scan_paths(paths, progress, mapper))


def _gain(frames: Sequence[RawFrame], spec: ArmSpec, numerics: Numerics) -> float:
    kw = spec.keywords
    if spec.instrument == "soxs" and numerics == "soxspipe-0.17.4":
        resp = f"RESP_TAB_{spec.arm}"
        usable = [f for f in frames if f.get(kw.pro_catg) != resp]
        values = _unique(
            max(f.get(kw.conad), f.get(kw.gain))
            for f in usable
            if f.get(kw.conad) is not None and f.get(kw.gain) is not None
        )
    else:
        # e-/ADU is CONAD; ESO DET OUT1 GAIN is its inverse (ADU/e-), so the gain is CONAD
        values = _unique(f.get(kw.conad) for f in frames)
    if len(values) > 1:
        raise _mix("gain", values)
    return float(values[0]) if values and values[0] else spec.gain


def build_frameset(paths: Sequence[str], numerics: Numerics) -> FrameSet:
    """Scan and verify raw darks with soxspipe 0.17.4's checks and messages (one
    instrument, arm, binning, readout speed, gain, read noise, type and exposure time),
    plus the documented minimum of frames and a shape that holds the science pixels.

    Unreadable or truncated frames are dropped with a reason when at least
    :data:`MIN_FRAMES` good frames remain; otherwise the set fails.

    Raises
    ------
    InputError
        One line saying what is wrong with the set.
    """
    if not paths:
        raise InputError("No image frames were passed to the recipe")
    good, bad = scan_frames(paths)
    return verify_frames(good, bad, numerics)


def identify(good: Sequence[RawFrame], bad: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The instrument and arm of scanned frames that may form one set: the first checks
    of :func:`verify_frames`, which the settings (chosen by instrument and arm) need
    before the set can be verified.

    Raises
    ------
    InputError
        No frames, unreadable frames, or a mix of instruments or arms.
    """
    if not good and not bad:
        raise InputError("No image frames were passed to the recipe")
    not_fits = [(path, reason) for path, reason in bad if "truncated" not in reason]
    if not_fits:
        raise InputError(frame_error(*not_fits[0]))
    if bad and len(good) < MIN_FRAMES:
        raise InputError(frame_error(*bad[0]))
    instruments = _unique(instrument_of(f.get("INSTRUME")) for f in good)
    if len(instruments) > 1:
        raise _mix("instruments", instruments)
    instrument = instruments[0]
    kw = keywords_of(instrument)
    arms = _unique(f.get(kw.arm) for f in good)
    if len(arms) > 1:
        raise InputError(f"Input frames are a mix of {' and '.join(map(str, arms))}")
    if not arms:
        raise InputError(f"Input frames carry no arm ({kw.arm})")
    return instrument, str(arms[0])


def verify_frames(
    good: Sequence[RawFrame], bad: Sequence[tuple[str, str]], numerics: Numerics
) -> FrameSet:
    """Verify scanned frames as one set (see :func:`build_frameset`); ``numerics``
    decides how the gain is read."""
    instrument, arm = identify(good, bad)
    kw = keywords_of(instrument)
    spec = arm_spec(instrument, arm)
    binning = (1, 1)
    if spec.binned:
        xs = _unique(f.get(kw.binx) for f in good)
        ys = _unique(f.get(kw.biny) for f in good)
        if len(xs) > 1 or len(ys) > 1:
            raise InputError("Input frames are a mix of binnings")
        binning = (int(ys[0]) if ys else 1, int(xs[0]) if xs else 1)
    speeds = _unique(f.get(kw.read_speed) for f in good)
    if len(speeds) > 1:
        raise _mix("readout speeds", speeds)
    gain = _gain(good, spec, numerics)
    rons = _unique(f.get(kw.ron) for f in good)
    if len(rons) > 1:
        raise _mix("readnoise", rons)
    ron = float(rons[0]) if rons and rons[0] else spec.ron
    types = [t for t in _unique(f.get(kw.dpr_type) for f in good) if t != "REDUCED"]
    types += [t for t in _unique(f.get(kw.pro_type) for f in good) if t not in (*types, "REDUCED")]
    if len(types) > 1:
        raise InputError(f"Input frames are a mix of {' and '.join(map(str, types))}")
    if types != ["DARK"]:
        raise InputError("Input frames not DARK frames")
    exptimes = _unique(f.get(kw.exptime) for f in good)
    if len(exptimes) > 1:
        raise InputError(
            "Input frames have differing exposure-times "
            + " and ".join(str(e) for e in sorted(exptimes))
        )
    if not exptimes:
        raise InputError("Input frames carry no EXPTIME")
    if len(good) < MIN_FRAMES:
        raise InputError(f"at least {MIN_FRAMES} dark frames are needed, got {len(good)}")
    shapes = _unique(f.shape for f in good)
    if len(shapes) > 1:
        raise InputError(f"Input frames differ in shape: {' and '.join(map(str, shapes))}")
    need = spec.raw_shape(*binning)
    have = shapes[0]
    if have[0] < need[0] or have[1] < need[1]:
        raise InputError(
            f"frames of {have[0]}x{have[1]} pixels are too small for the {instrument.upper()} "
            f"{spec.arm} science region (needs at least {need[0]}x{need[1]})"
        )
    missing_mjd = [f.name for f in good if f.get(kw.mjd_obs) is None]
    if missing_mjd:
        raise InputError(f"{missing_mjd[0]} has no MJD-OBS")
    ordered = tuple(sorted(good, key=lambda f: float(f.get(kw.mjd_obs))))
    return FrameSet(ordered, spec, binning, gain, ron, float(exptimes[0]), tuple(bad))
