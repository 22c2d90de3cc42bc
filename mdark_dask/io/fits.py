"""The only place that touches FITS files: header scan, lazy pixel reader, atomic writes
(with :mod:`mdark_dask.io.header`, which reads plain headers without astropy).

A raw frame is scanned once for its header (no pixels). Its pixels are read later, inside
dask tasks, by a :class:`FrameReader`: a frozen value holding a path, never an open file,
so it pickles to any worker and is safe to use from many threads. Uncompressed frames are
memory-mapped directly, which also works for uint16 frames stored with ``BZERO = 32768``
(astropy will not memory-map those: it must scale them); only the rows a task needs are
read. Compressed frames fall back to astropy's reader.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mdark_dask.errors import InputError, OutputError
from mdark_dask.io.header import read_fast_header
from mdark_dask.io.prepare import prepare_window

if TYPE_CHECKING:
    from astropy.io import fits

F32 = npt.NDArray[np.float32]

#: File names taken for FITS frames (astropy reads gzip and bzip2 transparently).
FITS_SUFFIXES = tuple(
    base + comp for base in (".fits", ".fit", ".fts") for comp in ("", ".gz", ".fz", ".bz2", ".z")
)


def is_fits_name(name: str) -> bool:
    """Whether a file name looks like a FITS frame (hidden files excluded)."""
    base = os.path.basename(name)
    return base.lower().endswith(FITS_SUFFIXES) and not base.startswith(".")


#: The reason a frame with fewer data bytes than its header announces is left out.
TRUNCATED = "{path}: truncated FITS file (the pixel data are incomplete)"

# BITPIX -> big-endian on-disk dtype
_DISK_DTYPE = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
# the pseudo-unsigned offsets astropy maps to unsigned integers exactly
# (not 64: float64 cannot hold int64 + 2**63 exactly; astropy reads those)
_UNSIGNED_ZERO = {16: 2**15, 32: 2**31}


@dataclass(frozen=True)
class RawFrame:
    """What the header scan learned about one raw frame.

    Attributes
    ----------
    path : str
        Absolute path.
    hdu : int
        Index of the image HDU (0 for raw ESO frames, 1 for tile-compressed ``.fz``).
    shape : tuple of int
        Raw (rows, cols).
    bitpix : int
        FITS BITPIX.
    offset : int or None
        Byte offset of the pixel data when the frame can be memory-mapped, else None.
    bzero, bscale : float
        FITS scaling of the stored integers (applied exactly as astropy does).
    cards : tuple of (keyword, value)
        The header cards the recipe reads (see :meth:`get`), in header order.
    size, mtime_ns : int
        File size and modification time when scanned (for product fingerprints).
    """

    path: str
    hdu: int
    shape: tuple[int, int]
    bitpix: int
    offset: int | None
    bzero: float
    bscale: float
    cards: tuple[tuple[str, Any], ...] = field(repr=False)
    size: int = 0
    mtime_ns: int = 0

    def get(self, keyword: str, default: Any = None) -> Any:
        """The value of a header keyword, or ``default`` when absent."""
        for key, value in self.cards:
            if key == keyword:
                return value
        return default

    @property
    def name(self) -> str:
        """File name without directories."""
        return os.path.basename(self.path)


def _image_hdu(hdul: fits.HDUList) -> int:
    from astropy.io import fits

    for index, hdu in enumerate(hdul):
        if isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU) and (
            hdu.header.get("NAXIS", 0) == 2 or isinstance(hdu, fits.CompImageHDU)
        ):
            return index
    raise InputError("holds no 2-D image")


def merged_header(hdul: fits.HDUList, hdu: int) -> fits.Header:
    """Primary header, with the image extension's cards laid over it when they differ."""
    header = hdul[0].header.copy()
    if hdu:
        for card in hdul[hdu].header.cards:
            if card.keyword not in ("XTENSION", "PCOUNT", "GCOUNT", "", "COMMENT", "HISTORY"):
                header[card.keyword] = (card.value, card.comment)
        header.remove("EXTEND", ignore_missing=True)
    return header


def _read_scan(
    path: str, keywords: tuple[str, ...]
) -> tuple[int, tuple[int, int], int, float, float, int, bool, tuple[tuple[str, Any], ...]]:
    """What :func:`scan_frame` reads from the file, with astropy's warnings silenced:
    image HDU, shape, BITPIX, BZERO, BSCALE, data offset, compressed, the cards asked.

    A plain frame (one uncompressed image in the primary HDU, ordinary cards), gzipped
    or not, is read without astropy (:func:`mdark_dask.io.header.read_fast_header`, the
    file opened once), so scanning does not wait for astropy's import; anything else is
    read by astropy."""
    plain = read_fast_header(path, keywords)
    if plain is not None:
        return (
            0,
            plain.shape,
            plain.bitpix,
            plain.bzero,
            plain.bscale,
            plain.data_offset,
            plain.compressed,
            plain.cards,
        )
    return read_scan_astropy(path, keywords)


