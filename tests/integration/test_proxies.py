"""Crawling through real proxies: rotation, credentials, bans, dead proxies and tiers.

Each pproxy binds its outgoing side to its own loopback address, so the site's peer address
says which proxy carried a request."""

from __future__ import annotations

import itertools
import json
import os
import socket
import ssl
import subprocess
import sys
from collections import Counter
from pathlib import Path

import trustme
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.db import open_catalog
from harvester.catalog.models import FrontierEntry, Job
from harvester.config import Settings
from harvester.crawl.proxies import PoolConfig, ProxyPool
from harvester.store.blob import BlobStore
from tests.conftest import Proxies, crawl
from tests.faultproxy import FaultProxy
from tests.webtest import SiteServer, SiteState, TlsSiteServer, start

HARVESTER = str(Path(sys.executable).with_name("harvester"))


def _spec(site: SiteServer) -> dict[str, object]:
    return {
        "dataset": "web",
        "seeds": [site.origin + "/"],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": 100, "concurrency_per_domain": 2},
        "retry": {"max_attempts": 6, "backoff_initial_s": 0.01},
    }


def test_round_robin_over_http_with_credentials_and_socks5(
    sqlite_catalog: sessionmaker[Session],
    sites: list[SiteServer],
    store: BlobStore,
    proxies: Proxies,
) -> None:
    site = sites[0]
    pool = ProxyPool("default", PoolConfig(proxies=[proxies.http1, proxies.http2, proxies.socks]))
    job_id, _stats = crawl(_spec(site), sqlite_catalog, store, pool=pool)

    peers = Counter(hit.peer for hit in site.state.log)
    assert set(peers) == {"127.0.0.21", "127.0.0.22", "127.0.0.23"}  # never direct
    assert max(peers.values()) - min(peers.values()) <= 2  # round robin spreads evenly
    with sqlite_catalog() as session:
        rows = session.scalars(select(FrontierEntry).where(FrontierEntry.job_id == job_id)).all()
        job = session.get(Job, job_id)
    assert all(r.outcome == "fetched" for r in rows if r.robots == "allowed")
    assert {r.proxy for r in rows if r.proxy} == {
        proxies.http1,
        "http://***@127.0.0.22:" + proxies.http2.rsplit(":", 1)[1],
        proxies.socks,
    }
    dump = repr([vars(r) for r in rows]) + repr(job.stats if job else None)
    assert "s3cret" not in dump and "alice" not in dump


def test_banned_and_dead_proxies_stop_receiving_traffic(
    sqlite_catalog: sessionmaker[Session],
    sites: list[SiteServer],
    store: BlobStore,
    proxies: Proxies,
) -> None:
    site = sites[0]
    before = proxies.forbidding.hits  # type: ignore[attr-defined]
    config = PoolConfig(
        proxies=[proxies.forbidding_url, proxies.dead_url, proxies.http1], cooldown_s=60
    )
    pool = ProxyPool("default", config)
    job_id, stats = crawl(_spec(site), sqlite_catalog, store, pool=pool)

    with sqlite_catalog() as session:
        rows = session.scalars(select(FrontierEntry).where(FrontierEntry.job_id == job_id)).all()
    fetched = [r for r in rows if r.outcome == "fetched"]
    assert len(fetched) == 1 + 20 and len(rows) == 1 + 20 + 1  # +1: robots-disallowed
    assert {h.peer for h in site.state.log} == {"127.0.0.21"}
    # One ban (two with both concurrent workers racing) and the 403 proxy gets nothing more.
    assert proxies.forbidding.hits - before <= 2  # type: ignore[attr-defined]
    assert stats.get("proxy/dead") <= 2
    health = {row["proxy"]: row["state"] for row in pool.health()}
    assert health[proxies.forbidding_url] == "cooling"
    assert health[proxies.dead_url] == "dead"
    assert health[proxies.http1] == "ok"


def test_a_domain_that_blocks_the_cheap_tier_escalates(
    sqlite_catalog: sessionmaker[Session],
    sites: list[SiteServer],
    store: BlobStore,
    proxies: Proxies,
) -> None:
    site = sites[0]
    pool = ProxyPool("default", PoolConfig(tiers=[[proxies.forbidding_url], [proxies.socks]]))
    _job_id, _ = crawl(_spec(site), sqlite_catalog, store, pool=pool)
    assert {h.peer for h in site.state.log} == {"127.0.0.23"}
    assert all(r["state"] != "dead" for r in pool.health())


