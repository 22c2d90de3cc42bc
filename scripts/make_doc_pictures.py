"""Make the README's pictures: one QC plot of each kind, from a simulated SOXS VIS set.

Usage::

    .venv/bin/python scripts/make_doc_pictures.py [--out docs/pictures]

Simulates five raw darks of 600 s (seeded: the same frames every time), reduces them
with ``mdark-dask mdark`` as a user would, and copies the five QC plots under ``--out``
with short names, each reduced to a 64-colour palette so that it stays a few tens of
kilobytes in git. A tall VIS frame is used on purpose: its plots show the aspect ratio
kept.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from mdark_dask.simulate import DarkSetSpec, simulate_set, sof_name, write_sof

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("mdark-dask"))
KINDS = ("image", "hotpix_map", "frames", "histogram", "dark_current")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "pictures")
    args = parser.parse_args()
    spec = DarkSetSpec("soxs", "VIS", n_frames=5, exptime=600.0, seed=17)
    with tempfile.TemporaryDirectory() as tmp:
        sof = write_sof(Path(tmp) / sof_name(spec), simulate_set(spec, Path(tmp) / "raw"))
        ws = Path(tmp) / "ws"
        subprocess.run([EXE, "mdark", str(sof), "-o", str(ws)], check=True, capture_output=True)
        args.out.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            (png,) = (ws / "qc" / "soxs_mdark").glob(f"*_{kind}.png")
            with Image.open(png) as image:
                small = image.convert("RGB").quantize(64, method=Image.Quantize.MEDIANCUT)
            target = args.out / f"{kind}.png"
            small.save(target, format="PNG", optimize=True)
            print(f"{target}: {target.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
