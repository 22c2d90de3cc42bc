"""Plan a night: find raw frames, classify them, group the darks into sets (headers only).

Grouping follows soxspipe's data organiser so that a night organised
by mdark-dask and by soxspipe gives the same sets and the same sof names: frames are one
set when they share instrument, arm, DPR CATG/TECH/TYPE, exposure time to 0.01 s,
readout mode, gain, binning, night (MJD-OBS - 15 h), template (ID, name, number of
exposures), OB (name, id), filter and object. Unlike soxspipe 0.17.4, X-shooter darks are
grouped too. Nothing here reads pixels or computes: the result is a printable value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, NamedTuple

from mdark_dask.errors import InputError
from mdark_dask.instruments import instrument_of, keywords_of
from mdark_dask.io.fits import RawFrame, is_fits_name
from mdark_dask.io.sof import read_sof
from mdark_dask.plan.frameset import MIN_FRAMES, Mapper, frame_error, scan_paths, split_scan
from mdark_dask.plan.names import binning_of, night_of_mjd, rospeed_field, set_name


@dataclass(frozen=True)
class NightSet:
    """One set of darks to reduce into one master dark.

    Attributes
    ----------
    name : str
        The organiser's sof name without ``.sof`` (or a given sof's basename).
    frames : tuple of RawFrame
        The scanned frames, sorted by MJD-OBS.
    bad : tuple of (path, reason)
        Frames of a given sof that could not be scanned (the recipe decides).
    instrument, arm : str
        ``soxs``/``xsh`` and the arm.
    exptime : float
        Exposure time in seconds.
    sof : str or None
        The sof file the set came from, or None when grouped from raw frames.
    """

    name: str
    frames: tuple[RawFrame, ...]
    bad: tuple[tuple[str, str], ...]
    instrument: str
    arm: str
    exptime: float
    sof: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A file or group that will not become a product, and why."""

    what: str
    reason: str

    @property
    def kind(self) -> str:
        """The reason without its particulars (counts, keyword values), for counting."""
        return reason_kind(self.reason)


#: A reason's kind: quoted values whole (a header's ``INSTRUME`` may hold a colon), then
#: anything up to the first ``:``, ``;`` or `` (``.
_KIND: Final = re.compile(r"(?:'[^']*'|'(?![^']*')|\s(?!\()|[^':;\s])*")


def reason_kind(reason: str) -> str:
    """A left-out reason without its particulars: ``not a dark (DPR TYPE BIAS)`` and
    ``only 2 frame(s); at least 3 needed`` count as ``not a dark`` and ``only 2 frame(s)``;
    a quoted value is kept whole (``unknown instrument 'HIRES: High Resolution'``)."""
    match = _KIND.match(reason)
    return (match.group(0) if match else reason).strip()


@dataclass(frozen=True)
class NightPlan:
    """The sets of a night and everything left out, with reasons.

    ``others`` holds the night's raw frames that are not darks (arcs, flats, science,
    biases; also listed in ``skipped``): the frames the masters will calibrate
    (:mod:`mdark_dask.plan.association`).
    """

    sets: tuple[NightSet, ...]
    skipped: tuple[Skipped, ...]
    others: tuple[RawFrame, ...] = ()

    def __str__(self) -> str:
        """A summary: one line for the night, one per set."""
        frames = sum(len(s.frames) for s in self.sets)
        lines = [
            f"NightPlan: {len(self.sets)} set(s) of {frames} dark frame(s); "
            f"{len(self.skipped)} left out"
        ]
        lines += [
            f"  {s.name}: {s.instrument.upper()} {s.arm}, {len(s.frames)} frames of {s.exptime:g} s"
            for s in self.sets
        ]
        return "\n".join(lines)


