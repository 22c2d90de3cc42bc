"""Which master dark soxspipe 0.17.4 will calibrate each frame of a night with.

Pure: a night's plan and its outcomes in, with the masters the workspace recorded in
earlier runs (soxspipe chooses among every master it knows, with no time window), frozen
rows out. The rules are soxspipe 0.17.4's own, read from its code:

* **Which recipes take a dark** (``resources/soxs_sof_map.yaml``): for SOXS NIR,
  ``disp_solution`` (``LAMP,WAVE``; ``ECHELLE,PINHOLE`` or ``IMAGE``), ``order_centres``
  (``LAMP,FLAT``; ``ECHELLE,PINHOLE`` or ``IMAGE``), ``mflat`` (``LAMP,FLAT``;
  ``ECHELLE,SLIT`` or ``IMAGE``), ``spat_solution`` (``LAMP,WAVE``;
  ``ECHELLE,MULTI-PINHOLE`` or ``IMAGE``), ``stare_std`` (``STD*``;
  ``ECHELLE,SLIT,STARE``) and ``stare_obj`` (``OBJECT``/``OBJECT,ASYNC``;
  ``ECHELLE,SLIT,STARE``) list ``mdark``; the NIR nodding and offset recipes do not (they
  subtract frame pairs). A frame goes to the first entry of the map that matches (the
  organiser marks it processed). SOXS VIS recipes list ``mbias`` only, and
  ``xsh_sof_map.yaml`` plans no X-shooter recipe beyond ``mbias``: no dark is used there.
* **Which master** (the ``cal_mdark`` view of the organiser's ``soxspipe.db``): among the
  masters of the same arm, upstream arm ``NIR``, the same readout mode (``rospeed``: SOXS
  ``ESO DET READ CURID``; a frame or master without one matches nothing, as SQL's NULL
  equals nothing), complete and with status ``pass`` or NULL (a QC failure is never
  used), the one with the smallest ``|exptime difference|``, then the smallest ``|MJD-OBS
  difference|``; no time window. Exposure times are rounded to 0.01 s and a set's MJD-OBS
  is the mean over its frames, as the organiser stores them; a night's frames are grouped
  into sets by template (``ESO TPL START``), type, technique, exposure time and readout
  mode.
* **How it is used** (``base_recipe.detrend``): the master is subtracted as it is when
  ``int(EXPTIME)`` of master and frame are equal; otherwise it is scaled by the ratio of
  the exposure times, whole, pedestal included (SOXS's "do not scale" branch is disabled
  in 0.17.4). A pedestal ``P`` in a master scaled by ``r`` leaves ``(1 - r) P`` in the
  calibrated frame. ``P`` is estimated as the intercept of the masters' MDARK MEDIAN
  against exposure time (same arm and readout mode, at least two exposure times), else
  bounded by the master's median.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mdark_dask.instruments import instrument_of, keywords_of
from mdark_dask.io.fits import RawFrame
from mdark_dask.numerics.qc import HOTPIX_QC, soxspipe_status
from mdark_dask.plan.names import rospeed_of
from mdark_dask.plan.night import NightPlan
from mdark_dask.plan.sets import SetOutcome

#: soxs_sof_map.yaml, in its order: (recipe, DPR TYPEs, DPR TECHs, NIR takes a dark).
SOXS_SOF_MAP: tuple[tuple[str, tuple[str, ...], tuple[str, ...], bool], ...] = (
    ("mbias", ("BIAS",), (), False),
    ("disp_solution", ("LAMP,WAVE",), ("ECHELLE,PINHOLE", "IMAGE"), True),
    ("order_centres", ("LAMP,FLAT",), ("ECHELLE,PINHOLE", "IMAGE"), True),
    ("mflat", ("LAMP,FLAT",), ("ECHELLE,SLIT", "IMAGE"), True),
    ("spat_solution", ("LAMP,WAVE",), ("ECHELLE,MULTI-PINHOLE", "IMAGE"), True),
    ("stare_std", ("STD,FLUX", "STD", "STD,TELLURIC", "STD,SKY"), ("ECHELLE,SLIT,STARE",), True),
    ("nod_std", ("STD,FLUX", "STD", "STD,TELLURIC", "STD,SKY"), ("ECHELLE,SLIT,NODDING",), False),
    ("offset_std", ("STD,FLUX", "STD", "STD,TELLURIC", "STD,SKY"), ("ECHELLE,SLIT,OFFSET",), False),
    ("stare_obj", ("OBJECT", "OBJECT,ASYNC"), ("ECHELLE,SLIT,STARE",), True),
    ("nod_obj", ("OBJECT", "OBJECT,ASYNC"), ("ECHELLE,SLIT,NODDING",), False),
    ("offset_obj", ("OBJECT", "OBJECT,ASYNC"), ("ECHELLE,SLIT,OFFSET",), False),
)

#: Columns of :func:`page_rows`.
PAGE_HEADERS = ("frames", "arm", "recipe", "exptime", "master", "Δ exptime", "Δ time", "notes")


@dataclass(frozen=True)
class Master:
    """A master dark (of the night, or recorded by an earlier run) as soxspipe's organiser
    sees it.

    ``status`` is ``pass`` or ``fail`` (QC); ``median`` its MDARK MEDIAN (e-), if known.
    """

    name: str
    instrument: str
    arm: str
    rospeed: str | None
    exptime: float
    mjd: float
    status: str
    median: float | None = None


@dataclass(frozen=True)
class Association:
    """Which master calibrates one set of frames (one template of one type).

    ``master`` is None when none is used; ``note`` says why, or the exposure-time
    scaling; ``warnings`` what the operator should look at.
    """

    frames: tuple[str, ...]
    instrument: str
    arm: str
    dpr_type: str
    dpr_tech: str
    recipe: str | None
    exptime: float
    mjd: float
    master: str | None = None
    master_exptime: float | None = None
    master_mjd: float | None = None
    note: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def d_exptime(self) -> float | None:
        """Frame minus master exposure time (s)."""
        return None if self.master_exptime is None else self.exptime - self.master_exptime

    @property
    def d_hours(self) -> float | None:
        """Frame minus master MJD-OBS, in hours."""
        return None if self.master_mjd is None else (self.mjd - self.master_mjd) * 24.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, the differences and the frames' base names."""
        return {
            "frames": [f.rsplit("/", 1)[-1] for f in self.frames],
            "instrument": self.instrument,
            "arm": self.arm,
            "dpr_type": self.dpr_type,
            "dpr_tech": self.dpr_tech,
            "recipe": self.recipe,
            "exptime": self.exptime,
            "mjd_obs": round(self.mjd, 6),
            "master": self.master,
            "master_exptime": self.master_exptime,
            "d_exptime": None if self.d_exptime is None else round(self.d_exptime, 3),
            "d_hours": None if self.d_hours is None else round(self.d_hours, 3),
            "note": self.note,
            "warnings": list(self.warnings),
        }