def read_scan_astropy(
    path: str, keywords: tuple[str, ...]
) -> tuple[int, tuple[int, int], int, float, float, int, bool, tuple[tuple[str, Any], ...]]:
    """What :func:`_read_scan` returns, always read by astropy (for any FITS file)."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            hdu = _image_hdu(hdul)
            header = merged_header(hdul, hdu)
            info = hdul.fileinfo(hdu)
            compressed = isinstance(hdul[hdu], fits.CompImageHDU) or bool(
                info is not None
                and info.get("file") is not None
                and getattr(info["file"], "compression", None)
            )
            image_header = hdul[hdu].header
            # astropy >= 6 shows a compressed HDU's image header (NAXIS, BITPIX);
            # older releases only had the Z* keywords
            z = "Z" if "NAXIS1" not in image_header and "ZNAXIS1" in image_header else ""
            shape = (int(image_header[f"{z}NAXIS2"]), int(image_header[f"{z}NAXIS1"]))
            bitpix = int(image_header[f"{z}BITPIX"])
            bzero = float(image_header.get("BZERO", 0.0))
            bscale = float(image_header.get("BSCALE", 1.0))
            data_loc = int(info["datLoc"]) if info else 0
        cards = tuple((k, header[k]) for k in keywords if k in header)
    return hdu, shape, bitpix, bzero, bscale, data_loc, compressed, cards


def scan_frame(path: str | Path, keywords: tuple[str, ...]) -> RawFrame:
    """Read one frame's header (no pixels) and check the file holds all its pixels.

    Raises
    ------
    InputError
        Not a FITS file, no 2-D image, or truncated (fewer data bytes than the header
        announces: soxspipe's "buffer is too small").
    """
    path = os.path.abspath(path)
    for attempt in (1, 2):
        try:
            hdu, shape, bitpix, bzero, bscale, data_loc, compressed, cards = _read_scan(
                path, keywords
            )
            break
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory, not a FITS file") from None
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        except Warning as exc:
            # astropy's warnings are silenced in _read_scan, but the filters are
            # process-wide and not thread-safe (an import in another thread may enter and
            # leave catch_warnings meanwhile): where warnings are errors, one may arrive
            # raised. A truncated file says so; anything else is read once more.
            if "truncated" in str(exc):
                raise InputError(TRUNCATED.format(path=path)) from None
            if attempt == 2:
                raise InputError(f"{path}: not a readable FITS file") from None
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            raise InputError(f"{path}: not a readable FITS file") from None
    if not compressed:
        needed = data_loc + shape[0] * shape[1] * abs(bitpix) // 8
        if os.path.getsize(path) < needed:
            raise InputError(TRUNCATED.format(path=path))
    exact = bscale == 1.0 and (bzero == 0.0 or bzero == _UNSIGNED_ZERO.get(bitpix))
    offset = data_loc if (not compressed and exact and bitpix in _DISK_DTYPE) else None
    stat = os.stat(path)
    return RawFrame(
        path, hdu, shape, bitpix, offset, bzero, bscale, cards, stat.st_size, stat.st_mtime_ns
    )


def read_header(path: str | Path) -> fits.Header:
    """The full header a raw frame's image is described by (for the product header)."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            return merged_header(hdul, _image_hdu(hdul))


def write_image(
    path: str | Path, data: npt.NDArray[Any], cards: Sequence[tuple[str, object, str]]
) -> Path:
    """Write one image as a primary HDU with ``cards`` (keyword, value, comment) in order,
    long or spaced ESO keywords as HIERARCH cards (a later card of a keyword replaces an
    earlier one), overwriting ``path``: how the simulator writes raw frames."""
    from astropy.io import fits

    header = fits.Header()
    for key, value, comment in cards:
        name = f"HIERARCH {key}" if len(key) > 8 or " " in key else key
        header[name] = (value, comment)
    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True)
    return Path(path)


