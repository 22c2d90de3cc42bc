"""Science settings: load a soxspipe-style YAML once, validate it, freeze it.

The defaults live in ``configs/<instrument>.yaml``; a user file (``-s``) is laid over them.
Both soxspipe spellings are accepted (``soxs-mdark``/``soxs_mdark``,
``frame-clipping-sigma``/``frame_clipping_sigma``); a soxspipe ``soxspipe.yaml`` works as
is, its other recipes' blocks ignored. The hot-pixel keys (:data:`HOTPIX_KEYS`) are
mdark-dask's own: soxspipe has no such step, so they are recorded in the hot-pixel map's
header, never among the master dark's ``ESO PRO REC1 PARAMn`` (which must stay
soxspipe's). Anything else unknown is an error rather than a
silently ignored typo, because these settings change product bytes.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import yaml

from mdark_dask.errors import SettingsError
from mdark_dask.numerics.steps import NUMERICS, Numerics

RECIPE_KEYS: Final = (
    "stacked-clipping-sigma",
    "stacked-clipping-iterations",
    "frame-clipping-sigma",
    "frame-clipping-iterations",
)
#: Keys of the hot-pixel map (mdark-dask only; see :mod:`mdark_dask.numerics.hotpix`).
HOTPIX_KEYS: Final = (
    "hot-pixel-sigma",
    "hot-pixel-rate",
    "noise-clipping-sigma",
    "noise-clipping-iterations",
)
ARM_KEYS: Final = ("vis", "nir", "uvb")
RANGES_KEY: Final = "qc-acceptable-ranges"
QC_RANGE_NAMES: Final = (
    "mdark-median",
    "raw-ron",
    "master-ron",
    "hotpix-num",
    "hotpix-frac",
    "detector-temp",
    "cpath-temp",
    "hotpix-phys-num",
    "hotpix-phys-frac",
    "noisypix-num",
    "noisypix-frac",
)
# Top-level keys of soxspipe's settings files that mdark does not use: accepted, ignored.
SOXSPIPE_TOP_LEVEL: Final = frozenset(
    {
        "PAE",
        "background-subtraction",
        "bootstrap_dispersion_solution",
        "data-extension",
        "ignore-dflats",
        "ignore-dome-flats",
        "night_start_offset_hrs",
        "save-intermediate-products",
        "summary-keys",
        "tune-pipeline",
        "version",
        "vlt-data-raw",
        "vlt-data-reduced",
        "workspace-root-dir",
        "logging settings",
        "reduced-data-root",
        "test-data-root",
        "intermediate-data-root",
        "raw-data-root",
    }
)


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one arm's master-dark reduction.

    Attributes
    ----------
    instrument : str
        ``soxs`` or ``xsh``.
    numerics : {"accurate", "soxspipe-0.17.4"}
        Numerical mode: ``accurate`` (float64 whole-frame clip statistics, CONAD gain) or
        ``soxspipe-0.17.4`` (bit-identical to soxspipe 0.17.4).
    stacked_sigma, stacked_iterations : float, int
        Per-pixel median/MAD clip along the stack.
    frame_sigma, frame_iterations : float, int
        Per-frame level clip and post-stack clip (mean/std).
    params : tuple of (name, value)
        The recipe parameters in file order, as soxspipe writes them into
        ``ESO PRO REC1 PARAMn``.
    qc_ranges : mapping
        The acceptable ``(lo, hi)`` range of each QC name of this arm (names normalised:
        lower case, spaces); empty means every QC passes.
    source : str
        Where the settings came from, for the log.
    hot_sigma : float
        Hot-pixel threshold in units of the master's robust spread (``hot-pixel-sigma``).
    hot_rate : float or None
        Optional hot-pixel threshold in e-/s (``hot-pixel-rate``); None or 0 = unused.
    noise_sigma, noise_iterations : float, int
        High-side median/MAD clip of the noise images (``noise-clipping-sigma``,
        ``noise-clipping-iterations``).
    hotpix_params : tuple of (name, value)
        The hot-pixel keys as resolved, for the hot-pixel map's header.
    """

    instrument: str
    numerics: Numerics
    stacked_sigma: float
    stacked_iterations: int
    frame_sigma: float
    frame_iterations: int
    params: tuple[tuple[str, float | int], ...]
    qc_ranges: Mapping[str, tuple[float, float]]
    source: str
    hot_sigma: float = 5.0
    hot_rate: float | None = None
    noise_sigma: float = 6.0
    noise_iterations: int = 5
    hotpix_params: tuple[tuple[str, float | int | None], ...] = ()

    def with_numerics(self, numerics: str | None) -> Settings:
        """Return a copy with another numerics mode (the CLI's ``--numerics``)."""
        if numerics is None:
            return self
        return replace(self, numerics=_numerics(numerics, "--numerics"))


