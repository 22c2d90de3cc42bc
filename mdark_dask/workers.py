"""What every Dask worker gets when it joins a cluster mdark-dask uses.

Batch workers join whenever their jobs start: after the night has begun, or as
replacements of a job the batch system ended. A one-off ``client.run`` at connection time
would miss them, so the settings travel as plugins registered with the scheduler, which
hands them to every worker (and nanny) that joins, now or later:

* :class:`WorkerSetup` (every cluster): imports the recipe and loads the compiled kernels
  in the worker before its first task, so no set pays the import, and a worker that
  cannot load them fails its setup where the scheduler logs it, not in a set.
* :class:`NannySetup` (clusters mdark-dask starts: local, SLURM, PBS, Kubernetes): removes
  ``MALLOC_TRIM_THRESHOLD_`` from the worker process's environment. A nanny sets that
  glibc variable by default; it turns off glibc's adaptive mmap threshold, and frame-sized
  arrays then page-fault in afresh on every read, which makes the recipe several times
  slower. A nanny that joins later gets the plugin before it spawns its worker; a worker
  already running with the variable is restarted once without it. A scheduler that
  someone else runs (``tcp://``) is left alone: restarting its workers could end other
  people's tasks (``cluster/dask-config`` does the same there).

Neither changes a product byte.
"""

from __future__ import annotations

import os
from typing import Any, Final

from distributed.diagnostics.plugin import NannyPlugin, WorkerPlugin

#: The glibc variable a nanny sets for its worker by default.
TRIM_VARIABLE: Final = "MALLOC_TRIM_THRESHOLD_"

#: Names the plugins are registered under (a second registration replaces the first).
WORKER_PLUGIN: Final = "mdark-dask-worker-setup"
NANNY_PLUGIN: Final = "mdark-dask-nanny-setup"


def warm_up() -> str:
    """Import the recipe (with the product writer, the plots' PNG writer and fonts) and
    bind every compiled kernel; returns the version loaded."""
    import mdark_dask.io.product  # noqa: F401  (the imports are the warm-up)
    from mdark_dask import recipe  # noqa: F401
    from mdark_dask._version import __version__
    from mdark_dask.numerics import native
    from mdark_dask.report.draw import preload

    preload()

    for name in native.FUNCTIONS:
        native.bind(name)
    return __version__


class WorkerSetup(WorkerPlugin):  # type: ignore[misc]
    """Warm a worker up when it joins (see the module docstring)."""

    idempotent = True

    def setup(self, worker: Any) -> None:
        """Called by the worker when the plugin reaches it."""
        worker.mdark_dask_version = warm_up()


class NannySetup(NannyPlugin):  # type: ignore[misc]
    """Spawn workers without ``MALLOC_TRIM_THRESHOLD_`` (see the module docstring)."""

    idempotent = True
    restart = False

    def setup(self, nanny: Any) -> None:
        """Called by the nanny when the plugin reaches it, before it spawns a worker
        that joins later; ``restart`` asks it to respawn one already running with the
        variable."""
        process = getattr(nanny, "process", None)
        spawned_with = process is not None and TRIM_VARIABLE in getattr(process, "env", {})
        for env in (nanny.env, nanny.pre_spawn_env, os.environ):
            env.pop(TRIM_VARIABLE, None)
        if process is not None:
            for env in (process.env, process.pre_spawn_env):
                env.pop(TRIM_VARIABLE, None)
        self.restart = spawned_with


def install(client: Any, *, nanny: bool) -> None:
    """Register the plugins with the scheduler ``client`` is connected to; ``nanny``:
    also :class:`NannySetup` (only for clusters mdark-dask started)."""
    if nanny:
        client.register_plugin(NannySetup(), name=NANNY_PLUGIN)
    client.register_plugin(WorkerSetup(), name=WORKER_PLUGIN)
