"""Checks of a command's inputs made before any work: one line, nothing created.

A typo in a path, a settings file that does not parse, an output that is a file or a
cluster spec nobody knows would otherwise be found only after a cluster has started, a
workspace has been made or every set has failed the same way. Each check here costs a
few system calls or one small YAML read, so a command with bad input stops in well under
a second, before it starts anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mdark_dask.errors import InputError, OutputError, SettingsError


def existing_inputs(inputs: Sequence[str]) -> None:
    """Every input exists.

    Raises
    ------
    InputError
        Naming the first that does not (and how many others).
    """
    if not inputs:
        raise InputError("no input given: name directories, frames or sof files")
    missing = [item for item in inputs if not os.path.exists(item)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"no such file or directory: {missing[0]}{more}")


def writable_output(path: Path, what: str = "workspace") -> None:
    """``path`` is a directory this process may write, or may be made as one (its nearest
    existing ancestor is a writable directory). Nothing is created.

    Raises
    ------
    OutputError
        It is a file, or it cannot be written or made.
    """
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{what} {path} is a file, not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"{what} {path} is not writable")
        return
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot make {what} {path}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot make {what} {path}: {parent} is not writable")


def valid_settings(path: Path | None, numerics: str | None = None) -> None:
    """A settings file that reads and validates for every arm.

    Raises
    ------
    SettingsError
        Its one line, as every set would otherwise print it.
    """
    if path is None:
        return
    if not path.is_file():
        raise SettingsError(f"settings file {path}: no such file")
    from mdark_dask.instruments import ARMS
    from mdark_dask.settings import load_settings

    for instrument, arm in ARMS:
        load_settings(instrument, arm, path, numerics)
