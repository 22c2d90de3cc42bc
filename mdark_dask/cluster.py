"""The only place a Dask cluster or client is made.

A cluster spec is one string:

``None`` / ``"local"``
    A ``LocalCluster`` of worker processes sized to the machine (one single-threaded
    worker per core; the compiled kernels release the GIL, but astropy's FITS code does
    not), each with a memory limit of its share of the machine's memory.
``"threads"``
    An in-process client with one worker and a thread per core (no pickling; dashboard).
``"sync"``
    No client: each set computed in this process, one task at a time (debugging).
``"tcp://HOST:PORT"`` (or ``tls://``)
    An already running scheduler. Its workers must read the raw frames and write the
    workspace by the same paths (a shared file system).
a path to a YAML file
    A cluster definition, see ``cluster/README.md``: ``type: local | address | slurm |
    pbs | kubernetes`` plus that type's keyword arguments.

Execution settings never change a product byte.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mdark_dask.errors import MdarkError


class ClusterError(MdarkError):
    """A cluster spec that cannot be understood or reached."""


@dataclass(frozen=True)
class Connection:
    """An open way to run graphs: a distributed client, or None for the sync scheduler."""

    client: Any
    description: str

    @property
    def dashboard(self) -> str | None:
        """The dashboard URL, when there is one."""
        if self.client is None:
            return None
        link = getattr(self.client, "dashboard_link", None)
        return str(link) if link else None


def _worker_environ() -> dict[str, Any]:
    """Worker environment without distributed's ``MALLOC_TRIM_THRESHOLD_``.

    Setting that glibc variable turns off glibc's adaptive mmap threshold, so every
    array over 128 kB is a fresh mmap whose pages fault in on first touch: frame-sized
    work runs several times slower in such workers than in a plain process. Our tasks
    allocate a few large arrays and free them, which the adaptive threshold handles well.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def dashboard_address(port: int = 8787) -> str:
    """Where the dashboard of a cluster started here listens: 127.0.0.1 (this machine
    only), on ``port`` when it is free, else on a port the system picks, so distributed
    prints no warning and the link printed is the one that answers."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return "127.0.0.1:0"
    return f"127.0.0.1:{port}"


def _local(options: dict[str, Any]) -> Any:
    import dask
    from distributed import LocalCluster

    cores = os.cpu_count() or 1
    defaults: dict[str, Any] = {
        "n_workers": cores,
        "threads_per_worker": 1,
        "processes": True,
        "memory_limit": "auto",
        "host": "127.0.0.1",
        "dashboard_address": dashboard_address(),
    }
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}):
            return LocalCluster(**{**defaults, **options})
    except OSError as exc:
        raise ClusterError(f"cannot start a local cluster: {exc}") from None


def import_jobqueue(kind: str) -> Any:
    """Import dask-jobqueue, keeping this process's SIGINT handler.

    dask-jobqueue 0.9 installs a SIGINT handler that exits quietly when it is imported
    (dask/dask-jobqueue#667): imported in any thread but the main one the import fails
    (``signal only works in main thread``), and in the main one Ctrl-C would no longer
    interrupt the command. So it is imported here, from the main thread, before any
    cluster is opened in the background, and the previous handler is put back.
    """
    import signal

    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    try:
        import dask_jobqueue
    except ImportError:
        raise ClusterError(
            f"a {kind} cluster needs dask-jobqueue: pip install 'mdark-dask[jobqueue]'"
        ) from None
    except ValueError as exc:  # imported first outside the main thread
        raise ClusterError(f"cannot load dask-jobqueue here: {exc}") from None
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGINT, previous)
    return dask_jobqueue


def _batch_refusal(kind: str, script: str) -> str | None:
    """Why the batch system would refuse a job script (sbatch's own words), or None.

    SLURM tests a script without queueing it (``sbatch --test-only``), so a request the
    site cannot meet fails here, with sbatch's reason, before any work starts; submitted
    for real, the refusal would only be logged while the night waited for workers.
    """
    import shutil
    import subprocess

    command = {"slurm": "sbatch", "pbs": "qsub"}[kind]
    if shutil.which(command) is None:
        return f"{command} is not on PATH: is this a {kind.upper()} login node?"
    if kind != "slurm":
        return None
    try:
        done = subprocess.run(
            [command, "--test-only"],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{command} --test-only failed: {exc}"
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"{command} exited with status {done.returncode}"
    return None


def _jobqueue(kind: str, options: dict[str, Any]) -> Any:
    dask_jobqueue = import_jobqueue(kind)
    jobs = int(options.pop("jobs", 1))
    adapt = options.pop("adapt", None)
    if adapt is not None and not isinstance(adapt, dict):
        raise ClusterError("'adapt' takes minimum_jobs and maximum_jobs, e.g. {maximum_jobs: 4}")
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    # the scheduler listens where the worker nodes reach it (``interface``), but its
    # dashboard only on this machine (reached through an SSH tunnel), unless set
    scheduler_options = options.get("scheduler_options") or {}
    if not isinstance(scheduler_options, dict):
        raise ClusterError("'scheduler_options' takes keyword arguments of dask's Scheduler")
    options["scheduler_options"] = {"dashboard_address": dashboard_address(), **scheduler_options}
    try:
        cluster = cls(**options)
    except (TypeError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClusterError(f"cluster definition: {text}") from None
    refusal = _batch_refusal(kind, cluster.job_script())
    if refusal is not None:
        cluster.close()
        raise ClusterError(f"the batch system refuses the worker jobs: {refusal}")
    if adapt:
        try:
            cluster.adapt(**adapt)
        except TypeError as exc:
            cluster.close()
            raise ClusterError(f"cluster definition: adapt: {exc}") from None
    else:
        cluster.scale(jobs=jobs)
    return cluster


def _kubernetes(options: dict[str, Any]) -> Any:
    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError:
        raise ClusterError(
            "a kubernetes cluster needs dask-kubernetes: pip install 'mdark-dask[kubernetes]'"
        ) from None
    return KubeCluster(**{"n_workers": 2, **options})


def load_definition(path: Path) -> dict[str, Any]:
    """Read a cluster definition file (``type`` plus keyword arguments)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ClusterError(f"cluster definition {path} is not valid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClusterError(f"cannot read cluster definition {path}: {exc}") from None
    if not isinstance(data, dict) or "type" not in data:
        raise ClusterError(f"cluster definition {path} needs a 'type' key")
    kind = str(data.pop("type")).lower()
    if kind not in ("local", "address", "slurm", "pbs", "kubernetes"):
        raise ClusterError(f"cluster definition {path}: unknown type {kind!r}")
    return {"type": kind, **data}


def make_cluster(definition: dict[str, Any]) -> Any:
    """Create (but do not connect to) the cluster a definition describes."""
    options = {k: v for k, v in definition.items() if k != "type"}
    kind = definition["type"]
    if kind == "local":
        return _local(options)
    if kind in ("slurm", "pbs"):
        return _jobqueue(kind, options)
    if kind == "kubernetes":
        return _kubernetes(options)
    raise ClusterError(f"type {kind!r} makes no cluster")


#: Keys of an ``address`` definition (every other type passes its keys to its cluster).
ADDRESS_KEYS = frozenset({"type", "address", "timeout", "worker_timeout", "tls"})

#: Keys of an address definition's ``tls:``: PEM files (dask's ``Security``).
TLS_KEYS = {"ca_file": "tls_ca_file", "cert": "tls_client_cert", "key": "tls_client_key"}


def security(tls: Any, where: str) -> Any:
    """dask's ``Security`` for a ``tls:`` section (``ca_file``, ``cert``, ``key``: PEM
    files), encryption required; every file checked here so that a wrong path is one
    line before any connection is tried."""
    from distributed.security import Security

    if not isinstance(tls, dict) or not tls:
        raise ClusterError(f"{where}: 'tls' takes ca_file, cert and key (PEM files)")
    unknown = sorted(set(tls) - set(TLS_KEYS))
    if unknown:
        raise ClusterError(f"{where}: unknown key tls.{unknown[0]} (use ca_file, cert, key)")
    files: dict[str, str] = {}
    for key, argument in TLS_KEYS.items():
        if key not in tls:
            raise ClusterError(f"{where}: tls.{key} is missing")
        path = Path(str(tls[key])).expanduser()
        if not path.is_file():
            raise ClusterError(f"{where}: tls.{key} {path}: no such file")
        files[argument] = str(path)
    return Security(require_encryption=True, **files)


#: Cluster names :func:`connect` knows besides addresses and definition files.
NAMED_CLUSTERS = (None, "local", "threads", "sync")


def check_spec(spec: str | None) -> None:
    """A spec :func:`connect` would understand, checked without connecting or starting
    anything (a definition file is read and its type checked).

    Raises
    ------
    ClusterError
        Its one line.
    """
    if spec in NAMED_CLUSTERS or (spec is not None and "://" in spec):
        return
    assert spec is not None
    if not Path(spec).is_file():
        raise ClusterError(
            f"unknown cluster {spec!r}: use local, threads, sync, tcp://HOST:PORT "
            "or a cluster definition file"
        )
    load_definition(Path(spec))


def _client(address: str, timeout: float, secure: Any = None) -> Any:
    from distributed import Client

    if not address:
        raise ClusterError("a scheduler address is needed (tcp://HOST:PORT)")
    if secure is not None and not address.startswith("tls://"):
        raise ClusterError(f"certificates are given for {address}: use a tls:// address")
    try:
        return Client(address, timeout=timeout, set_as_default=False, security=secure)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach the scheduler at {address}: {_connect_failure(exc, address)}"
        ) from None


def _connect_failure(exc: BaseException, address: str) -> str:
    """One line of why a connection failed, without distributed's comm repr."""
    import re

    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    first = re.sub(r"^in <[^>]*>: ", "", first)
    if re.search(r"SSL\w*Error|certificate", first, flags=re.IGNORECASE):
        reason = re.sub(r"^SSL\w*Error: ", "", first).split(". Check your security")[0]
        return f"the TLS handshake failed ({reason}): check the tls: certificates"
    if address.startswith("tcp://") and "reset by peer" in first:
        return f"{first} (a scheduler that wants tls://?)"
    return first


def _wait_for_workers(client: Any, where: str, timeout: float) -> None:
    """A scheduler without workers would make a night wait forever: fail instead."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise ClusterError(f"no worker joined {where} within {timeout:g} s") from None


def _set_up_workers(client: Any, nanny: bool) -> Any:
    """Hand every worker that joins, now or later, its set-up (:mod:`mdark_dask.workers`);
    ``nanny``: the nanny's part too (clusters started here)."""
    from mdark_dask import workers

    try:
        workers.install(client, nanny=nanny)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ClusterError(f"cannot set up the workers: {exc}") from None
    return client


@contextlib.contextmanager
def connect(
    spec: str | None, timeout: float = 5.0, worker_timeout: float = 120.0
) -> Iterator[Connection]:
    """Open the cluster a spec names; close what was opened on exit.

    ``timeout``: seconds to reach a scheduler address (an address definition's
    ``timeout:`` overrides it); ``worker_timeout``: seconds for the first worker to join
    (``worker_timeout:`` in a definition). dask's global default scheduler is restored
    on exit, even when a client failed half
    way through connecting (distributed sets it before it knows the connection works).
    """
    import dask

    with (
        dask.config.set(scheduler=dask.config.get("scheduler", None)),
        _connect(spec, timeout, worker_timeout) as connection,
    ):
        yield connection


@contextlib.contextmanager
def _connect(spec: str | None, timeout: float, worker_timeout: float) -> Iterator[Connection]:
    if spec == "sync":
        yield Connection(None, "in-process synchronous scheduler")
        return
    from distributed import Client

    cluster: Any = None
    try:
        if spec is None or spec == "local":
            cluster = _local({})
            client = _set_up_workers(Client(cluster, set_as_default=False), nanny=True)
            description = f"local cluster of {len(cluster.workers)} worker processes"
        elif spec == "threads":
            client = Client(
                processes=False,
                n_workers=1,
                threads_per_worker=os.cpu_count() or 1,
                set_as_default=False,
                dashboard_address=dashboard_address(),
            )
            _set_up_workers(client, nanny=False)
            description = "in-process threads"
        elif "://" in spec:
            client = _set_up_workers(_client(spec, timeout), nanny=False)
            _wait_for_workers(client, spec, worker_timeout)
            description = f"scheduler at {spec}"
        elif Path(spec).is_file():
            definition = load_definition(Path(spec))
            if definition["type"] == "address":
                address = str(definition.get("address") or "")
                if not address:
                    raise ClusterError(f"cluster definition {spec} needs an 'address:' key")
                unknown = sorted(set(definition) - ADDRESS_KEYS)
                if unknown:
                    raise ClusterError(
                        f"cluster definition {spec}: unknown key {unknown[0]!r} "
                        f"(an address definition takes {', '.join(sorted(ADDRESS_KEYS))})"
                    )
                tls = definition.get("tls")
                secure = None if tls is None else security(tls, f"cluster definition {spec}")
                client = _client(address, float(definition.get("timeout", timeout)), secure)
                _set_up_workers(client, nanny=False)
                wait = float(definition.get("worker_timeout", worker_timeout))
                _wait_for_workers(client, address, wait)
                description = f"scheduler at {address}"
            else:
                kind = definition["type"]
                wait = float(definition.pop("worker_timeout", worker_timeout))
                cluster = make_cluster(definition)
                client = _set_up_workers(Client(cluster, set_as_default=False), nanny=True)
                description = f"{kind} cluster from {spec}"
                if kind in ("slurm", "pbs") and not definition.get("adapt"):
                    # jobs that never start (pending forever, failing at once) would
                    # make a night wait forever: fail, and cancel them on the way out
                    _wait_for_workers(client, f"the {kind} jobs of {spec}", wait)
        else:
            raise ClusterError(
                f"unknown cluster {spec!r}: use local, threads, sync, tcp://HOST:PORT "
                "or a cluster definition file"
            )
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    try:
        yield Connection(client, description)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _load_in_main_thread(spec: str | None) -> None:
    """Import, in this (main) thread, what a cluster spec needs that cannot be imported
    in the thread that opens it (:func:`import_jobqueue`)."""
    if spec is None or "://" in spec or not Path(spec).is_file():
        return
    with contextlib.suppress(ClusterError):  # an unreadable file: reported by get()
        kind = load_definition(Path(spec))["type"]
        if kind in ("slurm", "pbs"):
            import_jobqueue(kind)


class BackgroundCluster:
    """A cluster opened in a background thread, while the caller does other work.

    Starting a LocalCluster (worker processes importing dask, numpy and astropy) takes
    seconds; started early with :meth:`start`, it overlaps the header scan instead of
    following it. :meth:`get` starts it if nobody did, waits for the connection and
    raises what :func:`connect` raised; :meth:`close` closes whatever was opened (nothing
    if it never started), and :meth:`release` begins that in the background.

    Parameters
    ----------
    spec : str or None
        As for :func:`connect`.
    """

    def __init__(self, spec: str | None) -> None:
        _load_in_main_thread(spec)
        self._stack = contextlib.ExitStack()
        self._result: Connection | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._open, args=(spec,), name="mdark-open-cluster", daemon=True
        )
        self._closer = threading.Thread(target=self._close, name="mdark-close-cluster")

    @classmethod
    def of(cls, connection: Connection) -> BackgroundCluster:
        """A connection the caller already has (and closes): :meth:`get` returns it and
        :meth:`close` leaves it open."""
        opened = cls("sync")
        opened._result = connection
        opened._thread = threading.Thread(target=lambda: None)
        opened._thread.start()
        return opened

    def _open(self, spec: str | None) -> None:
        try:
            self._result = self._stack.enter_context(connect(spec))
        except BaseException as exc:  # handed to the caller by get()
            self._error = exc

    @property
    def started(self) -> bool:
        """Whether the opening has begun."""
        return self._thread.ident is not None

    def start(self) -> BackgroundCluster:
        """Begin opening in the background (once); returns ``self``."""
        if not self.started:
            self._thread.start()
        return self

    def get(self) -> Connection:
        """The open connection (starting the opening if needed, and waiting for it)."""
        self.start()._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def release(self) -> None:
        """Begin closing in the background, once the caller has no more work for the
        cluster, so the workers shut down while the caller writes its reports;
        :meth:`close` waits for it."""
        if self._closer.ident is None:
            self._closer.start()

    def close(self) -> None:
        """Close what was opened (waiting for an opening under way to finish first)."""
        self.release()
        self._closer.join()

    def _close(self) -> None:
        if self.started:
            self._thread.join()
        self._stack.close()
