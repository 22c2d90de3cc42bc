"""The only place that computes: run lazy product graphs on a dask scheduler.

``scheduler`` is one of ``"sync"``, ``"threads"``, ``"processes"`` (dask's local
schedulers) or a ``distributed.Client``. Execution settings never change a product byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask

from mdark_dask.recipe import ProductPlan, ProductResult, master_graph

LOCAL_SCHEDULERS = ("sync", "threads", "processes")


def compute_products(
    plans: Sequence[ProductPlan], scheduler: Any = "threads"
) -> list[ProductResult]:
    """Compute every plan's product and return the results in plan order.

    Parameters
    ----------
    plans : sequence of ProductPlan
        Plans made by :func:`mdark_dask.recipe.plan_product`.
    scheduler : str or distributed.Client
        Where to run. Local schedulers run in this process (threads) or a process pool.
    """
    graphs = [master_graph(plan) for plan in plans]
    if isinstance(scheduler, str):
        if scheduler not in LOCAL_SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}")
        return list(dask.compute(*graphs, scheduler=scheduler))
    futures = scheduler.compute(graphs)
    return list(scheduler.gather(futures))
