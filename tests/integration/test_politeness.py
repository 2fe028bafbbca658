"""Politeness, asserted from the servers' own request logs."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.orm import Session, sessionmaker

from harvester.store.blob import BlobStore
from tests.conftest import crawl
from tests.webtest import SiteServer, assert_spaced

pytestmark = pytest.mark.usefixtures("prompt_server_timestamps")


def test_requests_to_a_domain_are_never_closer_than_one_over_rate(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    rate = 5.0
    spec = {
        "dataset": "web",
        "seeds": [s.origin + "/" for s in sites],
        "politeness": {"requests_per_second": rate, "concurrency_per_domain": 4},
    }
    crawl(spec, sqlite_catalog, store)
    for site in sites:
        times = sorted(hit.t for hit in site.state.log)
        spaced = sorted(b - a for a, b in itertools.pairwise(times))
        assert len(spaced) > 20
        # The controller spaces sends by 1/rate from the moment each request left: the
        # typical gap is the full interval, and no span is short by more than a late stamp.
        assert spaced[len(spaced) // 10] >= 0.99 / rate
        assert_spaced(times, rate)


def test_concurrency_per_domain_is_capped(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    site.state.delay_s = 0.2  # slow answers: without the cap, requests would pile up
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/"],
        "politeness": {"requests_per_second": 200, "concurrency_per_domain": 2},
    }
    crawl(spec, sqlite_catalog, store)
    assert site.state.max_active == 2


def test_crawl_delay_lowers_the_rate(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    site.state.robots = "User-agent: *\nCrawl-delay: 0.3\n"
    site.state.pages = 6
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/"],
        "politeness": {"requests_per_second": 50, "concurrency_per_domain": 2},
    }
    crawl(spec, sqlite_catalog, store)
    # The robots.txt request itself precedes the rule, so judge the gaps after it.
    assert_spaced([h.t for h in site.state.log[1:]], 1 / 0.3)


def test_retry_after_is_honoured_and_one_slow_domain_does_not_block_others(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    slow, fast = sites[0], sites[1]
    spec = {
        "dataset": "web",
        "seeds": [slow.origin + "/retry-after", fast.origin + "/"],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": 50},
        "retry": {"backoff_initial_s": 0.01},
    }
    crawl(spec, sqlite_catalog, store)
    hits = [h.t for h in slow.state.log if h.path == "/retry-after"]
    assert len(hits) == 2 and hits[1] - hits[0] >= 0.95  # Retry-After: 1
    fast_pages = [h.t for h in fast.state.log if h.path.startswith("/page/")]
    # The fast site finished pages while the slow one was paused.
    assert sum(hits[0] < t < hits[1] for t in fast_pages) >= 5


def test_waiting_for_a_turn_never_times_a_request_out_nor_holds_a_global_slot(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    """A Crawl-delay three times the request timeout: every page of that site is fetched
    (none fails `timeout/total` while waiting for its turn), and with a single global slot the
    other site's pages go on between the slow site's turns."""
    slow, fast = sites[0], sites[1]
    slow.state.robots = "User-agent: *\nCrawl-delay: 1.5\n"
    slow.state.pages = 3
    fast.state.pages = 200  # four seconds' worth at 50 requests/s
    spec = {
        "dataset": "web",
        "seeds": [slow.origin + "/", fast.origin + "/"],
        "scope": {"sitemaps": False},
        "limits": {"timeout_s": 0.5, "global_concurrency": 1},
        "politeness": {"requests_per_second": 50, "concurrency_per_domain": 2},
    }
    _, stats = crawl(spec, sqlite_catalog, store)
    assert stats.get("fetch/outcome/failed") == 0, stats
    requests = [h for h in slow.state.log if h.path != "/robots.txt"]
    assert len(requests) == len({h.path for h in requests}) >= 4, [h.path for h in requests]
    turns = sorted(h.t for h in requests)
    assert_spaced(turns, 1 / 1.5)
    fast_pages = [h.t for h in fast.state.log if h.path.startswith("/page/")]
    assert sum(turns[0] < t < turns[-1] for t in fast_pages) >= 10