def discover(
    inputs: Sequence[str], exclude: Sequence[str] = ()
) -> tuple[list[str], list[str], list[Skipped]]:
    """Split inputs into raw frame paths (directories searched recursively) and sof files.

    Symbolic links to directories are followed, each directory searched once by its
    resolved path (so a link back up the tree ends there); hidden directories and the
    directories of ``exclude`` (a workspace inside the input tree holds products, not raw
    frames) are not searched.

    Returns
    -------
    frames, sofs : list of str
        Absolute paths, sorted, without duplicates.
    missing : list of Skipped
        Inputs that do not exist.
    """
    frames: list[str] = []
    sofs: list[str] = []
    missing: list[Skipped] = []
    seen = {os.path.realpath(e) for e in exclude}
    for item in inputs:
        path = os.path.abspath(item)
        if os.path.isdir(path):
            frames.extend(_walk(path, seen))
        elif path.lower().endswith(".sof") and os.path.isfile(path):
            sofs.append(path)
        elif os.path.isfile(path):
            frames.append(path)
        else:
            missing.append(Skipped(item, "no such file or directory"))
    return sorted(dict.fromkeys(frames)), sorted(dict.fromkeys(sofs)), missing


def _walk(top: str, seen: set[str]) -> list[str]:
    """The FITS files under ``top``, following links to directories, skipping hidden
    directories and those whose resolved path is in ``seen`` (which it extends)."""
    found: list[str] = []
    if os.path.realpath(top) in seen:
        return found
    seen.add(os.path.realpath(top))
    for root, dirs, files in os.walk(top, followlinks=True):
        kept = []
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(root, d))
            if not d.startswith(".") and real not in seen:
                seen.add(real)
                kept.append(d)
        dirs[:] = kept
        found.extend(os.path.join(root, f) for f in sorted(files) if is_fits_name(f))
    return found


def _kw(frame: RawFrame) -> Any:
    try:
        return keywords_of(instrument_of(frame.get("INSTRUME")))
    except InputError:
        return None


#: The reason of a known instrument's raw frame that is not a dark (an arc, a flat, a science
#: frame): the frames the night's masters will calibrate, which the association looks at.
NOT_A_DARK: Final = "not a dark"


def classify(frame: RawFrame) -> str | None:
    """Why a scanned frame is not a raw dark of a known instrument, or None if it is."""
    kw = _kw(frame)
    if kw is None:
        instrume = frame.get("INSTRUME")
        return "no INSTRUME" if instrume is None else f"unknown instrument {instrume!r}"
    if any(key.startswith("ESO PRO ") for key, _ in frame.cards):
        return "a product, not a raw frame"
    dpr = frame.get(kw.dpr_type)
    if dpr != "DARK":
        return f"{NOT_A_DARK} (DPR TYPE {dpr})" if dpr else "no DPR TYPE"
    for key in (kw.arm, kw.exptime, kw.mjd_obs):
        if frame.get(key) is None:
            return f"no {key}"
    return None


class GroupKey(NamedTuple):
    """What the organiser's frames of one set share."""

    instrument: str
    arm: str
    dpr_catg: Any
    dpr_tech: Any
    dpr_type: Any
    exptime: float
    rospeed: str
    gain: Any
    binning: tuple[int, int] | None
    night: str
    tpl_id: Any
    tpl_name: Any
    tpl_nexp: Any
    obs_name: Any
    obs_id: Any
    filter: Any
    target: Any


def group_key(frame: RawFrame) -> GroupKey:
    """The organiser's grouping key of a raw dark."""
    kw = _kw(frame)
    inst = instrument_of(frame.get("INSTRUME"))
    if inst == "soxs":
        gain_values = [frame.get(kw.conad), frame.get(kw.gain)]
        present = [float(v) for v in gain_values if v is not None]
        gain = max(present) if len(present) == 2 else None
    else:
        gain = frame.get(kw.conad)
    return GroupKey(
        instrument=inst,
        arm=str(frame.get(kw.arm)),
        dpr_catg=frame.get(kw.dpr_catg),
        dpr_tech=frame.get(kw.dpr_tech),
        dpr_type=frame.get(kw.dpr_type),
        exptime=round(float(frame.get(kw.exptime)), 2),
        rospeed=rospeed_field(inst, frame.get(kw.read_speed)),
        gain=gain,
        binning=binning_of(frame),
        night=night_of_mjd(float(frame.get(kw.mjd_obs))),
        tpl_id=frame.get(kw.tpl_id),
        tpl_name=frame.get(kw.tpl_name),
        tpl_nexp=frame.get(kw.tpl_nexp),
        obs_name=frame.get(kw.obs_name),
        obs_id=frame.get(kw.obs_id),
        filter=frame.get("ESO INS ACFW ID"),
        target=frame.get("OBJECT"),
    )