def configs_dir() -> Path:
    """The directory of the default settings files (installed, or the source tree's)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if candidate.is_dir():
            return candidate
    raise SettingsError("the default settings (configs/) are missing from the installation")


def _norm(key: object) -> str:
    return str(key).strip().replace("_", "-").lower()


def _numerics(value: object, where: str) -> Numerics:
    for mode in NUMERICS:
        if str(value) == mode:
            return mode
    raise SettingsError(f"{where}: numerics must be one of {', '.join(NUMERICS)}, not {value!r}")


def _number(value: object, where: str, *, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{where} must be {kind}, not {value!r}")
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise SettingsError(f"{where} must be an integer, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{where} must be a positive finite number, not {value!r}")
    return int(value) if integer else value


def _check(key: str, value: object, where: str) -> None:
    """Validate one recipe or hot-pixel key; ``hot-pixel-rate`` may be null or 0 (unused)."""
    if key == "hot-pixel-rate":
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{where} must be a number or null, not {value!r}")
        if not math.isfinite(value) or value < 0:
            raise SettingsError(f"{where} must be a finite number >= 0, not {value!r}")
        return
    _number(value, where, integer="iterations" in key)


def _ranges(block: object, where: str) -> dict[str, tuple[float, float]]:
    if not isinstance(block, Mapping):
        raise SettingsError(f"{where} must be a mapping of QC name to [min, max]")
    out: dict[str, tuple[float, float]] = {}
    for name, pair in block.items():
        key = _norm(name)
        if key not in QC_RANGE_NAMES:
            raise SettingsError(f"{where}: unknown QC name {name!r}")
        ok = isinstance(pair, list | tuple) and len(pair) == 2
        if not ok or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair):
            raise SettingsError(f"{where}.{name} must be [min, max] numbers, not {pair!r}")
        lo, hi = float(pair[0]), float(pair[1])
        if lo >= hi:
            raise SettingsError(f"{where}.{name}: min {lo} is not below max {hi}")
        out[key.replace("-", " ")] = (lo, hi)
    return out


def _recipe_block(block: object, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a ``soxs-mdark`` block into recipe parameters and per-arm sub-blocks."""
    if not isinstance(block, Mapping):
        raise SettingsError(f"{where} must be a mapping")
    params: dict[str, Any] = {}
    arms: dict[str, Any] = {}
    for raw_key, value in block.items():
        key = _norm(raw_key)
        if key in RECIPE_KEYS or key in HOTPIX_KEYS or key == RANGES_KEY:
            params[key] = value
        elif key in ARM_KEYS:
            if not isinstance(value, Mapping):
                raise SettingsError(f"{where}.{raw_key} must be a mapping")
            sub = {}
            for k, v in value.items():
                if _norm(k) not in (*RECIPE_KEYS, *HOTPIX_KEYS, RANGES_KEY):
                    raise SettingsError(f"{where}.{raw_key}: unknown key {k!r}")
                sub[_norm(k)] = v
            arms[key] = sub
        else:
            raise SettingsError(f"{where}: unknown key {raw_key!r}")
    return params, arms


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping of a settings file, parsed once per version of the file: a night
    resolves the settings of every set, and parsing YAML costs milliseconds each time."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
    return copy.deepcopy(_parse_yaml(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _parse_yaml(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """:func:`_read_yaml`'s parse, keyed by the file's version (modification time, size)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"settings file {path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise SettingsError(f"settings file {path} is not valid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a mapping")
    return data


def _split_file(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate a file's top level; return instrument, numerics and the recipe block."""
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = _norm(raw_key)
        if key == "soxs-mdark":
            out["block"] = value
        elif key == "instrument":
            if str(value).lower() not in ("soxs", "xsh"):
                raise SettingsError(f"{where}: instrument must be soxs or xsh, not {value!r}")
            out["instrument"] = str(value).lower()
        elif key == "numerics":
            out["numerics"] = _numerics(value, where)
        elif str(raw_key) in SOXSPIPE_TOP_LEVEL or (
            key.startswith("soxs-") and key != "soxs-mdark"
        ):
            continue
        else:
            raise SettingsError(f"{where}: unknown key {raw_key!r}")
    return out


def load_settings(
    instrument: str, arm: str, path: Path | None = None, numerics: str | None = None
) -> Settings:
    """Resolve the settings of one arm: defaults, then a user file, then ``numerics``.

    Parameters
    ----------
    instrument : str
        ``soxs`` or ``xsh``, as found in the frames' headers.
    arm : str
        The arm; an arm sub-block (``nir:``, ``vis:``, ``uvb:``) overrides the recipe
        block's keys for that arm, as soxspipe's "recipe settings" do.
    path : Path, optional
        A user settings file laid over the defaults; its recipe keys win, keeping its order
        for the provenance keywords.
    numerics : str, optional
        Overrides the file's ``numerics`` (the CLI's ``--numerics``).

    Raises
    ------
    SettingsError
        One line naming the file and the offending key or value.
    """
    default_path = configs_dir() / f"{instrument}.yaml"
    default = _split_file(_read_yaml(default_path), default_path.name)
    # layers from weakest to strongest: defaults, default arm block, user, user arm block
    layers = [_recipe_block(default.get("block", {}), "soxs-mdark")]
    chosen: Numerics = default.get("numerics", "accurate")
    source = f"defaults ({default_path.name})"
    if path is not None:
        user = _split_file(_read_yaml(path), str(path))
        if user.get("instrument", instrument) != instrument:
            raise SettingsError(
                f"settings file {path} is for instrument {user['instrument']}, "
                f"but the frames are {instrument}"
            )
        chosen = user.get("numerics", chosen)
        if "block" in user:
            layers.append(_recipe_block(user["block"], f"{path}: soxs-mdark"))
        source = str(path)
    # provenance order: the user's keys in their order, then the defaults' remaining ones
    order = list(dict.fromkeys(k for params, _ in reversed(layers) for k in params))
    merged: dict[str, Any] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for params, arms in layers:
        for block, where in (
            (params, "soxs-mdark"),
            (arms.get(arm.lower(), {}), f"soxs-mdark.{arm.lower()}"),
        ):
            merged |= {k: v for k, v in block.items() if k != RANGES_KEY}
            ranges |= _ranges(block.get(RANGES_KEY, {}), f"{where}.{RANGES_KEY}")
        for other, sub in arms.items():  # validate every arm block, used or not
            _ranges(sub.get(RANGES_KEY, {}), f"soxs-mdark.{other}.{RANGES_KEY}")
            for key in (*RECIPE_KEYS, *HOTPIX_KEYS):
                if key in sub:
                    _check(key, sub[key], f"soxs-mdark.{other}.{key}")

    def num(key: str, *, integer: bool) -> float | int:
        return _number(merged.get(key), key, integer=integer)

    for key in HOTPIX_KEYS:
        if key in merged:
            _check(key, merged[key], key)
    hot_rate = merged.get("hot-pixel-rate")

    resolved = Settings(
        instrument=instrument,
        numerics=chosen,
        stacked_sigma=num("stacked-clipping-sigma", integer=False),
        stacked_iterations=int(num("stacked-clipping-iterations", integer=True)),
        frame_sigma=num("frame-clipping-sigma", integer=False),
        frame_iterations=int(num("frame-clipping-iterations", integer=True)),
        params=tuple((k, merged[k]) for k in order if k in RECIPE_KEYS),
        qc_ranges=ranges,
        source=source,
        hot_sigma=float(num("hot-pixel-sigma", integer=False)),
        hot_rate=float(hot_rate) if hot_rate else None,
        noise_sigma=float(num("noise-clipping-sigma", integer=False)),
        noise_iterations=int(num("noise-clipping-iterations", integer=True)),
        hotpix_params=tuple((k, merged.get(k)) for k in HOTPIX_KEYS),
    )
    return resolved.with_numerics(numerics)
