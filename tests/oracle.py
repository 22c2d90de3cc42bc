"""Drive soxspipe 0.17.4, the reference oracle, for the parity tests.

soxspipe pins packages mdark-dask cannot share, so it lives in its own virtual environment
(built by ``scripts/build_oracle.sh``) and is run through its command line, as a user runs
it: ``soxspipe mdark <sof> -s soxspipe.yaml -o <workspace> -x`` with soxspipe's default
settings. This is a helper module, not a test file.

It also holds the reference kernels: the recipe's compiled steps written out in numpy,
step by step, which the tests hold the compiled kernels to bit for bit.

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
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from mdark_dask.numerics.masked import masked_mean_std
from mdark_dask.numerics.steps import (
    PEEL_SIGMA,
    STRIP_DTYPE,
    Bounds,
    FrameLevel,
    Numerics,
    clip_mask,
)

__all__ = [
    "OracleError",
    "OracleResult",
    "SoxspipeRun",
    "oracle_venv",
    "organiser_venv",
    "run_soxspipe",
    "run_soxspipe_mdark",
]

VERSION = "0.17.4"
REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "scripts" / "build_oracle.sh"
DEFAULT_VENV = Path.home() / ".cache" / "mdark-dask" / "oracle-venv"
DEFAULT_VENV_312 = Path.home() / ".cache" / "mdark-dask" / "oracle-venv-312"
# soxspipe colours its log lines; failure detection must look through the escapes.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The one ERROR a successful run may log: a QC value outside its range (soxspipe still
# writes the product then).
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
        still written, with an ``_ERROR.log``).
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


def _python312() -> str | None:
    """A Python >= 3.12 for the organiser's venv: ``$MDARK_ORACLE_PYTHON312``, else
    ``python3.12`` on the PATH, else pyenv's newest 3.12."""
    given = os.environ.get("MDARK_ORACLE_PYTHON312")
    if given:
        return given
    found = shutil.which("python3.12")
    if found:
        return found
    pyenv = sorted((Path.home() / ".pyenv" / "versions").glob("3.12*/bin/python3.12"))
    return str(pyenv[-1]) if pyenv else None


def _build(venv: Path, python: str | None) -> Path | None:
    """``scripts/build_oracle.sh`` into ``venv`` with ``python``; the venv, or None."""
    if _installed(venv):
        return venv
    env = {**os.environ, "MDARK_ORACLE_VENV": str(venv)}
    if python:
        env["MDARK_ORACLE_PYTHON"] = python
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


@functools.cache
def organiser_venv() -> Path | None:
    """soxspipe 0.17.4 on Python 3.12 or newer, which its data organiser needs
    (``soxspipe prep``, ``soxspipe reduce all``: it passes ``autocommit`` to sqlite3).

    Built with ``scripts/build_oracle.sh`` on first use, in ``$MDARK_ORACLE_VENV_312`` or
    ``~/.cache/mdark-dask/oracle-venv-312``, with :func:`_python312`. None (callers skip)
    when no Python 3.12 is found or the build fails.
    """
    venv = Path(os.environ.get("MDARK_ORACLE_VENV_312") or DEFAULT_VENV_312).expanduser()
    if _installed(venv):
        return venv
    python = _python312()
    return _build(venv, python) if python else None


@dataclass(frozen=True)
class SoxspipeRun:
    """One soxspipe command: its exit status and its output, ANSI colour codes removed."""

    returncode: int
    output: str
    seconds: float


