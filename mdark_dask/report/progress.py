"""What a night prints while its sets are made, and its summaries, at any size.

A night of ten sets shows a line per set; a month of hundreds shows one updating line on
a terminal (or a line every few seconds in a log), the failures as they happen (the
first few), and a closing summary by arm and exposure time. The estimated time left is
the time so far scaled by the pixels still to reduce, so that a night whose largest sets
go first does not promise hours.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from tabulate import tabulate

from mdark_dask.plan.night import Skipped
from mdark_dask.plan.sets import SetOutcome

#: Up to this many sets, the plan, the progress and the closing table show every set.
DETAIL_SETS: Final = 20

#: Up to this many left-out files or groups, each is listed; beyond, counts by reason.
DETAIL_LEFT_OUT: Final = 10

#: Failures printed as they happen before the rest wait for the summary.
SHOWN_FAILURES: Final = 10


def duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h01m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def eta(elapsed: float, work_done: float, work_total: float) -> float:
    """Seconds left, by the work (pixels) done so far in ``elapsed`` seconds."""
    if work_done <= 0:
        return float("nan")
    return elapsed * max(0.0, work_total - work_done) / work_done


def left_out_lines(skipped: Sequence[Skipped], verbose: bool = False) -> list[str]:
    """Each left-out file with its reason when few (or verbose), else counts by reason."""
    if not skipped:
        return []
    if verbose or len(skipped) <= DETAIL_LEFT_OUT:
        return [tabulate([[k.what, k.reason] for k in skipped], headers=["left out", "reason"])]
    counts = Counter(k.kind for k in skipped)
    rows = [[n, kind] for kind, n in counts.most_common()]
    return [
        tabulate(rows, headers=["left out", "reason"], disable_numparse=True),
        "(-V lists every one with its reason)",
    ]


def group_table(outcomes: Sequence[SetOutcome]) -> str:
    """Sets by instrument, arm and exposure time: how many in each state."""
    groups: dict[tuple[str, str, float], Counter[str]] = {}
    for o in outcomes:
        key = (o.instrument.upper(), o.arm, o.exptime)
        state = o.status if o.status in ("planned", "to do", "done", "up to date") else "failed"
        groups.setdefault(key, Counter())[state] += 1
        if o.qc_flag.startswith("fail"):
            groups[key]["QC fail"] += 1
    states = ("planned", "to do", "done", "up to date", "failed", "QC fail")
    present = [s for s in states if any(c[s] for c in groups.values())]
    rows = [
        [inst, arm, f"{exptime:g}", sum(c[s] for s in states if s != "QC fail")]
        + [c[s] or "" for s in present]
        for (inst, arm, exptime), c in sorted(groups.items())
    ]
    return tabulate(
        rows, headers=["inst", "arm", "exptime s", "sets", *present], disable_numparse=True
    )


def nights_line(nights: Sequence[str]) -> str:
    """``3 nights: 2026-01-01 to 2026-01-03``."""
    known = sorted({n for n in nights if n})
    if not known:
        return "night unknown"
    if len(known) == 1:
        return f"1 night: {known[0]}"
    return f"{len(known)} nights: {known[0]} to {known[-1]}"


@dataclass
class Progress:
    """Prints the progress of a night: every set when few, else one line now and then.

    ``line`` prints a whole line; ``status`` (a terminal's) rewrites the current line,
    or None when not a terminal. ``work``: each set's pixels, by name.
    """

    line: Callable[[str], None]
    status: Callable[[str], None] | None
    work: dict[str, float]
    interval: float = 5.0
    done: int = 0
    failed: int = 0
    work_done: float = 0.0
    last: float = field(default_factory=time.monotonic)

    @property
    def total(self) -> int:
        return len(self.work)

    def __call__(self, o: SetOutcome, done: int, total: int, elapsed: float) -> None:
        """Called as each set completes (:func:`mdark_dask.scheduler.run_plans`)."""
        self.done += 1
        self.work_done += self.work.get(o.name, 0.0)
        left = eta(elapsed, self.work_done, sum(self.work.values()))
        when = f"{duration(elapsed)}, ETA {duration(left) if left == left else '--'}"
        if not o.ok:
            self.failed += 1
        if self.total <= DETAIL_SETS:
            tail = o.qc_flag if o.ok else f"FAILED: {o.reason}"
            self.line(f"[{done:>3}/{total}] {o.name}: {o.status} ({tail}); {when}")
            return
        if not o.ok and self.failed <= SHOWN_FAILURES:
            self.line(f"FAILED {o.name}: {o.reason}")
        summary = f"[{done}/{total}] sets made, {self.failed} failed; {when}"
        now = time.monotonic()
        if self.status is not None:
            self.status(summary)
        elif now - self.last >= self.interval or done == total:
            self.last = now
            self.line(summary)
