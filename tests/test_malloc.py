"""The console script's allocator setting: large freed arrays go back to the OS."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mdark_dask.malloc import release_large_frees

CHURN = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mdark_dask.malloc import release_large_frees

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    if sys.argv[1] == "set":
        assert release_large_frees()
    # warm up: the first arrays come and go (this is what raises glibc's own threshold)
    for _ in range(3):
        blocks = [np.ones(2**20, dtype=np.float32) for _ in range(8)]  # 8 x 4 MB
        del blocks
    before = rss_mb()
    blocks, pins = [], []
    for _ in range(40):  # 160 MB of frame-sized arrays, each followed by a small survivor
        blocks.append(np.ones(2**20, dtype=np.float32))
        pins.append(np.ones(4096, dtype=np.float32))  # heap-allocated, pins what is below
    held = rss_mb()
    del blocks
    after = rss_mb()
    print(before, held, after)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_frame_sized_arrays_leave_the_process() -> None:
    def churn(mode: str) -> tuple[float, float, float]:
        run = subprocess.run(
            [sys.executable, "-c", CHURN, mode],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        before, held, after = map(float, run.stdout.split())
        return before, held, after

    before, held, after = churn("set")
    assert held - before > 140  # the arrays were really there...
    assert after - before < 20  # ...and freeing them returned the memory
    # glibc's default keeps them (the control: the test can tell the difference)
    before, held, after = churn("default")
    assert after - before > 100


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_release_large_frees_reports_success_on_glibc() -> None:
    assert release_large_frees() is True
    assert release_large_frees(128 * 1024) is True  # restore glibc's initial threshold
