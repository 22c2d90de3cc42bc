"""The installed ``mdark-dask`` console script, run as a user runs it: the tests' (and the
batch benchmark's) one way to start a command in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: The console script of the interpreter running the tests.
EXE = str(Path(sys.executable).with_name("mdark-dask"))


def console(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``mdark-dask *args`` in ``cwd`` to its end (``python -m mdark_dask.cli`` where
    the script is not installed), with its output captured."""
    cmd = [EXE] if Path(EXE).exists() else [sys.executable, "-m", "mdark_dask.cli"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


def _interruptible() -> None:
    """Ctrl-C's default in the child, as a terminal starts a command: a test run started in
    the background (``nohup``, ``cmd &`` in a script) ignores SIGINT, and a child inherits
    that, so a Ctrl-C sent by the test would be ignored as the shell meant it to be."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def reducing(
    raw: Path, ws: Path, *options: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], float]:
    """``mdark-dask night`` started in a subprocess, returned once it prints
    ``# REDUCING`` (the first worker has joined and passed the preflight), with the
    seconds that took.

    Raises
    ------
    RuntimeError
        The night ended before reducing (its standard error is in the message).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        [EXE, "night", str(raw), "-o", str(ws), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_interruptible,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("# REDUCING"):
            return proc, time.perf_counter() - start
    _, err = proc.communicate()
    raise RuntimeError(f"night ended before reducing ({proc.returncode}): {err[-800:]}")


def slurm_env() -> dict[str, str] | None:
    """This process's environment plus what reaches the test SLURM (the variables of the
    file ``$MDARK_SLURM_ENV`` that ``scripts/slurm-test-cluster.sh`` writes, such as
    ``SLURM_CONF``), or None when that file is missing or ``sinfo`` cannot reach it."""
    path = os.environ.get("MDARK_SLURM_ENV")
    if not path or not Path(path).is_file():
        return None
    env = dict(os.environ)
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip().removeprefix("export ").strip()
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value.strip("'\"")
    try:
        probe = subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=30)
    except OSError:  # no sinfo on this machine
        return None
    return env if probe.returncode == 0 else None
