"""PII scrubbing: each kind found and replaced, look-alikes kept, policies applied."""

from __future__ import annotations

import pytest

from harvester.pipeline.pii import PiiScrubber
from harvester.spec import Pii


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+news@example.co.uk today", "email"),
        ("call +1 (415) 555-2671 now", "phone"),
        ("or 415.555.2671 after six", "phone"),
        ("from London +44 20 7946 0958", "phone"),
        ("host 192.168.1.10 answered", "ip"),
        ("host 2001:db8::ff00:42:8329 answered", "ip"),
        ("card 4111 1111 1111 1111 expires", "card"),
        ("card 5500-0000-0000-0004 expires", "card"),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "iban"),
        ("IBAN DE89370400440532013000 please", "iban"),
        ("SSN 078-05-1120 on file", "ssn"),
    ],
)
def test_each_kind_is_found_and_masked(text: str, kind: str) -> None:
    result = PiiScrubber(Pii()).scrub(text)
    assert result.counts[kind] == 1, result
    assert f"<{kind.upper()}>" in result.text
    assert sum(result.counts.values()) == 1, result.counts


@pytest.mark.parametrize(
    "text",
    [
        "Python 3.11.7 was released",
        "released on 2024-01-15 at 10:30:45",
        "it costs $1,299.99 or 1.299,99 EUR",
        "ISBN 978-3-16-148410-0",
        "commit 9f86d081884c7d65 and sha256 e3b0c44298fc1c149afbf4c8996fb924",
        "card-like 4111 1111 1111 1112 fails Luhn",
        "order number 12345678 and 1234567890123",
        "version 10.0.19041.1 of the kernel",
        "IBAN-like GB82 WEST 1234 5698 7654 33 fails the checksum",
        "years 1999-2004 and page 12-15",
        "UK number 020 7946 0958 without country code under region US",
    ],
)
def test_look_alikes_survive(text: str) -> None:
    result = PiiScrubber(Pii()).scrub(text)
    assert result.text == text, result
    assert not any(result.counts.values())


def test_policies_mask_drop_and_keep() -> None:
    text = "mail a@b.org, card 4111 1111 1111 1111, host 10.0.0.1"
    keep = PiiScrubber(Pii(email="keep", ip="keep")).scrub(text)
    assert keep.text == "mail a@b.org, card <CARD>, host 10.0.0.1"
    assert keep.counts["email"] == keep.counts["ip"] == keep.counts["card"] == 1
    assert keep.drop is None
    drop = PiiScrubber(Pii(card="drop")).scrub(text)
    assert drop.drop == "card"
    assert "4111" not in drop.text  # even a dropped document's text holds no raw value
