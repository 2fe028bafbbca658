from __future__ import annotations

import gzip
from collections import Counter

import pytest

from harvester.crawl.charset import decode_html
from harvester.crawl.fetcher import parse_retry_after
from harvester.crawl.links import extract_links
from harvester.crawl.ratecontrol import DomainRateController
from harvester.crawl.sitemaps import parse_sitemap
from harvester.errors import ConfigurationError
from harvester.spec import parse_spec


def test_sitemap_index_and_gzipped_urlset() -> None:
    index = parse_sitemap(
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc> http://e.com/s1.xml </loc></sitemap></sitemapindex>"
    )
    assert index.sitemaps == ["http://e.com/s1.xml"] and index.pages == []
    urlset = gzip.compress(b"<urlset><url><loc>http://e.com/a</loc></url></urlset>")
    assert parse_sitemap(urlset).pages == ["http://e.com/a"]
    assert parse_sitemap(b"<not xml").pages == []


def test_links_respect_base_and_nofollow() -> None:
    html = (
        '<base href="http://e.com/docs/"><a href="a.html">a</a><a href="#x">x</a>'
        '<a rel="nofollow" href="/n">n</a><a href="mailto:x@e.com">m</a>'
    )
    assert extract_links(html, "http://e.com/", Counter()) == ["http://e.com/docs/a.html"]
    assert (
        extract_links(
            '<meta name="robots" content="nofollow"><a href="/a">', "http://e.com/", Counter()
        )
        == []
    )


@pytest.mark.parametrize(
    ("body", "ctype", "encoding"),
    [
        ("héllo".encode(), "text/html; charset=iso-8859-1", "utf-8"),  # lies: really UTF-8
        (
            "<p>Ærøskøbing er en købstad på Ærø. Byen har mange gamle huse og brostensbelagte "
            "gader, og færgen sejler til Svendborg.</p>".encode("cp1252"),
            "text/html",
            "cp1252",
        ),
        (b'<meta charset="koi8-r"><p>' + "привет мир".encode("koi8-r"), None, "koi8-r"),
        (b"\xef\xbb\xbfbom", None, "utf-8"),
    ],
)
def test_charset_detection(body: bytes, ctype: str | None, encoding: str) -> None:
    assert decode_html(body, ctype)[1] == encoding


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None


def test_rate_controller_backs_off_and_recovers_below_the_ceiling() -> None:
    clock = [0.0]
    controller = DomainRateController(4.0, clock=lambda: clock[0])
    controller.set_ceiling(1 / 0.5)  # a Crawl-delay of 0.5 s
    assert controller.ceiling == controller.rate == 2.0
    controller.on_response(429, 0.1, retry_after=30)
    assert controller.rate == 1.0
    for _ in range(3):
        controller.on_error()
    assert controller.rate == 0.5
    for _ in range(100):
        controller.on_response(200, 0.1, None)
    assert controller.rate == 2.0  # never above the ceiling
    controller.on_response(200, 60.0, None)
    assert controller.rate == 1.5  # slow answers slow us down


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"politeness.requests_per_second"):
        parse_spec(
            {"dataset": "d", "seeds": ["http://e.com/"], "politeness": {"requests_per_second": 0}}
        )
    with pytest.raises(ConfigurationError, match=r"scope.bogus"):
        parse_spec({"dataset": "d", "seeds": ["http://e.com/"], "scope": {"bogus": 1}})
    with pytest.raises(ConfigurationError, match=r"scope.exclude"):
        parse_spec({"dataset": "d", "seeds": ["http://e.com/"], "scope": {"exclude": ["("]}})
