"""A corpus of personal data in many countries' formats, and of look-alikes that are not.

Used by `tests/unit/test_pii_corpus.py` (goals: recall ≥ 0.99 per kind, ≥ 0.98 of look-alikes
kept) and printed by `bench/quality.py`. Phones are phonenumbers' own example numbers of
every region (fixed line and mobile), written in national format on a page that hints at the
region and in international format on a page that hints at nothing; each value sits in a
sentence, as on a real page.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from stdnum import iban, luhn

from harvester.pipeline.pii import PiiScrubber, page_regions
from harvester.spec import Pii


@dataclass(frozen=True)
class Case:
    """A sentence, the value in it (or None for a look-alike), its kind, the page's hints."""

    kind: str
    text: str
    value: str | None
    url: str = "https://example.com/contact"
    lang: str | None = None


_SENTENCES = (
    "For questions, call {} between nine and five.",
    "Tel.: {}",
    "You can reach our office on {} or by post.",
    "Contact: {}",
)


def phones() -> Iterator[Case]:
    """Every region's example fixed-line and mobile number, national and international."""
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            sentence = _SENTENCES[(sum(map(ord, region)) + kind) % len(_SENTENCES)]
            national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
            if kind == PhoneNumberType.FIXED_LINE:  # the hint: the domain's country code
                tld = "uk" if region == "GB" else region.lower()
                yield Case("phone/national", sentence.format(national), national,
                           url=f"https://www.example.{tld}/kontakt")  # fmt: skip
            else:  # the hint: the page's language and region, on a .com site
                yield Case("phone/national", sentence.format(national), national,
                           lang=f"en-{region}")  # fmt: skip
            international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
            yield Case("phone/international", sentence.format(international), international)


def _luhn_number(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def cards(rng: random.Random) -> Iterator[Case]:
    """Visa, Mastercard (5- and 2-series), Amex, Discover; plain, spaced and dashed."""
    for prefix, length in [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15),
                           ("37", 15), ("6011", 16), ("4", 13)] * 4:  # fmt: skip
        number = _luhn_number(prefix, length, rng)
        for sep in ("", " ", "-"):
            grouped = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
            yield Case("card", f"Paid with card {grouped} on Monday.", grouped)


_BBANS = {  # country → a BBAN shape: digits (9) and letters (A)
    "DE": "999999999999999999", "FR": "9999999999AAAAAAAAAAA99", "GB": "AAAA99999999999999",
    "ES": "99999999999999999999", "IT": "A9999999999AAAAAAAAAAAA", "NL": "AAAA9999999999",
    "BE": "999999999999", "AT": "9999999999999999", "CH": "99999AAAAAAAAAAAA",
    "PL": "999999999999999999999999", "SE": "99999999999999999999", "IE": "AAAA99999999999999",
}  # fmt: skip


def ibans(rng: random.Random) -> Iterator[Case]:
    """Checksum-valid IBANs of twelve countries, compact and in groups of four."""
    for country, shape in _BBANS.items():
        for _ in range(4):
            bban = "".join(
                rng.choice("0123456789") if c == "9" else rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                for c in shape
            )
            number = country + iban.calc_check_digits(country + "00" + bban) + bban
            if not iban.is_valid(number):  # a country's own BBAN checksum (FR, IT, ES, BE …)
                continue
            for value in (number, iban.format(number)):
                yield Case("iban", f"Please transfer the fee to IBAN {value} by Friday.", value)


