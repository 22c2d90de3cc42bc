"""The scheduler module, and the only place that computes.

A night: sets (planned from headers by :mod:`mdark_dask.plan.night`) become product plans;
every plan's lazy graph is submitted to the cluster at once and results are collected as
they complete. A set that fails (a corrupt frame, a validation error, a worker that died
too often) is reported with its reason; the others still complete. Products already up to
date (same frames, settings and version, by fingerprint) are skipped unless overwriting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask

from mdark_dask.errors import MdarkError
from mdark_dask.numerics.qc import QCRow, apply_ranges, failed, header_qc
from mdark_dask.plan.night import NightPlan, NightSet
from mdark_dask.recipe import (
    NIGHT_TASK_BYTES,
    ProductPlan,
    ProductResult,
    master_graph,
    plan_frames,
)


def local_scheduler(name: str) -> Callable[..., Any]:
    """The ``get`` function of a dask local scheduler by name.

    Passing the function, not its name, spares ``dask.compute`` its probe for a
    distributed client, which imports ``distributed`` (~0.12 s of every command).
    """
    if name == "sync":
        from dask.local import get_sync

        sync: Callable[..., Any] = get_sync
        return sync
    if name == "threads":
        from dask.threaded import get

        threads: Callable[..., Any] = get
        return threads
    if name == "processes":
        from dask.multiprocessing import get as get_processes

        processes: Callable[..., Any] = get_processes
        return processes
    raise ValueError(f"unknown scheduler {name!r}")


def compute_products(
    plans: Sequence[ProductPlan], scheduler: Any = "threads"
) -> list[ProductResult]:
    """Compute every plan's product and return the results in plan order.

    Parameters
    ----------
    plans : sequence of ProductPlan
        Plans made by :func:`mdark_dask.recipe.plan_product`.
    scheduler : str or distributed.Client
        Where to run: a dask local scheduler name, or a client. The first failure raises.
    """
    graphs = [master_graph(plan) for plan in plans]
    if isinstance(scheduler, str):
        return list(dask.compute(*graphs, scheduler=local_scheduler(scheduler)))
    futures = scheduler.compute(graphs)
    return list(scheduler.gather(futures))


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


def _outcome(s: NightSet, status: str, **kw: Any) -> SetOutcome:
    return SetOutcome(s.name, s.instrument, s.arm, s.exptime, len(s.frames), status, **kw)


def plan_sets(
    night: NightPlan,
    workspace: Path,
    settings_path: Path | None,
    numerics: str | None,
    overwrite: bool,
    plots: bool = True,
) -> tuple[list[tuple[NightSet, ProductPlan]], list[SetOutcome]]:
    """Turn sets into product plans; sets that cannot be planned or are up to date
    come back as outcomes straight away."""
    todo: list[tuple[NightSet, ProductPlan]] = []
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
            )
        except MdarkError as exc:
            settled.append(_outcome(s, "failed", product=None, reason=str(exc)))
            continue
        if not overwrite and plan.up_to_date():
            qc = apply_ranges(header_qc(plan.product_path), plan.settings.qc_ranges)
            settled.append(
                _outcome(
                    s,
                    "up to date",
                    product=str(plan.product_path),
                    qc=qc,
                    fingerprint=plan.fingerprint,
                )
            )
            continue
        todo.append((s, plan))
    return todo, settled


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, MdarkError):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def run_plans(
    todo: Sequence[tuple[NightSet, ProductPlan]],
    client: Any,
    progress: Callable[[SetOutcome, int, int, float], None] | None = None,
) -> list[SetOutcome]:
    """Compute every plan on a client (or one by one in-process when ``client`` is None),
    collecting results as they complete; a failure stays with its set."""
    total = len(todo)
    started = time.perf_counter()
    outcomes: list[SetOutcome] = []

    def record(s: NightSet, plan: ProductPlan, result: Any, error: BaseException | None) -> None:
        if error is None:
            outcome = _outcome(
                s,
                "done",
                product=result.path,
                qc=result.qc,
                seconds=time.perf_counter() - started,
                fingerprint=plan.fingerprint,
            )
        else:
            outcome = _outcome(
                s,
                "failed",
                product=None,
                reason=_reason(error),
                seconds=time.perf_counter() - started,
            )
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome, len(outcomes), total, time.perf_counter() - started)

    if client is None:
        for s, plan in todo:
            try:
                (result,) = dask.compute(master_graph(plan), scheduler=local_scheduler("sync"))
            except Exception as exc:  # one set's failure never stops the others
                record(s, plan, None, exc)
            else:
                record(s, plan, result, None)
        return outcomes

    from distributed import as_completed

    # the largest sets first (dask runs higher priorities first), so the small ones fill
    # the last gaps instead of one large set running alone at the end
    cost = [sum(f.shape[0] * f.shape[1] for f in plan.frameset.frames) for _, plan in todo]
    rank = {i: r for r, i in enumerate(sorted(range(len(todo)), key=cost.__getitem__))}
    futures = [
        client.compute(master_graph(plan), priority=rank[i]) for i, (_, plan) in enumerate(todo)
    ]
    owner = {f.key: item for f, item in zip(futures, todo, strict=True)}
    for future in as_completed(futures):
        s, plan = owner[future.key]
        try:
            result = future.result()
        except Exception as exc:
            record(s, plan, None, exc)
        else:
            record(s, plan, result, None)
        future.release()
    return outcomes
