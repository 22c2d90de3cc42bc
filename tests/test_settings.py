"""``load_settings``: defaults, soxspipe spellings, arm blocks, QC ranges and every error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mdark_dask.errors import MdarkError, SettingsError
from mdark_dask.settings import Settings, load_settings

SOXS_ORDER = (
    "stacked-clipping-sigma",
    "stacked-clipping-iterations",
    "frame-clipping-sigma",
    "frame-clipping-iterations",
)
XSH_ORDER = (
    "frame-clipping-sigma",
    "frame-clipping-iterations",
    "stacked-clipping-sigma",
    "stacked-clipping-iterations",
)
SOXS_NIR_RANGES = {
    "mdark median": (-15.0, 50.0),
    "raw ron": (0.0, 30.0),
    "detector temp": (0.0, 50.0),
}


def write(tmp_path: Path, text: str, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def values(s: Settings) -> tuple[float, int, float, int]:
    return s.stacked_sigma, s.stacked_iterations, s.frame_sigma, s.frame_iterations


# --------------------------------------------------------------------------------------------
# defaults


@pytest.mark.parametrize("arm", ["VIS", "NIR"])
def test_soxs_defaults(arm: str) -> None:
    s = load_settings("soxs", arm)
    assert s.instrument == "soxs"
    assert s.numerics == "accurate"
    assert values(s) == (3, 3, 3, 3)
    assert isinstance(s.stacked_iterations, int) and isinstance(s.frame_iterations, int)
    assert tuple(name for name, _ in s.params) == SOXS_ORDER
    assert s.source.startswith("defaults")


def test_soxs_qc_ranges_per_arm() -> None:
    """SOXS NIR has acceptable ranges by default, VIS none (every QC passes)."""
    assert dict(load_settings("soxs", "NIR").qc_ranges) == SOXS_NIR_RANGES
    assert dict(load_settings("soxs", "VIS").qc_ranges) == {}


@pytest.mark.parametrize("arm", ["UVB", "VIS", "NIR"])
def test_xsh_defaults(arm: str) -> None:
    s = load_settings("xsh", arm)
    assert s.instrument == "xsh"
    assert (s.frame_sigma, s.frame_iterations) == (3, 1)
    assert (s.stacked_sigma, s.stacked_iterations) == (5, 5)
    assert s.params == (
        ("frame-clipping-sigma", 3),
        ("frame-clipping-iterations", 1),
        ("stacked-clipping-sigma", 5),
        ("stacked-clipping-iterations", 5),
    )
    assert dict(s.qc_ranges) == {}


# --------------------------------------------------------------------------------------------
# spellings and overrides


@pytest.mark.parametrize("block", ["soxs-mdark", "soxs_mdark"])
@pytest.mark.parametrize(
    "keys",
    [
        ("frame-clipping-sigma", "stacked-clipping-iterations"),
        ("frame_clipping_sigma", "stacked_clipping_iterations"),
        ("frame-clipping_sigma", "stacked_clipping-iterations"),
    ],
    ids=["dashes", "underscores", "mixed"],
)
def test_spellings(block: str, keys: tuple[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, f"{block}:\n    {keys[0]}: 4.5\n    {keys[1]}: 7\n")
    s = load_settings("soxs", "VIS", path)
    assert s.frame_sigma == 4.5
    assert s.stacked_iterations == 7
    assert (s.stacked_sigma, s.frame_iterations) == (3, 3)
    assert s.source == str(path)
    # provenance names are the canonical (dashed) spelling
    assert {name for name, _ in s.params} == set(SOXS_ORDER)
    assert dict(s.params)["frame-clipping-sigma"] == 4.5


def test_user_keys_keep_their_order(tmp_path: Path) -> None:
    """The user file's recipe keys come first, in its order, then the remaining defaults."""
    path = write(
        tmp_path,
        "soxs-mdark:\n    frame-clipping-iterations: 2\n    stacked-clipping-sigma: 4\n",
    )
    s = load_settings("soxs", "VIS", path)
    assert s.params == (
        ("frame-clipping-iterations", 2),
        ("stacked-clipping-sigma", 4),
        ("stacked-clipping-iterations", 3),
        ("frame-clipping-sigma", 3),
    )


def test_integral_float_iterations_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "soxs-mdark:\n    frame-clipping-iterations: 2.0\n")
    s = load_settings("soxs", "VIS", path)
    assert s.frame_iterations == 2 and isinstance(s.frame_iterations, int)


