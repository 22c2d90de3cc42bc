"""What a night run costs on its cluster: busy fraction, spilling, an optional report.

The busy fraction is CPU time the workers' processes used during the run over the
thread-seconds they had: task wall time over the same would count a task that waits for
a disk or for a loaded machine's CPU as busy. Task time is reported beside it.

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
    cpu: float = 0.0
    threads: int = 0
    spilled_bytes: int = 0
    tasks: int = 0
    by_prefix: dict[str, float] = field(default_factory=dict)
    transfers: int = 0
    transfer_seconds: float = 0.0
    short_tasks: dict[str, int] = field(default_factory=dict)

    @property
    def busy_fraction(self) -> float:
        """CPU time of the workers over (threads x wall time): how busy they were."""
        return self.cpu / (self.threads * self.wall) if self.threads and self.wall else 0.0

    @property
    def task_fraction(self) -> float:
        """Task compute (wall) time over (threads x wall time)."""
        return self.busy / (self.threads * self.wall) if self.threads and self.wall else 0.0


def _cpu_seconds() -> float:  # runs on each worker
    return time.process_time()


def cpu_used(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU seconds the workers used between two readings ``{worker: process CPU s}``.

    A worker that joined during the run counts from zero; one that restarted (its
    reading went down) counts from its restart; one that left is not counted.
    """
    total = 0.0
    for worker, value in after.items():
        start = before.get(worker, 0.0)
        total += value - start if value >= start else value
    return total


def _spilled(dask_worker: Any) -> int:  # runs on each worker
    data = getattr(dask_worker, "data", None)
    return int(getattr(getattr(data, "spilled_total", None), "disk_bytes", 0) or 0)


@contextlib.contextmanager
def profile(client: Any, report: Path | None = None) -> Iterator[RunStats]:
    """Record the task stream of a block; optionally save the dashboard's performance report."""
    stats = RunStats()
    if client is None:
        start, cpu = time.perf_counter(), time.process_time()
        yield stats
        stats.wall = time.perf_counter() - start
        stats.cpu, stats.threads = time.process_time() - cpu, 1
        return
    from distributed import get_task_stream, performance_report

    # BokehJS inline, so the report opens without a network (an observatory's is often
    # offline): a CDN link would leave the page blank there
    html = (
        performance_report(filename=str(report), mode="inline")
        if report
        else contextlib.nullcontext()
    )
    before: dict[str, float] = {}
    with contextlib.suppress(Exception):
        before = client.run(_cpu_seconds)
    start = time.perf_counter()
    # the report finds its client through get_client(): make ours current (clients here
    # are never the process-wide default)
    with client.as_current(), html, get_task_stream(client) as stream:
        yield stats
    stats.wall = time.perf_counter() - start
    stats.threads = sum(client.nthreads().values())
    with contextlib.suppress(Exception):
        stats.cpu = cpu_used(before, client.run(_cpu_seconds))
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