def recipe_of(instrument: str, dpr_type: str, dpr_tech: str) -> tuple[str, bool] | None:
    """The organiser's recipe of a raw frame and whether its NIR recipe takes a dark;
    None when soxspipe 0.17.4 plans none for it (every X-shooter frame but biases)."""
    if instrument == "xsh":
        return ("mbias", False) if dpr_type == "BIAS" else None
    for recipe, types, techs, dark in SOXS_SOF_MAP:
        if dpr_type in types and (not techs or dpr_tech in techs):
            return recipe, dark
    return None


def masters_of(outcomes: Iterable[SetOutcome]) -> tuple[Master, ...]:
    """This run's masters that have a product, with their QC status and median (their
    readout mode and mean MJD-OBS as :func:`mdark_dask.plan.sets.describe` read them).

    A set without a product is left out: soxspipe would make that master itself, and
    the report cannot know its QC.
    """
    out = []
    for o in outcomes:
        if not o.product or o.mjd is None:
            continue
        median = next((r.value for r in o.qc if r.name == "MDARK MEDIAN"), None)
        out.append(
            Master(
                name=o.name,
                instrument=o.instrument,
                arm=o.arm,
                rospeed=o.rospeed,
                exptime=round(o.exptime, 2),
                mjd=o.mjd,
                status=soxspipe_status(o.qc),
                median=None if median is None else float(median),
            )
        )
    return tuple(out)


def recorded_masters(rows: Iterable[Mapping[str, Any]]) -> tuple[Master, ...]:
    """The masters of a workspace's record (:func:`mdark_dask.io.store.products` rows): every
    set with a product and its readout mode and mean MJD, with the QC status soxspipe
    would record (``fail`` when a QC value soxspipe knows failed its range).

    soxspipe's organiser chooses among every master in its database, with no time window,
    so a master made on an earlier night (or by an earlier run) can be the one it uses.
    """
    out = []
    for r in rows:
        if r.get("status") not in ("done", "up to date") or not r.get("product"):
            continue
        if r.get("mjd") is None:
            continue  # recorded before the store kept the mean MJD: rerun its night
        qc = r.get("qc") or {}
        fails = any(
            (q or {}).get("flag") == "fail" for name, q in qc.items() if name not in HOTPIX_QC
        )
        median = (qc.get("MDARK MEDIAN") or {}).get("value")
        out.append(
            Master(
                name=str(r["name"]),
                instrument=str(r["instrument"]),
                arm=str(r["arm"]),
                rospeed=None if r.get("rospeed") is None else str(r["rospeed"]),
                exptime=round(float(r["exptime"]), 2),
                mjd=float(r["mjd"]),
                status="fail" if fails else "pass",
                median=None if median is None else float(median),
            )
        )
    return tuple(out)


