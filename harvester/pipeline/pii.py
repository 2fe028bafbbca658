"""PII scrubbing: find personal data, validate each candidate, replace it by a typed placeholder.

Candidates come from regexes; validation is by the library of each kind (phonenumbers for
phones, ipaddress for addresses, Luhn for cards, the IBAN checksum, python-stdnum for national
ids), so look-alikes such as version numbers, dates, prices, ISBNs, hashes and Luhn-failing
numbers stay untouched. Phones written in a national format are read in every region the page
hints at (`page_regions`) besides the configured one; a number that its words call an order,
invoice, tracking, ISBN or other reference, or that is glued to letters, is not a phone.
`tests/pii_corpus.py` measures recall per kind and the look-alikes kept (`bench/quality.py`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import phonenumbers
from babel.core import get_global
from phonenumbers import Leniency
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.de import idnr as de_idnr
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.fr import nir as fr_nir
from stdnum.it import codicefiscale as it_codicefiscale
from stdnum.nl import bsn as nl_bsn
from stdnum.pl import pesel as pl_pesel

from harvester.spec import Pii

KINDS = ("email", "phone", "ip", "card", "iban", "ssn", "national_id")
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d.,/-])\d(?:[ -]?\d){12,18}(?![\d/]|[.,-]\d)")  # not a URL's path
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSIONISH = re.compile(r"(?:version|release|v|build)\s*$", re.IGNORECASE)
_CARD_PREFIXES = ("2", "3", "4", "5", "6")  # Mastercard 2-series, Amex, Visa, MC, Discover
_BEFORE = 40
"""Characters before a phone-like number in which its words are looked for."""
_PHONE_WORDS = re.compile(
    r"(phone|tel|call|fax|mobile|cell|whatsapp|sms|contact|hotline|ring|dial|reach|t[ée]l[ée]phone|"
    r"telefon|handy|m[óo]vil|cellulare|telefono|portable|numer telefonu|tlf|puhelin)",
    re.IGNORECASE,
)
_REFERENCE_WORDS = re.compile(
    r"(\b(order|invoice|inv|bill|receipt|tracking|track|shipment|parcel|consignment|isbn(-?1[03])?|"
    r"issn|ref|reference|ticket|case|claim|account|acct|sku|serial|s/n|model|part|po|"
    r"confirmation|booking|reservation|transaction|txn|customer|member|policy|patent|"
    r"\w*nummer|bestell\w*|rechnung\w*|commande|facture|pedido|factura)"
    r"(\W{0,2}(no|nr|n°|num|number|nummer|numéro|id|code|#))?|\bid|#)\W{0,3}$",
    re.IGNORECASE,
)
"""A reference's name right before the number ("Order No. 4155552671", "Invoice #…")."""
_GLUE = "-/_#."
_NOT_A_NUMBER = re.compile(
    r"\d{1,3}(?:[., ]\d{3})*[.,]\d{2}"  # an amount: 1,234,567.89 or 123 456 789.00
    r"|\d+[.,]\d+"  # a decimal: 1234567.8901
    r"|(?:\d\D+){3,}\d+"  # a count: 1 2 3 4 5 6 7 8 9 10
)
_NATIONAL_IDS: dict[str, tuple[re.Pattern[str], Callable[[str], bool]]] = {
    "DE": (re.compile(r"(?<![\w-])[1-9]\d{10}(?![\w-])"), de_idnr.is_valid),
    "ES": (
        re.compile(r"(?<![\w-])(?:\d{8}|[XYZ]-?\d{7})-?[A-Z](?![\w-])"),
        lambda v: bool(es_dni.is_valid(v) or es_nie.is_valid(v)),
    ),
    "FR": (
        re.compile(r"(?<![\w-])[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\w-])"),
        fr_nir.is_valid,
    ),
    "IT": (
        re.compile(r"(?<!\w)[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z](?!\w)"),
        it_codicefiscale.is_valid,
    ),
    "NL": (re.compile(r"(?<![\w.-])\d{4}\.?\d{2}\.?\d{3}(?![\w-]|\.\d)"), nl_bsn.is_valid),
    "PL": (re.compile(r"(?<![\w-])\d{11}(?![\w-])"), pl_pesel.is_valid),
}
"""Each opt-in country's identity number: a candidate pattern and its stdnum validator."""