def _set_of(name: str, frames: Iterable[RawFrame], sof: str | None = None) -> NightSet:
    ordered = tuple(sorted(frames, key=lambda f: float(f.get("MJD-OBS") or 0.0)))
    first = ordered[0]
    kw = _kw(first)
    inst = instrument_of(first.get("INSTRUME")) if kw is not None else "?"
    arm = str(first.get(kw.arm)) if kw is not None else "?"
    exptime = float(first.get(kw.exptime) or 0.0) if kw is not None else 0.0
    return NightSet(name, ordered, (), inst, arm, exptime, sof)


def plan_night(
    inputs: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    mapper: Mapper = map,
    exclude: Sequence[str] = (),
) -> NightPlan:
    """Scan headers, classify, group the darks; sof inputs become sets as they are.

    Groups with fewer than :data:`MIN_FRAMES` frames, groups from an incomplete template
    (fewer frames than ``ESO TPL NEXP``, which soxspipe's organiser also leaves out),
    frames that are not raw darks and unreadable files are listed in ``skipped``.
    ``progress(done, total)`` follows the scan of the frames; ``mapper`` runs the
    header reads (:func:`mdark_dask.plan.frameset.scan_paths`); directories in
    ``exclude`` (the workspace) are not searched (:func:`discover`).
    """
    raw_paths, sof_paths, skipped = discover(inputs, exclude)
    sofs: list[tuple[str, list[str] | InputError]] = []
    for sof in sof_paths:
        try:
            sofs.append((sof, [e.path for e in read_sof(Path(sof))]))
        except InputError as exc:
            sofs.append((sof, exc))
    in_sofs = [p for _, entries in sofs if isinstance(entries, list) for p in entries]
    listed = set(in_sofs)
    loose = [p for p in raw_paths if p not in listed]
    # one scan of every file, sofs' and loose, so the mapper spreads all of it at once
    scanned = scan_paths([*in_sofs, *loose], progress, mapper)
    sets: list[NightSet] = []
    for sof, entries in sofs:
        if isinstance(entries, InputError):
            skipped.append(Skipped(sof, str(entries)))
            continue
        good, bad = split_scan(entries, scanned)
        if not good:
            skipped.append(Skipped(sof, frame_error(*bad[0]) if bad else "no frames"))
            continue
        one = _set_of(Path(sof).name[: -len(".sof")], good, sof)
        sets.append(
            NightSet(one.name, one.frames, tuple(bad), one.instrument, one.arm, one.exptime, sof)
        )
    good, bad = split_scan(loose, scanned)
    skipped.extend(Skipped(path, reason) for path, reason in bad)
    groups: dict[GroupKey, list[RawFrame]] = {}
    others: list[RawFrame] = []
    for frame in good:
        why = classify(frame)
        if why is not None:
            skipped.append(Skipped(frame.path, why))
            if why.startswith(NOT_A_DARK):
                others.append(frame)
            continue
        groups.setdefault(group_key(frame), []).append(frame)
    for key, frames in groups.items():
        name = set_name(frames)
        nexp = key.tpl_nexp
        if len(frames) < MIN_FRAMES:
            why = f"only {len(frames)} frame(s); at least {MIN_FRAMES} needed"
            skipped.append(Skipped(name, why))
        elif isinstance(nexp, int) and len(frames) < nexp:
            skipped.append(Skipped(name, f"incomplete template: {len(frames)} of {nexp} frames"))
        else:
            sets.append(_set_of(name, frames))
    # sets that share a name (e.g. two OBs started the same second) get a numbered suffix
    unique: list[NightSet] = []
    seen: dict[str, int] = {}
    for one in sorted(sets, key=lambda s: (s.name, s.frames[0].path)):
        count = seen.get(one.name, 0)
        seen[one.name] = count + 1
        unique.append(one if count == 0 else replace(one, name=f"{one.name}_{count + 1}"))
    return NightPlan(tuple(unique), tuple(skipped), tuple(others))
