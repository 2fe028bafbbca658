"""Proxy pools: rotation, sticky sessions, tiers with escalation, and per-domain bans.

A ban is kept per (proxy, domain): a proxy one site blocks stays good for the others. A proxy
that cannot be reached at all is dead for every domain. Both cool down with exponential backoff
and come back afterwards. When no proxy can serve a domain, `acquire` waits for the first one
to cool down instead of failing the URL.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harvester.errors import ConfigurationError

_SCHEMES = ("http", "https", "socks5", "socks5h")


# scheme://[user[:password]@]host:port and nothing else: a `/ ? # @` in the credentials must
# be percent-encoded, so the last `@` always ends them and no path or query can hide any.
_PROXY_URL = re.compile(
    r"^(?:http|https|socks5|socks5h)://(?:[^@/?#]*@)?(?:[^@/?#:\[\]]+|\[[0-9A-Fa-f:.]+\]):"
    r"[0-9]{1,5}/?$"
)


def mask_proxy(url: str) -> str:
    """The proxy URL with everything between `://` and the last `@` replaced by `***`: on the
    raw string, so even a malformed URL never shows its credentials."""
    return re.sub(r"://.*@", "://***@", url, count=1, flags=re.DOTALL)


class PoolConfig(BaseModel):
    """One named pool as written in a proxies file or sent to the API."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )

    rotation: Literal["round_robin", "least_used"] = "round_robin"
    """`round_robin` takes the proxies in turn, `least_used` the one used least."""
    sticky_per_domain: bool = False
    """Keep each domain on the same proxy while it works."""
    proxies: list[str] = []
    """One tier of proxy URLs (`http://`, `https://`, `socks5://`, credentials in the URL)."""
    tiers: list[list[str]] = []
    """Tiers of proxy URLs, cheapest first: a domain moves up a tier while it bans the lower one."""
    cooldown_s: Annotated[float, Field(gt=0)] = 30.0
    """How long a banned or dead proxy rests first; it doubles with each further strike."""
    max_cooldown_s: Annotated[float, Field(gt=0)] = 3600.0
    """Longest rest of a banned or dead proxy."""

    @field_validator("proxies", "tiers")
    @classmethod
    def _valid_urls(cls, value: list[str] | list[list[str]]) -> list[str] | list[list[str]]:
        flat = [u for item in value for u in ([item] if isinstance(item, str) else item)]
        for number, url in enumerate(flat, 1):
            port = url.rpartition(":")[2].rstrip("/")
            if not _PROXY_URL.match(url) or not 0 < int(port) < 65536:
                # Never the URL itself, nor a parser's words about it: they can carry a password.
                raise ValueError(
                    f"proxy #{number} must be scheme://[user:pass@]host:port, with scheme one "
                    f"of {', '.join(_SCHEMES)} and / ? # @ in credentials percent-encoded"
                )
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> PoolConfig:
        if bool(self.proxies) == bool(self.tiers):
            raise ValueError("give exactly one of `proxies` (one tier) or `tiers`")
        if any(not tier for tier in self.tiers):
            raise ValueError("a tier must list at least one proxy")
        return self

    def tier_lists(self) -> list[list[str]]:
        """The proxies grouped by tier, cheapest first."""
        return self.tiers or [self.proxies]


