"""The commands' bodies: one master dark, a night, the demo; called by the CLI and the API.

Each command is a plain function of its options and an ``out`` printer, returning what it
made (a result, or the night's outcomes and exit status). :mod:`mdark_dask.cli` only
parses arguments and turns errors into exit codes; :mod:`mdark_dask.api` calls the same
functions, so a product made through either is the same product.

The flow of a set: inputs -> header scan (:mod:`mdark_dask.io`) -> plan
(:mod:`mdark_dask.plan`) -> lazy graph (:mod:`mdark_dask.recipe`) -> computed
(:mod:`mdark_dask.scheduler`, on a cluster from :mod:`mdark_dask.cluster`) -> tables,
pages and reports (:mod:`mdark_dask.report`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mdark_dask._version import __version__
from mdark_dask.errors import InputError, OutputError

if TYPE_CHECKING:
    from mdark_dask.plan.night import NightPlan
    from mdark_dask.plan.product import ProductResult
    from mdark_dask.plan.sets import SetOutcome


class Printer(Protocol):
    """Where a command's lines go: ``out(text, final=False)``; ``final`` marks the closing
    table, which is printed even when the command is quiet."""

    def __call__(self, text: str = "", final: bool = False) -> None: ...


def plain_printer(text: str = "", final: bool = False) -> None:
    """A :class:`Printer` that prints every line to standard output."""
    print(text, flush=True)


def ensure_workspace(path: Path) -> Path:
    """Make ``path`` (a workspace or a directory in it) and check it can be written.

    Raises
    ------
    OutputError
        It cannot be made or written.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".mdark-dask-write-test-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to workspace {path}: {exc.strerror or exc}") from None
    return path


@contextlib.contextmanager
def locked_workspace(workspace: Path, command: Sequence[str] = ()) -> Iterator[Path]:
    """Make the workspace and hold its lock (:mod:`mdark_dask.io.lock`) for the block:
    one writer per workspace, whether the command line or the API writes."""
    from mdark_dask.io.lock import workspace_lock

    ensure_workspace(workspace)
    with workspace_lock(workspace, command):
        yield workspace


def preload(plots: bool, after: threading.Event | None = None) -> threading.Thread:
    """Import the product writer (astropy's FITS code), the PNG writer (Pillow) and, with
    ``plots``, the QC plots' layout and font in a daemon thread, once ``after`` is set.

    The final task needs them; imported while the frames are clipped (by kernels that
    release the GIL) they are off the run's critical path. ``after`` holds the imports
    back until the command's own imports and header scan are done, so the two do not
    take turns for the GIL. A failure here is ignored: the real import reports it.
    """

    def run() -> None:
        if after is not None:
            after.wait(30.0)
        try:
            import mdark_dask.io.product  # noqa: F401

            if plots:
                from mdark_dask.report.draw import preload as load_plots

                load_plots()
            else:  # every product's thumbnail
                from mdark_dask.report.canvas import preload as load_png

                load_png()
        except Exception:  # the import in the final task raises it again, with context
            return
        from mdark_dask.process import settle_imports

        settle_imports()  # the command's modules are all in now

    thread = threading.Thread(target=run, name="mdark-preload", daemon=True)
    thread.start()
    return thread


