"""robots.txt with RFC 9309 semantics, cached per origin for at most 24 hours.

2xx: parse the rules (Protego). 4xx: no rules, everything allowed. 5xx or unreachable after
retries: everything disallowed for now, and the origin is asked again after a short interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from protego import Protego

from harvester.errors import FetchError, FetchSkipped, PermanentFetchError

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks parsers to handle at least 500 KiB
CACHE_TTL_S = 24 * 3600.0
UNAVAILABLE_TTL_S = 300.0


@dataclass(frozen=True)
class RobotsRules:
    """The rules of one origin; `state` is `parsed`, `allow-all` or `unavailable`."""

    state: str
    parser: Protego | None = None
    fetched_at: float = field(default=0.0, compare=False)

    def decision(self, url: str, user_agent: str) -> str:
        """`allowed`, `disallowed` or `unavailable` (which disallows, per RFC 9309)."""
        if self.state == "unavailable":
            return "unavailable"
        if self.parser is None or self.parser.can_fetch(url, user_agent):
            return "allowed"
        return "disallowed"

    def crawl_delay(self, user_agent: str) -> float | None:
        """Crawl-delay for the agent, in seconds."""
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(user_agent)
        return float(delay) if delay is not None else None

    def sitemaps(self) -> list[str]:
        """Sitemap URLs the file lists."""
        return list(self.parser.sitemaps) if self.parser is not None else []


RobotsFetch = Callable[[str], Awaitable[tuple[int, bytes]]]


class RobotsCache:
    """Fetches robots.txt once per origin (concurrent askers share the fetch) and caches it."""

    def __init__(self, fetch: RobotsFetch, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._rules: dict[str, RobotsRules] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _fresh(self, rules: RobotsRules | None) -> bool:
        if rules is None:
            return False
        ttl = UNAVAILABLE_TTL_S if rules.state == "unavailable" else CACHE_TTL_S
        return self._clock() - rules.fetched_at < ttl

    async def rules(self, origin: str) -> tuple[RobotsRules, bool]:
        """The origin's rules, and whether this call fetched them (first contact)."""
        cached = self._rules.get(origin)
        if self._fresh(cached):
            assert cached is not None
            return cached, False
        async with self._locks.setdefault(origin, asyncio.Lock()):
            cached = self._rules.get(origin)
            if self._fresh(cached):
                assert cached is not None
                return cached, False
            rules = await self._load(origin)
            self._rules[origin] = rules
            return rules, True

    async def _load(self, origin: str) -> RobotsRules:
        now = self._clock()
        try:
            status, body = await self._fetch(origin + "/robots.txt")
        except FetchSkipped:
            return RobotsRules("allow-all", fetched_at=now)  # too large or not text: no rules
        except PermanentFetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return RobotsRules("allow-all", fetched_at=now)
            return RobotsRules("unavailable", fetched_at=now)
        except FetchError:
            return RobotsRules("unavailable", fetched_at=now)
        if 200 <= status < 300:
            text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
            return RobotsRules("parsed", Protego.parse(text), fetched_at=now)
        return RobotsRules("allow-all", fetched_at=now)