class ProxiesFile(BaseModel):
    """The top level of a proxies file: named pools."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )

    pools: dict[str, PoolConfig]


def load_proxies_file(path: Path) -> dict[str, PoolConfig]:
    """Read and validate a YAML/JSON proxies file; errors never echo credentials."""
    try:
        data = yaml.safe_load(path.read_text())
        return ProxiesFile.model_validate(data).pools
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read proxies file {path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"invalid proxies file {path}: {problems}") from None


@dataclass
class _Cooldown:
    strikes: int = 0
    until: float = 0.0


@dataclass(eq=False)
class Proxy:
    """One proxy of a pool with its live counters."""

    url: str
    tier: int
    masked: str = field(init=False)
    uses: int = 0
    dead: _Cooldown = field(default_factory=_Cooldown)

    def __post_init__(self) -> None:
        self.masked = mask_proxy(self.url)


class ProxyPool:
    """Chooses a proxy for each request to a domain and learns from what happened."""

    def __init__(
        self, name: str, config: PoolConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self._config = config
        self._clock = clock
        self.tiers = [[Proxy(u, i) for u in urls] for i, urls in enumerate(config.tier_lists())]
        self.proxies = [p for tier in self.tiers for p in tier]
        self._bans: dict[tuple[int, str], _Cooldown] = {}
        self._sticky: dict[str, Proxy] = {}
        self._next: list[int] = [0] * len(self.tiers)

    def _available(self, proxy: Proxy, domain: str, now: float) -> bool:
        ban = self._bans.get((id(proxy), domain))
        return proxy.dead.until <= now and (ban is None or ban.until <= now)

    def _cheapest(self, domain: str, now: float) -> tuple[int, list[Proxy]] | None:
        """The cheapest tier with a proxy the domain has not banned, and those proxies: a
        domain moves up while it blocks a tier, and back down once those bans cool off."""
        for index, tier in enumerate(self.tiers):
            ready = [p for p in tier if self._available(p, domain, now)]
            if ready:
                return index, ready
        return None

    def _pick(self, domain: str, exclude: set[str], now: float) -> Proxy | None:
        cheapest = self._cheapest(domain, now)
        if cheapest is None:
            return None
        tier_index, ready = cheapest
        tier = self.tiers[tier_index]
        sticky = self._sticky.get(domain)
        if sticky in ready and sticky is not None and sticky.url not in exclude:
            return sticky
        fresh = [p for p in ready if p.url not in exclude] or ready
        if self._config.rotation == "least_used":
            chosen = min(fresh, key=lambda p: p.uses)
        else:
            start = self._next[tier_index]
            order = tier[start:] + tier[:start]
            chosen = next(p for p in order if p in fresh)
            self._next[tier_index] = (tier.index(chosen) + 1) % len(tier)
        if self._config.sticky_per_domain:
            self._sticky[domain] = chosen
        return chosen

    def _next_release(self, domain: str) -> float:
        release = []
        for proxy in self.proxies:
            ban = self._bans.get((id(proxy), domain))
            release.append(max(proxy.dead.until, ban.until if ban else 0.0))
        return min(release)

    def blocked_for(self, domain: str) -> float:
        """Seconds until some proxy may serve `domain` again (0 when one may now): every proxy
        is dead or banned there, cooling down."""
        now = self._clock()
        if self._cheapest(domain, now) is not None:
            return 0.0
        return max(0.0, self._next_release(domain) - now)

    async def acquire(self, domain: str, exclude: set[str] | None = None) -> Proxy:
        """A proxy for `domain`, preferring one not in `exclude` (those already tried)."""
        while True:
            now = self._clock()
            proxy = self._pick(domain, exclude or set(), now)
            if proxy is not None:
                proxy.uses += 1
                return proxy
            await asyncio.sleep(max(0.01, self._next_release(domain) - now))

    def _strike(self, cooldown: _Cooldown) -> None:
        cooldown.strikes += 1
        delay = self._config.cooldown_s * 2 ** (cooldown.strikes - 1)
        cooldown.until = self._clock() + min(delay, self._config.max_cooldown_s)

    def report_ban(self, proxy: Proxy, domain: str) -> None:
        """The domain blocked this proxy (403/429, a challenge page): cool it down for it."""
        self._strike(self._bans.setdefault((id(proxy), domain), _Cooldown()))
        if self._sticky.get(domain) is proxy:
            del self._sticky[domain]

    def report_dead(self, proxy: Proxy) -> None:
        """The proxy could not be reached or refused us (407): cool it down for everyone."""
        self._strike(proxy.dead)
        for domain in [d for d, p in self._sticky.items() if p is proxy]:
            del self._sticky[domain]

    def report_success(self, proxy: Proxy, domain: str) -> None:
        """A request went through: the proxy's strikes for this domain are forgiven."""
        proxy.dead = _Cooldown()
        self._bans.pop((id(proxy), domain), None)

    def health(self) -> list[dict[str, object]]:
        """Per proxy: masked URL, tier, uses, ok/cooling/dead and domains it is banned on."""
        now = self._clock()
        rows: list[dict[str, object]] = []
        for proxy in self.proxies:
            banned = sorted(
                d for (pid, d), c in self._bans.items() if pid == id(proxy) and c.until > now
            )
            state = "dead" if proxy.dead.until > now else "cooling" if banned else "ok"
            rows.append(
                {
                    "proxy": proxy.masked,
                    "tier": proxy.tier,
                    "uses": proxy.uses,
                    "state": state,
                    "banned_on": banned,
                }
            )
        return rows
