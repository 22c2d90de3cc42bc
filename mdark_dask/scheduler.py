"""The only place that computes: product graphs run on a local scheduler or a cluster.

A night's plans (:mod:`mdark_dask.plan.sets`) are submitted to the cluster at once and
their results collected as they complete. A set that fails (a corrupt frame, a
validation error, a worker that died too often) is reported with its reason; the others
still complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask

from mdark_dask.errors import MdarkError
from mdark_dask.plan.frameset import Mapper
from mdark_dask.plan.night import NightSet
from mdark_dask.plan.product import ProductPlan, ProductResult
from mdark_dask.plan.sets import SetOutcome, outcome
from mdark_dask.recipe import master_graph


def local_scheduler(name: str) -> Callable[..., Any]:
    """The ``get`` function of a dask local scheduler by name.

    Passing the function, not its name, spares ``dask.compute`` its probe for a
    distributed client, which imports ``distributed``: a slow import that a command
    computing in its own threads never needs.
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
        Plans made by :func:`mdark_dask.plan.product.plan_product`.
    scheduler : str or distributed.Client
        Where to run: a dask local scheduler name, or a client. The first failure raises.
    """
    graphs = [master_graph(plan) for plan in plans]
    if isinstance(scheduler, str):
        return list(dask.compute(*graphs, scheduler=local_scheduler(scheduler)))
    futures = scheduler.compute(graphs)
    return list(scheduler.gather(futures))


def thread_mapper(threads: int | None = None) -> Mapper:
    """A ``map`` over a pool of threads, in order (:data:`mdark_dask.plan.frameset.Mapper`).

    Header reads and product checks wait on the disk more than they compute, so threads
    overlap them; the pool lives as long as one call's results are being consumed.
    ``threads``: four a core (at most 32) when None.
    """
    count = threads or min(32, 4 * (os.cpu_count() or 1))

    def mapper(function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        with ThreadPoolExecutor(count, thread_name_prefix="mdark-scan") as pool:
            yield from pool.map(function, items)

    return mapper


def client_mapper(client: Any) -> Mapper:
    """A ``map`` on a distributed client's workers, in order: one task per item
    (:func:`mdark_dask.plan.frameset.scan_paths` makes each item a batch of files), so a
    cluster of N workers reads N batches at once. Results are gathered one by one, in
    order, as the caller consumes them (its progress follows the workers)."""

    def mapper(function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        futures = client.map(function, list(items), pure=False)
        try:
            for future in futures:
                yield client.gather(future)
        finally:
            client.cancel(futures)

    return mapper


def mapper_for(client: Any) -> Mapper:
    """Where header reads and product checks run: on ``client``'s workers, or in this
    process's threads when it is None (a local run, or before a cluster is needed)."""
    return thread_mapper() if client is None else client_mapper(client)


def _worker_view(paths: Sequence[str], workspace: str | None) -> dict[str, Any]:
    """Runs on a worker: which of ``paths`` it cannot read, whether it can write the
    workspace (True when None), and its mdark-dask version."""
    import os

    from mdark_dask._version import __version__

    return {
        "unreadable": [p for p in paths if not os.access(p, os.R_OK)],
        "workspace": workspace is None
        or (os.path.isdir(workspace) and os.access(workspace, os.W_OK)),
        "version": __version__,
    }


def preflight(client: Any, paths: Sequence[str], workspace: str | None) -> str | None:
    """What keeps the workers that have joined from making the products, or None.

    Every worker must read the raw frames and write the workspace by the same paths as
    this process, and run the same mdark-dask: a missing mount would otherwise fail every
    set one by one. ``paths``: a few frames (one per set is enough), or the inputs before
    their headers are read on the workers; ``workspace`` None: not checked (yet).
    """
    from mdark_dask._version import __version__

    if client is None:
        return None
    views = client.run(_worker_view, list(paths), workspace)
    for worker, view in sorted(views.items()):
        if view["version"] != __version__:
            return f"worker {worker} runs mdark-dask {view['version']}, not {__version__}"
        if not view["workspace"]:
            return f"worker {worker} cannot write the workspace {workspace} (a missing mount?)"
        if view["unreadable"]:
            first = view["unreadable"][0]
            return f"worker {worker} cannot read {first} (a missing mount?)"
    return None


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
            done = outcome(
                s,
                "done",
                product=result.path,
                qc=result.qc,
                seconds=time.perf_counter() - started,
                fingerprint=plan.fingerprint,
            )
        else:
            done = outcome(
                s,
                "failed",
                product=None,
                reason=_reason(error),
                seconds=time.perf_counter() - started,
            )
        outcomes.append(done)
        if progress is not None:
            progress(done, len(outcomes), total, time.perf_counter() - started)

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