@dataclass(frozen=True)
class Scrubbed:
    """The scrubbed text, the count found per kind, and the kind that drops the document."""

    text: str
    counts: dict[str, int]
    drop: str | None


def _is_card(raw: str) -> bool:
    digits = re.sub(r"[ -]", "", raw)
    return 13 <= len(digits) <= 19 and digits.startswith(_CARD_PREFIXES) and luhn.is_valid(digits)


def _is_iban(raw: str) -> bool:
    return bool(stdnum_iban.is_valid(raw))


def _is_ipv4(raw: str, text: str, start: int) -> bool:
    if _VERSIONISH.search(text[max(0, start - 12) : start]):
        return False
    try:
        ipaddress.IPv4Address(raw)
    except ValueError:
        return False
    return True


def _is_ipv6(raw: str) -> bool:
    if raw.count(":") < 2 or not any(c.isalnum() for c in raw):
        return False
    try:
        ipaddress.IPv6Address(raw)
    except ValueError:
        return False
    return True


def page_regions(url: str, lang: str | None) -> tuple[str, ...]:
    """The regions a page hints at for its national-format phone numbers: its `lang`
    attribute's region, or the language's most likely one (CLDR: `de` → DE), and its host's
    country-code domain (`.uk` → GB)."""
    regions: list[str] = []
    if lang:  # BCP 47: language[-script][-region]
        language, *subtags = lang.replace("_", "-").split("-")
        region = next((t.upper() for t in subtags if len(t) == 2 and t.isalpha()), None)
        territory = region or _likely_territory(language.lower())
        if territory:
            regions.append(territory)
    tld = (urlsplit(url).hostname or "").rsplit(".", 1)[-1].upper()
    if len(tld) == 2 and tld.isalpha():
        regions.append("GB" if tld == "UK" else tld)
    return tuple(dict.fromkeys(r for r in regions if r in phonenumbers.SUPPORTED_REGIONS))


_URL_KINDS = ("email", "card", "iban", "ssn", "national_id")
"""What a URL is searched for: a path segment or a query value that is only digits is an id
far more often than a phone, unless its query key names a phone."""
_PHONE_KEY = re.compile(r"(phone|tel|mobile|cell|fax)", re.IGNORECASE)


def url_pii(url: str, scrubber: PiiScrubber) -> int:
    """Personal data found in a URL's path segments and query values (decoded). The URL is
    the document's identity and stays as fetched; the count flags it (`pii_counts.url`)."""
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    pairs = parse_qsl(parts.query, keep_blank_values=False)
    found = scrubber.scrub("\n".join([*segments, *(value for _, value in pairs)])).counts
    phones = [v for k, v in pairs if _PHONE_KEY.search(k)]
    return sum(found[kind] for kind in _URL_KINDS) + (
        scrubber.scrub("\n".join(phones)).counts["phone"] if phones else 0
    )


def _likely_territory(language: str) -> str | None:
    likely = get_global("likely_subtags").get(language)
    return likely.rsplit("_", 1)[-1] if likely else None


