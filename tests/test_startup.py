"""The console script's process settings (:mod:`mdark_dask.process`)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap

from mdark_dask import process

PROBE = textwrap.dedent(
    """
    import gc, json, os, sys
    from mdark_dask import process

    owned_before = process.tuned()
    process.tune()
    paused = not gc.isenabled()
    import numpy  # after tune(), as the console script imports it
    objects = [[i] for i in range(1000)]  # objects made before settle() are frozen
    process.settle()
    process.settle()  # a second call changes nothing
    print(json.dumps({
        "paused": paused,
        "owned": [owned_before, process.tuned()],
        "enabled_after": gc.isenabled(),
        "frozen": gc.get_freeze_count(),
        "blas": {k: os.environ.get(k) for k in process.BLAS_THREAD_VARIABLES},
    }))
    """
)


def _probe(env: dict[str, str]) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )
    result: dict[str, object] = json.loads(run.stdout)
    return result


def test_tune_pauses_the_collector_until_settle_and_sets_one_blas_thread() -> None:
    env = {k: v for k, v in os.environ.items() if k not in process.BLAS_THREAD_VARIABLES}
    got = _probe(env)
    assert got["paused"] is True
    assert got["owned"] == [False, True]  # the process is the command's own once tuned
    assert got["enabled_after"] is True
    assert isinstance(got["frozen"], int) and got["frozen"] > 1000
    assert got["blas"] == dict.fromkeys(process.BLAS_THREAD_VARIABLES, "1")


def test_tune_keeps_the_users_own_thread_counts() -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "3"}
    env.pop("MKL_NUM_THREADS", None)
    got = _probe(env)
    assert got["blas"] == {
        "OPENBLAS_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "3",
    }


def test_settle_without_tune_leaves_the_host_collector_alone() -> None:
    """A command run in-process (tests, notebooks) must not freeze its host's objects."""
    before = gc.get_freeze_count()
    gc.disable()
    try:
        process.settle()
        assert not gc.isenabled()  # not re-enabled: tune() did not pause it
    finally:
        gc.enable()
    process.settle()
    assert gc.isenabled()
    assert gc.get_freeze_count() == before
    assert not process.tuned()  # so the command never forks its host (mdark_dask.painter)


OWN_WORKER = textwrap.dedent(
    """
    import gc, json, sys, threading
    from mdark_dask import warmup
    from mdark_dask import process

    warmup.in_background("accurate", plots=False, own=sys.argv[1] == "own")
    paused = not gc.isenabled()
    for thread in threading.enumerate():
        if thread.name == "mdark-load-kernels":
            thread.join(300)
    print(json.dumps({"paused_while_loading": paused, "enabled_after": gc.isenabled()}))
    """
)


def test_a_worker_of_our_own_cluster_loads_tuned_then_resumes_the_collector() -> None:
    def run(mode: str) -> dict[str, bool]:
        done = subprocess.run(
            [sys.executable, "-c", OWN_WORKER, mode],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        got: dict[str, bool] = json.loads(done.stdout)
        return got

    own = run("own")
    assert own["paused_while_loading"] and own["enabled_after"]
    # a worker of someone else's cluster is left exactly as it was
    other = run("other")
    assert not other["paused_while_loading"] and other["enabled_after"]
