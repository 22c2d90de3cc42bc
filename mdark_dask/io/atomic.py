"""Files written whole or not at all: a temporary name beside the file, renamed over it.

A reader (a browser on a page, a rerun on a report, a user on a plot) never sees half a
file, and a write that fails or is interrupted leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` (its directory made), renamed to ``path`` after
    the block, removed if the block fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: Path, text: str) -> Path:
    """Write a UTF-8 text file atomically; return its path."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
