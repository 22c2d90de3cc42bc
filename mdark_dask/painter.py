"""Where the QC figures are drawn: a process of their own for the ``mdark`` command, else
the calling thread.

matplotlib is Python: importing it costs ~0.35 s and drawing five figures ~0.2 s, all
under the GIL. In one ``mdark`` run, in-process, that time competed with the command's
own imports and with the Python steps between the compiled kernels, on a machine whose
cores the kernels already fill. A process forked when the command starts imports
matplotlib on a core the start-up leaves idle (the command's imports are one thread), and
later draws the figures while the final task finds hot pixels and writes the products.
The figures travel to it as small frozen values (:mod:`mdark_dask.report.figures`).

The process is forked only from a process with one thread (a fork copies no other
thread, so a lock held elsewhere would stay held in the child) and only by the command
(:func:`forked`); anywhere else (a cluster's workers, the API, the tests in-process),
:func:`draw` draws in the calling thread. If the drawing process is gone, the figures
are drawn in the calling thread instead; a figure that fails to draw fails its product
either way (one that cannot be written is an :class:`~mdark_dask.errors.OutputError`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from mdark_dask.errors import OutputError

if TYPE_CHECKING:  # numpy is imported after the fork, by each process on its own
    from mdark_dask.report.figures import Figure


class DrawingError(RuntimeError):
    """A figure failed to draw in the drawing process (its message: type and text)."""


def _cannot_write(exc: OSError) -> OutputError:
    """The user's error for a QC plot that cannot be written (a full or read-only disk, a
    directory that is a file), wherever it was drawn."""
    where = f" {exc.filename}" if exc.filename else ""
    return OutputError(f"cannot write the QC plots:{where}: {exc.strerror or exc}")


@dataclass(frozen=True)
class _Process:
    """The parent's end of a drawing process: its pid and the two pipe ends."""

    pid: int
    requests: IO[bytes]
    replies: IO[bytes]
    lock: threading.Lock


_process: _Process | None = None


def draw(figures: Sequence[Figure]) -> tuple[str, ...]:
    """Draw the figures, in order, in the drawing process when there is one, else here;
    return their paths."""
    global _process
    proc = _process
    if proc is not None:
        try:
            # pickled whole before anything is written: a request is never half sent
            request = pickle.dumps(tuple(figures), protocol=pickle.HIGHEST_PROTOCOL)
            with proc.lock:
                proc.requests.write(request)
                proc.requests.flush()
                status, value = pickle.load(proc.replies)
        except BaseException as exc:
            # the process is gone (killed, out of memory), its pipes closed, or the
            # exchange was cut short (replies out of step): never used again; the
            # figures are drawn here (an interruption goes on up)
            _process = None
            if not isinstance(exc, OSError | EOFError | ValueError | pickle.PickleError):
                raise
        else:
            if status == "ok":
                return tuple(value)
            if status == "oserror":
                raise _cannot_write(OSError(*value))
            raise DrawingError(value)
    from mdark_dask.report.draw import draw_all

    try:
        return draw_all(figures)
    except OSError as exc:
        raise _cannot_write(exc) from None


def drawing() -> bool:
    """Whether a drawing process is running (started by :func:`forked`)."""
    return _process is not None


@contextlib.contextmanager
def forked() -> Iterator[bool]:
    """Within the block, :func:`draw` uses a drawing process forked on entry, which starts
    importing matplotlib at once; yields whether there is one (fork needs a POSIX system
    and a process with one Python thread, else the figures are drawn in-thread; callers
    fork only the console script's own process, :func:`mdark_dask.process.tuned`, which
    at this point has loaded no library that starts threads of its own). On exit the
    process is stopped and reaped."""
    global _process
    if _process is not None or not hasattr(os, "fork") or threading.active_count() != 1:
        yield False
        return
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        with contextlib.suppress(Exception):
            stream.flush()
    child_reads, parent_writes = os.pipe()
    parent_reads, child_writes = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into the command
        code = 1
        try:
            os.close(parent_writes)
            os.close(parent_reads)
            _serve(child_reads, child_writes)
            code = 0
        finally:
            os._exit(code)
    os.close(child_reads)
    os.close(child_writes)
    proc = _Process(
        pid, os.fdopen(parent_writes, "wb"), os.fdopen(parent_reads, "rb"), threading.Lock()
    )
    _process = proc
    try:
        yield True
    finally:
        _process = None
        with proc.lock:
            for stream in (proc.requests, proc.replies):
                with contextlib.suppress(OSError):
                    stream.close()
        # every figure asked for has been drawn (draw waits for them), so the process is
        # idle, or still importing when the command failed early: stopped, not waited for
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGKILL)
            os.waitpid(proc.pid, 0)


def _serve(requests_fd: int, replies_fd: int) -> None:
    """The drawing process: import matplotlib, then draw each tuple of figures read from
    the parent and reply ``("ok", paths)`` or ``("error", message)``, until the parent
    closes its end."""
    # Ctrl-C is the command's to handle (it stops, then closes the pipe)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):
        from mdark_dask.report import draw

        draw.preload()
    from mdark_dask.process import settle

    settle()  # the collector back on, the imported modules out of its sight
    with os.fdopen(requests_fd, "rb") as requests, os.fdopen(replies_fd, "wb") as replies:
        while True:
            try:
                figures = pickle.load(requests)
            except (EOFError, OSError):
                return
            reply: tuple[str, Any]
            try:
                from mdark_dask.report.draw import draw_all

                reply = ("ok", draw_all(figures))
            except OSError as exc:  # the parent's OutputError, as when drawn in-thread
                reply = ("oserror", (exc.errno, exc.strerror, exc.filename))
            except BaseException as exc:  # reported to the parent, which fails the set
                reply = ("error", f"{type(exc).__name__}: {exc}")
            pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
