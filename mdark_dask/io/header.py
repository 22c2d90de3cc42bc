"""Read the header of a plain raw frame without astropy; ``None`` whenever unsure.

Importing astropy is slow and holds one thread (``astropy.io.fits`` pulls in
``astropy.units``); a scan that needed it would wait for that import before it could read
a single header and start clipping. Raw darks are almost always the simplest FITS file
there is: one primary HDU holding a 2-D image, uncompressed, with ordinary cards. This
module reads exactly that case, the cards the recipe asks for and where the pixels start,
so the command's first tasks run while astropy is imported in the background for the
product writes. A gzipped plain file is read the same way from the first blocks of its
decompressed stream (:func:`read_gzip_header`), where astropy would decompress the
whole file to read a header of a few blocks.

It is deliberately narrow. Anything it does not read exactly as astropy does (compressed
files other than a gzipped plain file, an image in an extension, a card astropy would
repair or normalise, a string continued over CONTINUE cards, a value that is not a plain
FITS string, logical, integer or fixed-format real, a requested keyword found twice)
makes it return ``None``, and the caller reads the file with astropy
(:func:`mdark_dask.io.fits.scan_frame`).
``tests/test_header.py`` checks that both readers agree.

The same card reader checks a product without reading its pixels
(:func:`read_layout`): every HDU's header, its length and its own checksum.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO, Final, NamedTuple

import numpy as np

BLOCK: Final = 2880
CARD: Final = 80
END_CARD: Final = b"END".ljust(CARD)
#: Header blocks read at most before giving up on finding END (astropy reads on).
MAX_BLOCKS: Final = 64

_STANDARD_KEY = re.compile(r"[A-Z0-9_-]{1,8} *")
_HIERARCH_KEY = re.compile(r"[A-Z0-9_-]+(?: [A-Z0-9_-]+)*")
_INT = re.compile(r"[+-]?[0-9]+")
# FITS fixed-format reals (astropy's "FSC" form): no lower-case exponent, no blanks
_REAL = re.compile(r"[+-]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[DE][+-]?[0-9]+)?")
_VALID_BITPIX: Final = frozenset({8, 16, 32, 64, -32, -64})


class PlainHeader(NamedTuple):
    """What :func:`read_plain_header` found: the image's shape, BITPIX, BZERO, BSCALE,
    the byte offset of its pixels and the cards asked for, in the order asked; and
    whether the file is gzip-compressed (:func:`read_gzip_header`), where the offset is
    in the decompressed stream."""

    shape: tuple[int, int]
    bitpix: int
    bzero: float
    bscale: float
    data_offset: int
    cards: tuple[tuple[str, Any], ...]
    compressed: bool = False


class _Unsure(Exception):
    """This reader cannot be sure it reads the file as astropy would."""


def read_plain_header(path: str, keywords: tuple[str, ...]) -> PlainHeader | None:
    """The primary header of an uncompressed single-image FITS file, or ``None`` when the
    file is anything else or anything in it might be read differently by astropy.

    Parameters
    ----------
    path : str
        The file.
    keywords : tuple of str
        The keywords whose values to return (HIERARCH ones without the prefix, as
        astropy looks them up: ``"ESO DET DIT"``).

    Raises
    ------
    OSError
        The file cannot be opened or read (the caller decides what that means).
    """
    with open(path, "rb") as f:
        raw = _header_blocks(f.read)
    return _parsed(raw, keywords)


def read_gzip_header(path: str, keywords: tuple[str, ...]) -> PlainHeader | None:
    """The primary header of a gzip-compressed single-image FITS file, decompressing only
    the stream's first blocks; ``None`` when :func:`read_plain_header` would be unsure of
    the decompressed file, or the stream may not hold every pixel.

    astropy decompresses the whole stream to open such a file, which finds a stream cut
    short; here the gzip trailer stands in for that: its ISIZE (the decompressed length,
    modulo 2**32) must be the length the header implies, with or without the padding of
    the last block. A cut stream ends in compressed bytes, so it passes only by a
    2**-31 chance; anything else (more HDUs, several gzip members, a decompressed length
    of 4 GiB or more) is left to astropy. A stream damaged inside but of full length is
    found when its pixels are read.

    Raises
    ------
    OSError
        The file cannot be opened or read.
    """
    with open(path, "rb") as f:
        return _gzip_header(f, keywords) if f.read(2) == _GZIP_MAGIC else None


def read_fast_header(path: str, keywords: tuple[str, ...]) -> PlainHeader | None:
    """:func:`read_gzip_header` of a gzip file, :func:`read_plain_header` of any other,
    the file opened once.

    Raises
    ------
    OSError
        The file cannot be opened or read.
    """
    with open(path, "rb") as f:
        if f.read(2) == _GZIP_MAGIC:
            return _gzip_header(f, keywords)
        f.seek(0)
        return _parsed(_header_blocks(f.read), keywords)


def _gzip_header(f: BinaryIO, keywords: tuple[str, ...]) -> PlainHeader | None:
    """:func:`read_gzip_header` of the open file ``f`` (whose gzip magic is checked)."""
    f.seek(0, os.SEEK_END)
    if f.tell() < 18:  # the smallest gzip member: 10-byte header, 8-byte trailer
        return None
    f.seek(-4, os.SEEK_END)
    isize = int.from_bytes(f.read(4), "little")
    f.seek(0)
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as stream:
            raw = _header_blocks(stream.read)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return None
    header = _parsed(raw, keywords)
    if header is None:
        return None
    ny, nx = header.shape
    data = ny * nx * abs(header.bitpix) // 8
    needed = header.data_offset + data
    padded = header.data_offset + -(-data // BLOCK) * BLOCK
    if padded >= 2**32 or isize not in (needed, padded):
        return None
    return header._replace(compressed=True)


_GZIP_MAGIC: Final = b"\x1f\x8b"


def _header_blocks(
    read: Callable[[int], bytes], starts: tuple[bytes, ...] = (b"SIMPLE  =",)
) -> bytes | None:
    """The header blocks of a FITS stream (``read``: its read method) from where it stands
    up to the END card, or ``None`` when its first card does not start with one of
    ``starts`` (a primary header by default: gzip, bzip2 and non-FITS files are left to
    astropy) or no END comes in :data:`MAX_BLOCKS` full blocks."""
    blocks: list[bytes] = []
    while not blocks or END_CARD not in _cards_of(blocks[-1]):
        if len(blocks) == MAX_BLOCKS:
            return None
        block = read(BLOCK)
        if len(block) < BLOCK:
            return None
        if not blocks and (not block.startswith(starts) or b"\x00" in block[:CARD]):
            return None
        blocks.append(block)
    return b"".join(blocks)


def _parsed(raw: bytes | None, keywords: tuple[str, ...]) -> PlainHeader | None:
    if raw is None:
        return None
    if any("." in k or k.upper().startswith("HIERARCH ") for k in keywords):
        return None  # record-valued or prefixed keywords: astropy's lookups decide
    try:
        return _parse(raw, keywords)
    except (_Unsure, UnicodeDecodeError, ValueError):
        return None


def _cards_of(block: bytes) -> list[bytes]:
    return [block[i : i + CARD] for i in range(0, len(block), CARD)]


def _parse(raw: bytes, keywords: tuple[str, ...]) -> PlainHeader:
    """The header's values; :class:`_Unsure` (or ``ValueError``: no END card,
    ``UnicodeDecodeError``: not ASCII) where astropy might read it otherwise."""
    end = _cards_of(raw).index(END_CARD)
    text = raw.decode("ascii")
    cards = [text[i : i + CARD] for i in range(0, len(text), CARD)]
    if not text[: end * CARD].isprintable():
        raise _Unsure  # a tab or control character anywhere: astropy refuses the header
    values: dict[str, Any] = {}
    seen: set[str] = set()
    wanted = set(keywords)
    for card in cards[:end]:
        key, value_text = _split(card)
        if key is None:
            continue
        needed = key in wanted or key in _MANDATORY or key in ("BZERO", "BSCALE")
        if needed and (key in seen or value_text is None):
            raise _Unsure  # repeated (astropy takes the first) or without a value
        seen.add(key)
        if needed and value_text is not None:
            values[key] = _value(value_text)
    if list(values)[:5] != list(_MANDATORY) or values["SIMPLE"] is not True:
        raise _Unsure  # the mandatory cards first, in order, as the standard has them
    bitpix, naxis = values["BITPIX"], values["NAXIS"]
    if (
        type(naxis) is not int
        or naxis != 2
        or type(bitpix) is not int
        or bitpix not in _VALID_BITPIX
    ):
        raise _Unsure  # an image elsewhere (extensions), or not an image astropy maps
    nx, ny = values["NAXIS1"], values["NAXIS2"]
    if type(nx) is not int or type(ny) is not int or nx < 1 or ny < 1:
        raise _Unsure
    bzero, bscale = values.get("BZERO", 0.0), values.get("BSCALE", 1.0)
    if isinstance(bzero, str | bool) or isinstance(bscale, str | bool):
        raise _Unsure
    offset = -(-(end + 1) * CARD // BLOCK) * BLOCK
    found = tuple((k, values[k]) for k in keywords if k in values)
    return PlainHeader((ny, nx), bitpix, float(bzero), float(bscale), offset, found)


_MANDATORY: Final = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2")


def _split(card: str) -> tuple[str | None, str | None]:
    """(keyword, text after the value indicator) of a card: ``(None, None)`` for blank
    and commentary cards, ``(keyword, None)`` for a card without a value indicator.
    Raises :class:`_Unsure` for what astropy would normalise or repair."""
    if card.startswith("HIERARCH "):
        name, sep, rest = card[9:].partition("=")
        key = name.strip()
        if not sep or not _HIERARCH_KEY.fullmatch(key):
            raise _Unsure
        return key, rest
    head = card[:8]
    if head.startswith("CONTINUE"):
        raise _Unsure  # a long string: astropy joins the pieces
    if head.strip() in ("", "COMMENT", "HISTORY"):
        return None, None
    if not _STANDARD_KEY.fullmatch(head):
        raise _Unsure  # lower case or odd characters: astropy normalises them
    if card[8:10] != "= ":
        return head.strip(), None
    return head.strip(), card[10:]


def _value(text: str) -> Any:
    """A card's value from the text after its value indicator, as astropy reads it."""
    stripped = text.lstrip()
    if stripped.startswith("'"):
        return _string(stripped)
    token = stripped.split("/", 1)[0].strip()
    if token == "T":
        return True
    if token == "F":
        return False
    if _INT.fullmatch(token):
        return int(token)
    if _REAL.fullmatch(token):
        return float(token.replace("D", "E"))
    raise _Unsure  # undefined, complex or free-format: astropy's own parser decides