def mdark(
    inputs: Sequence[str],
    workspace: str | Path,
    *,
    settings: str | Path | None = None,
    numerics: str | None = None,
    rows: int | None = None,
    plots: bool = True,
    overwrite: bool = False,
    scheduler: Any = "threads",
    verbose: bool = False,
    command: Sequence[str] = (),
    out: Printer = plain_printer,
    layout: str = "mdark-dask",
    verify: bool = False,
) -> ProductResult | None:
    """``mdark-dask mdark``: one set of raw darks to one master dark, its maps and plots.

    Returns the product's result, or None when the product exists and ``overwrite`` is
    off (with ``verify``: exists, is up to date and every data checksum verifies;
    otherwise it is made again). ``command`` (the arguments after ``mdark-dask``) goes
    into the recipe log with the command that reruns it. ``layout`` as for :func:`night`.
    """
    from mdark_dask import checks

    checks.writable_output(Path(workspace))
    checks.valid_settings(Path(settings) if settings is not None else None, numerics)
    computing = threading.Event()
    if scheduler in ("threads", "sync"):
        preload(plots, after=computing)
    from mdark_dask.plan.product import plan_product
    from mdark_dask.report.tables import recipe_report, write_log
    from mdark_dask.scheduler import compute_products

    started = time.perf_counter()
    log: list[str] = []  # the recipe log: every line printed, whatever prints them

    def say(text: str = "", final: bool = False) -> None:
        log.append(text)
        out(text, final)

    say(f"Recipe Command: mdark-dask {' '.join(command)}")
    say("# VERIFYING INPUT FRAMES")
    settings_path = Path(settings) if settings is not None else None
    plan = plan_product(inputs, workspace, settings_path, numerics, rows, plots, layout=layout)
    fs = plan.frameset
    for path, reason in fs.dropped:
        warning = f"WARNING: dropped {path}: {reason}"
        print(warning, file=sys.stderr)
        log.append(warning)  # into the recipe log, in order
    say("# VERIFYING INPUT FRAMES - ALL GOOD")
    s = plan.settings
    say(
        f"{len(fs.frames)} {fs.instrument.upper()} {fs.arm} DARK frames of {fs.exptime:g} s; "
        f"gain {fs.gain:g} e-/ADU, RON {fs.ron:g} e-; numerics {s.numerics}; "
        f"settings: {s.source}"
    )
    if plan.product_path.exists() and not overwrite:
        if not verify:
            say(
                f"The product of this recipe already exists: {plan.product_path}. "
                "To overwrite it, rerun with -x."
            )
            _hand_off_existing(plan, layout, workspace, out)
            return None
        if plan.up_to_date(verify=True):
            say(f"The product of this recipe is up to date and verifies: {plan.product_path}.")
            _hand_off_existing(plan, layout, workspace, out)
            return None
        say(
            f"The product {plan.product_path} does not verify (incomplete, damaged, or made "
            "from other frames or settings): making it again."
        )
    ensure_workspace(plan.product_path.parent)
    computing.set()
    say(f"# MEAN COMBINING {len(fs.frames)} {fs.arm} DARK FRAMES")
    with locked_workspace(Path(workspace), command):
        (result,) = compute_products([plan], scheduler=scheduler)
    say("")
    say(recipe_report(result, verbose=verbose), final=True)
    say("")
    say(f"Recipe Run Time: {time.perf_counter() - started:.1f}s")
    write_log(plan.log_path, "\n".join(log), command)
    if layout == "soxspipe":
        from mdark_dask.handoff import Made, hand_off

        out(hand_off(Path(workspace), [Made(result.name, result.qc, result.date_obs)]))
    return result


def _hand_off_existing(plan: Any, layout: str, workspace: str | Path, out: Printer) -> None:
    """With ``layout`` ``soxspipe``, record a master that is already there in soxspipe's
    database (a status recorded before stays), as ``night`` does for its up-to-date
    masters: the rerun that ``soxspipe prep`` asks for then completes the hand-off."""
    if layout != "soxspipe":
        return
    from mdark_dask.handoff import Made, hand_off
    from mdark_dask.io.product import header_qc

    fs = plan.frameset
    date_obs = str(fs.first(fs.spec.keywords.date_obs) or "")
    out(hand_off(Path(workspace), [Made(plan.name, header_qc(plan.product_path), date_obs, False)]))


def write_sofs(night: NightPlan, directory: Path, keep_existing: bool = False) -> list[Path]:
    """Write one sof per set grouped from raw frames (sets given as sofs are left alone);
    with ``keep_existing``, a sof already there (soxspipe's own) is kept as it is."""
    from mdark_dask.io.sof import write_sof_files

    return write_sof_files(
        [
            (s.name, [f.path for f in s.frames], f"DARK_{s.arm}")
            for s in night.sets
            if s.sof is None and not (keep_existing and (directory / f"{s.name}.sof").exists())
        ],
        directory,
    )


@dataclass(frozen=True)
class NightOptions:
    """What a night was asked to do (the options of :func:`night`)."""

    settings: str | Path | None
    numerics: str | None
    overwrite: bool
    plots: bool
    cluster: Any
    dry_run: bool
    performance_report: bool
    verbose: bool
    command: tuple[str, ...]
    layout: str
    verify: bool

    @property
    def client(self) -> Any:
        """The caller's own ``distributed.Client``, or None when ``cluster`` is a spec."""
        return None if self.cluster is None or isinstance(self.cluster, str) else self.cluster


