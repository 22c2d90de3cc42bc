"""Input errors before any work, and one writer per workspace, through the console script.

Each bad-input case runs ``mdark-dask night`` (or ``mdark``, ``demo``) in a subprocess, as
users run it, and checks: one ``ERROR:`` line, a non-zero exit, no workspace created, no
cluster started (no child process ever appears), well under the time a cluster takes to
start.

The lock: a second run on a workspace in use stops at once naming the holder; it works
normally once the first ends, and a lock left by a killed run is free again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mdark_dask.errors import OutputError
from mdark_dask.io.lock import LOCK_NAME, WorkspaceBusy, workspace_lock
from mdark_dask.simulate import DarkSetSpec, simulate_set, write_sof
from tests.commands import EXE

LOCKER = (
    "import sys, time\nfrom pathlib import Path\nfrom mdark_dask.io.lock import workspace_lock\n"
)
SPEC = DarkSetSpec("soxs", "VIS", n_frames=3, exptime=5.0, binning=(2, 2), shape=(2048, 429))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    simulate_set(SPEC, folder)
    return folder


def watched(args: list[str], cwd: Path | None = None) -> tuple[int, str, str, float, int]:
    """Run the console script; return (status, stdout, stderr, seconds, most children seen)."""
    started = time.monotonic()
    proc = psutil.Popen(
        [EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    children = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            children = max(children, len(proc.children(recursive=True)))
        time.sleep(0.01)
    out, err = proc.communicate()
    return proc.returncode, out, err, time.monotonic() - started, children


def assert_refused(args: list[str], says: str, workspace: Path, cwd: Path | None = None) -> None:
    existed = workspace.exists()
    status, _, err, seconds, children = watched(args, cwd)
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), err
    assert says in lines[0] and "unexpected" not in lines[0]
    assert workspace.exists() == existed, "the workspace was created"
    assert children == 0, "a cluster (or another process) was started"
    assert seconds < 5


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda tmp: [str(tmp / "absent")], "no such file or directory"),
        (lambda tmp: [str((tmp / "empty").mkdir() or tmp / "empty")], "no raw dark frame"),
    ],
    ids=["missing", "empty"],
)
def test_a_night_without_input_is_one_line_and_creates_nothing(
    tmp_path: Path, make: object, says: str
) -> None:
    inputs = make(tmp_path)  # type: ignore[operator]
    ws = tmp_path / "ws"
    assert_refused(["night", *inputs, "-o", str(ws)], says, ws)


def test_inputs_with_no_dark_say_what_was_left_out(raw: Path, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    frames = sorted(raw.glob("*.fits"))[:2]  # two frames: too few for a set
    ws = tmp_path / "ws"
    assert_refused(["night", *map(str, frames), "-o", str(ws)], "no set of raw darks to reduce", ws)


def test_bad_settings_output_or_cluster_are_one_line_before_any_work(
    raw: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    typo = tmp_path / "settings.yaml"
    typo.write_text("soxs-mdark:\n  stacked-clipping-sigmaa: 5\n", encoding="utf-8")
    assert_refused(["night", str(raw), "-o", str(ws), "-s", str(typo)], "sigmaa", ws)
    assert_refused(
        ["night", str(raw), "-o", str(ws), "-s", str(tmp_path / "nope.yaml")], "no such file", ws
    )
    assert_refused(["night", str(raw), "-o", str(ws), "--cluster", "lcoal"], "lcoal", ws)
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    assert_refused(["night", str(raw), "-o", str(a_file)], "is a file", a_file)
    assert_refused(["night", str(raw), "-o", str(a_file / "ws")], "is a file", a_file / "ws")
    assert_refused(["demo", "-o", str(a_file)], "is a file", a_file)


# --------------------------------------------------------------------------------------------
# one writer per workspace


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    with workspace_lock(tmp_path, ["night", "raw", "-o", "ws"]):
        holder = json.loads((tmp_path / LOCK_NAME).read_text(encoding="utf-8"))
        assert holder["pid"] == os.getpid()
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                LOCKER + "try:\n    workspace_lock(Path(sys.argv[1])).__enter__()\n"
                "except Exception as e:\n    print(type(e).__name__, e)",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert other.stdout.startswith("WorkspaceBusy ")
        assert f"pid {os.getpid()}" in other.stdout and "mdark-dask night raw -o ws" in other.stdout
    with workspace_lock(tmp_path):  # free again once released
        pass


def test_a_lock_of_a_killed_run_is_free(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LOCKER + "with workspace_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n"
            "    time.sleep(600)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(WorkspaceBusy), workspace_lock(tmp_path):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with workspace_lock(tmp_path):
        pass


def test_a_lock_in_a_missing_workspace_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError), workspace_lock(tmp_path / "absent"):
        pass


def test_a_second_night_on_a_workspace_in_use_stops_at_once(raw: Path, tmp_path: Path) -> None:
    """Two nights on one workspace: the second stops with one line naming the first, which
    completes; a third, after the first, finds every product up to date."""
    ws = tmp_path / "ws"
    night = [EXE, "night", str(raw), "-o", str(ws), "--cluster", "sync", "--no-plots"]
    first = subprocess.Popen(
        night,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("set "):  # the plan table: the workspace is locked by now
            break
    # Held still while the second runs, so that a fast first night cannot finish and release
    # the lock before the second one starts.
    first.send_signal(signal.SIGSTOP)
    try:
        second = subprocess.run(night, capture_output=True, text=True, timeout=120, check=False)
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode != 0
    assert second.stderr.strip().splitlines() == [second.stderr.strip()]
    assert f"is in use by pid {first.pid}" in second.stderr
    third = subprocess.run(night, capture_output=True, text=True, timeout=120, check=False)
    assert third.returncode == 0, third.stderr
    assert "up to date" in third.stdout


def test_mdark_takes_the_same_lock(raw: Path, tmp_path: Path) -> None:
    sof = write_sof(tmp_path / "set.sof", sorted(raw.glob("*.fits")))
    ws = tmp_path / "ws"
    ws.mkdir()
    with workspace_lock(ws):
        status, _, err, _, _ = watched(["mdark", str(sof), "-o", str(ws), "--no-plots"])
    assert status != 0 and "is in use by pid" in err
    assert not list(ws.glob("products/**/*.fits"))
    status, _, err, _, _ = watched(["mdark", str(sof), "-o", str(ws), "--no-plots"])
    assert status == 0, err
