"""Read the header of a plain raw frame without astropy; ``None`` whenever unsure.

Importing astropy is slow and holds one thread (``astropy.io.fits`` pulls in
``astropy.units``); a scan that needed it would wait for that import before it could read
a single header and start clipping. Raw darks are almost always the simplest FITS file
there is: one primary HDU holding a 2-D image, uncompressed, with ordinary cards. This
module reads exactly that case, the cards the recipe asks for and where the pixels start,
so the command's first tasks run while astropy is imported in the background for the
product writes.

It is deliberately narrow. Anything it does not read exactly as astropy does (compressed
or gzipped files, an image in an extension, a card astropy would repair or normalise, a
string continued over CONTINUE cards, a value that is not a plain FITS string, logical,
integer or fixed-format real, a requested keyword found twice) makes it return ``None``,
and the caller reads the file with astropy (:func:`mdark_dask.io.fits.scan_frame`).
``tests/test_header.py`` checks that both readers agree.
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

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
    the byte offset of its pixels and the cards asked for, in the order asked."""

    shape: tuple[int, int]
    bitpix: int
    bzero: float
    bscale: float
    data_offset: int
    cards: tuple[tuple[str, Any], ...]


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
    if any("." in k or k.upper().startswith("HIERARCH ") for k in keywords):
        return None  # record-valued or prefixed keywords: astropy's lookups decide
    with open(path, "rb") as f:
        head = f.read(BLOCK)
        if len(head) < BLOCK or not head.startswith(b"SIMPLE  =") or b"\x00" in head[:CARD]:
            return None  # gzip, bzip2, not FITS, or shorter than a block: astropy decides
        blocks = [head]
        while END_CARD not in _cards_of(blocks[-1]):
            if len(blocks) == MAX_BLOCKS:
                return None
            block = f.read(BLOCK)
            if len(block) < BLOCK:
                return None
            blocks.append(block)
    try:
        return _parse(b"".join(blocks), keywords)
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
        break
    value = "".join(out)
    if not value.isprintable() or value.endswith("&"):
        raise _Unsure  # astropy's card regex refuses it, or a CONTINUE'd long string
    return value.rstrip(" ")
