"""The busy fraction counts the CPU the workers used, not the wall time of their tasks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mdark_dask.report.runstats import RunStats, cpu_used

readings = st.dictionaries(
    st.sampled_from(["tcp://a", "tcp://b", "tcp://c"]), st.floats(0, 1e4), max_size=3
)


@given(readings, readings)
def test_cpu_used_is_never_negative_nor_more_than_the_end_readings(
    before: dict[str, float], after: dict[str, float]
) -> None:
    used = cpu_used(before, after)
    assert 0.0 <= used <= sum(after.values()) + 1e-9


def test_cpu_used_counts_joined_restarted_and_steady_workers() -> None:
    before = {"steady": 10.0, "restarted": 50.0, "left": 5.0}
    after = {"steady": 12.5, "restarted": 3.0, "joined": 4.0}
    # steady: 2.5 s; restarted: 3 s since its restart; joined: 4 s; left: not seen
    assert cpu_used(before, after) == 2.5 + 3.0 + 4.0


def test_the_busy_fraction_is_cpu_and_the_task_fraction_wall_time() -> None:
    stats = RunStats(wall=10.0, busy=19.0, cpu=8.0, threads=2)
    assert stats.busy_fraction == 0.4
    assert stats.task_fraction == 0.95
    assert RunStats().busy_fraction == 0.0
