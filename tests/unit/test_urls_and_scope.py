from __future__ import annotations

import pytest

from harvester.crawl.scope import ScopeRules
from harvester.crawl.urls import InvalidURL, canonicalize, domain_of
from harvester.spec import DEFAULT_TRACKING_PARAMS, Scope


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HTTP://Example.COM:80/A/B?b=2&a=1#frag", "http://example.com/A/B?a=1&b=2"),
        ("https://example.com:443/Path/", "https://example.com/Path/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/p?utm_source=x&id=3&fbclid=y", "http://example.com/p?id=3"),
        ("http://[::1]:80/x", "http://[::1]/x"),
    ],
)
def test_canonical_form(raw: str, canonical: str) -> None:
    assert canonicalize(raw, DEFAULT_TRACKING_PARAMS) == canonical


def test_tracking_params_kept_when_not_stripped() -> None:
    assert canonicalize("http://e.com/?utm_source=x") == "http://e.com/?utm_source=x"


@pytest.mark.parametrize("raw", ["ftp://e.com/", "mailto:a@b.c", "http:///nohost", "http://[::1"])
def test_non_crawlable_urls_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidURL):
        canonicalize(raw)


def test_scope_rules() -> None:
    rules = ScopeRules(
        Scope(max_depth=2, exclude=[r"/private/"], include=[r"/docs/"]),
        ["https://Example.org/docs/"],
    )
    assert domain_of("https://Example.org/docs/") == "example.org"
    assert rules.rejection("https://example.org/docs/a", 1) is None
    assert rules.rejection("https://sub.example.org/docs/a", 1) is None
    assert rules.rejection("https://example.org.evil.com/docs/", 1) == "domain"
    assert rules.rejection("https://example.org/docs/a", 3) == "depth"
    assert rules.rejection("https://example.org/blog/", 1) == "include"
    assert rules.rejection("https://example.org/docs/private/x", 1) == "exclude"
    strict = ScopeRules(Scope(include_subdomains=False), ["https://example.org/"])
    assert strict.rejection("https://sub.example.org/", 0) == "domain"
