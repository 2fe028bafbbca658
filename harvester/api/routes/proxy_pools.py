"""`/v1/proxy-pools/{name}`: credentials go in, never come out."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import httpx
from fastapi import APIRouter, Path

from harvester.api.deps import Admin, Reader, Svc
from harvester.api.errors import ApiError
from harvester.api.schemas import ProxyOut, ProxyPoolOut
from harvester.crawl.netguard import NetworkGuard
from harvester.crawl.proxies import PoolConfig, ProxyPool, mask_proxy
from harvester.service.pools import delete_pool, load_pool, pool_names, save_pool

router = APIRouter(prefix="/v1/proxy-pools", tags=["proxy pools"])
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]


def _out(svc_pools: dict[str, ProxyPool], name: str, config: PoolConfig) -> ProxyPoolOut:
    live = svc_pools.get(name)
    health = {row["proxy"]: row for row in live.health()} if live else {}
    proxies = []
    for tier, urls in enumerate(config.tier_lists()):
        for url in urls:
            masked = mask_proxy(url)
            row = health.get(masked)
            proxies.append(
                ProxyOut(
                    proxy=masked,
                    tier=tier,
                    state=str(row["state"]) if row else "idle",
                    banned_domains=list(row["banned_on"]) if row else [],  # type: ignore[call-overload]
                )
            )
    return ProxyPoolOut(
        name=name,
        rotation=config.rotation,
        sticky_per_domain=config.sticky_per_domain,
        cooldown_s=config.cooldown_s,
        max_cooldown_s=config.max_cooldown_s,
        proxies=proxies,
    )


@router.get("")
def list_pools(svc: Svc, _: Reader) -> list[ProxyPoolOut]:
    """Every pool, credentials masked."""
    live = svc.worker.pools if svc.worker else {}
    return [_out(live, n, c) for n in pool_names(svc.sessions) if (c := load_pool(svc.sessions, n))]


@router.get("/{name}")
def get_pool(name: Name, svc: Svc, _: Reader) -> ProxyPoolOut:
    """A pool with masked credentials and, while a job uses it here, live health."""
    config = load_pool(svc.sessions, name)
    if config is None:
        raise ApiError(404, "not_found", f"no proxy pool {name!r}")
    return _out(svc.worker.pools if svc.worker else {}, name, config)


@router.put("/{name}")
def put_pool(name: Name, config: PoolConfig, svc: Svc, _: Admin) -> ProxyPoolOut:
    """Create or replace a pool (the same shape as a proxies file's pool). A proxy given by
    an address the network guard refuses is refused here; one given by name is judged on
    every connection to it."""
    guard = NetworkGuard(svc.settings.allow_private_networks, svc.settings.allowed_networks)
    for number, url in enumerate((u for tier in config.tier_lists() for u in tier), 1):
        host = httpx.URL(url).host
        why = "loopback" if host == "localhost" else _literal_refusal(guard, host)
        if why is not None:
            message = f"proxy #{number}: the network guard refuses its address ({why})"
            raise ApiError(
                422, "validation_error", message, [{"field": "proxies", "message": message}]
            )
    save_pool(svc.sessions, name, config)
    return _out({}, name, config)


@router.delete("/{name}", status_code=204)
def remove_pool(name: Name, svc: Svc, _: Admin) -> None:
    """Delete a pool."""
    if not delete_pool(svc.sessions, name):
        raise ApiError(404, "not_found", f"no proxy pool {name!r}")


def _literal_refusal(guard: NetworkGuard, host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: judged when it is resolved, at each connection
    return guard.refusal(host)
