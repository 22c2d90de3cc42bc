"""Command line: argument parsing and exit codes only; ``main(argv) -> int``.

Every expected failure is one line on stderr and a non-zero exit (a traceback only with
``-V``); nothing half-written is left behind (products are written atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mdark_dask._version import __version__
from mdark_dask.errors import MdarkError, OutputError

if TYPE_CHECKING:
    from mdark_dask.cluster import Opening

SCHEDULERS = ("threads", "sync", "processes")


def _color_ok(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _paint(text: str, stream: TextIO) -> str:
    """Colour pass/fail words and errors, only on a terminal (the log gets plain text)."""
    if not _color_ok(stream):
        return text
    for word, code in ((" fail", "31"), (" FAILED", "31"), (" pass", "32"), ("ERROR:", "31;1")):
        text = text.replace(word, f"\x1b[{code}m{word}\x1b[0m")
    return text


class Tee:
    """Print to the terminal and keep a copy for the recipe log.

    With ``quiet`` only lines marked ``final`` (the closing table) reach the terminal;
    the log still gets everything.
    """

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.lines: list[str] = []

    def __call__(self, text: str = "", final: bool = False) -> None:
        if final or not self.quiet:
            print(_paint(text, self.stream), file=self.stream, flush=True)
        self.lines.append(text)

    @property
    def text(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdark-dask",
        description="Master darks for SOXS and X-shooter (soxspipe soxs_mdark) on Dask.",
        epilog="examples:\n"
        "  mdark-dask demo                                  # simulate and reduce every arm\n"
        "  mdark-dask mdark night.sof -o ws                 # one master dark\n"
        "  mdark-dask night /data/raw/2026-01-10 -o ws      # a whole night on a cluster",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mdark-dask {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    mdark = sub.add_parser(
        "mdark",
        help="make one master dark from a sof, a directory or frames",
        description="Make one master dark (soxspipe's soxs_mdark) from one set of raw darks.",
        epilog="examples:\n"
        "  mdark-dask mdark 20260111T082924_NIR_3_MDARK_5_0S_SOXS.sof -o ws\n"
        "  mdark-dask mdark raw/darks_vis/ -o ws --numerics soxspipe-0.17.4 -x",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mdark.add_argument(
        "inputs", nargs="+", metavar="INPUT", help=".sof file, directory or FITS frames"
    )
    _common(mdark)
    mdark.add_argument(
        "--rows",
        type=_positive_int,
        default=None,
        help="rows per strip task (execution only: never changes the product)",
    )
    mdark.add_argument("--scheduler", choices=SCHEDULERS, default="threads")

    night = sub.add_parser(
        "night",
        help="reduce every set of darks of a night, every arm at once, on a Dask cluster",
        description="Scan a night's raw frames (directories searched recursively) and/or "
        "sof files, group the darks into sets like soxspipe's data organiser, write one sof "
        "per set into WORKSPACE/sof/, and make every master dark in parallel.",
        epilog="examples:\n"
        "  mdark-dask night /data/raw/2026-01-10 -o ws --dry-run\n"
        "  mdark-dask night /data/raw/2026-01-10 -o ws --cluster tcp://head:8786\n"
        "  mdark-dask night ws/sof/*.sof -o ws --cluster cluster/slurm.yaml -x",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    night.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="directories, FITS frames, .sof files"
    )
    _common(night)
    night.add_argument(
        "--cluster",
        default=None,
        help="local (default), threads, sync, tcp://HOST:PORT or a cluster/ YAML file",
    )
    night.add_argument("--dry-run", action="store_true", help="print the plan; compute nothing")
    night.add_argument(
        "--performance-report",
        action="store_true",
        help="save the dashboard's performance report to WORKSPACE/performance_report.html",
    )

    demo = sub.add_parser(
        "demo", help="simulate a small set of darks for every arm and reduce them"
    )
    demo.add_argument(
        "-o", "--output", default="mdark-demo", help="demo directory (default: ./mdark-demo)"
    )
    demo.add_argument("-V", "--verbose", action="store_true")
    demo.add_argument("--frames", type=_positive_int, default=3, help="frames per set (default 3)")
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default=".", help="workspace (default: current directory)")
    p.add_argument("-s", "--settings", type=Path, default=None, help="settings YAML")
    p.add_argument("-x", "--overwrite", action="store_true", help="redo existing products")
    p.add_argument("-V", "--verbose", action="store_true", help="verbose output, tracebacks")
    p.add_argument("--numerics", choices=("accurate", "soxspipe-0.17.4"), default=None)
    p.add_argument("--no-plots", action="store_true", help="skip the QC plots")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors and the final table"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _ensure_workspace(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".mdark-dask-write-test-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to workspace {path}: {exc.strerror or exc}") from None
    return path


def run_mdark(args: argparse.Namespace, argv: Sequence[str], out: Tee) -> int:
    """``mdark-dask mdark``: one set of darks to one master dark."""
    with _drawing_process(not args.no_plots and args.scheduler == "threads"):
        return _mdark(args, argv, out)


def _drawing_process(wanted: bool) -> contextlib.AbstractContextManager[object]:
    """The QC plots' own process (:func:`mdark_dask.painter.forked`) for a command whose
    products are computed in this process: forked first thing, while this is the only
    thread, it imports matplotlib while the command imports the recipe. Only from the
    console script's own process (:func:`mdark_dask.process.tuned`): a host calling
    :func:`main` is never forked."""
    from mdark_dask.process import tuned

    if not (wanted and tuned()):
        return contextlib.nullcontext()
    from mdark_dask import painter

    return painter.forked()


def _mdark(args: argparse.Namespace, argv: Sequence[str], out: Tee) -> int:
    import threading

    from mdark_dask import painter, warmup

    # compiled kernels while the modules below import and the headers are scanned; then
    # astropy's writer and matplotlib (unless the plots are drawn by a process of their
    # own), once those are done, while the frames are clipped (GIL-free kernels)
    computing = threading.Event()
    warmup.start(
        args.numerics,
        plots=not args.no_plots and args.scheduler == "threads" and not painter.drawing(),
        after=computing,
    )
    from mdark_dask.process import settle
    from mdark_dask.recipe import plan_product
    from mdark_dask.report.tables import recipe_report, write_log
    from mdark_dask.scheduler import compute_products

    started = time.perf_counter()
    out(f"Recipe Command: mdark-dask {' '.join(argv)}")
    out("# VERIFYING INPUT FRAMES")
    workspace = Path(args.output)
    plan = plan_product(
        args.inputs, workspace, args.settings, args.numerics, args.rows, not args.no_plots
    )
    fs = plan.frameset
    for path, reason in fs.dropped:
        print(f"WARNING: dropped {path}: {reason}", file=sys.stderr)
        out.lines.append(f"WARNING: dropped {path}: {reason}")
    out("# VERIFYING INPUT FRAMES - ALL GOOD")
    s = plan.settings
    out(
        f"{len(fs.frames)} {fs.instrument.upper()} {fs.arm} DARK frames of {fs.exptime:g} s; "
        f"gain {fs.gain:g} e-/ADU, RON {fs.ron:g} e-; numerics {s.numerics}; "
        f"settings: {s.source}"
    )
    if plan.product_path.exists() and not args.overwrite:
        out(
            f"The product of this recipe already exists: {plan.product_path}. "
            "To overwrite it, rerun with -x."
        )
        return 0
    _ensure_workspace(plan.product_path.parent)
    settle()  # the modules are loaded: the collector may run again
    computing.set()
    out(f"# MEAN COMBINING {len(fs.frames)} {fs.arm} DARK FRAMES")
    (result,) = compute_products([plan], scheduler=args.scheduler)
    out("")
    out(recipe_report(result, verbose=args.verbose), final=True)
    out("")
    out(f"Recipe Run Time: {time.perf_counter() - started:.1f}s")
    write_log(plan.log_path, out.text, argv)
    return 0


def run_demo(args: argparse.Namespace, argv: Sequence[str], out: Tee) -> int:
    """``mdark-dask demo``: simulate one small set per arm and reduce them all."""
    from mdark_dask.demo import run_demo as demo
    from mdark_dask.process import settle

    with _drawing_process(True):
        settle()
        return demo(Path(args.output), args.frames, out)


def run_night(args: argparse.Namespace, argv: Sequence[str], out: Tee) -> int:
    """``mdark-dask night``: every set of a night, in parallel, on a cluster."""
    import datetime

    from mdark_dask.cluster import Opening
    from mdark_dask.plan.names import product_dir

    started = time.perf_counter()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    workspace = Path(args.output)
    # when there will surely be work (a fresh workspace, or -x) the default local cluster
    # opens, and its workers load the kernels, while the headers are scanned; otherwise
    # (a rerun that may find everything up to date, or a batch system whose jobs should
    # not be queued for nothing) only once the plan says there is work
    early = (
        not args.dry_run
        and args.cluster in (None, "local")
        and (args.overwrite or not product_dir(workspace).exists())
    )
    # the products of an in-process cluster are drawn by this process's drawing process
    in_process = args.cluster in ("threads", "sync") and not args.dry_run
    with _drawing_process(in_process and not args.no_plots):
        opening = Opening(args.cluster, _worker_warmup(args))
        if early:
            opening.start()
        try:
            return _night(args, argv, out, opening, started, stamp, workspace)
        finally:
            opening.close()


def _worker_warmup(args: argparse.Namespace) -> Callable[[], None]:
    """What every worker runs once it joins: start loading the kernels (and matplotlib)
    in a thread of its own (:func:`mdark_dask.warmup.in_background`); the workers of the
    local cluster this command starts are its own, and tuned as such."""
    import functools

    from mdark_dask import warmup

    own = args.cluster in (None, "local")
    return functools.partial(
        warmup.in_background, args.numerics or "accurate", not args.no_plots, own
    )


def _night(
    args: argparse.Namespace,
    argv: Sequence[str],
    out: Tee,
    opening: Opening,
    started: float,
    stamp: str,
    workspace: Path,
) -> int:
    """The night command; ``opening`` is the cluster (started early, or by ``get()``)."""
    from mdark_dask import warmup
    from mdark_dask.plan.night import plan_night, write_sofs
    from mdark_dask.process import settle
    from mdark_dask.report.page import write_overview
    from mdark_dask.report.runstats import RunStats, profile
    from mdark_dask.report.tables import night_table, plan_table, skipped_table, write_run_report
    from mdark_dask.scheduler import SetOutcome, plan_sets, run_plans

    out(f"# SCANNING {len(args.inputs)} INPUT(S)")
    last = [time.perf_counter()]

    def scanned(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 2.0 and done < total:  # a line every 2 s at most
            last[0] = now
            eta = (now - started) / done * (total - done)
            out(f"scanned {done}/{total} files, ETA {eta:.0f}s")

    night = plan_night(args.inputs, scanned)
    out(
        f"{sum(len(s.frames) for s in night.sets)} dark frames in {len(night.sets)} sets; "
        f"{len(night.skipped)} file(s) or group(s) left out"
    )
    if night.skipped:
        out(skipped_table([(k.what, k.reason) for k in night.skipped]))
    todo, settled = plan_sets(
        night, workspace, args.settings, args.numerics, args.overwrite, not args.no_plots
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
    out(plan_table(rows))
    if args.dry_run:
        return 0
    _ensure_workspace(workspace)
    write_sofs(night, workspace / "sof")

    def progress(o: SetOutcome, done: int, total: int, elapsed: float) -> None:
        eta = elapsed / done * (total - done)
        tail = o.qc_flag if o.status == "done" else f"FAILED: {o.reason}"
        out(f"[{done:>3}/{total}] {o.name}: {o.status} ({tail}); {elapsed:.0f}s, ETA {eta:.0f}s")

    outcomes = list(settled)
    cluster_name = "none needed"
    stats = RunStats()
    if todo:
        conn = opening.get()
        cluster_name = conn.description
        out(f"# REDUCING {len(todo)} SETS ON {conn.description.upper()}")
        if conn.dashboard:
            out(f"Dashboard: {conn.dashboard}")
        html = workspace / "performance_report.html" if args.performance_report else None
        # while the workers reduce, this process loads what the overview page draws with
        # (and the kernels, when the tasks run in this process)
        in_process = args.cluster in ("threads", "sync")
        warmup.start(args.numerics, plots=True, kernels=in_process)
        settle()
        with profile(conn.client, html) as stats:
            outcomes += run_plans(todo, conn.client, progress)
        opening.release()  # the workers shut down while the reports are written
    out("")
    out(night_table(outcomes), final=True)
    record = {
        "mdark_dask_version": __version__,
        "started_utc": stamp,
        "seconds": round(time.perf_counter() - started, 3),
        "command": shlex.join(["mdark-dask", *argv]),
        "cluster": cluster_name,
        "workspace": str(workspace.resolve()),
        "left_out": [{"what": k.what, "reason": k.reason} for k in night.skipped],
        "compute": {
            "wall_seconds": round(stats.wall, 3),
            "worker_threads": stats.threads,
            "busy_fraction": round(stats.busy_fraction, 4),
            "tasks": stats.tasks,
            "spilled_bytes": stats.spilled_bytes,
            "task_seconds_by_prefix": {k: round(v, 3) for k, v in stats.by_prefix.items()},
            "tasks_under_100ms_by_prefix": dict(stats.short_tasks),
            "transfers": stats.transfers,
            "transfer_seconds": round(stats.transfer_seconds, 3),
        },
    }
    report = write_run_report(workspace / "night_report.json", record, outcomes)
    page = write_overview(workspace / "qc" / "night_report.html", outcomes, record)
    out(f"Night overview: {page}")
    bad = [o for o in outcomes if not o.ok]
    out(
        f"\n{len(outcomes) - len(bad)} of {len(outcomes)} sets have their product; "
        f"report: {report}; {time.perf_counter() - started:.1f}s"
    )
    if bad:
        print(f"ERROR: {len(bad)} set(s) failed: {', '.join(o.name for o in bad)}", file=sys.stderr)
        return 1
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Sequence[str], Tee], int]] = {
    "mdark": run_mdark,
    "night": run_night,
    "demo": run_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mdark-dask`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    out = Tee(sys.stdout, quiet=bool(getattr(args, "quiet", False)))
    try:
        return COMMANDS[args.command](args, argv, out)
    except MdarkError as exc:
        if args.verbose:
            traceback.print_exc()
        print(_paint(f"ERROR: {exc}", sys.stderr), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless verbose
        if args.verbose:
            traceback.print_exc()
        print(f"ERROR: unexpected {type(exc).__name__}: {exc} (rerun with -V)", file=sys.stderr)
        return 1


def console() -> None:
    """The ``mdark-dask`` console script: :func:`main`, then a prompt exit.

    Before it, the process is tuned as only a command may tune its own process
    (:func:`mdark_dask.process.tune`: one BLAS thread, no garbage collection while the
    modules import, freed frame-sized arrays back to the operating system).

    Once the command is done (products renamed into place, logs closed, clusters shut
    down by their context managers) the interpreter's own teardown of ~1000 modules
    and the compiled kernels' code costs another 0.2-0.3 s, a sixth of a whole
    ``mdark`` run; the streams are flushed and the process leaves without it.
    """
    from mdark_dask.process import tune

    tune()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
