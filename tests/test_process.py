"""The console script's process settings (:mod:`mdark_dask.process`): one BLAS thread,
and large freed arrays go back to the operating system."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mdark_dask import process
from mdark_dask.process import release_large_frees

CHURN = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mdark_dask.process import release_large_frees

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


# --------------------------------------------------------------------------------------------
# One BLAS thread, unless the user set their own thread counts

BLAS_PROBE = textwrap.dedent(
    """
    import gc, json, os
    from mdark_dask import process

    enabled = gc.isenabled()
    process.configure()
    print(json.dumps({
        "blas": {k: os.environ.get(k) for k in process.BLAS_THREAD_VARIABLES},
        "collector_untouched": gc.isenabled() == enabled,
    }))
    """
)


def _blas_probe(env: dict[str, str]) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-c", BLAS_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )
    result: dict[str, object] = json.loads(run.stdout)
    return result


def test_configure_sets_one_blas_thread_and_leaves_the_collector_alone() -> None:
    env = {k: v for k, v in os.environ.items() if k not in process.BLAS_THREAD_VARIABLES}
    got = _blas_probe(env)
    assert got["blas"] == dict.fromkeys(process.BLAS_THREAD_VARIABLES, "1")
    assert got["collector_untouched"] is True


def test_configure_keeps_the_users_own_thread_counts() -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "3"}
    env.pop("MKL_NUM_THREADS", None)
    got = _blas_probe(env)
    assert got["blas"] == {
        "OPENBLAS_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "3",
    }


def test_settle_imports_freezes_only_the_commands_own_process() -> None:
    code = textwrap.dedent(
        """
        import gc, json
        from mdark_dask import process
        process.settle_imports()
        host = gc.get_freeze_count()
        process.configure()
        process.settle_imports()
        print(json.dumps([host, gc.get_freeze_count(), gc.isenabled()]))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    host, own, enabled = json.loads(run.stdout)
    assert host == 0  # a host's collector is left as it is
    assert own > 1000 and enabled  # the command's modules frozen; the collector still on
