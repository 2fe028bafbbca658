"""PII scrubbing: find personal data, validate each candidate, replace it by a typed placeholder.

Candidates come from regexes; validation is by the library of each kind (phonenumbers for
phones, ipaddress for addresses, Luhn for cards, the IBAN checksum), so look-alikes such as
version numbers, dates, prices, ISBNs, hashes and Luhn-failing numbers stay untouched.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import phonenumbers
from phonenumbers import Leniency
from stdnum import iban as stdnum_iban
from stdnum import luhn

from harvester.spec import Pii

KINDS = ("email", "phone", "ip", "card", "iban", "ssn")
PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d]|[.,-]\d)")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSIONISH = re.compile(r"(?:version|release|v|build)\s*$", re.IGNORECASE)
_CARD_PREFIXES = ("2", "3", "4", "5", "6")  # Mastercard 2-series, Amex, Visa, MC, Discover


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


class PiiScrubber:
    """Applies the spec's policy per kind: mask (placeholder), drop the document, or keep."""

    def __init__(self, policy: Pii) -> None:
        self._policy = policy

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

    def _ips(self, text: str) -> Iterator[tuple[int, int]]:
        yield from _spans(_IPV4, text, lambda m, t: _is_ipv4(m.group(), t, m.start()))
        yield from _spans(_IPV6, text, lambda m, _: _is_ipv6(m.group()))

    def _phones(self, text: str) -> Iterator[tuple[int, int]]:
        matcher = phonenumbers.PhoneNumberMatcher(
            text, self._policy.phone_region, leniency=Leniency.VALID
        )
        for match in matcher:
            yield match.start, match.end


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
