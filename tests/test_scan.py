"""An archive's scan and a workspace's up-to-date checks: parallel, cheap, and as honest as
the serial ones they replace.

The scan's oracle is the serial scan of every file by astropy (the builtin ``map`` and
:func:`mdark_dask.io.fits.read_scan_astropy`): the batched scan in threads, with the plain
and gzip readers, must give the same sets and the same left-out list, over random trees
of plain, gzipped, truncated and non-dark frames with symbolic links (loops included) and
a workspace inside. Frames are simulated once; a tree's files are their headers over
sparse data (the scan never reads pixels), so a tree of many files costs little disk.

The up-to-date checks are tested on real products, made by the command: a product cut by
one block, one replaced by a file of the same size with another header, and one whose
companion is missing are remade; ``--verify`` finds pixels changed under intact headers.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mdark_dask.io.fits as fitsio
from mdark_dask.io.header import BLOCK, read_gzip_header, read_layout
from mdark_dask.plan.frameset import SCAN_KEYWORDS
from mdark_dask.plan.night import NightPlan, discover, plan_night
from mdark_dask.scheduler import client_mapper, thread_mapper
from mdark_dask.simulate import DarkSetSpec, simulate_set
from tests.commands import EXE

VIS_SMALL: dict[str, Any] = {"binning": (2, 2), "shape": (2048, 429)}
HYP = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Simulated frames, written once: three darks of two exposure times and a bias."""
    root = tmp_path_factory.mktemp("sources")
    darks5 = simulate_set(DarkSetSpec("soxs", "VIS", 3, 5.0, seed=1, **VIS_SMALL), root / "a")
    darks9 = simulate_set(
        DarkSetSpec("soxs", "VIS", 3, 9.0, seed=2, start="2026-01-11T09:00:00.000", **VIS_SMALL),
        root / "b",
    )
    bias = simulate_set(
        DarkSetSpec("soxs", "VIS", 1, 0.0, dpr_type="BIAS", seed=3, **VIS_SMALL), root / "c"
    )
    frames = {f"d5_{i}": p for i, p in enumerate(darks5)}
    frames |= {f"d9_{i}": p for i, p in enumerate(darks9)}
    frames["bias"] = bias[0]
    return frames