@dataclass(frozen=True)
class Running:
    """What a night holds while it runs: its workspace and printer, the cluster being
    opened, and when it started."""

    workspace: Path
    out: Printer
    opening: Any
    started: float
    stamp: str


@dataclass(frozen=True)
class NightRun:
    """What a night command did: one outcome per set, the run record, the exit status."""

    outcomes: tuple[SetOutcome, ...]
    record: dict[str, Any]
    status: int


def night(
    inputs: Sequence[str] | NightPlan,
    workspace: str | Path,
    *,
    settings: str | Path | None = None,
    numerics: str | None = None,
    overwrite: bool = False,
    plots: bool = True,
    cluster: Any = None,
    dry_run: bool = False,
    performance_report: bool = False,
    verbose: bool = False,
    command: Sequence[str] = (),
    out: Printer = plain_printer,
    layout: str = "mdark-dask",
    verify: bool = False,
) -> NightRun:
    """``mdark-dask night``: plan a night from headers and make every master dark.

    ``inputs``: directories, frames and sofs to scan, or a night planned already.
    ``cluster`` is a cluster spec (:func:`mdark_dask.cluster.connect`) or a
    ``distributed.Client`` that the caller owns. Bad input (missing inputs, settings,
    output or cluster spec) fails before anything starts or is made. ``layout``
    ``soxspipe`` writes the masters where soxspipe's organiser looks for them and records
    them in the workspace's soxspipe database (:mod:`mdark_dask.handoff`). The headers
    are read in this process's threads, or on the workers of the caller's client;
    ``verify`` reads every existing product in full to verify its checksums (on the
    cluster's workers) before taking it as up to date.
    """
    from mdark_dask import checks
    from mdark_dask.cluster import BackgroundCluster, Connection, check_spec
    from mdark_dask.plan.names import product_dir
    from mdark_dask.plan.night import NightPlan

    started = time.perf_counter()
    ws = Path(workspace)
    # bad input: one line before anything starts or is made
    if not isinstance(inputs, NightPlan):
        checks.existing_inputs(list(inputs))
    if not dry_run:
        checks.writable_output(ws)
    checks.valid_settings(Path(settings) if settings is not None else None, numerics)
    if cluster is None or isinstance(cluster, str):
        check_spec(cluster)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    # a local cluster starts as soon as the scan has found sets, while they are planned,
    # when there will surely be work (a fresh workspace, or ``overwrite``); a batch
    # cluster, or a rerun that may find everything up to date, only once the plan says so
    early = (
        not dry_run and cluster in (None, "local") and (overwrite or not product_dir(ws).exists())
    )
    if cluster is None or isinstance(cluster, str):
        opening = BackgroundCluster(cluster)
    else:
        opening = BackgroundCluster.of(Connection(cluster, "the caller's client"))
    try:
        options = NightOptions(
            settings,
            numerics,
            overwrite,
            plots,
            cluster,
            dry_run,
            performance_report,
            verbose,
            tuple(command),
            layout,
            verify,
        )
        run = Running(ws, out, opening, started, stamp)
        return _night(inputs, options, run, early)
    finally:
        opening.close()


