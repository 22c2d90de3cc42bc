"""Writing a product never touches the arrays it writes.

astropy writes a writeable little-endian array by byteswapping it in place and back; the
final task draws its QC plots in a second thread from the same arrays while it writes, so
the product builders hand astropy read-only views (it then writes from a swapped copy).
Before that, the noise plot of a 20-frame NIR master showed values of 3e38.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from astropy.io import fits

from mdark_dask.io.fits import write_atomic
from mdark_dask.product import build_noise_hdul


def test_builders_hand_astropy_read_only_views_of_the_callers_arrays() -> None:
    noise = np.full((7, 5), 3.0, dtype=np.float32)
    peel = noise + 1
    hdul = build_noise_hdul(noise, peel, fits.Header())
    for hdu, source in zip(hdul, (noise, peel), strict=True):
        assert not hdu.data.flags.writeable
        assert np.shares_memory(hdu.data, source)  # no copy held for the whole write
    assert noise.flags.writeable  # the caller's array itself is left as it was


def test_a_reader_thread_never_sees_the_arrays_change_while_they_are_written(
    tmp_path: Path,
) -> None:
    noise = np.full((2048, 2048), 7.5, dtype=np.float32)
    peel = np.full((2048, 2048), 6.25, dtype=np.float32)
    seen: set[float] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(float(noise[1000, 1000]))
            seen.add(float(peel[2047, 3]))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(4):
            write_atomic(build_noise_hdul(noise, peel, fits.Header()), tmp_path / "n.fits")
    finally:
        stop.set()
        watcher.join()
    assert seen == {7.5, 6.25}
    with fits.open(tmp_path / "n.fits", checksum=True) as hdul:
        assert float(hdul[0].data[1000, 1000]) == 7.5
        assert float(hdul["NOISE_PEEL"].data[2047, 3]) == 6.25
