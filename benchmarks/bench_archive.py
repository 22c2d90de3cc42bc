"""Archive benchmark: a month (or more) of nights in one ``mdark-dask night``, and the
header scan of a large archive, against a baseline checkout measured in the same run.

Usage::

    .venv/bin/python benchmarks/bench_archive.py --nights 15 --baseline /work/main/.venv/bin/python

Steps (each can be skipped):

1. ``python -m mdark_dask.simulate night`` writes N nights (every arm of both instruments,
   two exposure times each, with a short set, a bias and an aborted template), and this
   script adds awkward files: a symbolic link to one night, a file that is not FITS, a
   frame cut short; the last night's frames are gzipped.
2. Scan: an archive of ``--scan-files`` frames (half plain, half gzipped), each a
   simulated frame's header over sparse zero pixels (the scan never reads pixels), is
   planned with ``plan_night`` by this tree (threads, gzip header reader) and by the
   baseline's interpreter (its own code, serial); files per second, plain and gzipped.
3. The whole run: ``mdark-dask night MONTH -o WS`` on the default local cluster: sets per
   minute, CPU seconds per set and peak RSS of the whole process tree (sampled), output
   lines, page sizes.
4. A no-op rerun, warm (twice) and cold (the page cache dropped through
   ``/proc/sys/vm/drop_caches`` where permitted, else every input and workspace file
   evicted with ``posix_fadvise(DONTNEED)``), by this tree and by the baseline.
5. Per-set client cost: planning, graph building and submitting to an in-process
   cluster, per set.

Writes ``--out`` (JSON) and the same numbers as a markdown table beside it (``.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
#: The console script's entry point, run by any interpreter (with any tree on its path).
CONSOLE = "import sys; sys.argv[0] = 'mdark-dask'; from mdark_dask.cli import console; console()"


class Tree(NamedTuple):
    """A source tree to measure: its interpreter, where to run, and its PYTHONPATH (a
    checkout without its own install runs on another tree's interpreter this way)."""

    python: str
    cwd: Path
    path: str | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        if self.path:
            env["PYTHONPATH"] = self.path
        return env

    def command(self, *args: str) -> list[str]:
        return [self.python, "-c", CONSOLE, *args]


SCAN_SNIPPET = """
import sys, time, json
from mdark_dask.plan.night import plan_night
mapper = map
try:
    from mdark_dask.scheduler import thread_mapper
    mapper = thread_mapper()
    kw = {"mapper": mapper}
except ImportError:  # a tree without the parallel scan
    kw = {}
start = time.perf_counter()
plan = plan_night(sys.argv[1:], **kw)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "sets": len(plan.sets), "skipped": len(plan.skipped)}))
"""


def simulate_nights(data: Path, nights: int, frames: int, small: bool) -> Path:
    """N simulated nights under ``data/month/<date>`` plus the awkward files."""
    month = data / "month"
    first = datetime(2026, 1, 11, 0, 0, 0)
    for n in range(nights):
        day = first + timedelta(days=n)
        out = month / day.strftime("%Y-%m-%d")
        if out.exists():
            continue
        cmd = [PYTHON, "-m", "mdark_dask.simulate", "night", "-o", str(out)]
        cmd += ["--frames", str(frames), "--seed", str(n), "--start", day.isoformat() + ".000"]
        subprocess.run([*cmd, *(["--small"] if small else [])], check=True, capture_output=True)
        if n == nights - 1:  # the last night's frames gzipped, as archives often hold them
            for frame in sorted(out.glob("*.fits")):
                frame.with_name(frame.name + ".gz").write_bytes(
                    gzip.compress(frame.read_bytes(), 1, mtime=0)
                )
                frame.unlink()
    awkward = month / "awkward"
    if not awkward.exists():
        awkward.mkdir()
        (awkward / "notes.fits").write_text("not a FITS file\n")
        some = sorted((month / first.strftime("%Y-%m-%d")).glob("*.fits"))
        cut = awkward / "cut.fits"
        cut.write_bytes(some[0].read_bytes()[:5000])
        # the same night twice, by a link: searched once
        (awkward / "linked").symlink_to(some[0].parent, target_is_directory=True)
    return month


def header_and_length(path: Path) -> tuple[bytes, int]:
    """A plain frame's header blocks and its length."""
    raw = path.read_bytes()
    end = next(i for i in range(0, len(raw), 80) if raw[i : i + 80] == b"END".ljust(80))
    return raw[: -(-(end + 80) // 2880) * 2880], len(raw)


def make_scan_archive(data: Path, month: Path, count: int) -> tuple[Path, Path]:
    """``count`` frames: half plain, half gzipped; headers of the month's frames over
    sparse zero pixels, in directories of 500."""
    plain_dir, gz_dir = data / f"scan{count}" / "plain", data / f"scan{count}" / "gz"
    if plain_dir.exists() and gz_dir.exists():
        return plain_dir, gz_dir
    sources = sorted(p for p in month.glob("20*/*.fits"))[:60]
    templates = [header_and_length(p) for p in sources]
    packed: dict[int, bytes] = {}
    for i in range(count):
        header, length = templates[i % len(templates)]
        sub = f"d{i // 1000:03d}"
        if i % 2 == 0:
            dest = plain_dir / sub / f"f{i:06d}.fits"
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as f:
                f.write(header)
                f.truncate(length)
        else:
            dest = gz_dir / sub / f"f{i:06d}.fits.gz"
            dest.parent.mkdir(parents=True, exist_ok=True)
            key = i % len(templates)
            if key not in packed:
                packed[key] = gzip.compress(header + bytes(length - len(header)), 1, mtime=0)
            dest.write_bytes(packed[key])
    return plain_dir, gz_dir


def scan_once(tree: Tree, paths: list[Path]) -> dict[str, Any]:
    out = subprocess.run(
        [tree.python, "-c", SCAN_SNIPPET, *map(str, paths)],
        cwd=tree.cwd,
        env=tree.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def scan_bench(
    tree: Tree, plain: Path, gz: Path, repeats: int, warm: bool = True
) -> dict[str, Any]:
    """Files per second of the scan: plain alone, and the whole archive (plain and
    gzipped); gzipped alone when ``repeats`` allows. Warm cache: a first pass reads the
    files into it (``warm``)."""
    n_plain = sum(1 for _ in plain.rglob("*.fits"))
    n_gz = sum(1 for _ in gz.rglob("*.fits.gz"))
    if warm:
        scan_once(tree, [plain, gz])
    out: dict[str, Any] = {"plain_files": n_plain, "gzip_files": n_gz}
    cases = [("plain", [plain], n_plain), ("all", [plain, gz], n_plain + n_gz)]
    if repeats > 1:
        cases.insert(1, ("gzip", [gz], n_gz))
    for label, paths, n in cases:
        runs = [scan_once(tree, paths) for _ in range(repeats)]
        best = min(r["seconds"] for r in runs)
        out[label] = {"seconds": round(best, 3), "files_per_second": round(n / best)}
        out[label] |= {"sets": runs[0]["sets"], "left_out": runs[0]["skipped"]}
    if "gzip" not in out:  # from the whole archive less its plain files
        seconds = out["all"]["seconds"] - out["plain"]["seconds"]
        out["gzip"] = {"seconds": round(seconds, 3), "files_per_second": round(n_gz / seconds)}
    return out


class TreeSampler:
    """Peak RSS and CPU seconds of a process and all its descendants, sampled."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.cpu: dict[int, float] = {}
        self.peak_rss = 0

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            procs = [self.root, *self.root.children(recursive=True)]
            rss = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                    rss += p.memory_info().rss
            self.peak_rss = max(self.peak_rss, rss)


def run_command(cmd: list[str], tree: Tree) -> dict[str, Any]:
    """Wall, CPU seconds of the tree, peak RSS of the tree, stdout lines, exit status."""
    start = time.perf_counter()
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(
            cmd, cwd=tree.cwd, env=tree.env(), stdout=subprocess.PIPE, stderr=sink, text=True
        )
        sampler = TreeSampler(proc.pid)
        lines: list[str] = []
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        while proc.poll() is None:
            sampler.sample()
            with contextlib.suppress(TypeError):
                lines.extend(proc.stdout.readlines())
            time.sleep(0.02)
        lines.extend(proc.stdout.readlines() or [])
    wall = time.perf_counter() - start
    return {
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(sum(sampler.cpu.values()), 2),
        "peak_rss_mib": round(sampler.peak_rss / 2**20),
        "stdout_lines": len(lines),
        "status": proc.returncode,
    }


def drop_caches(*trees: Path) -> str:
    """Empty the page cache (root), or evict the trees' files from it; the method used."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches"
    except OSError:
        for tree in trees:
            for top, _, files in os.walk(tree, followlinks=True):
                for f in files:
                    with contextlib.suppress(OSError):
                        fd = os.open(os.path.join(top, f), os.O_RDONLY)
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                        os.close(fd)
        return "posix_fadvise"


def noop_bench(tree: Tree, month: Path, ws: Path, repeats: int) -> dict[str, Any]:
    """A rerun with nothing to do, warm and cold: the whole command, and its dry run
    (scan and up-to-date checks, without the reports and pages a run writes)."""
    out: dict[str, Any] = {}
    for label, extra in (("", ()), ("dry_run_", ("--dry-run",))):
        cmd = tree.command("night", str(month), "-o", str(ws), *extra)
        warm = [run_command(cmd, tree) for _ in range(repeats + 1)][1:]
        method = drop_caches(month, ws)
        cold = run_command(cmd, tree)
        out |= {
            f"{label}warm_seconds": [w["wall_seconds"] for w in warm],
            f"{label}cold_seconds": cold["wall_seconds"],
            "cold_method": method,
            f"{label}stdout_lines": warm[-1]["stdout_lines"],
            f"{label}status": [w["status"] for w in warm] + [cold["status"]],
        }
    return out


def page_sizes(ws: Path) -> dict[str, Any]:
    pages = sorted(ws.rglob("*.html"))
    sizes = [p.stat().st_size for p in pages]
    return {
        "pages": len(pages),
        "total_kib": round(sum(sizes) / 1024),
        "largest_kib": round(max(sizes, default=0) / 1024),
    }


def client_cost(month: Path, ws: Path) -> dict[str, Any]:
    """Per set: plan (scan and product plans), graph building, submission to an
    in-process cluster (cancelled at once)."""
    from distributed import Client, LocalCluster

    from mdark_dask.plan.night import plan_night
    from mdark_dask.plan.sets import plan_sets
    from mdark_dask.recipe import master_graph
    from mdark_dask.scheduler import thread_mapper

    t0 = time.perf_counter()
    night = plan_night([str(month)], mapper=thread_mapper(), exclude=[str(ws)])
    t1 = time.perf_counter()
    todo, _ = plan_sets(night, ws / "costs", None, None, overwrite=True, plots=False)
    t2 = time.perf_counter()
    graphs = [master_graph(plan, None) for _, plan in todo]
    t3 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, silence_logs=logging.CRITICAL
        ) as cluster,
        Client(cluster) as client,
    ):
        t4 = time.perf_counter()
        futures = [client.compute(g) for g in graphs]
        t5 = time.perf_counter()
        client.cancel(futures)
    n = max(1, len(todo))
    return {
        "sets": len(todo),
        "scan_ms_per_set": round((t1 - t0) / n * 1e3, 2),
        "plan_ms_per_set": round((t2 - t1) / n * 1e3, 2),
        "graph_ms_per_set": round((t3 - t2) / n * 1e3, 2),
        "submit_ms_per_set": round((t5 - t4) / n * 1e3, 2),
    }


def markdown(result: dict[str, Any]) -> str:
    rows = ["| measure | this tree | baseline |", "|---|---|---|"]

    def row(label: str, new: Any, old: Any = "") -> None:
        rows.append(f"| {label} | {new} | {old} |")

    scan, base = result.get("scan", {}), result.get("scan_baseline", {})
    for kind in ("plain", "gzip", "all"):
        if kind in scan:
            row(
                f"scan {kind}: files/s ({scan[kind]['seconds']} s)",
                scan[kind]["files_per_second"],
                base.get(kind, {}).get("files_per_second", ""),
            )
    run = result.get("run")
    if run:
        row("whole run: sets", run["sets"])
        row("whole run: wall s", run["wall_seconds"])
        row("sets per minute", run["sets_per_minute"])
        row("CPU s per set (process tree)", run["cpu_seconds_per_set"])
        row("peak RSS of the tree, MiB", run["peak_rss_mib"])
        row("output lines", run["stdout_lines"])
    pages = result.get("pages")
    if pages:
        row(
            "pages: count / total KiB / largest KiB",
            "{pages} / {total_kib} / {largest_kib}".format(**pages),
        )
    noop, noop_base = result.get("noop", {}), result.get("noop_baseline", {})
    if noop:
        row(
            "no-op rerun warm s",
            noop["warm_seconds"],
            noop_base.get("warm_seconds", ""),
        )
        row(
            f"no-op rerun cold s ({noop['cold_method']})",
            noop["cold_seconds"],
            noop_base.get("cold_seconds", ""),
        )
        row("no-op output lines", noop["stdout_lines"], noop_base.get("stdout_lines", ""))
        row(
            "no-op dry run (scan, up-to-date checks) warm s",
            noop["dry_run_warm_seconds"],
            noop_base.get("dry_run_warm_seconds", ""),
        )
        row(
            "no-op dry run cold s",
            noop["dry_run_cold_seconds"],
            noop_base.get("dry_run_cold_seconds", ""),
        )
    cost = result.get("client_cost")
    if cost:
        for key in ("scan", "plan", "graph", "submit"):
            row(f"client cost per set: {key} ms", cost[f"{key}_ms_per_set"])
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=15)
    parser.add_argument("--frames", type=int, default=3, help="frames a set (default 3)")
    parser.add_argument("--small", action="store_true", help="the simulator's small frames")
    parser.add_argument("--scan-files", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data" / "archive")
    parser.add_argument(
        "--baseline", default=None, metavar="PYTHON", help="the baseline tree's interpreter"
    )
    parser.add_argument(
        "--baseline-tree",
        default=None,
        metavar="DIR",
        help="the baseline's source tree, put on the path of --baseline's interpreter "
        "(default: the tree that interpreter's venv belongs to)",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=("scan", "run", "noop", "cost"))
    parser.add_argument("--out", type=Path, default=Path("bench_archive.json"))
    args = parser.parse_args()

    data = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "nights": args.nights,
        "small": args.small,
        "host_cpus": os.cpu_count(),
    }
    t = time.perf_counter()
    month = simulate_nights(data, args.nights, args.frames, args.small)
    result["simulate_seconds"] = round(time.perf_counter() - t, 1)
    mine = Tree(PYTHON, ROOT)
    baseline = None
    if args.baseline:
        where = args.baseline_tree or Path(args.baseline).absolute().parents[2]
        baseline = Tree(args.baseline, Path(where), args.baseline_tree)

    if "scan" not in args.skip:
        plain, gz = make_scan_archive(data, month, args.scan_files)
        result["scan"] = scan_bench(mine, plain, gz, args.repeats)
        if baseline is not None:
            # one pass each: the baseline reads every gzipped file whole
            result["scan_baseline"] = scan_bench(baseline, plain, gz, 1, warm=False)
        print(json.dumps(result, indent=1), flush=True)

    ws = data / "ws"
    if "run" not in args.skip:
        shutil.rmtree(ws, ignore_errors=True)
        run = run_command(mine.command("night", str(month), "-o", str(ws)), mine)
        report = json.loads((ws / "night_report.json").read_text())
        sets = sum(1 for s in report["sets"] if s["status"] == "done")
        run["sets"] = sets
        run["sets_per_minute"] = round(sets / run["wall_seconds"] * 60, 1)
        run["cpu_seconds_per_set"] = round(run["cpu_seconds"] / max(1, sets), 2)
        result["run"] = run
        result["pages"] = page_sizes(ws)
        print(json.dumps(result, indent=1), flush=True)

    if "noop" not in args.skip and ws.exists():
        result["noop"] = noop_bench(mine, month, ws, args.repeats)
        if baseline is not None:
            # its own copy of the workspace (products hard-linked): the two trees keep
            # different records beside the products
            other = data / "ws-baseline"
            shutil.rmtree(other, ignore_errors=True)
            shutil.copytree(ws, other, copy_function=os.link)
            result["noop_baseline"] = noop_bench(baseline, month, other, args.repeats)
        print(json.dumps(result, indent=1), flush=True)

    if "cost" not in args.skip:
        result["client_cost"] = client_cost(month, ws)

    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
