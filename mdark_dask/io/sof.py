"""Set-of-files (sof) text: read as soxspipe reads it, written as its data organiser writes it.

A sof lists one frame per line: ``<path>  <TAG>``. Empty lines and lines starting with
``#`` are skipped; the tag is optional. Unlike soxspipe 0.17.4, a path is the whole first
field, so ``.fits.gz``/``.fits.fz`` frames and directories named ``*.fits`` work.
Relative paths are relative to the sof file's directory first, then to the current
directory (soxspipe's workspaces use ``./raw/...`` relative to the workspace root).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mdark_dask.errors import InputError


@dataclass(frozen=True)
class SofEntry:
    """One frame line of a sof: its resolved path and optional tag."""

    path: str
    tag: str | None


def parse_sof(text: str, base: Path) -> tuple[SofEntry, ...]:
    """Parse sof text; ``base`` is the sof file's directory for relative paths."""
    entries = []
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or line.startswith("#"):
            continue
        parts = stripped.split()
        raw = os.path.expanduser(parts[0])
        tag = parts[1] if len(parts) > 1 else None
        path = Path(raw)
        if not path.is_absolute():
            beside = base / path
            path = beside if beside.exists() or not Path(raw).exists() else Path(raw).resolve()
        entries.append(SofEntry(str(path.resolve() if path.exists() else path), tag))
    return tuple(entries)


def read_sof(path: Path) -> tuple[SofEntry, ...]:
    """Read a sof file.

    Raises
    ------
    InputError
        If it cannot be read, lists no frame, or names a file that does not exist.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read sof file {path}: {getattr(exc, 'strerror', exc)}") from None
    entries = parse_sof(text, path.resolve().parent)
    if not entries:
        raise InputError(f"sof file {path} lists no frames")
    for entry in entries:
        if not os.path.exists(entry.path):
            raise InputError(f"sof file {path} names a missing file: {entry.path}")
    return entries


def format_sof(paths: Sequence[str], tags: Sequence[str]) -> str:
    """Format sof text: two-space separated, no trailing newline (the organiser's layout)."""
    width = max(len(p) for p in paths)
    return "\n".join(f"{p.ljust(width)}  {t}" for p, t in zip(paths, tags, strict=True))


def write_sof_files(sets: Sequence[tuple[str, Sequence[str], str]], directory: Path) -> list[Path]:
    """Write one sof per ``(name, frame paths, tag)`` into ``directory``, atomically.

    A sof that already exists with the same content is left untouched (its mtime too),
    so a rerun does not make its products look out of date.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, paths, tag in sets:
        path = directory / f"{name}.sof"
        text = format_sof(paths, [tag] * len(paths))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        written.append(path)
    return written