def _night(
    inputs: Sequence[str] | NightPlan, options: NightOptions, run: Running, early: bool
) -> NightRun:
    from mdark_dask.cluster import ClusterError
    from mdark_dask.plan.night import NightPlan, plan_night
    from mdark_dask.report.progress import left_out_lines
    from mdark_dask.scheduler import mapper_for, preflight

    workspace, out, started = run.workspace, run.out, run.started
    last = [time.perf_counter()]

    def scanned(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 2.0 and done < total:  # a line every 2 s at most
            last[0] = now
            eta = (now - started) / done * (total - done)
            out(f"scanned {done}/{total} files, ETA {eta:.0f}s")

    if isinstance(inputs, NightPlan):
        night = inputs
    else:
        out(f"# SCANNING {len(inputs)} INPUT(S)")
        # the caller's client reads the headers on its workers; else this process's threads
        if options.client is not None:
            # the caller's workers must see the inputs to read their headers: a missing
            # mount is one line here, not every file left out as unreadable
            problem = preflight(options.client, [os.path.abspath(i) for i in inputs], None)
            if problem is not None:
                raise ClusterError(f"preflight: {problem}")
        night = plan_night(list(inputs), scanned, mapper_for(options.client), [str(workspace)])
    out(
        f"{sum(len(s.frames) for s in night.sets)} dark frames in {len(night.sets)} sets; "
        f"{len(night.skipped)} file(s) or group(s) left out"
    )
    for line in left_out_lines(night.skipped, options.verbose):
        out(line)
    if not night.sets:
        raise InputError(_nothing_to_reduce(night))
    if early:
        run.opening.start()
    locked = locked_workspace(workspace, options.command)
    with contextlib.nullcontext() if options.dry_run else locked:
        return _reduce_night(night, options, run)


def _nothing_to_reduce(night: NightPlan) -> str:
    """The one line of a night without a set: what was left out, counted by reason."""
    from collections import Counter

    if not night.skipped:
        return "no raw dark frame in the inputs"
    reasons = Counter(k.kind for k in night.skipped)
    common = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common(3))
    return f"no set of raw darks to reduce in the inputs ({len(night.skipped)} left out: {common})"


def _reduce_night(night: NightPlan, options: NightOptions, run: Running) -> NightRun:
    import numpy as np

    from mdark_dask.cluster import ClusterError
    from mdark_dask.plan.sets import outcome, plan_sets
    from mdark_dask.report.progress import (
        DETAIL_SETS,
        SHOWN_FAILURES,
        Progress,
        group_table,
        nights_line,
    )
    from mdark_dask.report.runstats import RunStats, profile
    from mdark_dask.report.tables import night_table, plan_table
    from mdark_dask.scheduler import mapper_for, preflight, run_plans

    workspace, out, opening = run.workspace, run.out, run.opening
    cluster, plots = options.cluster, options.plots
    settings_path = Path(options.settings) if options.settings is not None else None
    # up-to-date checks in threads, or on the caller's workers; reading every product
    # (``verify``) on the cluster's workers
    checker = options.client
    if (
        options.verify
        and not options.dry_run
        and not options.overwrite
        and cluster not in ("threads", "sync")
    ):
        checker = opening.get().client
    todo, settled = plan_sets(
        night,
        workspace,
        settings_path,
        options.numerics,
        options.overwrite,
        plots,
        layout=options.layout,
        mapper=mapper_for(checker),
        verify=options.verify,
    )
    state = {o.name: o.status + (f": {o.reason}" if o.reason else "") for o in settled}
    paths = {s.name: str(p.product_path) for s, p in todo}
    paths |= {o.name: o.product for o in settled if o.product}
    rows = [
        (
            s.name,
            s.instrument,
            s.arm,
            s.exptime,
            len(s.frames),
            paths.get(s.name, "--"),
            state.get(s.name, "to do"),
        )
        for s in night.sets
    ]
    detail = options.verbose or len(night.sets) <= DETAIL_SETS
    if detail:
        out(plan_table(rows))
    else:
        planned = [*settled, *(outcome(s, "to do", product=None) for s, _ in todo)]
        out(f"{nights_line([o.night for o in planned])}; the sets by arm and exposure time:")
        out(group_table(planned))
    if options.dry_run:
        return NightRun(tuple(settled), {}, 0)
    ensure_workspace(workspace)
    write_sofs(night, workspace / "sof", keep_existing=options.layout == "soxspipe")
    progress = Progress(
        line=out,
        status=getattr(out, "status", None),
        work={s.name: float(np.prod(p.frameset.shape)) for s, p in todo},
    )

    outcomes = list(settled)
    cluster_name = "none needed"
    stats = RunStats()
    if todo:
        conn = opening.get()
        cluster_name = conn.description
        if conn.dashboard:
            out(f"Dashboard: {conn.dashboard}")
        if conn.client is not None and cluster not in ("threads",):
            # the workers may run elsewhere: the workspace by its absolute path
            firsts = [p.frameset.frames[0].path for _, p in todo]
            problem = preflight(conn.client, firsts, str(workspace.resolve()))
            if problem is not None:
                raise ClusterError(f"preflight: {problem}")
            out(f"Preflight: the workers read the frames and write the workspace ({__version__})")
        out(f"# REDUCING {len(todo)} SETS ON {conn.description.upper()}")
        html = workspace / "performance_report.html" if options.performance_report else None
        if cluster in ("threads", "sync"):
            preload(plots)  # the final tasks run in this process
        with profile(conn.client, html) as stats:
            outcomes += run_plans(todo, conn.client, progress)
        opening.release()  # the workers shut down while the reports are written
    out("")
    out(night_table(outcomes) if detail else group_table(outcomes), final=True)
    association = _association(night, outcomes, workspace, options.layout, out)
    record = {
        "mdark_dask_version": __version__,
        "started_utc": run.stamp,
        "seconds": round(time.perf_counter() - run.started, 3),
        "command": shlex.join(["mdark-dask", *options.command]),
        "cluster": cluster_name,
        "workspace": str(workspace.resolve()),
        "left_out": [{"what": k.what, "reason": k.reason} for k in night.skipped],
        "association": association,
        "compute": {
            "wall_seconds": round(stats.wall, 3),
            "worker_threads": stats.threads,
            "busy_fraction": round(stats.busy_fraction, 4),
            "cpu_seconds": round(stats.cpu, 3),
            "task_fraction": round(stats.task_fraction, 4),
            "task_seconds": round(stats.busy, 3),
            "tasks": stats.tasks,
            "spilled_bytes": stats.spilled_bytes,
            "task_seconds_by_prefix": {k: round(v, 3) for k, v in stats.by_prefix.items()},
            "tasks_under_100ms_by_prefix": dict(stats.short_tasks),
            "transfers": stats.transfers,
            "transfer_seconds": round(stats.transfer_seconds, 3),
        },
    }
    bad = [o for o in outcomes if not o.ok]
    report, index = record_night(workspace, record, outcomes)
    out(f"Pages: {index}")
    out(
        f"\n{len(outcomes) - len(bad)} of {len(outcomes)} sets have their product; "
        f"report: {report}; {time.perf_counter() - run.started:.1f}s"
    )
    if bad:
        names = ", ".join(o.name for o in bad[:SHOWN_FAILURES])
        more = f" and {len(bad) - SHOWN_FAILURES} more" if len(bad) > SHOWN_FAILURES else ""
        print(f"ERROR: {len(bad)} set(s) failed: {names}{more}", file=sys.stderr)
    return NightRun(tuple(outcomes), record, 1 if bad else 0)


