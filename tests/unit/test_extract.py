"""Extraction: main text, markdown, metadata, the fallback under a time budget, bad input."""

from __future__ import annotations

from pathlib import Path

from harvester.pipeline.extract import extract, fingerprint
from harvester.spec import Extraction

DEMO = Path(__file__).parents[2] / "harvester" / "demo_site" / "pages"


def test_main_text_and_metadata_without_boilerplate() -> None:
    html = (DEMO / "birds" / "owls.html").read_text()
    got = extract(html, "http://demo/birds/owls.html", Extraction(markdown=True))
    assert got.method == "trafilatura"
    assert got.title == "Listening for Owls on Winter Nights"
    assert got.published == "2026-02-10"
    assert "Great horned owls" in got.text
    assert "More in Birds" not in got.text and "Search" not in got.text
    assert got.markdown is not None and got.markdown.startswith("# Listening for Owls")


def test_extraction_is_reproducible_whatever_came_before() -> None:
    html = (DEMO / "birds" / "owls.html").read_text()
    first = extract(html, "http://demo/a", Extraction())
    for _ in range(3):  # trafilatura's dedup cache would blank repeated paragraphs here
        extract(html, "http://demo/b", Extraction())
    assert extract(html, "http://demo/a", Extraction()) == first


def test_budget_overrun_falls_back_to_selectolax() -> None:
    rows = "".join(
        f"<tr><td><a href='/p{i}'>Entry {i}</a></td><td>x</td></tr>" for i in range(20000)
    )
    html = f"<html><body><main><h1>Index</h1><table>{rows}</table></main></body></html>"
    got = extract(html, "http://demo/toc", Extraction(time_budget_s=0.05))
    assert got.method == "fallback/timeout"
    assert got.text.startswith("Index") and "Entry 19999" in got.text


def test_garbage_yields_empty_text_not_an_exception() -> None:
    for junk in ["", "\x00\x01\x02" * 100, "<html><body></body></html>", "<<<>>>" * 1000]:
        assert extract(junk, "http://demo/junk", Extraction()).text == ""


def test_fingerprint_changes_with_options() -> None:
    assert fingerprint(Extraction()) != fingerprint(Extraction(fast=True))
    assert fingerprint(Extraction()).startswith("trafilatura-")


def test_sitename_is_a_name_never_an_address() -> None:
    html = (DEMO / "birds" / "owls.html").read_text()
    got = extract(html, "http://127.0.0.1:8765/birds/owls.html", Extraction())
    assert got.sitename == "Riverbend Field Notes"  # from the <title>, not "127.0.0.1:8765"
    named = html.replace("<head>", '<head><meta property="og:site_name" content="Riverbend">')
    assert extract(named, "http://127.0.0.1:8765/o", Extraction()).sitename == "Riverbend"
    plain = "<html><head><title>Owls</title></head><body><p>" + "owls hoot. " * 40 + "</p>"
    assert extract(plain, "https://www.example.org/o", Extraction()).sitename is None
