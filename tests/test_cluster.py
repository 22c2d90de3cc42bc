"""``mdark-dask night`` on a real Dask cluster: scheduler and workers in their own processes.

A module fixture starts ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1
(each a nanny running one single-threaded worker process, as cluster/README.md tells users
to start them) and the tests run simulated nights through ``--cluster tcp://127.0.0.1:PORT``:

* every set's product is byte-identical to the in-process (``--cluster sync``) product, and
  the awkward files (a bias, a truncated FITS file, a non-FITS ``*.fits``) are reported;
* the dashboard answers HTTP while a night runs, and the CLI prints its link;
* faults: SIGKILL of one worker process mid-night (its nanny starts a new one), and SIGKILL
  of a nanny and its worker (nothing restarts them: the other worker finishes alone); both
  nights end with exit 0 and identical products;
* the ``cluster/`` definitions load; SLURM and PBS render job scripts through dask-jobqueue
  without SLURM or PBS; the in-process specs connect; bad specs fail with one
  :class:`~mdark_dask.cluster.ClusterError` line.

Tests that start scheduler or worker processes are marked ``cluster`` (the nights also
``slow``); the definition and error tests are quick and are not. Frames are the smallest
each arm allows (binned 2x2 for the CCDs, native size for NIR), to keep the module short.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from mdark_dask import workers
from mdark_dask._version import __version__
from mdark_dask.cli import main
from mdark_dask.cluster import BackgroundCluster, ClusterError, connect, load_definition
from mdark_dask.instruments import ARMS
from mdark_dask.plan.night import plan_night
from mdark_dask.simulate import DarkSetSpec, simulate_set

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = ROOT / "cluster"
DASK_CONFIG_DIR = CLUSTER_DIR / "dask-config"  # for workers mdark-dask does not start
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0  # s for the scheduler and both workers to come up
NIGHT_TIMEOUT = 180.0  # s for one night in a subprocess (they take a few seconds)

# The night: every arm, two exposure times each, three frames per set (one template).
ARM_SETS: tuple[tuple[str, str, tuple[int, int]], ...] = (
    ("soxs", "NIR", (1, 1)),
    ("soxs", "VIS", (2, 2)),
    ("xsh", "UVB", (2, 2)),
    ("xsh", "VIS", (2, 2)),
    ("xsh", "NIR", (1, 1)),
)
EXPTIMES = (5.0, 10.0)


def smallest_shape(instrument: str, arm: str, binning: tuple[int, int]) -> tuple[int, int]:
    """The smallest raw frame that holds the arm's science pixels at this binning."""
    xbin, ybin = binning
    return ARMS[(instrument, arm)].raw_shape(ybin, xbin)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def dask_command() -> list[str]:
    """The ``dask`` console script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("dask")
    if not script.exists():
        pytest.skip(f"no dask console script beside {sys.executable}")
    return [str(script)]


# --------------------------------------------------------------------------------------------
# the cluster: one scheduler and two workers, each its own process


def _stop(processes: Sequence[subprocess.Popen[Any]]) -> None:
    """Terminate processes we started and every child they made (nanny -> worker)."""
    tree: list[psutil.Process] = []
    for proc in processes:
        try:
            parent = psutil.Process(proc.pid)
            tree.extend(parent.children(recursive=True))
            tree.append(parent)
        except psutil.NoSuchProcess:
            continue
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(tree, timeout=15)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    for proc in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class DaskProcesses:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, and a client of ours.

    Each ``dask worker`` process is a nanny that runs one single-threaded worker process
    (its child) with a 2 GiB memory limit, as cluster/README.md tells users to start them.
    A worker process that dies is restarted by its nanny.
    """

    WORKER_OPTIONS = "--nworkers 1 --nthreads 1 --memory-limit 2GiB --no-dashboard"

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.port, self.dashboard_port = free_port(), free_port()
        self.address = f"tcp://{HOST}:{self.port}"
        self.env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.nannies: list[subprocess.Popen[bytes]] = []
        self.client: Any = None

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str | None] | None = None
    ) -> subprocess.Popen[bytes]:
        """``dask ARGS`` with the test's environment plus ``env`` (None: unset)."""
        merged = {**self.env, **(env or {})}
        with open(self.logs / f"{name}.log", "wb") as log:
            return subprocess.Popen(
                [*dask_command(), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in merged.items() if v is not None},
                cwd=self.logs,
            )

    #: Arguments every process gets (a subclass adds e.g. a protocol and certificates).
    EXTRA: tuple[str, ...] = ()

    def security(self) -> Any:
        """The client's ``distributed.security.Security`` (None: plain TCP)."""
        return None

    def start(self, n_workers: int) -> None:
        from distributed import Client

        self.scheduler = self._spawn(
            "scheduler",
            [
                "scheduler",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--dashboard-address",
                f"{HOST}:{self.dashboard_port}",
                *self.EXTRA,
            ],
        )
        for _ in range(n_workers):
            self.add_worker()
        self.client = Client(
            self.address,
            timeout=STARTUP_TIMEOUT,
            set_as_default=False,
            security=self.security(),
        )
        if n_workers:
            self.wait_for_workers(n_workers)

    def add_worker(self, dask_config: bool = True) -> subprocess.Popen[bytes]:
        """Start one more ``dask worker`` (a nanny and its worker process), with the Dask
        configuration cluster/README.md tells users to give hand-started workers (or,
        ``dask_config=False``, with distributed's defaults, as a batch job starts them)."""
        name = f"worker-{len(self.nannies)}"
        nanny = self._spawn(
            name,
            [
                "worker",
                self.address,
                *self.WORKER_OPTIONS.split(),
                "--host",
                HOST,
                "--death-timeout",
                "60",
                "--local-directory",
                str(self.logs / name),
                *self.EXTRA,
            ],
            env={"DASK_CONFIG": str(DASK_CONFIG_DIR) if dask_config else None},
        )
        self.nannies.append(nanny)
        return nanny

    def wait_for_workers(self, n: int) -> None:
        try:
            self.client.wait_for_workers(n, timeout=STARTUP_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"{n} dask workers did not come up:\n{self.log_tail()}")

    def worker_pids(self) -> dict[str, int]:
        """{worker address: pid of the worker process} (a nanny's child)."""
        return {addr: int(pid) for addr, pid in self.client.run(os.getpid).items()}

    def nanny_of(self, worker_pid: int) -> subprocess.Popen[bytes]:
        """The ``dask worker`` (nanny) process whose child is this worker process."""
        for nanny in self.nannies:
            with contextlib.suppress(psutil.NoSuchProcess):
                children = psutil.Process(nanny.pid).children(recursive=True)
                if worker_pid in {c.pid for c in children}:
                    return nanny
        raise AssertionError(f"no nanny of ours runs worker process {worker_pid}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of every process's log, for failure messages."""
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        _stop(self.nannies)  # the nannies and their worker processes first
        if self.scheduler is not None:
            _stop([self.scheduler])


@pytest.fixture(scope="module")
def dask_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskProcesses]:
    """A scheduler and two workers, each in its own process; all stopped at the end."""
    cluster = DaskProcesses(tmp_path_factory.mktemp("dask-logs"))
    try:
        cluster.start(n_workers=2)
        yield cluster
    finally:
        cluster.stop()


