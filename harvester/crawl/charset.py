"""Decoding HTML whose declared charset may be wrong."""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

_NEAR_TIE = 0.1  # chaos difference below which two guesses are equally plausible
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def _known(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def declared_charset(content_type: str | None, body: bytes) -> str | None:
    """The charset named by the Content-Type header, else by a <meta> tag in the first 4 KiB."""
    if content_type:
        for param in content_type.split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                return _known(value.strip().strip("\"'"))
    match = _META_CHARSET.search(body[:4096])
    return _known(match.group(1).decode("ascii")) if match else None


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Return (text, encoding used).

    Order: a BOM; strict UTF-8 (valid UTF-8 with non-ASCII bytes is almost never another
    encoding, and pages labelled latin-1 are often really UTF-8); the declared charset if it
    decodes strictly; statistical detection; UTF-8 with replacement as the last resort.
    """
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace"), name
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    declared = declared_charset(content_type, body)
    if declared and declared != "utf-8":
        try:
            return body.decode(declared), declared
        except UnicodeDecodeError:
            pass
    guess = _detect(body[:65536])
    if guess is not None:
        return body.decode(guess, errors="replace"), guess
    return body.decode("utf-8", errors="replace"), "utf-8"


def _detect(sample: bytes) -> str | None:
    """charset_normalizer's guess, except that windows-1252 wins near-ties: it is what most
    mislabelled Western pages really are (and the WHATWG fallback), while short samples make
    the detector's first pick an arbitrary sibling such as cp1257."""
    matches = list(from_bytes(sample))
    if not matches:
        return None
    best = matches[0]
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + _NEAR_TIE:
            return "cp1252"
    return str(best.encoding)
