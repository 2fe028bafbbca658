"""Network safety. Only loopback is ever connected to: other ranges are checked by the guard's
decision, which is taken before any connection is opened."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import FrontierEntry
from harvester.crawl.netguard import NetworkGuard
from harvester.errors import BlockedDestination
from harvester.store.blob import BlobStore
from tests.conftest import crawl
from tests.webtest import SiteServer


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("100.64.0.1", "private"),
        ("100.100.100.200", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "private"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_guard_decision_by_range(address: str, refusal: str | None) -> None:
    assert NetworkGuard(allow_private=False).refusal(address) == refusal
    assert NetworkGuard(allow_private=True).refusal(address) is None


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "localhost"])
def test_numeric_and_named_forms_of_loopback_are_refused(host: str) -> None:
    with pytest.raises(BlockedDestination) as caught:
        asyncio.run(NetworkGuard(allow_private=False).resolve(host, 80))
    assert caught.value.reason == "blocked/loopback"


def test_guard_is_checked_on_every_redirect_hop(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    allowed, other = sites[0], sites[1]
    guard = NetworkGuard(allow_private=False, allowed_networks=["127.0.0.2/32"])
    spec = {
        "dataset": "web",
        "seeds": [
            allowed.origin + "/to-loopback",
            allowed.origin + "/to-metadata",
            allowed.origin + "/page/1",
            other.origin + "/page/1",
        ],
        # Scope admits the targets, so it is the guard that must refuse them.
        "scope": {
            "max_depth": 0,
            "sitemaps": False,
            "allowed_domains": ["127.0.0.1", "127.0.0.2", "127.0.0.3", "169.254.169.254"],
        },
        "politeness": {"requests_per_second": 100, "respect_robots": False},
    }
    job_id, _ = crawl(spec, sqlite_catalog, store, guard=guard)
    with sqlite_catalog() as session:
        rows = {
            r.url: (r.outcome, r.reason)
            for r in session.scalars(select(FrontierEntry).where(FrontierEntry.job_id == job_id))
        }
    # A redirect to another host joins the frontier: that host's lease holder fetches it, and
    # the guard judges it there, before connecting.
    assert rows[allowed.origin + "/to-loopback"] == ("skipped", "redirect/other-host")
    assert rows[f"http://127.0.0.1:{allowed.server_address[1]}/"] == ("failed", "blocked/loopback")
    assert rows[allowed.origin + "/to-metadata"] == ("skipped", "redirect/other-host")
    assert rows["http://169.254.169.254/latest/meta-data/"] == ("failed", "blocked/link-local")
    assert rows[allowed.origin + "/page/1"] == ("fetched", None)
    assert rows[other.origin + "/page/1"] == ("failed", "blocked/loopback")
    assert other.state.log == []  # refused before connecting