def test_a_destination_that_is_down_is_not_blamed_on_the_proxy(
    sites: list[SiteServer], tmp_path: Path, dante: str
) -> None:
    """Through a real SOCKS5 server, a destination that refuses connections comes back as
    the server's reply code: the URL fails `connect/refused`, and the proxy stays healthy
    and carries the rest of the crawl. (A `harvester crawl` process: httpcore leaves the
    socket of a refused SOCKS handshake to the garbage collector, whose warning would land
    in whichever test of this process collects it.)"""
    site = sites[0]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.5.23", 0))
        closed = f"http://127.0.5.23:{s.getsockname()[1]}/"
    spec = _spec(site) | {
        "seeds": [closed, site.origin + "/"],
        "retry": {"max_attempts": 3, "backoff_initial_s": 0.01},
        "proxy_pool": "default",
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "proxies.json").write_text(json.dumps({"pools": {"default": {"proxies": [dante]}}}))
    catalog = f"sqlite:///{tmp_path}/h.db"
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": catalog,
        "HARVESTER_STORAGE_URL": str(tmp_path / "store"),
    }
    subprocess.run(
        [HARVESTER, "crawl", "--spec", str(tmp_path / "spec.json"), "--proxies",
         str(tmp_path / "proxies.json"), "--allow-private", "--no-progress"],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    sessions = open_catalog(catalog)
    with sessions() as session:
        rows = {r.url: r for r in session.scalars(select(FrontierEntry))}
        [job] = session.scalars(select(Job)).all()
    assert (rows[closed].outcome, rows[closed].reason) == ("failed", "connect/refused")
    assert job.stats.get("proxy/dead", 0) == 0
    assert {h.peer for h in site.state.log} == {"127.0.0.26"}  # the crawl went on through it
    assert sum(r.outcome == "fetched" for r in rows.values()) == 1 + 20


def test_a_forbidden_page_is_not_a_ban(
    sqlite_catalog: sessionmaker[Session],
    sites: list[SiteServer],
    store: BlobStore,
    proxies: Proxies,
) -> None:
    """A members-only page answers 403 through two different proxies: it is forbidden, not a
    ban, and both proxies go on serving the domain."""
    site = sites[0]
    spec = _spec(site) | {"seeds": [site.origin + "/members", site.origin + "/"]}
    pool = ProxyPool("default", PoolConfig(proxies=[proxies.http1, proxies.socks]))
    job_id, stats = crawl(spec, sqlite_catalog, store, pool=pool)
    with sqlite_catalog() as session:
        rows = {
            r.url: r
            for r in session.scalars(select(FrontierEntry).where(FrontierEntry.job_id == job_id))
        }
    members = rows[site.origin + "/members"]
    assert (members.outcome, members.reason, members.attempts) == ("failed", "status/403", 2)
    assert stats.get("proxy/ban/403") == 0
    assert [r["state"] for r in pool.health()] == ["ok", "ok"]
    peers = Counter(h.peer for h in site.state.log if h.path != "/members")
    assert set(peers) == {"127.0.0.21", "127.0.0.23"}  # both kept serving


def test_through_a_tunnel_the_gap_counts_from_the_request_not_the_connect(
    sqlite_catalog: sessionmaker[Session], store: BlobStore, proxies: Proxies, tmp_path: Path
) -> None:
    """HTTPS through an HTTP proxy: a new tunnel sends CONNECT and a TLS handshake before the
    request. The link to the proxy adds 50 ms each way and the site closes every second
    connection, so requests alternate between new and warm tunnels; counted from the CONNECT,
    a request on a warm tunnel would follow one on a new tunnel a few round trips early."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.5.31").configure_cert(context)
    site = start(
        TlsSiteServer("127.0.5.31", SiteState(pages=8, sitemap=False, close_every=2), context)
    )
    host, port = proxies.http1.removeprefix("http://").split(":")
    link = FaultProxy((host, int(port)))
    delay, rate = 0.05, 2.0
    link.slow(delay)
    spec = {
        "dataset": "tls",
        "seeds": [site.origin + "/"],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": rate, "concurrency_per_domain": 1},
    }
    pool = ProxyPool("default", PoolConfig(proxies=[f"http://127.0.0.1:{link.port}"]))
    try:
        _, stats = crawl(
            spec,
            sqlite_catalog,
            store,
            pool=pool,
            settings=Settings(host_lease_s=5.0, ca_file=str(ca_file)),
        )
    finally:
        link.close()
        site.shutdown()
        site.server_close()
    assert stats.get("fetch/outcome/fetched") >= 8
    times = sorted(h.t for h in site.state.log)
    # The slow link can queue one chunk behind another: a request may arrive one delay later
    # than it left, the next one on time. Counted from the CONNECT, the gap after a new
    # tunnel would lose the CONNECT and TLS round trips (six delays and more).
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1 / rate - 2 * delay