def sparse_copy(source: Path, dest: Path, kind: str) -> None:
    """``source``'s header over zero pixels of the same length (a sparse file), written
    plain or gzipped, whole or cut short."""
    header, length = read_layout_of(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind.startswith("plain"):
        with open(dest, "wb") as f:
            f.write(header)
            f.truncate(length if kind == "plain" else length - BLOCK)
        return
    body = header + bytes(length - len(header))
    packed = gzip.compress(body, compresslevel=1, mtime=0)
    dest.write_bytes(packed if kind == "gzip" else packed[: len(packed) // 2])


@functools.cache
def read_layout_of(path: Path) -> tuple[bytes, int]:
    """A plain frame's header bytes and its file length."""
    with fits.open(path) as hdul:
        offset = hdul.fileinfo(0)["datLoc"]
    data = path.read_bytes()
    return data[:offset], len(data)


KINDS = ["plain", "plain", "gzip", "gzip", "plain-cut", "gzip-cut"]

files = st.lists(
    st.tuples(
        st.integers(0, 3),  # directory
        st.sampled_from(["d5_0", "d5_1", "d5_2", "d9_0", "d9_1", "d9_2", "bias"]),
        st.sampled_from(KINDS),
    ),
    min_size=1,
    max_size=14,
)
links = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(["root", "up", "outside", "ws", "self"])),
    max_size=4,
)


def build(
    root: Path, sources: dict[str, Path], chosen: list[tuple[int, str, str]], linked: Any
) -> tuple[Path, Path, Path]:
    """A raw tree under ``root/raw`` (four directories, nested), a workspace inside it
    holding a product-like file, and an outside directory some links point to."""
    raw, outside = root / "raw", root / "outside"
    dirs = [raw, raw / "n1", raw / "n1" / "deep", raw / "n2"]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    ws = raw / "ws"
    sparse_copy(sources["d5_0"], ws / "products" / "soxs_mdark" / "P.fits", "plain")
    sparse_copy(sources["d9_0"], outside / "o.fits", "plain")
    sparse_copy(sources["d9_1"], outside / "p.fits.gz", "gzip")
    for n, (where, name, kind) in enumerate(chosen):
        suffix = ".fits.gz" if kind.startswith("gzip") else ".fits"
        sparse_copy(sources[name], dirs[where] / f"f{n}_{name}{suffix}", kind)
    for n, (where, target) in enumerate(linked):
        to = {"root": raw, "up": dirs[where].parent, "outside": outside, "ws": ws}.get(
            target, dirs[where]
        )
        os.symlink(to, dirs[where] / f"link{n}", target_is_directory=True)
    return raw, ws, outside


def summary(plan: NightPlan) -> tuple[Any, ...]:
    return (
        [(s.name, s.frames, s.bad) for s in plan.sets],
        [(k.what, k.reason) for k in plan.skipped],
        plan.others,
    )


@HYP
@given(chosen=files, linked=links)
def test_the_parallel_scan_equals_the_serial_astropy_scan(
    chosen: list[tuple[int, str, str]],
    linked: list[tuple[int, str]],
    sources: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path_factory.mktemp("tree")
    raw, ws, _ = build(root, sources, chosen, linked)
    new = plan_night([str(raw)], mapper=thread_mapper(3), exclude=[str(ws)])
    with monkeypatch.context() as patch:
        patch.setattr(fitsio, "_read_scan", fitsio.read_scan_astropy)
        old = plan_night([str(raw)], mapper=map, exclude=[str(ws)])
    assert summary(new) == summary(old)
    # the workspace is never searched, whatever links lead to it
    assert not any(str(ws) in k.what for k in new.skipped)
    assert not any(str(ws) in f.path for s in new.sets for f in s.frames)
    shutil.rmtree(root)


@HYP
@given(chosen=files, linked=links)
def test_discover_finds_every_file_once_by_its_directory(
    chosen: list[tuple[int, str, str]],
    linked: list[tuple[int, str]],
    sources: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Every FITS file of the real tree and of the linked outside directory, each
    directory searched once (loops end), the workspace left out."""
    root = tmp_path_factory.mktemp("tree")
    raw, ws, outside = build(root, sources, chosen, linked)
    found, _, missing = discover([str(raw)], [str(ws)])
    assert missing == []
    resolved = [os.path.realpath(p) for p in found]
    assert len(resolved) == len(set(resolved))  # no directory searched twice
    expected = {
        os.path.realpath(os.path.join(top, f))
        for top, _, names in os.walk(raw)  # follows no links
        for f in names
        if not Path(top, f).is_relative_to(ws)
    }
    if any(t == "outside" or (t == "up" and w == 0) for w, t in linked):
        expected |= {str(p.resolve()) for p in outside.iterdir()}
    assert set(resolved) == expected
    shutil.rmtree(root)


def test_gzip_reader_agrees_with_astropy(sources: dict[str, Path], tmp_path: Path) -> None:
    """A gzipped frame read from its first blocks: what astropy reads from the whole."""
    for name in ("d5_0", "bias"):
        whole = tmp_path / f"{name}.fits.gz"
        whole.write_bytes(gzip.compress(sources[name].read_bytes(), compresslevel=1))
        got = read_gzip_header(str(whole), SCAN_KEYWORDS)
        assert got is not None and got.compressed
        reference = fitsio.read_scan_astropy(str(whole), SCAN_KEYWORDS)
        assert (0, got.shape, got.bitpix, got.bzero, got.bscale, got.data_offset, True) == (
            reference[:7]
        )
        assert got.cards == reference[7]


@pytest.mark.parametrize("case", ["cut", "cut by a block", "two members", "grown", "not gzip"])
def test_gzip_reader_leaves_doubtful_streams_to_astropy(
    case: str, sources: dict[str, Path], tmp_path: Path
) -> None:
    """A stream whose trailer does not give the length the header implies: astropy
    decides (and finds a cut stream unreadable, as before)."""
    data = sources["d5_0"].read_bytes()
    packed = gzip.compress(data, compresslevel=1)
    path = tmp_path / "f.fits.gz"
    path.write_bytes(
        {
            "cut": packed[: len(packed) // 2],
            "cut by a block": gzip.compress(data[:-BLOCK], compresslevel=1),
            "two members": gzip.compress(data[:BLOCK]) + gzip.compress(data[BLOCK:]),
            "grown": gzip.compress(data + bytes(BLOCK), compresslevel=1),
            "not gzip": data,
        }[case]
    )
    assert read_gzip_header(str(path), SCAN_KEYWORDS) is None
    if case == "cut":
        with pytest.raises(fitsio.InputError, match="not a readable FITS file"):
            fitsio.scan_frame(path, SCAN_KEYWORDS)
    else:  # what astropy makes of it (a complete stream of too few pixels reads)
        frame = fitsio.scan_frame(path, SCAN_KEYWORDS)
        reference = fitsio.read_scan_astropy(str(path), SCAN_KEYWORDS)
        assert (frame.hdu, frame.shape, frame.cards) == (0, reference[1], reference[7])


def test_a_scan_on_a_clusters_workers_equals_the_local_one(sources: dict[str, Path]) -> None:
    """The same batches, read by the workers of a real local cluster."""
    from mdark_dask.cluster import connect

    raw = next(iter(sources.values())).parent.parent
    local = plan_night([str(raw)], mapper=map)
    with connect("local") as conn:
        assert conn.client is not None
        remote = plan_night([str(raw)], mapper=client_mapper(conn.client))
    assert summary(remote) == summary(local)
    assert len(local.sets) == 2


# --------------------------------------------------------------------------------------------
# up-to-date checks of real products


@pytest.fixture(scope="module")
def made(
    sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path]]:
    """A night of two sets reduced once by the command: (raw directory, workspace)."""
    root = tmp_path_factory.mktemp("made")
    raw = root / "raw"
    for name, path in sources.items():
        if name != "bias":
            (raw / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, raw / path.parent.name / path.name)
    code = night_command(raw, root / "ws").returncode
    assert code == 0
    yield raw, root / "ws"


def night_command(raw: Path, ws: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [EXE, "night", str(raw), "-o", str(ws), "--cluster", "sync", "--no-plots"]
    return subprocess.run([*args, *extra], capture_output=True, text=True, check=False)


def statuses(ws: Path) -> dict[str, str]:
    import json

    report = json.loads((ws / "night_report.json").read_text(encoding="utf-8"))
    return {s["name"]: s["status"] for s in report["sets"]}


def workspace_copy(made: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    raw, ws = made
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    masters = sorted(
        p
        for p in (copy / "products" / "soxs_mdark").glob("*.fits")
        if not p.stem.endswith(("_HOTPIX", "_NOISE"))
    )
    assert len(masters) == 2
    return raw, copy, masters


def test_products_verify_from_their_headers(made: tuple[Path, Path]) -> None:
    _, ws = made
    for path in (ws / "products" / "soxs_mdark").glob("*.fits"):
        assert read_layout(str(path)) is not None, path


@pytest.mark.parametrize(
    "damage",
    [
        "cut by a block",
        "cut where its last HDU begins",
        "grown by a block",
        "header replaced",
        "hot-pixel map missing",
    ],
)
def test_a_damaged_product_is_remade(damage: str, made: tuple[Path, Path], tmp_path: Path) -> None:
    raw, ws, masters = workspace_copy(made, tmp_path)
    victim, other = masters
    whole = victim.read_bytes()
    if damage == "cut by a block":
        victim.write_bytes(whole[:-BLOCK])
    elif damage == "cut where its last HDU begins":
        # a complete FITS file of one HDU fewer: every length and checksum still agrees
        with fits.open(victim) as hdul:
            last = hdul.fileinfo(len(hdul) - 1)["hdrLoc"]
        victim.write_bytes(whole[:last])
        assert read_layout(str(victim)) is not None
    elif damage == "grown by a block":
        victim.write_bytes(whole + bytes(BLOCK))
    elif damage == "header replaced":
        # same size, one header card changed, the file otherwise intact
        at = whole.index(b"NCOMBINE=")
        card = whole[at : at + 80]
        victim.write_bytes(whole[:at] + card.replace(b"3 /", b"4 /") + whole[at + 80 :])
        assert len(victim.read_bytes()) == len(whole) and victim.read_bytes() != whole
    else:
        victim.with_name(f"{victim.stem}_HOTPIX.fits").unlink()
    result = night_command(raw, ws)
    assert result.returncode == 0, result.stderr
    assert statuses(ws) == {victim.stem: "done", other.stem: "up to date"}
    assert victim.read_bytes() == whole


def test_a_product_from_other_frames_is_remade(made: tuple[Path, Path], tmp_path: Path) -> None:
    """A complete product swapped for another set's (same size, intact checksums): its
    recorded fingerprint is not the plan's."""
    raw, ws, masters = workspace_copy(made, tmp_path)
    first, second = masters
    whole = first.read_bytes()
    assert len(whole) == second.stat().st_size
    for suffix in ("", "_HOTPIX", "_NOISE"):
        shutil.copy(
            second.with_name(f"{second.stem}{suffix}.fits"),
            first.with_name(f"{first.stem}{suffix}.fits"),
        )
    result = night_command(raw, ws)
    assert result.returncode == 0, result.stderr
    assert statuses(ws) == {first.stem: "done", second.stem: "up to date"}
    assert first.read_bytes() == whole


def test_verify_finds_pixels_changed_under_intact_headers(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    """Without ``--verify`` the headers alone decide; with it every pixel is read."""
    raw, ws, masters = workspace_copy(made, tmp_path)
    victim = masters[0]
    whole = victim.read_bytes()
    flipped = bytearray(whole)
    flipped[-BLOCK - 100] ^= 0xFF  # a byte of ERRS's data, the headers untouched
    victim.write_bytes(bytes(flipped))
    result = night_command(raw, ws)
    assert result.returncode == 0, result.stderr
    assert set(statuses(ws).values()) == {"up to date"}
    result = night_command(raw, ws, "--verify")
    assert result.returncode == 0, result.stderr
    assert statuses(ws) == {victim.stem: "done", masters[1].stem: "up to date"}
    assert victim.read_bytes() == whole


def test_mdark_verify_remakes_a_damaged_product(made: tuple[Path, Path], tmp_path: Path) -> None:
    """``mdark`` keeps an existing product; with ``--verify`` it reads it, and makes it
    again when a pixel changed, or says it verifies."""
    _, ws, masters = workspace_copy(made, tmp_path)
    victim = masters[0]
    sof = ws / "sof" / f"{victim.stem}.sof"
    whole = victim.read_bytes()
    flipped = bytearray(whole)
    flipped[-BLOCK - 100] ^= 0xFF
    victim.write_bytes(bytes(flipped))
    base = [EXE, "mdark", str(sof), "-o", str(ws), "--no-plots"]

    kept = subprocess.run(base, capture_output=True, text=True, check=False)
    assert kept.returncode == 0, kept.stderr
    assert "already exists" in kept.stdout
    assert victim.read_bytes() == bytes(flipped)

    remade = subprocess.run([*base, "--verify"], capture_output=True, text=True, check=False)
    assert remade.returncode == 0, remade.stderr
    assert "does not verify" in remade.stdout
    assert victim.read_bytes() == whole

    again = subprocess.run([*base, "--verify"], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "up to date and verifies" in again.stdout


# --------------------------------------------------------------------------------------------
# the header-only layout check, against astropy's checksums


@HYP
@given(
    shapes=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 37)), min_size=1, max_size=3),
    dtype=st.sampled_from(["u1", ">i2", ">f4", ">f8"]),
    where=st.floats(0, 1, exclude_max=True),
    flip=st.integers(1, 255),
)
def test_read_layout_sees_any_changed_header_byte_and_any_block(
    shapes: list[tuple[int, int]], dtype: str, where: float, flip: int, tmp_path: Path
) -> None:
    import numpy as np
    from hypothesis import assume

    from mdark_dask.io.fits import write_atomic

    # a last HDU without data is one header block: cut off, it leaves a complete file of
    # one HDU fewer, which no length can tell (a product's last HDU always has data)
    assume(shapes[-1][0] > 0)
    hdus: list[Any] = [fits.PrimaryHDU(np.ones(shapes[0], dtype=dtype))]
    hdus += [fits.ImageHDU(np.arange(a * b).reshape(a, b).astype(dtype)) for a, b in shapes[1:]]
    path = write_atomic(fits.HDUList(hdus), tmp_path / "p.fits")
    headers = read_layout(str(path))
    assert headers is not None and len(headers) == len(shapes)
    whole = path.read_bytes()
    # a byte of a header changed (any value, any header)
    starts = []
    with fits.open(path) as hdul:
        for i in range(len(hdul)):
            info = hdul.fileinfo(i)
            starts.append((info["hdrLoc"], info["datLoc"]))
    first, last = starts[int(where * len(starts))]
    at = first + int(where * (last - first))
    changed = bytearray(whole)
    changed[at] ^= flip
    path.write_bytes(bytes(changed))
    assert read_layout(str(path)) is None
    for cut in (whole[:-BLOCK], whole + bytes(BLOCK), whole[:-1]):
        path.write_bytes(cut)
        assert read_layout(str(path)) is None
