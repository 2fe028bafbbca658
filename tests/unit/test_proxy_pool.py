from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harvester.crawl.proxies import PoolConfig, ProxyPool, load_proxies_file, mask_proxy
from harvester.errors import ConfigurationError

A, B, C = "http://10.0.0.1:3128", "http://user:pw@10.0.0.2:3128", "socks5://10.0.0.3:1080"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pick(pool: ProxyPool, domain: str = "a.com", exclude: set[str] | None = None) -> str:
    return asyncio.run(pool.acquire(domain, exclude)).url


def test_round_robin_and_least_used() -> None:
    pool = ProxyPool("p", PoolConfig(proxies=[A, B, C]))
    assert [pick(pool) for _ in range(4)] == [A, B, C, A]
    least = ProxyPool("p", PoolConfig(proxies=[A, B], rotation="least_used"))
    assert [pick(least, d) for d in ("x", "y", "z", "w")] == [A, B, A, B]


def test_retry_prefers_a_proxy_not_yet_tried() -> None:
    pool = ProxyPool("p", PoolConfig(proxies=[A, B]))
    assert pick(pool, exclude={A}) == B
    assert pick(pool, exclude={A, B}) in (A, B)  # all tried: any available one


def test_sticky_proxy_per_domain_until_banned() -> None:
    pool = ProxyPool("p", PoolConfig(proxies=[A, B, C], sticky_per_domain=True))
    first = pick(pool, "a.com")
    assert {pick(pool, "a.com") for _ in range(3)} == {first}
    proxy = next(p for p in pool.proxies if p.url == first)
    pool.report_ban(proxy, "a.com")
    assert pick(pool, "a.com") != first


def test_ban_is_per_domain_and_cools_down_exponentially() -> None:
    clock = Clock()
    pool = ProxyPool("p", PoolConfig(proxies=[A, B], cooldown_s=10), clock=clock)
    a = pool.proxies[0]
    pool.report_ban(a, "a.com")
    assert {pick(pool, "a.com") for _ in range(4)} == {B}
    assert A in {pick(pool, "b.com") for _ in range(2)}  # still good for another site
    clock.now += 10
    assert A in {pick(pool, "a.com") for _ in range(2)}  # back after cool-down
    pool.report_ban(a, "a.com")  # second strike: 20 s
    clock.now += 15
    assert {pick(pool, "a.com") for _ in range(4)} == {B}
    clock.now += 5
    assert A in {pick(pool, "a.com") for _ in range(2)}
    pool.report_success(a, "a.com")
    assert pool.health()[0]["state"] == "ok"


def test_dead_proxy_is_cooled_for_every_domain() -> None:
    clock = Clock()
    pool = ProxyPool("p", PoolConfig(proxies=[A, B]), clock=clock)
    pool.report_dead(pool.proxies[0])
    assert {pick(pool, d) for d in ("a.com", "b.com", "c.com")} == {B}
    assert pool.health()[0]["state"] == "dead"


def test_tiers_escalate_only_for_the_blocking_domain() -> None:
    pool = ProxyPool("p", PoolConfig(tiers=[[A], [C]]))
    pool.report_ban(pool.proxies[0], "a.com")
    assert pick(pool, "a.com") == C
    assert pick(pool, "b.com") == A


def test_a_domain_steps_back_down_a_tier_once_its_bans_cool_off() -> None:
    clock = Clock()
    pool = ProxyPool("p", PoolConfig(tiers=[[A], [C]], cooldown_s=60), clock=clock)
    pool.report_ban(pool.proxies[0], "a.com")
    assert pick(pool, "a.com") == C
    clock.now += 61
    assert pick(pool, "a.com") == A


def test_domain_waits_when_every_proxy_is_cooling() -> None:
    pool = ProxyPool("p", PoolConfig(proxies=[A], cooldown_s=0.2))
    pool.report_ban(pool.proxies[0], "a.com")
    started = time.monotonic()
    assert pick(pool, "a.com") == A
    assert time.monotonic() - started >= 0.15


def test_credentials_are_masked_and_never_in_errors(tmp_path: Path) -> None:
    assert mask_proxy(B) == "http://***@10.0.0.2:3128"
    bad = tmp_path / "proxies.yaml"
    bad.write_text("pools:\n  default:\n    proxies: [ftp://bob:hunter2@10.0.0.9:21]\n")
    with pytest.raises(ConfigurationError) as caught:
        load_proxies_file(bad)
    assert "hunter2" not in str(caught.value) and "bob" not in str(caught.value)
    good = tmp_path / "ok.yaml"
    good.write_text(f"pools:\n  default:\n    tiers: [[{A}], ['{B}']]\n")
    assert load_proxies_file(good)["default"].tier_lists() == [[A], [B]]
