"""Which of a night's sets are to do: a product plan per set, or an outcome already.

A set that cannot be planned (its frames do not verify, its settings are invalid) is
failed at once with its reason; a set whose product is up to date (same frames, settings
and version, by fingerprint, with its hot-pixel map and noise image) is settled unless
overwriting. Both come back as :class:`SetOutcome` values, as the computed sets will.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdark_dask.errors import MdarkError
from mdark_dask.instruments import keywords_of
from mdark_dask.numerics.qc import QCRow, apply_ranges, failed
from mdark_dask.plan.frameset import Mapper, batches
from mdark_dask.plan.names import night_of_mjd, night_of_sof, rospeed_of
from mdark_dask.plan.night import NightPlan, NightSet
from mdark_dask.plan.product import ProductPlan, check_batch, plan_frames
from mdark_dask.plan.sizing import NIGHT_TASK_BYTES


@dataclass(frozen=True)
class SetOutcome:
    """What became of one set of a night."""

    name: str
    instrument: str
    arm: str
    exptime: float
    frames: int
    status: str  # "done", "up to date", "failed", "planned"
    product: str | None
    reason: str = ""
    qc: tuple[QCRow, ...] = ()
    seconds: float = 0.0
    fingerprint: str = ""
    night: str = ""
    date_obs: str = ""
    temperature: float | None = None
    rospeed: str | None = None
    mjd: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the set has its product."""
        return self.status in ("done", "up to date", "planned")

    @property
    def qc_flag(self) -> str:
        """``pass``, ``fail: <names>`` or ``--``."""
        if not self.qc:
            return "--"
        names = failed(self.qc)
        return "fail: " + ", ".join(names) if names else "pass"


def outcome(s: NightSet, status: str, **kw: Any) -> SetOutcome:
    """The outcome of set ``s`` with ``status``; ``kw``: the other fields. The night
    (soxspipe's night start date), the first frame's DATE-OBS and the detector
    temperature of the last frame (SOXS; as soxspipe reads it) come from the frames."""
    return SetOutcome(
        s.name,
        s.instrument,
        s.arm,
        s.exptime,
        len(s.frames),
        status,
        **{**describe(s), **kw},
    )


def describe(s: NightSet) -> dict[str, Any]:
    """``night``, ``date_obs``, ``temperature``, ``rospeed`` and ``mjd`` of a set, from its
    headers."""
    if not s.frames:
        return {"night": night_of_sof(s.name) or ""}
    first, last = s.frames[0], s.frames[-1]
    keywords = keywords_of(s.instrument)  # a set of an unknown arm is described too
    temperature = None
    if s.instrument == "soxs":
        name = keywords.detector_temp_nir if s.arm == "NIR" else keywords.detector_temp_vis
        value = last.get(name) if name else None
        temperature = float(value) if isinstance(value, int | float) else None
    mjd = first.get(keywords.mjd_obs)
    mjds = [f.get(keywords.mjd_obs) for f in s.frames]
    return {
        "night": night_of_mjd(float(mjd)) if isinstance(mjd, int | float) else "",
        "date_obs": str(first.get(keywords.date_obs) or ""),
        "temperature": temperature,
        # as soxspipe's organiser records a master: the readout mode, the frames' mean MJD
        "rospeed": rospeed_of(s.instrument, first.get(keywords.read_speed)),
        "mjd": (
            sum(float(m) for m in mjds) / len(mjds)
            if all(isinstance(m, int | float) for m in mjds)
            else None
        ),
    }


def plan_sets(
    night: NightPlan,
    workspace: Path,
    settings_path: Path | None,
    numerics: str | None,
    overwrite: bool,
    plots: bool = True,
    layout: str = "mdark-dask",
    mapper: Mapper = map,
    verify: bool = False,
) -> tuple[list[tuple[NightSet, ProductPlan]], list[SetOutcome]]:
    """Turn sets into product plans; sets that cannot be planned or are up to date
    come back as outcomes straight away; ``layout`` says where the products go.

    The up-to-date checks (:func:`mdark_dask.plan.product.product_check`) run in batches
    through ``mapper`` (threads, or a cluster's workers); ``verify`` makes them read every
    product's data to verify its checksums, not only its headers and length.
    """
    planned: list[tuple[NightSet, ProductPlan]] = []
    settled: list[SetOutcome] = []
    for s in night.sets:
        try:
            plan = plan_frames(
                s.frames,
                s.bad,
                s.name,
                workspace,
                settings_path,
                numerics,
                plots=plots,
                task_bytes=NIGHT_TASK_BYTES,
                layout=layout,
            )
        except MdarkError as exc:
            settled.append(outcome(s, "failed", product=None, reason=str(exc)))
            continue
        planned.append((s, plan))
    if overwrite:
        return planned, settled
    existing = [(s, p) for s, p in planned if p.product_path.is_file()]
    chunks = batches([(p.files, p.fingerprint, verify) for _, p in existing], 16)
    states = [qc for results in mapper(check_batch, chunks) for qc in results]
    current = {p.name: qc for (_, p), qc in zip(existing, states, strict=True) if qc is not None}
    todo: list[tuple[NightSet, ProductPlan]] = []
    for s, plan in planned:
        if plan.name not in current:
            todo.append((s, plan))
            continue
        settled.append(
            outcome(
                s,
                "up to date",
                product=str(plan.product_path),
                qc=apply_ranges(current[plan.name], plan.settings.qc_ranges),
                fingerprint=plan.fingerprint,
            )
        )
    order = {s.name: i for i, s in enumerate(night.sets)}
    return todo, sorted(settled, key=lambda o: order[o.name])
