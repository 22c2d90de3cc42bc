"""Command line: argument parsing and exit codes only; ``main(argv) -> int``.

The commands' bodies are in :mod:`mdark_dask.app`, which the Python API calls too.

Every expected failure is one line on stderr and a non-zero exit (a traceback only with
``-V``); nothing half-written is left behind (products are written atomically).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from mdark_dask._version import __version__
from mdark_dask.errors import MdarkError

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
        self._status = False

    def __call__(self, text: str = "", final: bool = False) -> None:
        if final or not self.quiet:
            if self._status:
                self.stream.write("\r\x1b[K")  # the status line gives way
                self._status = False
            print(_paint(text, self.stream), file=self.stream, flush=True)
        self.lines.append(text)

    @property
    def status(self) -> Callable[[str], None] | None:
        """On a terminal (and not quiet): rewrite one status line in place; else None."""
        isatty = getattr(self.stream, "isatty", None)
        if self.quiet or isatty is None or not isatty():
            return None
        return self._show_status

    def _show_status(self, text: str) -> None:
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._status = True

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
        metavar="N",
        help="rows per strip task (execution only: never changes the product)",
    )
    mdark.add_argument("--scheduler", choices=SCHEDULERS, default="threads")
    mdark.add_argument(
        "--verify",
        action="store_true",
        help="read an existing product in full to verify it; make it again if it does not",
    )

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
    _common(night, workspace_required=True)
    night.add_argument(
        "--cluster",
        default=None,
        metavar="SPEC",
        help="local (default), threads, sync, tcp://HOST:PORT or a cluster/ YAML file",
    )
    night.add_argument("--dry-run", action="store_true", help="print the plan; compute nothing")
    night.add_argument(
        "--verify",
        action="store_true",
        help="read existing products in full (on the workers) to verify them, not only "
        "their headers and sizes; redo those that do not verify",
    )
    night.add_argument(
        "--performance-report",
        action="store_true",
        help="save the dashboard's performance report to WORKSPACE/performance_report.html",
    )

    demo = sub.add_parser(
        "demo", help="simulate a small set of darks for every arm and reduce them"
    )
    demo.add_argument(
        "-o",
        "--output",
        default="mdark-demo",
        metavar="DIR",
        help="demo directory (default: ./mdark-demo)",
    )
    demo.add_argument("-V", "--verbose", action="store_true")
    demo.add_argument(
        "--frames", type=_positive_int, default=3, metavar="N", help="frames per set (default 3)"
    )
    return parser


def _common(p: argparse.ArgumentParser, workspace_required: bool = False) -> None:
    from mdark_dask.plan.names import LAYOUTS

    if workspace_required:
        p.add_argument("-o", "--output", required=True, metavar="WORKSPACE", help="workspace")
    else:
        p.add_argument(
            "-o",
            "--output",
            default=".",
            metavar="WORKSPACE",
            help="workspace (default: current directory)",
        )
    p.add_argument(
        "-s", "--settings", type=Path, default=None, metavar="SETTINGS", help="settings YAML"
    )
    p.add_argument("-x", "--overwrite", action="store_true", help="redo existing products")
    p.add_argument("-V", "--verbose", action="store_true", help="verbose output, tracebacks")
    p.add_argument("--numerics", choices=("accurate", "soxspipe-0.17.4"), default=None)
    p.add_argument("--no-plots", action="store_true", help="skip the QC plots")
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="mdark-dask",
        help="where masters go: products/soxs_mdark/ (default), or reduced/<night>/soxs-mdark/"
        " for soxspipe's organiser, recorded in WORKSPACE/soxspipe.db when present",
    )
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


def run_mdark(args: argparse.Namespace, argv: Sequence[str], out: Tee) -> int:
    """``mdark-dask mdark``: one set of darks to one master dark."""
    from mdark_dask import app

    app.mdark(
        args.inputs,
        args.output,
        settings=args.settings,
        numerics=args.numerics,
        rows=args.rows,
        plots=not args.no_plots,
        overwrite=args.overwrite,
        scheduler=args.scheduler,
        verbose=args.verbose,
        command=argv,
        out=out,
        layout=args.layout,
        verify=args.verify,
    )
    return 0


def run_demo(args: argparse.Namespace, argv: Sequence[str], out: Tee) -> int:
    """``mdark-dask demo``: simulate one small set per arm and reduce them all."""
    from mdark_dask import app

    return app.demo(Path(args.output), args.frames, out)


def run_night(args: argparse.Namespace, argv: Sequence[str], out: Tee) -> int:
    """``mdark-dask night``: every set of a night, in parallel, on a cluster."""
    from mdark_dask import app

    run = app.night(
        args.inputs,
        args.output,
        settings=args.settings,
        numerics=args.numerics,
        overwrite=args.overwrite,
        plots=not args.no_plots,
        cluster=args.cluster,
        dry_run=args.dry_run,
        performance_report=args.performance_report,
        verbose=args.verbose,
        command=argv,
        out=out,
        layout=args.layout,
        verify=args.verify,
    )
    return run.status


COMMANDS: dict[str, Callable[[argparse.Namespace, Sequence[str], Tee], int]] = {
    "mdark": run_mdark,
    "night": run_night,
    "demo": run_demo,
}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so the command
    unwinds the same way: clusters closed (batch jobs cancelled), no temporary product
    left behind."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


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
    except Terminated:
        print("ERROR: interrupted", file=sys.stderr)
        return 143
    except Exception as exc:  # a bug: still one line unless verbose
        if args.verbose:
            traceback.print_exc()
        print(f"ERROR: unexpected {type(exc).__name__}: {exc} (rerun with -V)", file=sys.stderr)
        return 1


def console() -> None:
    """The ``mdark-dask`` console script: :func:`main` in a process tuned as only a
    command may set its own (:func:`mdark_dask.process.configure`)."""
    import signal

    from mdark_dask.process import configure

    configure()
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())


if __name__ == "__main__":
    console()