def _rank(master: Master, exptime: float, mjd: float) -> tuple[float, float, str]:
    """cal_mdark's order: |exptime difference|, then |MJD difference| (then name)."""
    return (abs(exptime - master.exptime), abs(mjd - master.mjd), master.name)


def pick(
    masters: Sequence[Master], arm: str, rospeed: str | None, exptime: float, mjd: float
) -> tuple[Master | None, Master | None]:
    """``(chosen, nearest)``: the master cal_mdark associates (passing QC), and the one it
    would have chosen were failed masters allowed (the same unless that one failed)."""
    candidates = [
        m
        for m in masters
        if m.arm == arm == "NIR"
        and m.instrument == "soxs"
        and rospeed is not None
        and m.rospeed == rospeed
    ]
    if not candidates:
        return None, None
    nearest = min(candidates, key=lambda m: _rank(m, exptime, mjd))
    passing = [m for m in candidates if m.status == "pass"]
    chosen = min(passing, key=lambda m: _rank(m, exptime, mjd)) if passing else None
    return chosen, nearest


def pedestal(masters: Sequence[Master], master: Master) -> tuple[float, bool] | None:
    """``(P, fitted)``: the pedestal estimated for ``master``, fitted as the intercept of
    MDARK MEDIAN against exposure time over the passing masters of its arm and
    readout mode when they span two or more exposure times, else ``master``'s median (a
    bound). Failed masters stay out: a QC failure is often an odd level."""
    pts = [
        (m.exptime, m.median)
        for m in masters
        if m.arm == master.arm
        and m.rospeed == master.rospeed
        and m.median is not None
        and m.status == "pass"
    ]
    if len({t for t, _ in pts}) >= 2:
        n = len(pts)
        mt = sum(t for t, _ in pts) / n
        my = sum(y for _, y in pts) / n
        slope = sum((t - mt) * (y - my) for t, y in pts) / sum((t - mt) ** 2 for t, _ in pts)
        return my - slope * mt, True
    return (master.median, False) if master.median is not None else None


def _groups(frames: Iterable[RawFrame]) -> list[list[RawFrame]]:
    """Frames of one template, type, technique, exposure time and readout mode."""
    groups: dict[tuple[Any, ...], list[RawFrame]] = {}
    for f in frames:
        inst = instrument_of(f.get("INSTRUME"))  # the night kept known instruments only
        kw = keywords_of(inst)
        key = (
            inst,
            f.get(kw.arm),
            f.get(kw.dpr_type),
            f.get(kw.dpr_tech),
            round(float(f.get(kw.exptime) or 0.0), 2),
            f.get(kw.read_speed),
            f.get(kw.tpl_start) or f.path,
        )
        groups.setdefault(key, []).append(f)
    return list(groups.values())


def associate(
    night: NightPlan, outcomes: Iterable[SetOutcome], recorded: Sequence[Master] = ()
) -> tuple[Association, ...]:
    """The association of every set of non-dark raw frames of ``night`` (biases left
    out), in time order, among the night's masters and the ``recorded`` ones
    (:func:`recorded_masters`: the workspace's earlier masters; a set of this run is
    taken as this run left it)."""
    outcomes = tuple(outcomes)
    this_run = {o.name for o in outcomes}
    masters = masters_of(outcomes) + tuple(m for m in recorded if m.name not in this_run)
    rows = []
    for group in _groups(night.others):
        first = group[0]
        inst = instrument_of(first.get("INSTRUME"))
        kw = keywords_of(inst)
        dpr_type = str(first.get(kw.dpr_type))
        if dpr_type == "BIAS":
            continue
        dpr_tech = str(first.get(kw.dpr_tech))
        arm = str(first.get(kw.arm))
        exptime = round(float(first.get(kw.exptime) or 0.0), 2)
        mjds = [float(f.get(kw.mjd_obs) or 0.0) for f in group]
        mjd = sum(mjds) / len(mjds)
        base = Association(
            tuple(sorted(f.path for f in group)), inst, arm, dpr_type, dpr_tech, None, exptime, mjd
        )
        rows.append(_associate_one(base, masters, rospeed_of(inst, first.get(kw.read_speed))))
    return tuple(sorted(rows, key=lambda a: (a.mjd, a.frames)))


