"""Drive soxspipe 0.17.4, the reference oracle, for the parity tests.

soxspipe pins packages mdark-dask cannot share, so it lives in its own virtual environment
(built by ``scripts/build_oracle.sh``) and is run through its command line exactly as
``/work/shared/spec/ORACLE.md`` prescribes. This is a helper module, not a test file.

Typical use::

    venv = oracle_venv()
    if venv is None:
        pytest.skip("soxspipe 0.17.4 oracle unavailable")
    result = run_soxspipe_mdark(sof, tmp_path / "oracle", "soxs")
    result.qc["ESO QC MDARK MEDIAN"]
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from astropy.io import fits

__all__ = ["OracleError", "OracleResult", "oracle_venv", "run_soxspipe_mdark"]

VERSION = "0.17.4"
REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "scripts" / "build_oracle.sh"
DEFAULT_VENV = Path.home() / ".cache" / "mdark-dask" / "oracle-venv"
# soxspipe colours its log lines; failure detection must look through the escapes.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The one ERROR a successful run may log: a QC value outside its range (reference §5.2).
_QC_FAILURE = "Recipe marked as failed in the database as the following QC values"
_QC_ROW = re.compile(
    r"^\|\s*(?P<name>[A-Z][A-Z ]*?)\s*\|\s*(?P<value>[-+0-9.eE]+|nan|--)\s*\|"
    r"[^|]*\|[^|]*\|\s*(?P<flag>pass|fail)\s*\|$"
)


class OracleError(RuntimeError):
    """soxspipe ran but did not produce a product (the message carries its stderr tail)."""


@dataclass(frozen=True)
class OracleResult:
    """What one ``soxspipe mdark`` run produced.

    Attributes
    ----------
    product : Path
        The master dark, ``<workdir>/reduced/<night>/soxs-mdark/<sof stem>.fits``.
    stderr : str
        soxspipe's report (it writes to stderr), ANSI colour codes removed.
    qc : dict
        ``ESO QC *`` cards of the product's primary header, keyed by full keyword
        (``"ESO QC HOTPIX NUM"``), values as astropy reads them (int or float).
    printed_qc : dict
        The QC table soxspipe printed, ``{qc_name: (value, flag)}``; it includes the SOXS
        temperatures that never reach the header. Values are rounded to 3 decimals there.
    qc_failed : bool
        Whether a QC value fell outside the settings' acceptable range (the product is
        still written, with an ``_ERROR.log``; reference §5.2).
    seconds : float
        Wall time of the soxspipe process.
    stdout : str
        Anything soxspipe printed on stdout (ANSI codes removed).
    """

    product: Path
    stderr: str
    qc: dict[str, int | float] = field(default_factory=dict)
    printed_qc: dict[str, tuple[float, str]] = field(default_factory=dict)
    qc_failed: bool = False
    seconds: float = 0.0
    stdout: str = ""


def _installed(venv: Path) -> bool:
    exe = venv / "bin" / "soxspipe"
    if not exe.exists():
        return False
    try:
        out = subprocess.run(
            [str(exe), "--version"], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == f"v{VERSION}"


@functools.cache
def oracle_venv() -> Path | None:
    """The soxspipe 0.17.4 venv, built with ``scripts/build_oracle.sh`` on first use.

    The location is ``$MDARK_ORACLE_VENV`` or ``~/.cache/mdark-dask/oracle-venv``. Returns
    ``None`` (callers skip) if it is missing and cannot be built, e.g. offline or without
    python3.11. The answer is cached for the session: a build takes minutes.
    """
    venv = Path(os.environ.get("MDARK_ORACLE_VENV") or DEFAULT_VENV).expanduser()
    if _installed(venv):
        return venv
    env = {**os.environ, "MDARK_ORACLE_VENV": str(venv)}
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0 or not _installed(venv):
        return None
    return venv


def _settings_file(venv: Path, instrument: str) -> Path:
    """soxspipe's own default settings for the instrument, inside the oracle venv."""
    name = f"{instrument}_default_settings.yaml"
    found = sorted(venv.glob(f"lib/python3*/site-packages/soxspipe/{name}"))
    if not found:
        raise OracleError(f"{name} not found in {venv}")
    return found[0]


