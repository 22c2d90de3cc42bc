"""Batch clusters through dask-jobqueue, as users run them: ``mdark-dask night ... --cluster
my-slurm.yaml`` in a subprocess (the cluster is opened in a background thread, where
dask-jobqueue cannot be imported first), and against a real single-node SLURM started by
``scripts/slurm-test-cluster.sh`` when ``MDARK_SLURM_ENV`` names its environment file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mdark_dask.simulate import DarkSetSpec, simulate_set
from tests.commands import EXE, reducing, slurm_env


@pytest.fixture(scope="module")
def raw_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small sets of one night."""
    root = tmp_path_factory.mktemp("batch")
    for spec in (
        DarkSetSpec("xsh", "NIR", n_frames=3, exptime=120.0, start="2026-01-11T11:00:00.000"),
        DarkSetSpec("soxs", "VIS", n_frames=3, exptime=600.0, start="2026-01-11T09:00:00.000"),
    ):
        simulate_set(spec, root / "raw" / spec.arm)
    return root / "raw"


def night(
    raw: Path, ws: Path, cluster: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "night", str(raw), "-o", str(ws), "--cluster", cluster, "--no-plots"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def definition(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def slurm_definition(tmp_path: Path, extra: str) -> Path:
    """A definition for the test SLURM: one-core jobs of one worker on 127.0.0.1."""
    return definition(
        tmp_path,
        "type: slurm\ncores: 1\nprocesses: 1\nmemory: 2GB\ninterface: lo\n"
        f"walltime: '00:10:00'\nlocal_directory: {tmp_path / 'workers'}\n"
        f"log_directory: {tmp_path / 'logs'}\npython: {sys.executable}\n{extra}",
    )


def queue(env: dict[str, str]) -> list[str]:
    """The test SLURM's jobs, one line each."""
    done = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True, timeout=30)
    return [line for line in done.stdout.splitlines() if line.strip()]


def needs_slurm() -> dict[str, str]:
    """The test SLURM's environment, or a skip saying how to start it."""
    env = slurm_env()
    if env is None:
        pytest.skip("no SLURM test cluster (scripts/slurm-test-cluster.sh start)")
    return env


def assert_sync_products(raw: Path, ws: Path, tmp_path: Path, n_sets: int) -> None:
    """``ws`` holds, byte for byte, the products of the same night on ``--cluster sync``."""
    sync = night(raw, tmp_path / "sync", "sync")
    assert sync.returncode == 0, sync.stderr
    ours = sorted((ws / "products" / "soxs_mdark").glob("*.fits"))
    assert len(ours) == 3 * n_sets  # master, hot-pixel map, noise image each
    for path in ours:
        other = tmp_path / "sync" / "products" / "soxs_mdark" / path.name
        assert path.read_bytes() == other.read_bytes(), path.name


def test_an_unknown_key_is_one_line_naming_it(raw_night: Path, tmp_path: Path) -> None:
    yaml = definition(tmp_path, "type: slurm\ncores: 1\nmemory: 1GB\nadpt: {maximum_jobs: 2}\n")
    done = night(raw_night, tmp_path / "ws", str(yaml), timeout=120)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("ERROR: "), done.stderr
    assert "adpt" in done.stderr and "signal only works" not in done.stderr


def test_jobs_the_batch_system_refuses_are_one_line(raw_night: Path, tmp_path: Path) -> None:
    """Far more memory than any node has: sbatch's reason (or, with no SLURM here, that
    sbatch is missing), before any work, instead of a night waiting forever."""
    yaml = definition(tmp_path, "type: slurm\ncores: 1\nmemory: 100TB\njobs: 1\n")
    done = night(raw_night, tmp_path / "ws", str(yaml), env=slurm_env(), timeout=120)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("ERROR: the batch system refuses the worker jobs: ")
    assert "# REDUCING" not in done.stdout


@pytest.mark.cluster
@pytest.mark.slow
def test_a_night_on_slurm_gives_the_sync_products_and_leaves_no_job(
    raw_night: Path, tmp_path: Path
) -> None:
    env = needs_slurm()
    yaml = slurm_definition(tmp_path, "jobs: 2\n")
    done = night(raw_night, tmp_path / "slurm", str(yaml), env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "SLURM CLUSTER" in done.stdout
    assert_sync_products(raw_night, tmp_path / "slurm", tmp_path, 2)
    assert queue(env) == []


# --------------------------------------------------------------------------------------------
# Clusters mdark-dask starts itself: loopback only, a link that answers, interruption


def test_a_local_cluster_listens_on_loopback_and_its_link_answers() -> None:
    import urllib.request

    from mdark_dask.cluster import connect

    with connect("local") as conn:
        assert conn.client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert conn.dashboard is not None and conn.dashboard.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(conn.dashboard, timeout=30) as page:
            assert page.status == 200


def test_a_busy_dashboard_port_picks_another_without_a_warning(
    raw_night: Path, tmp_path: Path
) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        try:
            busy.bind(("127.0.0.1", 8787))
        except OSError:
            pytest.skip("port 8787 is taken by something else already")
        busy.listen()
        done = night(raw_night, tmp_path / "ws", "local")
    assert done.returncode == 0, done.stderr
    assert "already in use" not in done.stderr
    (link,) = [line for line in done.stdout.splitlines() if line.startswith("Dashboard: ")]
    assert link.startswith("Dashboard: http://127.0.0.1:") and ":8787/" not in link


@pytest.fixture(scope="module")
def long_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six sets of SOXS NIR frames: a night that runs for some seconds."""
    root = tmp_path_factory.mktemp("long")
    for i, exptime in enumerate((5.0, 10.0, 20.0, 40.0, 60.0, 120.0)):
        start = f"2026-01-11T0{i}:00:00.000"
        simulate_set(DarkSetSpec("soxs", "NIR", 4, exptime, start=start), root / "raw" / str(i))
    return root / "raw"


@pytest.fixture(scope="module")
def busy_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve sets of SOXS NIR frames: a night on the local cluster that is still reducing
    seconds after its first set is done, whatever the machine's speed."""
    root = tmp_path_factory.mktemp("busy")
    for i in range(12):
        start = f"2026-01-11T{i:02d}:00:00.000"
        simulate_set(DarkSetSpec("soxs", "NIR", 6, 5.0 * (i + 1), start=start), root / str(i))
    return root


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(2, 130), (15, 143)])
def test_an_interrupted_night_exits_cleanly(
    busy_night: Path, tmp_path: Path, signum: int, status: int
) -> None:
    """Ctrl-C (SIGINT) or SIGTERM while the sets are reduced: one line, 130 or 143, no
    temporary file, and every master dark left behind is complete."""
    import signal

    from mdark_dask.io.product import product_fingerprint

    ws = tmp_path / "ws"
    proc, _ = reducing(busy_night, ws, "--no-plots")
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[  1/"):  # one set is done, eleven are not
            break
    proc.send_signal(signal.Signals(signum))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert err.strip().splitlines()[-1] == "ERROR: interrupted"
    products = ws / "products" / "soxs_mdark"
    assert not list(products.glob(".*.tmp"))
    masters = [
        m
        for m in products.glob("*_S*.fits")
        if not m.name.endswith(("_HOTPIX.fits", "_NOISE.fits"))
    ]
    assert 1 <= len(masters) < 12  # the first set's master, and not the whole night
    for master in masters:
        assert product_fingerprint(master) is not None, master.name


def test_an_address_where_nothing_listens_is_one_line_within_seconds(
    raw_night: Path, tmp_path: Path
) -> None:
    import socket
    import time

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    done = night(raw_night, tmp_path / "ws", f"tcp://127.0.0.1:{port}", timeout=120)
    assert time.perf_counter() - started < 20
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "cannot reach the scheduler" in done.stderr


@pytest.mark.cluster
def test_the_preflight_names_a_worker_that_cannot_see_the_frames(
    raw_night: Path, tmp_path: Path
) -> None:
    """A worker whose file system lacks the raw frames (a mount missing on its node,
    made here with a mount namespace of its own): one line naming it, before any work."""
    import shutil
    import signal
    import socket

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a worker with a file system of its own")
    dask = str(Path(sys.executable).with_name("dask"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        **quiet,  # type: ignore[call-overload]
    )
    hidden = f"mount -t tmpfs tmpfs {raw_night} && exec {dask} worker {address} --nthreads 1"
    worker = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", f"{hidden} --host 127.0.0.1 --no-dashboard"],
        **quiet,  # type: ignore[call-overload]
    )
    try:
        done = night(raw_night, tmp_path / "ws", address, timeout=240)
    finally:
        for proc in (worker, scheduler):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("ERROR: preflight: worker tcp://127.0.0.1:")
    assert "cannot read" in done.stderr and str(raw_night) in done.stderr
    assert "# REDUCING" not in done.stdout
    assert not list((tmp_path / "ws").glob("products/soxs_mdark/*.fits"))


@pytest.mark.cluster
@pytest.mark.slow
def test_the_preflight_names_a_slurm_worker_that_cannot_see_the_workspace(
    raw_night: Path, tmp_path: Path
) -> None:
    """A worker job whose node lacks the workspace's file system (its Python started by
    a wrapper that mounts an empty file system over it): one line naming the worker,
    before any work, and no job left."""
    import shutil

    env = needs_slurm()
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare for a worker with a file system of its own")
    site = tmp_path / "site"  # the workspace's file system, missing on the worker's node
    site.mkdir()
    wrapper = tmp_path / "python-without-site"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec unshare -m sh -c \'mount -t tmpfs tmpfs "$0" && exec "$@"\' {site} '
        f'{sys.executable} "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    yaml = slurm_definition(tmp_path, "jobs: 1\n").read_text(encoding="utf-8")
    yaml = yaml.replace(f"python: {sys.executable}", f"python: {wrapper}")
    done = night(raw_night, site / "ws", str(definition(tmp_path, yaml)), env=env, timeout=240)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("ERROR: preflight: worker tcp://127.0.0.1:")
    assert f"cannot write the workspace {site / 'ws'}" in done.stderr
    assert "# REDUCING" not in done.stdout
    assert not list((site / "ws").glob("products/soxs_mdark/*.fits"))
    assert queue(env) == []


@pytest.mark.cluster
@pytest.mark.slow
def test_an_adaptive_night_asks_for_jobs_as_work_appears_and_leaves_none(
    long_night: Path, tmp_path: Path
) -> None:
    import threading
    import time

    env = needs_slurm()
    assert queue(env) == []
    yaml = slurm_definition(tmp_path, "adapt: {minimum_jobs: 0, maximum_jobs: 2}\n")
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(len(queue(env)))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = night(long_night, tmp_path / "ws", str(yaml), env=env, timeout=600)
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert seen and seen[0] == 0  # no job before there was work
    assert 1 <= max(seen) <= 2  # jobs were asked for, never more than the maximum
    assert queue(env) == []  # and none is left


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(2, 130), (15, 143)])
def test_an_interrupted_slurm_night_cancels_the_jobs(
    long_night: Path, tmp_path: Path, signum: int, status: int
) -> None:
    """Ctrl-C (SIGINT) or SIGTERM mid-night: one line, 130 or 143, no job left in the
    queue, no temporary file, within a bounded time."""
    import signal
    import time

    env = needs_slurm()
    yaml = slurm_definition(tmp_path, "jobs: 2\n")
    proc, _ = reducing(long_night, tmp_path / "ws", "--cluster", str(yaml), env=env)
    assert queue(env)  # the jobs are running
    sent = time.monotonic()
    proc.send_signal(signal.Signals(signum))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert err.strip().splitlines()[-1] == "ERROR: interrupted"
    assert queue(env) == []
    assert time.monotonic() - sent < 60
    assert not list((tmp_path / "ws").glob("products/soxs_mdark/.*.tmp"))