def run_soxspipe(venv: Path, args: list[str], cwd: Path, *, timeout: float = 120.0) -> SoxspipeRun:
    """Run ``soxspipe ARGS`` in ``cwd`` as a user would, HOME inside ``cwd/home`` (so its
    ``~/.config/soxspipe`` and caches stay in the test's directory)."""
    home = cwd / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MPLCONFIG"))}
    env.update(HOME=str(home), MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(venv / "bin" / "soxspipe"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return SoxspipeRun(
        proc.returncode, _ANSI.sub("", proc.stdout + proc.stderr), time.perf_counter() - t0
    )


def settings_file(venv: Path, instrument: str) -> Path:
    """soxspipe's own default settings of ``instrument`` (``soxs``/``xsh``) in ``venv``."""
    return _settings_file(venv, instrument)


def static_calibration(venv: Path, name: str) -> Path:
    """A file of soxspipe's static calibrations for SOXS (e.g. its line lists)."""
    found = sorted(
        venv.glob(f"lib/python3*/site-packages/soxspipe/resources/static_calibrations/soxs/{name}")
    )
    if not found:
        raise OracleError(f"{name} not found in {venv}")
    return found[0]


@functools.cache
def oracle_venv() -> Path | None:
    """The soxspipe 0.17.4 venv, built with ``scripts/build_oracle.sh`` on first use.

    The location is ``$MDARK_ORACLE_VENV`` or ``~/.cache/mdark-dask/oracle-venv``. Returns
    ``None`` (callers skip) if it is missing and cannot be built, e.g. offline or without
    python3.11. The answer is cached for the session: a build takes minutes.
    """
    venv = Path(os.environ.get("MDARK_ORACLE_VENV") or DEFAULT_VENV).expanduser()
    return _build(venv, None)


def _settings_file(venv: Path, instrument: str) -> Path:
    """soxspipe's own default settings for the instrument, inside the oracle venv."""
    name = f"{instrument}_default_settings.yaml"
    found = sorted(venv.glob(f"lib/python3*/site-packages/soxspipe/{name}"))
    if not found:
        raise OracleError(f"{name} not found in {venv}")
    return found[0]


def _predicted_product(sof: Path, workdir: Path) -> Path:
    """``reduced/<night>/soxs-mdark/<stem>.fits``, night = sof timestamp - 15 h, where
    soxspipe 0.17.4 writes the product."""
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
    """Run ``soxspipe mdark`` on a sof in a workspace of its own and collect its product.

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


# --------------------------------------------------------------------------------------------
# Reference kernels: the recipe's compiled steps written out in numpy, step by step, as
# soxspipe computes them; the tests hold the compiled kernels to these bit for bit.

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

#: astropy's MAD-to-std factor, 1 / Phi^-1(3/4).
MAD_TO_STD = 1.482602218505602


def frame_level_reference(e: F32, sigma: float, maxiters: int, numerics: Numerics) -> FrameLevel:
    """:func:`frame_level` step by step: the clip's bounds (a "kept" byte per pixel,
    :func:`mdark_dask.numerics.levelclip.clip_bounds`), its mask, the masked statistics."""
    from mdark_dask.numerics.levelclip import clip_bounds

    flat = np.ascontiguousarray(e, dtype=np.float32).ravel()
    lo, hi = clip_bounds(flat, float(sigma), int(maxiters), numerics == "soxspipe-0.17.4")
    bounds = Bounds(float(lo), float(hi))
    mean, std = masked_mean_std(e, clip_mask(e, bounds))
    return FrameLevel(bounds.lo, bounds.hi, mean, std)


def seq_mean_over_frames(values: F32, keep: Bool) -> F32:
    """Per-pixel mean over axis 0 of the kept values, summed sequentially in float32.

    This is bottleneck ``nanmean(axis=0)`` on the NaN-substituted stack (ccdproc's
    ``average_combine``): pixels with nothing kept give NaN.
    """
    acc = np.zeros(values.shape[1:], dtype=np.float32)
    for frame, k in zip(values, keep, strict=True):
        acc += np.where(k, frame, np.float32(0.0))
    count = keep.sum(axis=0, dtype=np.int64).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean: F32 = np.divide(acc, count, dtype=np.float32)
    return mean


def stack_clip_mask(stack: F32, sigma: float, maxiters: int) -> Bool:
    """Per-pixel median / MAD-std sigma clip along the frame axis, as astropy's C clip.

    This is astropy's ``sigma_clip(axis=0, cenfunc="median", stdfunc="mad_std")``, its fast
    C path in double precision, independent for every pixel.
    """
    from astropy.stats import sigma_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        clipped = sigma_clip(
            np.asarray(stack, dtype=np.float32),
            sigma_lower=sigma,
            sigma_upper=sigma,
            axis=0,
            copy=False,
            maxiters=maxiters,
            cenfunc="median",
            stdfunc="mad_std",
            masked=True,
        )
    return np.ma.getmaskarray(clipped)


def stack_strip_reference(
    e: F32,
    levels: F64,
    ron: float,
    sigma: float,
    maxiters: int,
) -> npt.NDArray[np.void]:
    """Clip and mean-combine one row strip of the prepared stack, step by step: level
    subtraction, the level-clip masks, the per-pixel clip and the means over frames.

    Parameters
    ----------
    e : ndarray of float32, shape (n_frames, rows, cols)
        Prepared frames (electrons, before level subtraction), all frames of the strip.
    levels : ndarray of float64, shape (n_frames, 4)
        Per-frame ``(lo, hi, mean, std)`` of :func:`frame_level`, in frame order.
    ron : float
        Read noise in electrons, for the per-frame uncertainty.
    sigma, maxiters : float, int
        Stacked-clipping sigma and iterations.

    Returns
    -------
    ndarray of STRIP_DTYPE, shape (rows, cols)
        The mean of unclipped level-subtracted values, its uncertainty (mean of the
        unclipped per-frame sigmas over ``sqrt(n_used)``, soxspipe's formula), the mask
        so far (pixels clipped in every frame or masked by the level clip in every frame)
        the noise: the float64 population std of the unclipped level-subtracted
        values, NaN with fewer than two of them, and ``noise_peel``: the same over every
        finite value once isolated extremes are peeled (see :data:`PEEL_SIGMA`), NaN with
        fewer than five finite values.
    """
    n = e.shape[0]
    level_masked = np.ones(e.shape[1:], dtype=bool)
    subtracted = np.empty_like(e, dtype=np.float32)
    for i in range(n):
        lo, hi, mean, _ = levels[i]
        level_masked &= clip_mask(e[i], Bounds(float(lo), float(hi)))
        # float32(E - m) with m float64, as soxspipe's in-place subtraction
        np.subtract(e[i], np.float64(mean), out=subtracted[i], casting="same_kind")
    clipped = stack_clip_mask(subtracted, sigma, maxiters)
    keep = ~clipped
    n_clipped = clipped.sum(axis=0, dtype=np.int64)
    flux = seq_mean_over_frames(subtracted, keep)
    sig_mean = seq_mean_over_frames(deviation(e, ron), keep)
    with np.errstate(invalid="ignore", divide="ignore"):
        errs = (sig_mean / np.sqrt(n - n_clipped)).astype(np.float32)
    kept = n - n_clipped
    values = np.where(keep, subtracted.astype(np.float64), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        noise = np.where(kept >= 2, np.nanstd(values, axis=0), np.nan)
    out = np.empty(e.shape[1:], dtype=STRIP_DTYPE)
    out["flux"] = flux
    out["errs"] = errs
    out["mask"] = (n_clipped == n) | level_masked
    out["noise"] = noise.astype(np.float32)
    out["noise_peel"] = peeled_std_reference(subtracted, ron)
    return out


def peeled_std_reference(subtracted: F32, ron: float) -> F32:
    """Per-pixel population std of the finite values once isolated extremes are peeled
    (see :func:`mdark_dask.numerics.stackclip.stack_strip_kernel`); NaN below five values."""
    d = subtracted.astype(np.float64)
    out = np.full(d.shape[1:], np.nan, dtype=np.float32)
    for idx in np.ndindex(*d.shape[1:]):
        v = np.sort(d[(slice(None), *idx)])
        v = v[np.isfinite(v)]
        if v.size < 5:
            continue
        med = float(np.median(v))
        gap = PEEL_SIGMA * max(float(ron), float(np.median(np.abs(v - med))) * MAD_TO_STD)
        while v.size > 4:
            med = float(np.median(v))
            top, bottom = v[-1] - v[-2] > gap, v[1] - v[0] > gap
            if top and (v[-1] - med >= med - v[0] or not bottom):
                v = v[:-1]
            elif bottom:
                v = v[1:]
            else:
                break
        out[idx] = np.float32(np.std(v))
    return out


def deviation(e: F32, ron: float) -> F32:
    """Per-pixel 1-sigma uncertainty ``sqrt(max(E, 0) + RON**2)`` in float32 (soxspipe's).

    ``RON**2`` is computed as a Python float and rounded once to float32 when added, as
    in ccdproc's ``create_deviation``; negative signal counts as zero, not NaN.
    """
    signal = np.maximum(e, np.float32(0.0))
    return np.sqrt(signal + np.float32(float(ron) ** 2), dtype=np.float32)