def test_arm_sub_block_overrides_its_arm_only(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "soxs-mdark:\n"
        "    frame-clipping-sigma: 4\n"
        "    nir:\n"
        "        frame-clipping-sigma: 6\n"
        "        stacked_clipping_iterations: 2\n",
    )
    nir = load_settings("soxs", "NIR", path)
    vis = load_settings("soxs", "VIS", path)
    assert (nir.frame_sigma, nir.stacked_iterations) == (6, 2)
    assert (vis.frame_sigma, vis.stacked_iterations) == (4, 3)
    # the provenance records the values used for the arm
    assert dict(nir.params)["frame-clipping-sigma"] == 6
    assert dict(nir.params)["stacked-clipping-iterations"] == 2
    assert dict(vis.params)["frame-clipping-sigma"] == 4
    # a user NIR block without ranges keeps the default NIR ranges
    assert dict(nir.qc_ranges) == SOXS_NIR_RANGES


@pytest.mark.parametrize("arm_key", ["vis", "VIS"])
def test_arm_qc_ranges(arm_key: str, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"soxs_mdark:\n    {arm_key}:\n        qc_acceptable_ranges:\n"
        "            mdark_median: [0, 100]\n            HOTPIX-FRAC: [0, 0.01]\n",
    )
    assert dict(load_settings("soxs", "VIS", path).qc_ranges) == {
        "mdark median": (0.0, 100.0),
        "hotpix frac": (0.0, 0.01),
    }
    assert dict(load_settings("soxs", "NIR", path).qc_ranges) == SOXS_NIR_RANGES


def test_recipe_level_qc_ranges_apply_to_every_arm(tmp_path: Path) -> None:
    """A user's recipe-level range is the user's choice: it beats the default NIR range.

    soxspipe reads one settings file, so a soxspipe.yaml whose ``soxs-mdark`` block says
    ``mdark-median: [0, 10]`` makes every arm use [0, 10]; a default buried in
    configs/soxs.yaml must not silently win over what the user wrote.
    """
    path = write(
        tmp_path, "soxs-mdark:\n    qc-acceptable-ranges:\n        mdark-median: [0, 10]\n"
    )
    assert dict(load_settings("soxs", "VIS", path).qc_ranges) == {"mdark median": (0.0, 10.0)}
    assert load_settings("soxs", "NIR", path).qc_ranges["mdark median"] == (0.0, 10.0)


def test_empty_user_file_is_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing but a comment\n")
    s = load_settings("soxs", "NIR", path)
    d = load_settings("soxs", "NIR")
    assert values(s) == values(d)
    assert s.params == d.params
    assert dict(s.qc_ranges) == dict(d.qc_ranges)
    assert s.source == str(path)


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("instrument", "filename"),
    [("soxs", "soxs_default_settings.yaml"), ("xsh", "xsh_default_settings.yaml")],
)
def test_soxspipe_default_settings_file_accepted(
    instrument: str, filename: str, tmp_path: Path
) -> None:
    from tests.oracle import oracle_venv

    venv = oracle_venv()
    if venv is None:
        pytest.skip("soxspipe 0.17.4 cannot be installed here")
    source = venv / "lib" / "python3.11" / "site-packages" / "soxspipe" / filename
    assert source.is_file(), source
    path = Path(shutil.copy(source, tmp_path / "soxspipe.yaml"))
    default_params = load_settings(instrument, "NIR").params
    arms = ("VIS", "NIR") if instrument == "soxs" else ("UVB", "VIS", "NIR")
    for arm in arms:
        s = load_settings(instrument, arm, path)
        assert s.instrument == instrument
        assert s.params == default_params
        assert s.source == str(path)
        if instrument == "soxs":
            # soxspipe's file carries its ranges at recipe level: every arm gets them
            assert dict(s.qc_ranges) == SOXS_NIR_RANGES
        else:
            assert dict(s.qc_ranges) == {}


# --------------------------------------------------------------------------------------------
# numerics


def test_numerics_argument_overrides_defaults() -> None:
    s = load_settings("soxs", "VIS", numerics="soxspipe-0.17.4")
    assert s.numerics == "soxspipe-0.17.4"
    assert values(s) == values(load_settings("soxs", "VIS"))


def test_numerics_from_file_and_argument_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "numerics: soxspipe-0.17.4\n")
    assert load_settings("soxs", "VIS", path).numerics == "soxspipe-0.17.4"
    assert load_settings("soxs", "VIS", path, "accurate").numerics == "accurate"


def test_bad_numerics_argument() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings("soxs", "VIS", numerics="fastest")
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------
# errors


def test_instrument_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, "instrument: xsh\n")
    with pytest.raises(SettingsError, match=r"instrument xsh.*frames are soxs") as info:
        load_settings("soxs", "VIS", path)
    assert "\n" not in str(info.value)
    assert load_settings("xsh", "VIS", path).instrument == "xsh"