def job_processes(job: str) -> list[Any]:
    """The processes a SLURM job started (its batch script, the nanny, the worker): every
    process whose environment names the job."""
    import psutil

    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("SLURM_JOB_ID") == job:
                found.append(process)
    return found


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9", "scancel"])
def test_a_worker_job_lost_mid_night_changes_nothing(
    how: str, long_night: Path, tmp_path: Path
) -> None:
    """One of the two worker jobs lost while the sets run, by ``scancel`` or by ``kill -9``
    of every process of it (its script, the nanny and the worker): the other job finishes
    the night with the ``--cluster sync`` products byte for byte, and no job is left."""
    import signal

    env = needs_slurm()
    yaml = slurm_definition(tmp_path, "jobs: 2\n")
    ws = tmp_path / "slurm"
    proc, _ = reducing(long_night, ws, "--no-plots", "--cluster", str(yaml), env=env)
    jobs = [line.split()[0] for line in queue(env)]
    assert len(jobs) == 2
    if how == "scancel":
        subprocess.run(["scancel", jobs[0]], env=env, check=True, timeout=30)
    else:
        tree = job_processes(jobs[0])
        assert any("python" in p.name() for p in tree), [p.name() for p in tree]
        for process in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert_sync_products(long_night, ws, tmp_path, 6)
    assert queue(env) == []