# --------------------------------------------------------------------------------------------
# nights


def simulate_night(raw: Path) -> dict[str, Path]:
    """Every arm at two exposure times, plus the awkward files; returns those by kind."""
    minute = 0
    for instrument, arm, binning in ARM_SETS:
        for exptime in EXPTIMES:
            spec = DarkSetSpec(
                instrument,
                arm,
                n_frames=3,
                exptime=exptime,
                binning=binning,
                shape=smallest_shape(instrument, arm, binning),
                start=f"2026-01-11T08:{minute:02d}:00.000",
                seed=minute,
            )
            simulate_set(spec, raw / f"{instrument}-{arm.lower()}")
            minute += 5
    awkward = raw / "awkward"
    bias_spec = DarkSetSpec(
        "soxs",
        "VIS",
        n_frames=1,
        exptime=0.0,
        binning=(2, 2),
        dpr_type="BIAS",
        shape=smallest_shape("soxs", "VIS", (2, 2)),
        start="2026-01-11T09:30:00.000",
    )
    (bias,) = simulate_set(bias_spec, awkward)
    source = sorted((raw / "xsh-uvb").glob("*.fits"))[0]
    truncated = awkward / "XSHOO.truncated.fits"
    data = source.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    not_fits = awkward / "observing-notes.fits"
    not_fits.write_text("SIMPLE = this is a text file, not FITS\n", encoding="utf-8")
    return {"bias": bias, "truncated": truncated, "not_fits": not_fits}


