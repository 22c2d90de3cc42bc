"""What a night run costs on its cluster: busy fraction, spilling, an optional report.

Used by ``mdark-dask night`` (numbers go into the JSON run report) and the benchmarks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Tasks shorter than this are counted as overhead-prone: dask's per-task cost on a
#: distributed worker is then not negligible against the work.
SHORT_TASK = 0.1

#: Keys that hold a literal value (a reader, a plan): nothing to compute, never "short".
LITERAL_PREFIXES = frozenset({"reader", "plan"})


@dataclass
class RunStats:
    """Filled in when the profiled block ends."""

    wall: float = 0.0
    busy: float = 0.0
    threads: int = 0
    spilled_bytes: int = 0
    tasks: int = 0
    by_prefix: dict[str, float] = field(default_factory=dict)
    transfers: int = 0
    transfer_seconds: float = 0.0
    short_tasks: dict[str, int] = field(default_factory=dict)

    @property
    def busy_fraction(self) -> float:
        """Task compute time over (threads x wall time): how busy the workers were."""
        return self.busy / (self.threads * self.wall) if self.threads and self.wall else 0.0


def _spilled(dask_worker: Any) -> int:  # runs on each worker
    data = getattr(dask_worker, "data", None)
    return int(getattr(getattr(data, "spilled_total", None), "disk_bytes", 0) or 0)


@contextlib.contextmanager
def profile(client: Any, report: Path | None = None) -> Iterator[RunStats]:
    """Record the task stream of a block; optionally save the dashboard's performance report."""
    stats = RunStats()
    if client is None:
        start = time.perf_counter()
        yield stats
        stats.wall = time.perf_counter() - start
        return
    from distributed import get_task_stream, performance_report

    # BokehJS inline, so the report opens without a network (an observatory's is often
    # offline): a CDN link would leave the page blank there
    html = (
        performance_report(filename=str(report), mode="inline")
        if report
        else contextlib.nullcontext()
    )
    start = time.perf_counter()
    # the report finds its client through get_client(): make ours current (clients here
    # are never the process-wide default)
    with client.as_current(), html, get_task_stream(client) as stream:
        yield stats
    stats.wall = time.perf_counter() - start
    stats.threads = sum(client.nthreads().values())
    for record in stream.data:
        prefix = str(record.get("key", "?")).strip("('\"").split("-")[0]
        for part in record.get("startstops", ()):
            span = part["stop"] - part["start"]
            if part.get("action") == "compute":
                stats.busy += span
                stats.by_prefix[prefix] = stats.by_prefix.get(prefix, 0.0) + span
                if span < SHORT_TASK and prefix not in LITERAL_PREFIXES:
                    stats.short_tasks[prefix] = stats.short_tasks.get(prefix, 0) + 1
            elif part.get("action") == "transfer":
                stats.transfers += 1
                stats.transfer_seconds += span
        stats.tasks += 1
    with contextlib.suppress(Exception):
        stats.spilled_bytes = sum(client.run(_spilled).values())