@dataclass(frozen=True)
class FrameReader:
    """Lazy prepared frame: rotated, trimmed and in electrons, read on indexing.

    The conversion is one compiled pass from the stored values to float32 electrons
    (:func:`mdark_dask.io.prepare.prepare_window`; the numbers of
    :func:`mdark_dask.numerics.steps.electrons` after the pseudo-unsigned offset), so reading
    allocates nothing but its result.

    Has ``shape``, ``dtype``, ``ndim`` and ``__getitem__``, so ``dask.array.from_array``
    can wrap it; dask decides the chunks.
    """

    raw: RawFrame
    rotation_k: int
    region: tuple[int, int, int, int]
    gain: float

    @property
    def shape(self) -> tuple[int, int]:
        """Prepared (trimmed) shape."""
        rs, re_, cs, ce = self.region
        return re_ - rs, ce - cs

    dtype = np.dtype(np.float32)
    ndim = 2

    def _raw_values(self) -> npt.NDArray[Any]:
        """The raw image as stored: a memory map, or astropy's scaled data when needed."""
        raw = self.raw
        try:
            if raw.offset is not None:
                # the map is released when its last view is garbage collected
                return np.memmap(
                    raw.path,
                    dtype=_DISK_DTYPE[raw.bitpix],
                    mode="r",
                    offset=raw.offset,
                    shape=raw.shape,
                )
            from astropy.io import fits

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(raw.path, memmap=False) as hdul:
                    return np.asarray(hdul[raw.hdu].data)
        except (OSError, TypeError, ValueError, Warning) as exc:  # Warning: see scan_frame
            raise InputError(f"{raw.path}: cannot read pixel data ({exc})") from None

    def __getitem__(self, key: Any) -> npt.NDArray[np.float32]:
        """Prepared pixels ``E = float32(float64(raw) * gain)`` of a window: rotated,
        trimmed and scaled as soxspipe prepares a raw frame."""
        return self.read(key)

    def stored(self) -> npt.NDArray[Any]:
        """The stored image (a memory map, or the decoded pixels of a compressed frame),
        to hand to several :meth:`read` calls so it is mapped or decoded once."""
        return np.ascontiguousarray(self._raw_values())

    def read(
        self,
        key: Any,
        out: npt.NDArray[np.float32] | None = None,
        stored: npt.NDArray[Any] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Read a window (slices or integers per axis) into ``out`` (allocated when None),
        from ``stored`` (:meth:`stored`) when given.

        One pass over the stored values of the window, whatever its rotation, steps and
        byte order (:func:`mdark_dask.io.prepare.prepare_window`).
        """
        parts = key if isinstance(key, tuple) else (key,)
        drop = tuple(i for i, k in enumerate(parts) if isinstance(k, int | np.integer))
        window = tuple(
            slice(int(k), int(k) + 1 or None) if i in drop else k for i, k in enumerate(parts)
        )
        if not all(isinstance(k, slice) or k is Ellipsis for k in window):
            # advanced indexing: the whole frame, indexed as numpy does
            picked = np.asarray(self.read(slice(None))[window], dtype=np.float32)
            if out is None:
                return picked
            out[...] = picked
            return out
        values = stored if stored is not None else self.stored()
        flat, native, view = self._layout(values, window)
        result = out if out is not None else np.empty(view.shape, dtype=np.float32)
        if result.shape != view.shape or result.dtype != np.float32:
            raise ValueError(f"out is {result.dtype}{result.shape}, not float32{view.shape}")
        if view.size:
            size = native.itemsize
            first = view.__array_interface__["data"][0] - flat.__array_interface__["data"][0]
            self._prepare(
                flat,
                first // size,
                view.strides[0] // size,
                view.strides[1] // size,
                not values.dtype.isnative,
                result,
            )
        return result.reshape([n for i, n in enumerate(result.shape) if i not in drop])

    def _layout(
        self, values: npt.NDArray[Any], window: tuple[Any, ...]
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
        """(the stored words flat, in native byte order; as an image; the prepared
        ``window`` of it as a strided view: rotated, trimmed, sliced)."""
        rs, re_, cs, ce = self.region
        # the stored words in native byte order (swapped back in the kernel)
        native = values.view(values.dtype.newbyteorder("="))
        view = np.rot90(native, self.rotation_k)[rs:re_, cs:ce][window]
        return np.asarray(native).reshape(-1), native, view

    def _prepare(
        self,
        flat: npt.NDArray[Any],
        start: int,
        row_step: int,
        col_step: int,
        swap: bool,
        out: npt.NDArray[np.float32],
    ) -> None:
        """:func:`prepare_window` with this frame's scaling; a frame truncated after the
        scan is an :class:`InputError`."""
        offset = self.raw.bzero if self.raw.offset is not None else 0.0
        try:
            prepare_window(
                flat, start, row_step, col_step, swap, float(offset), float(self.gain), out
            )
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.raw.path}: cannot read pixel data ({exc})") from None

    def row_reader(self, stored: npt.NDArray[Any]) -> Callable[[int, F32], None]:
        """``fill(y, out)``: prepared rows ``y`` to ``y + len(out) - 1`` (all columns) into
        ``out``, from ``stored`` (:meth:`stored`); one kernel call, no Python per pixel
        row, for a task that reads its strip a few rows at a time."""
        flat, native, view = self._layout(stored, (slice(None), slice(None)))
        size = native.itemsize
        base = (view.__array_interface__["data"][0] - flat.__array_interface__["data"][0]) // size
        row_step, col_step = view.strides[0] // size, view.strides[1] // size
        swap = not stored.dtype.isnative
        ny, nx = view.shape

        def fill(y: int, out: F32) -> None:
            if not (y >= 0 and y + out.shape[0] <= ny and out.shape[1:] == (nx,)):
                raise ValueError(f"rows {y}..{y + out.shape[0]} of {ny}, {out.shape[1:]} columns")
            if out.size:
                self._prepare(flat, base + y * row_step, row_step, col_step, swap, out)

        return fill


@dataclass(frozen=True)
class StackReader:
    """Lazy (frame, y, x) stack of prepared frames, all of one shape."""

    frames: tuple[FrameReader, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, rows, cols)."""
        return (len(self.frames), *self.frames[0].shape)

    dtype = np.dtype(np.float32)
    ndim = 3

    def __getitem__(self, key: tuple[Any, ...]) -> npt.NDArray[np.float32]:
        """Read a window of every selected frame; one file open per frame and call."""
        fkey, *rest = key if isinstance(key, tuple) else (key,)
        if not isinstance(fkey, slice):
            return self.frames[int(fkey)].read(tuple(rest))
        picked = self.frames[fkey]
        window = tuple(rest)
        first = picked[0].read(window)
        out = np.empty((len(picked), *first.shape), dtype=np.float32)
        out[0] = first
        for i, reader in enumerate(picked[1:], start=1):
            reader.read(window, out=out[i])
        return out

    def row_blocks(self, rows: tuple[int, int], step: int) -> Iterator[tuple[int, F32]]:
        """Rows ``rows[0]`` to ``rows[1] - 1`` of every frame, ``step`` rows at a time:
        ``(first row, block of shape (frames, k, cols))`` pairs, top to bottom.

        Every block is a view of one buffer, overwritten by the next: a task reads and
        clips a few megabytes at a time, in cache, instead of allocating (and having the
        kernel zero) its whole strip. Memory-mapped frames are mapped once per call;
        frames that must be decoded (compressed) are read in one block, one at a time.
        """
        n, _, nx = self.shape
        first, stop = rows
        mapped = all(f.raw.offset is not None for f in self.frames)
        span = max(stop - first, 0)
        step = max(1, step) if mapped else max(1, span)
        buffer = np.empty(n * min(step, span) * nx, dtype=np.float32)
        if not mapped:  # one block, each frame decoded and dropped in turn
            if span:
                block = buffer.reshape(n, span, nx)
                for i, frame in enumerate(self.frames):
                    frame.read((slice(first, stop), slice(None)), out=block[i])
                yield first, block
            return
        fills = [f.row_reader(f.stored()) for f in self.frames]
        for y in range(first, stop, step):
            k = min(step, stop - y)
            block = buffer[: n * k * nx].reshape(n, k, nx)
            for i, fill in enumerate(fills):
                fill(y, block[i])
            yield y, block


def write_atomic(hdul: fits.HDUList, dest: Path) -> Path:
    """Write an HDU list with checksums to a temporary name, then rename it into place.

    A run killed mid-write leaves no partial product. Identical HDU lists give identical
    files (the checksum cards carry no time stamp).
    """
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    # leftovers of earlier runs killed mid-write (their writer is gone)
    for stale in dest.parent.glob(f".{dest.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        from astropy.io import fits

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdul.verify("silentfix")
            for hdu in hdul:
                # a fixed comment: astropy's default stamps the write time, which would
                # make identical products differ byte for byte
                add_checksum(hdu, CHECKSUM_COMMENT)
            hdul.writeto(tmp, overwrite=True, output_verify="ignore")
        os.replace(tmp, dest)
    except BaseException as exc:
        # interrupted or failed: never leave the temporary file behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from None
        raise
    return dest


#: The comment of the CHECKSUM and DATASUM cards (astropy's default is the write time).
CHECKSUM_COMMENT = "data unit checksum"


def add_checksum(hdu: Any, when: str) -> None:
    """Set the CHECKSUM and DATASUM cards of ``hdu`` (astropy's ``hdu.add_checksum``),
    with ``when`` as their comment.

    :func:`write_atomic` stamps every HDU through here with :data:`CHECKSUM_COMMENT`: a
    fixed comment rather than astropy's default, the time of the write, so that identical
    products are identical files.

    Parameters
    ----------
    hdu : astropy.io.fits HDU
        The HDU to stamp.
    when : str
        The comment of both cards.
    """
    hdu.add_checksum(when=when)