def simulate_big_night(raw: Path) -> None:
    """Eight NIR sets of six full-size frames: a night of several seconds on two workers."""
    for i in range(8):
        instrument = "soxs" if i % 2 == 0 else "xsh"
        spec = DarkSetSpec(
            instrument,
            "NIR",
            n_frames=6,
            exptime=5.0 * (i + 1),
            shape=smallest_shape(instrument, "NIR", (1, 1)),
            start=f"2026-01-11T{8 + i:02d}:00:00.000",
            seed=100 + i,
        )
        simulate_set(spec, raw / f"set-{i}")


@dataclass(frozen=True)
class Night:
    """Raw frames of a night and its in-process (``--cluster sync``) reference workspace."""

    raw: Path
    reference: Path
    awkward: dict[str, Path]


def run_sync(raw: Path, workspace: Path) -> None:
    code = main(["night", str(raw), "-o", str(workspace), "--cluster", "sync", "--no-plots"])
    assert code == 0, f"the in-process reference night failed ({code})"


def make_night(tmp_path_factory: pytest.TempPathFactory, name: str = "night") -> Night:
    """A small night and its in-process reference workspace."""
    root = tmp_path_factory.mktemp(name)
    awkward = simulate_night(root / "raw")
    run_sync(root / "raw", root / "ws-sync")
    return Night(root / "raw", root / "ws-sync", awkward)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Night:
    return make_night(tmp_path_factory)


@pytest.fixture(scope="module")
def big_night(tmp_path_factory: pytest.TempPathFactory) -> Night:
    root = tmp_path_factory.mktemp("big-night")
    simulate_big_night(root / "raw")
    run_sync(root / "raw", root / "ws-sync")
    return Night(root / "raw", root / "ws-sync", {})


def products(workspace: Path) -> dict[str, bytes]:
    """{file name: bytes} of every FITS file in a workspace's product directory (the
    master darks and whatever companion files the recipe writes beside them)."""
    folder = workspace / "products" / "soxs_mdark"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.fits"))}


def assert_same_products(workspace: Path, reference: Path, n_sets: int) -> None:
    """Every product file of ``workspace`` is byte-identical to the reference's, and the
    reference has one master dark per set (named like the set)."""
    got, want = products(workspace), products(reference)
    sets = {s["name"] for s in read_report(reference)["sets"]}
    assert len(sets) == n_sets
    assert {f"{name}.fits" for name in sets} <= set(want), "the reference lacks products"
    assert sorted(got) == sorted(want)
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"products differ from the in-process ones: {differ}"


def read_report(workspace: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((workspace / "night_report.json").read_text("utf-8"))
    return result


def assert_all_done(report: dict[str, Any], names: set[str]) -> None:
    statuses = {s["name"]: s["status"] for s in report["sets"]}
    assert set(statuses) == names
    not_done = {n: s for n, s in statuses.items() if s != "done"}
    assert not not_done, f"sets not done: {not_done}"


class NightProcess:
    """``mdark-dask night`` in a subprocess, its stdout read line by line as it comes."""

    def __init__(self, raw: Path, workspace: Path, cluster: str) -> None:
        args = [
            sys.executable,
            "-m",
            "mdark_dask.cli",
            "night",
            str(raw),
            "-o",
            str(workspace),
            "--cluster",
            cluster,
            "--no-plots",
        ]
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
        # stderr to a file: a pipe nobody reads could fill up and stall the night
        self.stderr_path = workspace.with_name(f"{workspace.name}-stderr.txt")
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
            )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, pattern: str, timeout: float = NIGHT_TIMEOUT) -> str:
        """The first stdout line matching ``pattern`` (regex), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {timeout:g} s")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"the night ended before a line matching {pattern!r}:\n"
                    + "\n".join(self.lines)
                    + self.stderr()
                )
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def stderr(self) -> str:
        return "\nstderr:\n" + self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def finish(self, timeout: float = NIGHT_TIMEOUT) -> int:
        """Wait for the exit status; keep the rest of stdout in ``lines``."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the night did not finish:\n" + "\n".join(self.lines)) from None
        self._reader.join(timeout=10)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            _stop([self.proc])

    def output(self) -> str:
        return "\n".join(self.lines) + self.stderr()