BAD_FILES = {
    "unknown-top-key": ("foo: 1\n", "unknown key 'foo'"),
    "unknown-recipe-key": ("soxs-mdark:\n    frame-clip-sigma: 3\n", "frame-clip-sigma"),
    "unknown-arm-key": ("soxs-mdark:\n    nir:\n        foo: 1\n", "foo"),
    "unknown-arm": ("soxs-mdark:\n    blue:\n        frame-clipping-sigma: 3\n", "blue"),
    "recipe-block-not-mapping": ("soxs-mdark: 3\n", "mapping"),
    "recipe-block-empty": ("soxs-mdark:\n", "mapping"),
    "arm-block-not-mapping": ("soxs-mdark:\n    nir: 3\n", "mapping"),
    "sigma-word": ("soxs-mdark:\n    frame-clipping-sigma: three\n", "frame-clipping-sigma"),
    "sigma-list": ("soxs-mdark:\n    frame-clipping-sigma: [3]\n", "frame-clipping-sigma"),
    "sigma-null": ("soxs-mdark:\n    frame-clipping-sigma: null\n", "frame-clipping-sigma"),
    "sigma-bool": ("soxs-mdark:\n    stacked-clipping-sigma: true\n", "stacked-clipping"),
    "sigma-zero": ("soxs-mdark:\n    stacked-clipping-sigma: 0\n", "positive"),
    "sigma-negative": ("soxs-mdark:\n    frame-clipping-sigma: -3\n", "positive"),
    "sigma-nan": ("soxs-mdark:\n    frame-clipping-sigma: .nan\n", "frame-clipping-sigma"),
    "iterations-fraction": ("soxs-mdark:\n    frame-clipping-iterations: 2.5\n", "integer"),
    "iterations-string": ("soxs-mdark:\n    frame-clipping-iterations: '3'\n", "integer"),
    "ranges-not-mapping": ("soxs-mdark:\n    qc-acceptable-ranges: 3\n", "mapping"),
    "ranges-unknown-name": (
        "soxs-mdark:\n    qc-acceptable-ranges:\n        mbias-median: [0, 1]\n",
        "mbias-median",
    ),
    "ranges-one-value": (
        "soxs-mdark:\n    qc-acceptable-ranges:\n        raw-ron: [0]\n",
        "raw-ron",
    ),
    "ranges-word": (
        "soxs-mdark:\n    qc-acceptable-ranges:\n        raw-ron: [0, lots]\n",
        "raw-ron",
    ),
    "ranges-reversed": (
        "soxs-mdark:\n    qc-acceptable-ranges:\n        raw-ron: [30, 0]\n",
        "raw-ron",
    ),
    "arm-ranges-unknown-name": (
        "soxs-mdark:\n    vis:\n        qc-acceptable-ranges:\n            foo: [0, 1]\n",
        "foo",
    ),
    "bad-instrument": ("instrument: foo\n", "instrument"),
    "bad-numerics": ("numerics: fast\n", "numerics"),
    "invalid-yaml": ("soxs-mdark: [unclosed\n", "not valid YAML"),
    "invalid-yaml-tab": ("soxs-mdark:\n\tframe-clipping-sigma: 3\n", "not valid YAML"),
    "top-level-list": ("- soxs-mdark\n- 3\n", "mapping"),
    "top-level-scalar": ("just words\n", "mapping"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_settings_file(case: str, tmp_path: Path) -> None:
    text, fragment = BAD_FILES[case]
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings("soxs", "VIS", path)
    message = str(info.value)
    assert message and "\n" not in message, message
    assert fragment.lower() in message.lower(), message
    assert isinstance(info.value, MdarkError)


def test_bad_value_in_another_arms_block(tmp_path: Path) -> None:
    """A file is validated whole: a typo in the VIS block fails a NIR reduction too.

    Otherwise the NIR products of a night are made and the error surfaces only at the
    first VIS set, after a settings file was already accepted.
    """
    path = write(tmp_path, "soxs-mdark:\n    vis:\n        frame-clipping-sigma: three\n")
    with pytest.raises(SettingsError) as info:
        load_settings("soxs", "VIS", path)
    assert "\n" not in str(info.value)
    with pytest.raises(SettingsError):
        load_settings("soxs", "NIR", path)


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"absent\.yaml") as info:
        load_settings("soxs", "VIS", tmp_path / "absent.yaml")
    assert "\n" not in str(info.value)


def test_settings_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings("soxs", "VIS", tmp_path)
    assert "\n" not in str(info.value)


def test_settings_file_not_utf8(tmp_path: Path) -> None:
    """A binary file (a FITS frame passed to -s by mistake) is a SettingsError, not a crash."""
    path = tmp_path / "settings.yaml"
    path.write_bytes(b"SIMPLE  =  T\n\xff\xfe\x00\x81\x9c\n")
    with pytest.raises(SettingsError) as info:
        load_settings("soxs", "VIS", path)
    assert "\n" not in str(info.value)