def _predicted_product(sof: Path, workdir: Path) -> Path:
    """``reduced/<night>/soxs-mdark/<stem>.fits``, night = sof timestamp - 15 h (§6.1)."""
    stem = sof.stem
    try:
        night = datetime.strptime(stem.split("_")[0], "%Y%m%dT%H%M%S") - timedelta(hours=15)
        return workdir / "reduced" / night.strftime("%Y-%m-%d") / "soxs-mdark" / f"{stem}.fits"
    except ValueError:
        return workdir / "reduced" / "soxs-mdark" / f"{stem}.fits"


def _parse_printed_qc(text: str) -> dict[str, tuple[float, str]]:
    out: dict[str, tuple[float, str]] = {}
    for line in text.splitlines():
        m = _QC_ROW.match(line.strip())
        if m and m["name"] != "qc_name":
            value = float("nan") if m["value"] == "--" else float(m["value"])
            out[m["name"]] = (value, m["flag"])
    return out


def run_soxspipe_mdark(
    sof: Path,
    workdir: Path,
    instrument: str,
    *,
    timeout: float = 1800.0,
) -> OracleResult:
    """Run ``soxspipe mdark`` on a sof as ORACLE.md prescribes and collect its product.

    The workspace is ``workdir`` (created): it gets ``./soxspipe.yaml`` (soxspipe's default
    settings of ``instrument``), and the run happens there with ``-o <workdir> -x``. HOME
    points at ``<workdir>/home`` so the run's side effects in ``~/.config/soxspipe`` (and
    astropy's and matplotlib's caches) stay inside ``workdir``.

    Parameters
    ----------
    sof : Path
        The set of files; its name (``YYYYMMDDTHHMMSS_...``) decides the product path.
    workdir : Path
        The soxspipe workspace root for this run.
    instrument : str
        ``"soxs"`` or ``"xsh"``: which default settings file to use.
    timeout : float
        Seconds before the run is abandoned.

    Returns
    -------
    OracleResult

    Raises
    ------
    OracleError
        If the venv is unavailable, or the product is missing, or soxspipe logged an error
        other than a QC range failure. soxspipe exits 0 even when the recipe fails, so the
        exit status proves nothing.
    """
    if instrument not in ("soxs", "xsh"):
        raise ValueError(f"instrument must be 'soxs' or 'xsh', got {instrument!r}")
    venv = oracle_venv()
    if venv is None:
        raise OracleError("the soxspipe 0.17.4 oracle venv is unavailable")
    sof = Path(sof).resolve()
    workdir = Path(workdir).resolve()
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_settings_file(venv, instrument), workdir / "soxspipe.yaml")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MPLCONFIG"))}
    env.update(HOME=str(home), MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    cmd = [
        str(venv / "bin" / "soxspipe"),
        "mdark",
        str(sof),
        "-s",
        "./soxspipe.yaml",
        "-o",
        str(workdir),
        "-x",
    ]
    # A product or error log left by an earlier run in this workdir must not pass for this one.
    product = _predicted_product(sof, workdir)
    product.unlink(missing_ok=True)
    for stale in workdir.rglob(f"{sof.stem}_ERROR.log"):
        if home not in stale.parents:
            stale.unlink()
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - t0
    stderr = _ANSI.sub("", proc.stderr)
    stdout = _ANSI.sub("", proc.stdout)

    error_logs = [p for p in workdir.rglob(f"{sof.stem}_ERROR.log") if home not in p.parents]
    error_text = "\n".join(p.read_text(errors="replace") for p in error_logs)
    qc_failed = _QC_FAILURE in error_text or _QC_FAILURE in stderr
    # Every logged ERROR must be the QC-range failure; anything else is a real failure.
    # The message may start on the line after "ERROR: <where> >", so look a little ahead.
    logged = stderr + "\n" + error_text
    unexpected = [
        logged[m.start() : m.start() + 600]
        for m in re.finditer(r"\bERROR\b:?", logged)
        if _QC_FAILURE not in logged[m.start() : m.start() + 600]
    ]
    if not product.exists() or unexpected or "Traceback" in stderr:
        tail = "\n".join(stderr.splitlines()[-40:])
        raise OracleError(
            f"soxspipe mdark {sof.name} failed (exit {proc.returncode}); product "
            f"{'present' if product.exists() else 'missing'}; "
            f"error logs: {[str(p) for p in error_logs]}\n{error_text[-3000:]}\n{tail}"
        )

    header = fits.getheader(product, 0)
    qc = {key: header[key] for key in header if key.startswith("ESO QC ")}
    return OracleResult(
        product=product,
        stderr=stderr,
        qc=qc,
        printed_qc=_parse_printed_qc(stderr),
        qc_failed=qc_failed,
        seconds=seconds,
        stdout=stdout,
    )