def http_status(url: str, timeout: float = 30.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()
        return int(response.status)


# --------------------------------------------------------------------------------------------
# a night on the real cluster


@pytest.mark.cluster
@pytest.mark.slow
def test_night_on_real_workers_matches_in_process(
    dask_processes: DaskProcesses, night: Night, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = tmp_path / "ws-cluster"
    capsys.readouterr()
    code = main(
        [
            "night",
            str(night.raw),
            "-o",
            str(workspace),
            "--cluster",
            dask_processes.address,
            "--no-plots",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, out + err + dask_processes.log_tail()

    # the dashboard link is printed at the start, and it is the scheduler's
    assert f"Dashboard: http://{HOST}:{dask_processes.dashboard_port}/status" in out

    n_sets = len(ARM_SETS) * len(EXPTIMES)
    assert_same_products(workspace, night.reference, n_sets)
    # the sofs (one per set, the organiser's names) do not depend on the cluster either
    sofs = sorted(p.name for p in (workspace / "sof").glob("*.sof"))
    assert len(sofs) == n_sets
    for name in sofs:
        sof = (workspace / "sof" / name).read_bytes()
        assert sof == (night.reference / "sof" / name).read_bytes()

    report = read_report(workspace)
    assert report["cluster"] == f"scheduler at {dask_processes.address}"
    expected = {s.name for s in plan_night([str(night.raw)]).sets}
    assert len(expected) == n_sets
    assert_all_done(report, expected)
    arms = {(s["instrument"], s["arm"], s["exptime"]) for s in report["sets"]}
    assert arms == {(i, a, e) for i, a, _ in ARM_SETS for e in EXPTIMES}
    assert all(s["frames"] == 3 for s in report["sets"])
    # the profile of the run: every set's graph ran on the workers, counted by task prefix
    compute = report["compute"]
    assert {"level", "strip", "join", "finalize"} <= set(compute["task_seconds_by_prefix"])
    assert compute["transfers"] >= 0 and compute["transfer_seconds"] >= 0
    assert set(compute["tasks_under_100ms_by_prefix"]) <= set(compute["task_seconds_by_prefix"])

    left_out = {entry["what"]: entry["reason"] for entry in report["left_out"]}
    awkward = night.awkward
    assert set(left_out) == {str(p) for p in awkward.values()}, left_out
    assert "BIAS" in left_out[str(awkward["bias"])]
    assert "truncated" in left_out[str(awkward["truncated"])]
    assert "not a readable FITS file" in left_out[str(awkward["not_fits"])]


@pytest.mark.cluster
@pytest.mark.slow
def test_dashboard_answers_while_a_night_runs(
    dask_processes: DaskProcesses, night: Night, tmp_path: Path
) -> None:
    run = NightProcess(night.raw, tmp_path / "ws", dask_processes.address)
    try:
        line = run.wait_for_line(r"^Dashboard: ")
        link = line.removeprefix("Dashboard: ").strip()
        assert link == f"http://{HOST}:{dask_processes.dashboard_port}/status"
        # the graphs are being submitted or computed now: the night is still running
        assert run.proc.poll() is None, "the night ended before the dashboard was asked"
        assert http_status(link) == 200
        workers_page = f"http://{HOST}:{dask_processes.dashboard_port}/info/main/workers.html"
        assert http_status(workers_page) == 200
        code = run.finish()
    finally:
        run.kill()
    assert code == 0, run.output()
    assert_same_products(tmp_path / "ws", night.reference, len(ARM_SETS) * len(EXPTIMES))


@dataclass(frozen=True)
class Kill:
    """What a fault test killed, and what the night printed after."""

    worker: str
    pid: int
    in_flight: int
    lines_after: list[str]


def night_with_a_kill(
    cluster: DaskProcesses, night: Night, workspace: Path, with_nanny: bool
) -> Kill:
    """Run the big night in a subprocess; after its first finished set, SIGKILL the worker
    process with the most tasks in flight (and first its nanny when ``with_nanny``).

    The night must still end with exit status 0 and every product identical to the
    in-process one, every set done.
    """
    before = cluster.worker_pids()
    assert len(before) == 2
    run = NightProcess(night.raw, workspace, cluster.address)
    try:
        first = run.wait_for_line(r"^\[\s*1/\d+\] ")
        assert re.match(r"^\[\s*1/8\] ", first), first
        assert run.proc.poll() is None, "the night ended before a worker could be killed"
        busy = cluster.client.processing()
        victim = max(before, key=lambda addr: len(busy.get(addr, ())))
        if with_nanny:
            # the nanny first, or it would start a new worker process at once
            os.kill(cluster.nanny_of(before[victim]).pid, signal.SIGKILL)
        os.kill(before[victim], signal.SIGKILL)
        killed_at = len(run.lines)
        code = run.finish()
    finally:
        run.kill()
    assert code == 0, run.output() + cluster.log_tail()
    kill = Kill(victim, before[victim], len(busy.get(victim, ())), run.lines[killed_at:])
    print(f"killed {kill.worker} (pid {kill.pid}, {kill.in_flight} task(s) in flight)")
    print(run.output())  # shown with -s or on failure: what the user saw
    assert kill.in_flight > 0, "the killed worker had no task in flight: the test proved nothing"
    done_after = [ln for ln in kill.lines_after if re.match(r"^\[\s*\d+/8\] ", ln)]
    assert done_after, "every set was done before the kill: the test proved nothing"
    assert_same_products(workspace, night.reference, 8)
    assert_all_done(read_report(workspace), {s.name for s in plan_night([str(night.raw)]).sets})
    return kill


@pytest.mark.cluster
@pytest.mark.slow
def test_killed_worker_process_is_restarted_and_changes_nothing(
    dask_processes: DaskProcesses, big_night: Night, tmp_path: Path
) -> None:
    """SIGKILL one worker process (not its nanny) mid-night: its nanny starts a new one.

    The scheduler recomputes what the dead worker held or was computing, on the surviving
    worker and on the new one once it has joined: identical products, exit 0.
    """
    kill = night_with_a_kill(dask_processes, big_night, tmp_path / "ws", with_nanny=False)
    # the nanny restarted it: two workers again, the killed process among neither
    dask_processes.wait_for_workers(2)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while kill.pid in dask_processes.worker_pids().values():
        assert time.monotonic() < deadline, "the killed worker is still registered"
        time.sleep(0.5)
    assert len(dask_processes.worker_pids()) == 2


@pytest.mark.cluster
@pytest.mark.slow
def test_killed_worker_and_nanny_the_other_finishes_alone(
    dask_processes: DaskProcesses, big_night: Night, tmp_path: Path
) -> None:
    """SIGKILL a nanny and its worker process mid-night: nothing restarts them, and the one
    remaining worker finishes the night alone with identical products."""
    kill = night_with_a_kill(dask_processes, big_night, tmp_path / "ws", with_nanny=True)
    survivors = dask_processes.worker_pids()
    assert kill.worker not in survivors
    assert len(survivors) == 1, survivors
    # leave two workers for the tests that follow
    dask_processes.add_worker()
    dask_processes.wait_for_workers(2)


# --------------------------------------------------------------------------------------------
# the cluster/ definitions


def definition_files() -> list[Path]:
    return sorted(CLUSTER_DIR.glob("*.yaml"))


def test_every_documented_definition_exists_and_loads() -> None:
    types = {p.stem: load_definition(p)["type"] for p in definition_files()}
    assert (
        types.items()
        >= {
            "local": "local",
            "remote": "address",
            "slurm": "slurm",
            "pbs": "pbs",
            "kubernetes": "kubernetes",
        }.items()
    )
    readme = (CLUSTER_DIR / "README.md").read_text(encoding="utf-8")
    for name in types:
        assert f"{name}.yaml" in readme
    for needle in (
        "dask scheduler",
        "dask worker tcp://",
        "--nthreads 1",
        "8787",
        "DASK_CONFIG",
        "mdark-dask[jobqueue]",
        "mdark-dask[kubernetes]",
        "same absolute",
    ):
        assert needle in readme, needle


def test_remote_definition_names_a_scheduler_address() -> None:
    definition = load_definition(CLUSTER_DIR / "remote.yaml")
    assert re.fullmatch(r"tcp://[\w.-]+:\d+", definition["address"])


def test_kubernetes_definition_is_operator_kubecluster_keywords() -> None:
    definition = load_definition(CLUSTER_DIR / "kubernetes.yaml")
    keywords = set(definition) - {"type"}
    # KubeCluster's keywords (dask-kubernetes operator); n_workers is what it is scaled to
    known = {
        "name",
        "namespace",
        "image",
        "n_workers",
        "resources",
        "env",
        "worker_command",
        "port_forward_cluster_ip",
        "create_mode",
        "shutdown_on_close",
        "idle_timeout",
        "resource_timeout",
        "scheduler_service_type",
        "custom_cluster_spec",
        "scheduler_forward_port",
        "jupyter",
    }
    assert keywords <= known, keywords - known
    assert {"name", "image", "n_workers", "resources"} <= keywords
    assert set(definition["resources"]) <= {"requests", "limits"}
    assert all(isinstance(v, dict) for v in definition["resources"].values())
    text = (CLUSTER_DIR / "kubernetes.yaml").read_text(encoding="utf-8")
    assert "helm" in text and "remote.yaml" in text


@pytest.mark.parametrize(
    ("kind", "prefix"),
    [("slurm", "#SBATCH"), ("pbs", "#PBS")],
)
def test_batch_definition_renders_a_job_script(kind: str, prefix: str) -> None:
    """The definition, as shipped, makes a job script through dask-jobqueue (no batch system)."""
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    definition = load_definition(CLUSTER_DIR / f"{kind}.yaml")
    assert int(definition["jobs"]) >= 1
    options = {k: v for k, v in definition.items() if k not in ("type", "jobs")}
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    cluster = cls(**options)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    directives = [line for line in script.splitlines() if line.startswith(prefix)]
    text = "\n".join(directives)
    if kind == "slurm":
        assert f"#SBATCH -p {definition['queue']}" in directives
        assert f"#SBATCH -A {definition['account']}" in directives
        assert f"#SBATCH --cpus-per-task={definition['cores']}" in directives
        assert re.search(r"^#SBATCH --mem=\d+G$", text, re.MULTILINE), text
        assert f"#SBATCH -t {definition['walltime']}" in directives
    else:
        assert f"#PBS -q {definition['queue']}" in directives
        assert f"#PBS -A {definition['account']}" in directives
        assert re.search(
            rf"^#PBS -l select=1:ncpus={definition['cores']}:mem=\d+GB$", text, re.MULTILINE
        ), text
        assert f"#PBS -l walltime={definition['walltime']}" in directives
    for extra in definition["job_extra_directives"]:
        assert f"{prefix} {extra}" in directives
    assert f"{prefix} {'-J' if kind == 'slurm' else '-N'} {definition['job_name']}" in directives
    command = [ln for ln in script.splitlines() if "dask_worker" in ln or "dask worker" in ln]
    assert len(command) == 1, script
    worker = command[0]
    assert "tcp://" in worker
    # single-threaded workers, one per core of the job
    assert "--nthreads 1" in worker
    assert f"--nworkers {definition['processes']}" in worker
    assert f"--local-directory {definition['local_directory']}" in worker


# --------------------------------------------------------------------------------------------
# connect(): the in-process specs, a definition file, and the errors


def test_connect_sync_has_no_client() -> None:
    with connect("sync") as conn:
        assert conn.client is None
        assert conn.dashboard is None


def test_connect_threads_computes_in_process() -> None:
    with connect("threads") as conn:
        assert conn.client is not None
        assert conn.client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
        assert conn.dashboard is not None and conn.dashboard.startswith("http")


@pytest.mark.cluster
def test_connect_local_definition_as_shipped() -> None:
    with connect(str(CLUSTER_DIR / "local.yaml")) as conn:
        assert conn.description.startswith("local cluster")
        assert conn.client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        assert conn.dashboard is not None


@pytest.mark.cluster
def test_dask_config_unsets_malloc_trim_in_hand_started_workers(
    dask_processes: DaskProcesses,
) -> None:
    """cluster/dask-config (DASK_CONFIG of the fixture's workers) keeps the nanny from
    setting MALLOC_TRIM_THRESHOLD_, as mdark-dask's own LocalCluster does."""
    assert (DASK_CONFIG_DIR / "mdark-dask.yaml").is_file()
    # os.getenv travels by reference and reads the worker's environment (a bound
    # os.environ.get would be pickled with this process's environment)
    seen = dask_processes.client.run(os.getenv, workers.TRIM_VARIABLE)
    assert len(seen) == 2
    assert set(seen.values()) == {None}, seen


@pytest.mark.cluster
def test_worker_setup_reaches_workers_that_join_later(tmp_path: Path) -> None:
    """The set-up travels as scheduler plugins: a worker already running with distributed's
    MALLOC_TRIM_THRESHOLD_ is respawned once without it, a worker that joins afterwards is
    spawned without it, and both are warmed up (recipe imported, kernels loaded)."""
    cluster = DaskProcesses(tmp_path)
    try:
        cluster.start(n_workers=0)
        cluster.add_worker(dask_config=False)
        cluster.wait_for_workers(1)
        trim = cluster.client.run(os.getenv, workers.TRIM_VARIABLE)
        assert list(trim.values()) == ["65536"]  # distributed's default, as in batch jobs
        workers.install(cluster.client, nanny=True)
        cluster.add_worker(dask_config=False)
        cluster.wait_for_workers(2)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            trim = cluster.client.run(os.getenv, workers.TRIM_VARIABLE)
            if len(trim) == 2 and set(trim.values()) == {None}:
                break
            time.sleep(0.5)
        assert set(trim.values()) == {None} and len(trim) == 2, cluster.log_tail()
        versions = cluster.client.run(lambda dask_worker: dask_worker.mdark_dask_version)
        assert set(versions.values()) == {__version__}
        loaded = cluster.client.run(lambda: "mdark_dask.recipe" in sys.modules)
        assert set(loaded.values()) == {True}
    finally:
        cluster.stop()


@pytest.mark.cluster
def test_connect_address_and_address_definition(
    dask_processes: DaskProcesses, tmp_path: Path
) -> None:
    with connect(dask_processes.address) as conn:
        assert conn.description == f"scheduler at {dask_processes.address}"
        assert len(conn.client.scheduler_info()["workers"]) == 2
    remote = yaml.safe_load((CLUSTER_DIR / "remote.yaml").read_text(encoding="utf-8"))
    remote["address"] = dask_processes.address
    definition = tmp_path / "remote.yaml"
    definition.write_text(yaml.safe_dump(remote), encoding="utf-8")
    with connect(str(definition)) as conn:
        assert conn.client.submit(sum, [1, 2]).result(timeout=30) == 3
        assert conn.dashboard == f"http://{HOST}:{dask_processes.dashboard_port}/status"


def assert_one_line(exc: pytest.ExceptionInfo[ClusterError]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text and "Traceback" not in text
    return text


def test_unreachable_scheduler_fails_quickly_with_one_line() -> None:
    started = time.monotonic()
    with pytest.raises(ClusterError) as exc, connect(f"tcp://{HOST}:1", timeout=2):
        pass
    assert time.monotonic() - started < 15
    assert f"tcp://{HOST}:1" in assert_one_line(exc)


def test_unknown_definition_type_fails(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text("type: mainframe\ncores: 4\n", encoding="utf-8")
    with pytest.raises(ClusterError) as exc, connect(str(path), timeout=2):
        pass
    assert "mainframe" in assert_one_line(exc)


@pytest.mark.parametrize("text", ["cores: 4\n", "- a list\n", "type: [unclosed\n"])
def test_definition_without_type_or_not_yaml_fails(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ClusterError) as exc, connect(str(path), timeout=2):
        pass
    assert_one_line(exc)


def test_unknown_spec_fails(tmp_path: Path) -> None:
    with pytest.raises(ClusterError) as exc, connect(str(tmp_path / "no-such-cluster.yaml")):
        pass
    assert "unknown cluster" in assert_one_line(exc)


@pytest.mark.parametrize("spec", [f"tcp://{HOST}", f"tcp://{HOST}:notaport", f"udp://{HOST}:8786"])
def test_malformed_address_is_a_cluster_error(spec: str) -> None:
    """A mistyped address is the user's mistake: one ClusterError line, not a ValueError
    (which the CLI reports as an unexpected bug)."""
    with pytest.raises(ClusterError) as exc, connect(spec, timeout=2):
        pass
    assert spec in assert_one_line(exc)


def test_address_definition_without_address_is_a_cluster_error(tmp_path: Path) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text("type: address\n", encoding="utf-8")
    with pytest.raises(ClusterError) as exc, connect(str(path), timeout=2):
        pass
    assert "address" in assert_one_line(exc)


def test_kubernetes_without_dask_kubernetes_names_the_extra() -> None:
    try:
        import dask_kubernetes  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("dask-kubernetes is installed: the definition would start a real cluster")
    with pytest.raises(ClusterError) as exc, connect(str(CLUSTER_DIR / "kubernetes.yaml")):
        pass
    assert "mdark-dask[kubernetes]" in assert_one_line(exc)


# --------------------------------------------------------------------------------------------
# BackgroundCluster: a cluster opened in the background while the night scans its headers


def test_opening_connects_then_closes() -> None:
    opening = BackgroundCluster("threads")
    conn = opening.get()
    assert conn.client is not None
    assert conn.client.submit(sum, [1, 2]).result(timeout=30) == 3
    opening.close()
    assert conn.client.status == "closed"


def test_opening_of_a_callers_connection_leaves_it_open() -> None:
    with connect("threads") as conn:
        opening = BackgroundCluster.of(conn)
        assert opening.get() is conn
        opening.close()
        assert conn.client.submit(sum, [4]).result(timeout=30) == 4


def test_opening_hands_its_error_to_get_and_closes_cleanly(tmp_path: Path) -> None:
    opening = BackgroundCluster(str(tmp_path / "no-such-cluster.yaml"))
    with pytest.raises(ClusterError) as exc:
        opening.get()
    assert "unknown cluster" in assert_one_line(exc)
    opening.close()  # nothing was opened: nothing to close, no error


def test_opening_closes_a_cluster_nobody_asked_for() -> None:
    opening = BackgroundCluster("sync").start()
    opening.close()
    assert opening.get().client is None


def test_opening_starts_only_when_started_or_asked() -> None:
    idle = BackgroundCluster("threads")
    assert not idle.started
    idle.close()  # never started: nothing opened, nothing to close
    assert not idle.started
    asked = BackgroundCluster("threads")
    try:
        assert asked.get().client is not None  # get() starts it
        assert asked.started
    finally:
        asked.close()


def test_opening_release_closes_in_the_background_and_close_waits_for_it() -> None:
    opening = BackgroundCluster("threads")
    conn = opening.get()
    assert conn.client is not None
    opening.release()  # returns at once; the shutdown runs in a thread
    opening.release()  # a second release changes nothing
    opening.close()  # waits for it
    assert conn.client.status == "closed"
    opening.close()  # and closing again is harmless