def _association(
    night: NightPlan, outcomes: Sequence[SetOutcome], workspace: Path, layout: str, out: Printer
) -> list[dict[str, Any]]:
    """Hand the masters to soxspipe (``layout`` ``soxspipe``), print which master soxspipe
    will calibrate each non-dark frame with, and return that for the JSON report."""
    from mdark_dask.plan.association import associate, recorded_masters, summary_lines

    if layout == "soxspipe":
        from mdark_dask.handoff import Made, hand_off

        made = [Made(o.name, o.qc, o.date_obs, o.status == "done") for o in outcomes if o.product]
        out(hand_off(workspace, made))
    from mdark_dask.io import store

    rows = associate(night, outcomes, recorded_masters(store.products(workspace)))
    for line in summary_lines(rows):
        out(line)
    return [a.as_dict() for a in rows]


def record_night(
    workspace: Path, record: dict[str, Any], outcomes: Sequence[SetOutcome]
) -> tuple[Path, Path]:
    """Keep what a night run did: its own report (``runs/<run>.json``), its sets in the
    workspace's store (:mod:`mdark_dask.io.store`), the workspace's report
    (``night_report.json``: every set the workspace holds) and the pages of the nights
    it computed; returns (the workspace report, the index page).
    """
    from mdark_dask.io import store
    from mdark_dask.plan.names import night_of_mjd
    from mdark_dask.report.history import write_history
    from mdark_dask.report.page import write_pages
    from mdark_dask.report.tables import set_record, write_json, write_run_report

    run = f"{record['started_utc'].replace('-', '').replace(':', '')}-{os.getpid()}"
    own = Path("runs") / f"{run}.json"
    write_run_report(workspace / own, {**record, "run": run}, outcomes)
    nights = sorted({o.night for o in outcomes})
    store.record_run(
        workspace,
        {
            "run": run,
            "started_utc": record["started_utc"],
            "seconds": record["seconds"],
            "command": record["command"],
            "cluster": record["cluster"],
            "report": str(own),
            "sets": len(outcomes),
            "failed": sum(not o.ok for o in outcomes),
            "nights": nights,
        },
        [set_record(o, run) for o in outcomes],
    )
    rows = store.products(workspace)
    runs = store.runs(workspace)
    report = write_json(
        workspace / "night_report.json",
        {**record, "run": run, "runs": [r["report"] for r in runs], "sets": rows},
    )
    touched = {o.night for o in outcomes if o.status != "up to date"}
    touched |= {night_of_mjd(float(a["mjd_obs"])) for a in record.get("association", ())}
    index = write_pages(
        workspace,
        rows,
        runs,
        record["left_out"],
        touched,
        str(own),
        record.get("association", ()),
    )
    if touched or not (workspace / "qc" / "history.html").exists():
        write_history(workspace, rows)
    return report, index