def _string(text: str) -> str:
    """A quoted FITS string (``''`` is a quote), trailing blanks dropped as astropy does;
    only a comment may follow it."""
    out = []
    i = 1
    while True:
        j = text.find("'", i)
        if j < 0:
            raise _Unsure
        out.append(text[i:j])
        if text.startswith("''", j):
            out.append("'")
            i = j + 2
            continue
        rest = text[j + 1 :].strip()
        if rest and not rest.startswith("/"):
            raise _Unsure
        if "'" in rest:
            # astropy's card regex may close the string at a quote of the comment instead
            # (it reads ``'' / '`` as the string ``' /``)
            raise _Unsure
        break
    value = "".join(out)
    if not value.isprintable() or value.endswith("&"):
        raise _Unsure  # astropy's card regex refuses it, or a CONTINUE'd long string
    return value.rstrip(" ")


def read_layout(path: str) -> list[bytes] | None:
    """The raw header of every HDU of an uncompressed FITS file, read without its data,
    when the file is exactly as long as the headers say and every header carries a
    CHECKSUM that verifies against its DATASUM; ``None`` otherwise.

    The FITS checksum convention makes an HDU's 32-bit ones'-complement sum all ones;
    DATASUM records the data's share, so the header's own sum plus DATASUM must be all
    ones as well. That checks each header byte for byte, and the length checks that no
    block is missing or added, without reading a pixel (the data's own sums are
    checked only when the whole file is read). A file cut exactly where an HDU begins
    reads as a complete file of fewer HDUs: the caller knows how many it expects.

    Raises
    ------
    OSError
        The file cannot be opened or read.
    """
    headers: list[bytes] = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        position = 0
        while position < size:
            f.seek(position)
            raw = _header_blocks(f.read, (b"SIMPLE  =", b"XTENSION="))
            if raw is None:
                return None
            values = card_values(raw, _LAYOUT_KEYS + tuple(f"NAXIS{i}" for i in range(1, 10)))
            data = _data_bytes(values)
            if data is None or not _header_checksum_ok(raw, values.get("DATASUM")):
                return None
            headers.append(raw)
            position += len(raw) + -(-data // BLOCK) * BLOCK
    return headers if headers and position == size else None


_LAYOUT_KEYS: Final = ("BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "DATASUM", "CHECKSUM")


def _data_bytes(values: dict[str, Any]) -> int | None:
    """The data bytes an HDU's header announces (without padding), or None if unclear."""
    bitpix, naxis = values.get("BITPIX"), values.get("NAXIS")
    if type(bitpix) is not int or bitpix not in _VALID_BITPIX or type(naxis) is not int:
        return None
    if naxis == 0:
        return 0
    count = 1
    for i in range(1, naxis + 1):
        n = values.get(f"NAXIS{i}")
        if type(n) is not int or n < 0:
            return None
        count *= n
    pcount, gcount = values.get("PCOUNT", 0), values.get("GCOUNT", 1)
    if type(pcount) is not int or type(gcount) is not int:
        return None
    return abs(bitpix) // 8 * gcount * (pcount + count)


def ones_complement_sum(raw: bytes, start: int = 0) -> int:
    """The FITS checksum convention's 32-bit ones'-complement sum of ``raw`` (a whole
    number of 4-byte words, big-endian), added to ``start``."""
    words = np.frombuffer(raw, dtype=">u4")
    total = int(words.sum(dtype=np.uint64)) + start
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def _header_checksum_ok(raw: bytes, datasum: Any) -> bool:
    """Whether a header's CHECKSUM verifies given its DATASUM (see :func:`read_layout`)."""
    if not isinstance(datasum, str) or not datasum.isdigit() or b"CHECKSUM= '" not in raw:
        return False
    return ones_complement_sum(raw, int(datasum)) == 0xFFFFFFFF


def card_values(raw: bytes, keywords: tuple[str, ...]) -> dict[str, Any]:
    """The values of ``keywords`` (standard or HIERARCH, as astropy names them: ``"ESO
    QC X"``) in a raw header, the first card of each; cards this module cannot read
    exactly are left out, whatever else the header holds."""
    wanted = set(keywords)
    found: dict[str, Any] = {}
    text = raw.decode("ascii", errors="replace")
    for i in range(0, len(text), CARD):
        card = text[i : i + CARD]
        if card.startswith("END     ") and not card[3:].strip():
            break
        try:
            key, value_text = _split(card)
            if key in wanted and key not in found and value_text is not None:
                found[key] = _value(value_text)
        except (_Unsure, ValueError):
            continue
    return found