def simple(rng: random.Random) -> Iterator[Case]:
    """Emails, IPv4 and IPv6 addresses, US SSNs."""
    for local, domain in [("jane.doe", "example.com"), ("j.smith+news", "mail.example.co.uk"),
                          ("info", "mueller-example.de"), ("o'brien", "example.ie"),
                          ("support_team", "help.example.io"), ("x", "ex.museum"),
                          ("First.Last", "Example.ORG"), ("a1b2c3", "sub.domain.example.travel"),
                          ("sales-2024", "example.com.br"), ("hr", "example.gov.uk")]:  # fmt: skip
        value = f"{local}@{domain}"
        yield Case("email", f"Write to {value} for a copy.", value)
        yield Case("email", f"(mailto: <{value}>)", value)
    for _ in range(20):
        value = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        yield Case("ip", f"The request came from {value} at night.", value)
    for value in ["2001:db8::ff00:42:8329", "fe80::1ff:fe23:4567:890a", "2a00:1450:4001:82a::200e",
                  "::ffff:192.0.2.128", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"]:  # fmt: skip
        yield Case("ip", f"The server answered on {value} again.", value)
    for _ in range(20):
        area = rng.choice([n for n in range(1, 900) if n != 666])
        value = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        yield Case("ssn", f"Her SSN {value} was on the form.", value)


LOOK_ALIKES = [
    "Your order 4155552671 has shipped.",
    "Order No. 415 555 2671 was cancelled.",
    "Order #4155552671 is ready for pickup.",
    "Invoice INV-2024-000123 is due.",
    "Rechnungsnummer 030123456 ist offen.",
    "Kundennummer 08912345678 bitte angeben.",
    "Tracking number 1Z999AA10123456784 shows the parcel in transit.",
    "Your tracking id: 9400 1000 0000 0000 0000 00.",
    "ISBN 0-306-40615-2 is the first edition.",
    "ISBN 978-3-16-148410-0 is the second edition.",
    "ISBN-10: 0306406152",
    "Booking reference 2025 0612 3344 confirmed.",
    "Case 2023-004512 was closed.",
    "Ticket #20230415001 was answered.",
    "Serial no. 0800123456 on the label.",
    "Model 7360-0001-22 is discontinued.",
    "Account 0123456789 belongs to the store.",
    "Transaction ID 20240315123456 settled.",
    "PO 4500012345 was approved.",
    "Released on 2024-03-15 at 14:30:00.",
    "Meeting on 15.03.2024 from 09:00 to 10:30.",
    "Due 03/15/2024, paid 03/16/2024.",
    "Between 1999-2004 and 2010-2015 the figures rose.",
    "Python 3.11.2 and 3.12.0 were released.",
    "Version 10.0.19041.1 of the kernel shipped.",
    "It costs $1,299.99 or 1.299,99 EUR.",
    "Prices from € 12.345,00 to € 23.456,00.",
    "Population 8,336,817 in 2023.",
    "See pages 120-135 and 200-215.",
    "Coordinates 48.8584, 2.2945 mark the tower.",
    "Commit 9f86d081884c7d65 fixed it.",
    "sha256 e3b0c44298fc1c149afbf4c8996fb924 of the file.",
    "Card-like 4111 1111 1111 1112 fails Luhn.",
    "IBAN-like GB82 WEST 1234 5698 7654 33 fails the checksum.",
    "Patent US 7,654,321 was granted.",
    "Postal code 10115 Berlin, 75008 Paris.",
    "Batch 20231120-0042 was recalled.",
    "SKU 4006381333931 is in stock.",
    "Part number 0912-345-678 fits both models.",
    "Build 20240115.1234 passed.",
    "Table 53.47 lists 12 columns.",
    "RFC 2616 and RFC 7230 define HTTP/1.1.",
    "ISO 8601 and ISO 3166-1 are standards.",
    "Call number QA76.73.P98 in the library.",
    "Temperature rose from 12.5 to 18.75 degrees.",
    "Score 3-1 after 90+4 minutes.",
    "Flight LH 400 departs at 13:05.",
    "Room 4.012 on floor 4.",
    "Error 0x80070005 appeared.",
    "Latitude 40.712776, longitude -74.005974.",
    # What the Python docs print (a crawl of them masked these as US phones):
    "An int in range from -2147483647 to 2147483647.",
    "lists could only hold up to 2**31 - 1 = 2147483647 items",
    ">>> int(_, 16)\n3232235521",
    ">>> X = NormalDist(10, 2.5).samples(n, seed=8675309)",
    ">>> d = Decimal('-1234567.8901')",
    ">>> moneyfmt(Decimal(123456789), sep=' ')\n'123 456 789.00'",
    "Decimal('31.01875') is the variance.",
    ">>> for i in ii: print(i, end=' ')\n1 2 3 4 5 6 7 8 9 10",
    "See https://web.archive.org/web/20070710175930/http://starship.python.net/ for it.",
]
"""Numbers that are not personal data; each must come out unchanged."""


def corpus(seed: int = 0) -> list[Case]:
    """Every positive case and every look-alike."""
    rng = random.Random(seed)
    cases = [*phones(), *cards(rng), *ibans(rng), *simple(rng)]
    pages = ["https://example.com/", "https://example.de/", "https://example.fr/",
             "https://example.co.uk/", "https://example.in/"]  # fmt: skip
    return cases + [Case("look-alike", t, None, url=u) for t in LOOK_ALIKES for u in pages]


def found(case: Case) -> bool:
    """For PII: its kind counted and its value gone from the text. For a look-alike: the
    text unchanged."""
    scrubber = PiiScrubber(Pii(), page_regions(case.url, case.lang))
    result = scrubber.scrub(case.text)
    if case.value is None:
        return result.text == case.text
    kind = case.kind.split("/")[0]
    return result.counts[kind] >= 1 and case.value not in result.text


def scores(cases: list[Case]) -> dict[str, tuple[int, int]]:
    """Per kind: cases right, cases in all."""
    out: dict[str, tuple[int, int]] = {}
    for case in cases:
        right, total = out.get(case.kind, (0, 0))
        out[case.kind] = (right + found(case), total + 1)
    return out