class PiiScrubber:
    """Applies the spec's policy per kind: mask (placeholder), drop the document, or keep.
    `regions` are the page's hints for national-format phone numbers (`page_regions`)."""

    def __init__(self, policy: Pii, regions: tuple[str, ...] = ()) -> None:
        self._policy = policy
        self._regions = tuple(dict.fromkeys((policy.phone_region, *regions)))

    def _action(self, kind: str) -> str:
        action: str = getattr(self._policy, kind)
        return action

    def scrub(self, text: str) -> Scrubbed:
        """Find every kind in a fixed order (most specific first) and apply the policy."""
        counts = dict.fromkeys(KINDS, 0)
        finders: list[tuple[str, Callable[[str], Iterator[tuple[int, int]]]]] = [
            ("email", lambda t: _spans(_EMAIL, t)),
            ("iban", lambda t: _spans(_IBAN, t, lambda m, _: _is_iban(m.group()))),
            ("card", lambda t: _spans(_CARD, t, lambda m, _: _is_card(m.group()))),
            ("ssn", lambda t: _spans(_SSN, t)),
            ("national_id", self._national_ids),
            ("ip", self._ips),
            ("phone", self._phones),
        ]
        drop = None
        for kind, find in finders:
            spans = list(find(text))
            counts[kind] = len(spans)
            if not spans:
                continue
            action = self._action(kind)
            if action == "drop" and drop is None:
                drop = kind
            # A kept kind is still replaced so later finders do not re-read it as another kind.
            placeholder = PLACEHOLDERS[kind] if action != "keep" else None
            text = _replace(text, spans, placeholder)
        return Scrubbed(_restore(text), counts, drop)

    def _national_ids(self, text: str) -> Iterator[tuple[int, int]]:
        for country in self._policy.national_ids:
            pattern, valid = _NATIONAL_IDS[country]
            yield from (m.span() for m in pattern.finditer(text) if valid(m.group()))

    def _ips(self, text: str) -> Iterator[tuple[int, int]]:
        yield from _spans(_IPV4, text, lambda m, t: _is_ipv4(m.group(), t, m.start()))
        yield from _spans(_IPV6, text, lambda m, _: _is_ipv6(m.group()))

    def _phones(self, text: str) -> Iterator[tuple[int, int]]:
        """Numbers valid in any of the page's regions, overlaps merged, look-alikes refused."""
        found: list[tuple[int, int]] = []
        for region in self._regions:
            matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=Leniency.VALID)
            found.extend((m.start, m.end) for m in matcher if _is_phone(text, m.start, m.end))
        last = -1
        for start, end in sorted(found, key=lambda span: (span[0], -span[1])):
            if start >= last:
                yield start, end
                last = end


def _is_phone(text: str, start: int, end: int) -> bool:
    """Not glued to letters or digits ("INV-2024-000123", "1Z999AA10123456784") nor assigned
    (`seed=8675309`), not an amount, a decimal or a count ("1234567.89", "1 2 3 4 5"), and
    not named a reference by the words before it unless they also say phone. A bare run of
    digits ("2147483647", what code and arithmetic print) is a phone only when they say so."""
    before, after = text[max(0, start - 2) : start], text[end : end + 2]
    if before[-1:].isalnum() or (before[-1:] in _GLUE and before[:1].isalnum()):
        return False
    if after[:1].isalnum() or (after[:1] in _GLUE and after[1:2].isalnum()):
        return False
    raw = text[start:end]
    if before[-1:] == "=" or _NOT_A_NUMBER.fullmatch(raw):
        return False
    context = text[max(0, start - _BEFORE) : start].rsplit("\n", 1)[-1]
    if _PHONE_WORDS.search(context):
        return True
    return not raw.isdigit() and not _REFERENCE_WORDS.search(context)


def _spans(
    pattern: re.Pattern[str],
    text: str,
    valid: Callable[[re.Match[str], str], bool] | None = None,
) -> Iterator[tuple[int, int]]:
    for match in pattern.finditer(text):
        if valid is None or valid(match, text):
            yield match.span()


# Kept values are parked behind private-use markers while later kinds are searched, then
# restored, so "keep" never changes the text and never lets one value count twice.
_KEEP_OPEN, _KEEP_CLOSE = "\ue000", "\ue001"
_KEPT = re.compile(f"{_KEEP_OPEN}([^{_KEEP_CLOSE}]*){_KEEP_CLOSE}")
_HIDE = str.maketrans(
    "0123456789@:.",
    "\ue010\ue011\ue012\ue013\ue014\ue015\ue016\ue017\ue018\ue019\ue01a\ue01b\ue01c",
)
_SHOW = {v: k for k, v in _HIDE.items()}


def _replace(text: str, spans: list[tuple[int, int]], placeholder: str | None) -> str:
    pieces, last = [], 0
    for start, end in sorted(spans):
        if start < last:
            continue  # overlapping matches (IPv4-mapped IPv6): the first one wins
        pieces.append(text[last:start])
        value = text[start:end]
        pieces.append(placeholder or f"{_KEEP_OPEN}{value.translate(_HIDE)}{_KEEP_CLOSE}")
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _restore(text: str) -> str:
    if _KEEP_OPEN not in text:
        return text
    return _KEPT.sub(lambda m: m.group(1).translate(_SHOW), text)
