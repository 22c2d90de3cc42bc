"""One writer per workspace: an advisory lock on ``WORKSPACE/.mdark-dask.lock``.

Two runs writing one workspace would both compute every product, race over temporary
files and leave reports that contradict the products. A run holds an exclusive
``flock`` on the lock file for as long as it writes; a second run finds it held and stops
at once, naming the holder (process, host, start time, command) that the first wrote into
the file. The kernel releases a ``flock`` when its process ends, however it ends, so a
lock left by a killed run is simply free again: nothing stale to clean up, and no
window in which two runs could both think they broke it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from mdark_dask.errors import OutputError

#: The lock file's name in a workspace.
LOCK_NAME: Final = ".mdark-dask.lock"


class WorkspaceBusy(OutputError):
    """Another run holds the workspace."""


def holder_text(path: Path) -> str:
    """Who holds the lock, from what the holder wrote (``unknown`` if unreadable)."""
    try:
        who = json.loads(path.read_text(encoding="utf-8"))
        return (
            f"pid {who['pid']} on {who['host']}, since {who['since']} "
            f"({who.get('command') or 'mdark-dask'})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that did not say who it is"


@contextlib.contextmanager
def workspace_lock(workspace: Path, command: Sequence[str] = ()) -> Iterator[Path]:
    """Hold the workspace's lock for the block (the workspace must exist).

    Re-entrant within a process is not needed: each command takes it once.

    Raises
    ------
    WorkspaceBusy
        Another process holds it.
    OutputError
        The lock file cannot be made.
    """
    path = workspace / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot lock workspace {workspace}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkspaceBusy(
                f"workspace {workspace} is in use by {holder_text(path)}; "
                "wait for that run to end, or use another workspace"
            ) from None
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(["mdark-dask", *command]) if command else "",
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode("utf-8"), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
