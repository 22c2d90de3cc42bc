"""A newcomer's first hour works as written: the README's usage lines match the parser,
its tables render, and its Python API example runs as printed (after the demo it names)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mdark_dask.cli import _parser
from mdark_dask.numerics.qc import HOT_LABEL, MASKED_LABEL
from tests.commands import EXE

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", text))


def _usage(command: str) -> str:
    """The README's usage lines of one command (its line and the indented ones after)."""
    block = README.split("## Command line", 1)[1].split("\n\n", 2)[1]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if f"mdark-dask {command} " in line)
    text = [lines[start]]
    for line in lines[start + 1 :]:
        if "mdark-dask " in line:
            break
        text.append(line)
    return "\n".join(text)


@pytest.mark.parametrize("command", ["mdark", "night", "demo"])
def test_usage_lines_name_every_option_of_the_parser(command: str) -> None:
    parser = _parser()
    sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    ours = {
        min(action.option_strings, key=len)
        for action in sub._actions
        if action.option_strings and "-h" not in action.option_strings
    }
    usage = _usage(command)
    assert ours == _options(usage), usage
    for action in sub._actions:
        if action.required and action.option_strings:  # required options are not bracketed
            assert f"[{min(action.option_strings, key=len)} " not in usage


def test_tables_are_not_broken_by_blank_lines() -> None:
    lines = README.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i >= 2 and not lines[i - 1].strip():
            # a table starts here: its second line must be the header separator
            assert re.match(r"^\|(\s*:?-+:?\s*\|)+$", lines[i + 1]), f"line {i + 1}: {line}"


def test_the_api_example_runs_as_printed(tmp_path: Path) -> None:
    code = README.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    demo = subprocess.run(
        [EXE, "demo", "-o", "mdark-demo"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert demo.returncode == 0, demo.stderr
    # the demo says where its raw frames are and what to try next
    assert "raw frames:" in demo.stdout and "mdark-dask night " in demo.stdout
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    assert "HOTPIX NUM" in run.stdout
    assert "NightPlan: 5 set(s)" in run.stdout
    assert "'up to date'" in run.stdout and "'done'" in run.stdout
    assert len(run.stdout) < 4000  # nothing prints kilobytes of header cards


def test_the_readme_shows_one_small_picture_of_each_plot() -> None:
    """One committed picture of each kind of QC plot, shown and named, each small."""
    from PIL import Image

    shown = re.findall(r"!\[[^\]]*\]\((docs/pictures/[\w.]+\.png)\)", README)
    kinds = ["image", "hotpix_map", "frames", "histogram", "dark_current"]
    assert shown == [f"docs/pictures/{k}.png" for k in kinds]
    for kind, picture in zip(kinds, shown, strict=True):
        assert f"`<name>_{kind}.png`:" in README  # and says what it shows
        path = ROOT / picture
        assert path.stat().st_size < 60_000, picture
        with Image.open(path) as image:
            levels = np.unique(np.asarray(image.convert("L")))
            assert min(image.size) > 200 and levels.size > 4
    assert "scripts/make_doc_pictures.py" in README
    assert (ROOT / "scripts" / "make_doc_pictures.py").is_file()
    # the vocabulary of the two counts, as the plots and tables print it
    assert f"**{MASKED_LABEL}**" in README and f"**{HOT_LABEL}**" in README
