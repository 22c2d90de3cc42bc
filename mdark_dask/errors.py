"""The errors mdark-dask reports to its users.

Every expected failure is an :class:`MdarkError` whose message is one readable line; the
CLI prints it (a traceback only with ``-V``) and exits non-zero. Anything else is a bug.
"""

from __future__ import annotations


class MdarkError(Exception):
    """Base class: a failure the user can act on, described in one line."""

    exit_code = 2


class InputError(MdarkError):
    """Bad input frames or a bad set of frames (unreadable files, frames that are not
    darks, a mix of arms, binnings or exposure times, too few frames)."""


class SettingsError(MdarkError):
    """A settings file with an unknown key, a wrong type or an unreadable body."""


class OutputError(MdarkError):
    """The workspace or product cannot be written."""