def _associate_one(
    base: Association, masters: Sequence[Master], rospeed: str | None
) -> Association:
    planned = recipe_of(base.instrument, base.dpr_type, base.dpr_tech)
    if planned is None:
        why = (
            "soxspipe 0.17.4 plans no X-shooter recipe but mbias: no dark used"
            if base.instrument == "xsh"
            else "no soxspipe recipe for this type and technique"
        )
        return replace(base, note=why)
    recipe, takes_dark = planned
    base = replace(base, recipe=recipe)
    if base.arm != "NIR":
        return replace(base, note=f"SOXS {base.arm} {recipe} takes master biases, no dark")
    if not takes_dark:
        return replace(base, note=f"NIR {recipe} takes no dark (frame pairs are subtracted)")
    chosen, nearest = pick(masters, base.arm, rospeed, base.exptime, base.mjd)
    warnings: list[str] = []
    if nearest is not None and nearest.status == "fail":
        warnings.append(f"nearest master {nearest.name} failed QC: not used")
    if chosen is None:
        mode = "" if rospeed is not None else " (the frame has no readout mode)"
        warnings.append(f"no passing master in the workspace matches{mode}")
        return replace(base, warnings=tuple(warnings))
    note = ""
    if int(chosen.exptime) != int(base.exptime):
        ratio = base.exptime / chosen.exptime if chosen.exptime else float("inf")
        note = f"scaled x{ratio:.3g}"
        est = pedestal(masters, chosen)
        if est is not None:
            level, fitted = est
            left = (1.0 - ratio) * level
            how = "pedestal" if fitted else "master median"
            warnings.append(
                f"soxspipe scales the master by {ratio:.3g}, pedestal included: "
                f"about {left:+.0f} e- left in the frame ({how} {level:.1f} e-)"
            )
        else:
            warnings.append(f"soxspipe scales the master by {ratio:.3g}, pedestal included")
    return replace(
        base,
        master=chosen.name,
        master_exptime=chosen.exptime,
        master_mjd=chosen.mjd,
        note=note,
        warnings=tuple(warnings),
    )


def page_rows(rows: Sequence[Association], limit: int = 200) -> list[tuple[str, ...]]:
    """Rows for the night page's association table (:data:`PAGE_HEADERS`), at most
    ``limit``; a last row says how many more the JSON report holds."""
    return record_rows([a.as_dict() for a in rows], limit)


def record_rows(entries: Sequence[Mapping[str, Any]], limit: int = 200) -> list[tuple[str, ...]]:
    """:func:`page_rows` from the run record's ``association`` entries
    (:meth:`Association.as_dict`), as the night page receives them."""
    out: list[tuple[str, ...]] = []
    for a in entries[:limit]:
        names = list(a["frames"])
        frames = names[0] + (f" (+{len(names) - 1})" if len(names) > 1 else "")
        d_exp, d_hours = a.get("d_exptime"), a.get("d_hours")
        out.append(
            (
                frames,
                str(a["arm"]),
                a.get("recipe") or "--",
                f"{a['exptime']:g}",
                a.get("master") or "--",
                "--" if d_exp is None else f"{d_exp:+g} s",
                "--" if d_hours is None else f"{d_hours:+.2f} h",
                "; ".join(x for x in (a.get("note", ""), *a.get("warnings", ())) if x),
            )
        )
    if len(entries) > limit:
        out.append((f"... {len(entries) - limit} more in night_report.json",) + ("",) * 7)
    return out


def summary_lines(rows: Sequence[Association], limit: int = 6) -> list[str]:
    """A few terminal lines: one per distinct (arm, recipe, master, warnings), with its
    number of frames; at most ``limit`` of them, warnings first."""
    if not rows:
        return []
    kinds: dict[tuple[Any, ...], list[Association]] = {}
    for a in rows:
        kinds.setdefault((a.arm, a.recipe, a.master, a.note, a.warnings), []).append(a)
    ordered = sorted(kinds.items(), key=lambda kv: (not kv[0][4], kv[0][0], str(kv[0][1])))
    n_frames = sum(len(a.frames) for a in rows)
    warned = sum(len(a.frames) for a in rows if a.warnings)
    lines = [
        f"# CALIBRATION BY SOXSPIPE 0.17.4: {n_frames} non-dark frame(s), {warned} with a warning"
    ]
    for (arm, recipe, master, note, warnings), group in ordered[:limit]:
        count = sum(len(a.frames) for a in group)
        first = group[0]
        what = f"  {count} {arm} {recipe or first.dpr_type} frame(s)"
        if master is not None:
            what += f" <- {master} (d exptime {first.d_exptime:+g} s)"
        tail = "; ".join(x for x in (note, *warnings) if x)
        lines.append(what + (f": {tail}" if tail else ""))
    if len(ordered) > limit:
        lines.append(f"  ... {len(ordered) - limit} more kind(s) in night_report.json")
    return lines
