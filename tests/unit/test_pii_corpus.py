"""PII recall per kind and look-alikes kept, on a corpus of many countries' formats."""

from __future__ import annotations

import pytest

from harvester.pipeline.pii import PiiScrubber, page_regions, url_pii
from harvester.spec import Pii
from tests.pii_corpus import corpus, scores

SCORES = scores(corpus())


@pytest.mark.parametrize("kind", sorted(SCORES))
def test_recall_per_kind_and_look_alikes_kept(kind: str) -> None:
    right, total = SCORES[kind]
    goal = 0.98 if kind == "look-alike" else 0.99
    assert total >= 20 and right / total >= goal, (kind, right, total)


@pytest.mark.parametrize(
    ("url", "lang", "regions"),
    [
        ("https://www.bbc.co.uk/news", "en-GB", ("GB",)),
        ("https://example.com/", "de", ("DE",)),  # CLDR's likely region of the language
        ("https://example.com/", "pt-BR", ("BR",)),
        ("https://example.com/", "zh-Hant-TW", ("TW",)),
        ("https://example.fr/", "en", ("US", "FR")),
        ("http://127.0.0.1:8000/", None, ()),
        ("https://example.com/", "not a tag!", ()),
    ],
)
def test_page_regions_come_from_lang_and_domain(
    url: str, lang: str | None, regions: tuple[str, ...]
) -> None:
    assert page_regions(url, lang) == regions


def test_a_national_number_needs_the_page_to_hint_at_its_country() -> None:
    text = "Ruf uns an: 030 1234567, werktags."
    assert PiiScrubber(Pii()).scrub(text).text == text  # US by default: not a number there
    hinted = PiiScrubber(Pii(), page_regions("https://example.de/kontakt", None))
    assert hinted.scrub(text).text == "Ruf uns an: <PHONE>, werktags."
    assert PiiScrubber(Pii(phone_region="DE")).scrub(text).counts["phone"] == 1


@pytest.mark.parametrize(
    ("country", "value"),
    [
        ("DE", "36574261809"),
        ("ES", "54362315K"),
        ("ES", "X2482300W"),
        ("FR", "2 95 10 99 126 111 93"),
        ("IT", "RCCMNL83S18D969H"),
        ("NL", "111222333"),
        ("PL", "44051401359"),
    ],
)
def test_national_ids_are_opt_in_and_validated(country: str, value: str) -> None:
    text = f"Identity number {value} on file."
    assert PiiScrubber(Pii()).scrub(text).counts["national_id"] == 0
    found = PiiScrubber(Pii(national_ids=[country])).scrub(text)  # type: ignore[list-item]
    assert found.text == "Identity number <NATIONAL_ID> on file.", found
    broken = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert (
        PiiScrubber(Pii(national_ids=[country]))
        .scrub(  # type: ignore[list-item]
            f"Identity number {broken} on file."
        )
        .counts["national_id"]
        == 0
    )


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("https://example.com/unsubscribe?email=jane.doe%40example.org&list=7", 1),
        ("https://example.com/users/jane.doe@example.org/profile", 1),
        ("https://example.com/callback?tel=%2B1%20415%20555%202671", 1),
        ("https://example.com/pay?card=4111111111111111&iban=DE89370400440532013000", 2),
        ("https://example.com/products/4155552671?page=2", 0),  # an id, not a phone
        ("https://example.com/2024/03/15/notes-v3.11.2.html", 0),
    ],
)
def test_personal_data_in_a_url_is_counted(url: str, found: int) -> None:
    assert url_pii(url, PiiScrubber(Pii())) == found
