"""How big a task is: the one task-sizing rule of the recipe's graph.

Every size here is an execution setting: the kernels are exact per whole frame (level
clip) and per pixel (stack clip), so no choice made here changes a product byte (the
invariance tests hold this). Sizes are in bytes of prepared float32 pixels, so one rule
serves every arm and binning.

* A **level task** clips the level of a few whole frames, read one at a time, so its
  size sets its length, not its memory.
* A **strip task** reads one full-width row strip of every frame and clips it per pixel;
  two strips in flight (one per thread) are the strip phase's memory.
* A strip task reads and clips its strip a **block** of rows at a time, so the block is
  clipped from cache rather than from memory.
"""

from __future__ import annotations

from typing import Final

#: Prepared bytes of whole frames per level task of one product (two 2k x 2k frames).
LEVEL_TASK_BYTES: Final = 32 * 2**20

#: Prepared bytes of all frames per strip task of one product: enough tasks for every
#: thread, each long against dask's per-task cost.
STRIP_TASK_BYTES: Final = 24 * 2**20

#: Prepared bytes per level and strip task in a night, whose parallelism comes from its
#: many sets, so each task can be longer (fewer, larger tasks per set).
NIGHT_TASK_BYTES: Final = 96 * 2**20

#: Bytes of stack a strip task reads and clips at a time.
BLOCK_BYTES: Final = 8 * 2**20


def strip_rows(n_frames: int, rows: int, cols: int, target: int = STRIP_TASK_BYTES) -> int:
    """Rows per strip so that one strip of all frames is about ``target`` bytes.

    >>> strip_rows(20, 2040, 2040)
    154
    >>> strip_rows(3, 37, 53)
    37
    """
    per_row = max(1, n_frames * cols * 4)
    return int(max(1, min(rows, target // per_row)))


def strip_bounds(
    shape: tuple[int, int, int], rows: int | None = None, task_bytes: int | None = None
) -> list[tuple[int, int]]:
    """The row strips of a ``(frames, rows, cols)`` stack: ``(first, stop)`` rows,
    covering every row once, top to bottom; ``rows`` high when given, else
    :func:`strip_rows` for ``task_bytes`` (default :data:`STRIP_TASK_BYTES`).

    >>> strip_bounds((3, 37, 53), rows=16)
    [(0, 16), (16, 32), (32, 37)]
    """
    n, ny, nx = shape
    step = rows or strip_rows(n, ny, nx, task_bytes or STRIP_TASK_BYTES)
    return [(y0, min(y0 + step, ny)) for y0 in range(0, ny, step)]


def level_groups(
    shape: tuple[int, int, int], task_bytes: int | None = None
) -> list[tuple[int, int]]:
    """The frames of each level task: ``(first, stop)`` indices, about ``task_bytes``
    (default :data:`LEVEL_TASK_BYTES`) of prepared pixels per task, in frame order.

    >>> level_groups((5, 2048, 2048))
    [(0, 2), (2, 4), (4, 5)]
    """
    n, ny, nx = shape
    per_task = max(1, round((task_bytes or LEVEL_TASK_BYTES) / (ny * nx * 4)))
    return [(i, min(i + per_task, n)) for i in range(0, n, per_task)]


def block_rows(shape: tuple[int, int, int], strip: tuple[int, int]) -> int:
    """Rows per block of a strip task (about :data:`BLOCK_BYTES` of all frames)."""
    n, _, nx = shape
    return strip_rows(n, strip[1] - strip[0], nx, BLOCK_BYTES)