def demo_sets() -> tuple[Any, ...]:
    """The demo's sets: one of every arm of SOXS and X-shooter."""
    from mdark_dask.simulate import DarkSetSpec

    return (
        DarkSetSpec("soxs", "NIR", exptime=5.0, start="2026-01-11T08:29:24.123", seed=1),
        DarkSetSpec("soxs", "VIS", exptime=600.0, start="2026-01-11T09:00:00.000", seed=2),
        DarkSetSpec("xsh", "UVB", exptime=60.0, start="2026-01-11T10:00:00.000", seed=3),
        DarkSetSpec("xsh", "VIS", exptime=60.0, start="2026-01-11T10:30:00.000", seed=4),
        DarkSetSpec("xsh", "NIR", exptime=120.0, start="2026-01-11T11:00:00.000", seed=5),
    )


def demo(directory: Path, n_frames: int = 3, out: Printer = plain_printer) -> int:
    """``mdark-dask demo``: simulate one small set of darks per arm and reduce them all,
    the same way ``mdark-dask mdark`` does; returns the exit status."""
    from mdark_dask import checks

    checks.writable_output(directory, "demo directory")
    from tabulate import tabulate

    from mdark_dask.numerics.qc import HOT_LABEL, MASKED_LABEL, failed
    from mdark_dask.plan.product import plan_product
    from mdark_dask.scheduler import compute_products
    from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof

    started = time.perf_counter()
    ensure_workspace(directory)
    preload(True)
    sofs = []
    for spec in demo_sets():
        spec = DarkSetSpec(**{**spec.__dict__, "n_frames": n_frames})
        name = sof_name(spec)
        frames = simulate_set(spec, directory / "raw" / name[: -len(".sof")])
        sofs.append(write_sof(directory / "sof" / name, frames))
        out(f"simulated {n_frames} {spec.instrument.upper()} {spec.arm} darks -> {sofs[-1]}")
    plans = [plan_product([str(sof)], directory) for sof in sofs]
    results = compute_products(plans, scheduler="threads")
    rows = [
        [
            r.name,
            r.instrument.upper(),
            r.arm,
            r.n_frames,
            next(q.value for q in r.qc if q.name == "HOTPIX NUM"),
            next((q.value for q in r.qc if q.name == "HOTPIX PHYS NUM"), "--"),
            "fail: " + ", ".join(failed(r.qc)) if failed(r.qc) else "pass",
            r.path,
        ]
        for r in results
    ]
    out("")
    out(
        tabulate(
            rows, headers=["set", "inst", "arm", "frames", MASKED_LABEL, HOT_LABEL, "QC", "product"]
        )
    )
    raw = directory / "raw"
    out(
        f"\n{len(results)} master darks in {time.perf_counter() - started:.1f}s\n"
        f"raw frames:  {raw}\n"
        f"products:    {directory / 'products' / 'soxs_mdark'}\n"
        f"QC plots:    {directory / 'qc' / 'soxs_mdark'}\n"
        f"next, a whole night on a local cluster:\n"
        f"  mdark-dask night {raw} -o {directory / 'night'}",
        final=True,
    )
    return 0
