"""robots.txt with RFC 9309 semantics, cached per origin for at most 24 hours.

2xx: parse the rules (Protego). 4xx: no rules, everything allowed. 5xx (or 429) after
retries: everything disallowed for now (`unavailable`), and the origin is asked again after
`retry_s`. A robots.txt that cannot be fetched at all (refused, unreachable, blocked by the
network guard) raises that `FetchError`: the URL that asked fails with it, as its own fetch
would have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from protego import Protego

from harvester.errors import BlockedDestination, FetchError, FetchSkipped, TransientFetchError

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks parsers to handle at least 500 KiB
MAX_ROBOTS_LINES = 2000
MAX_ROBOTS_LINE = 2048
"""Every decision walks the rules on the event loop: thousands of wildcard rules made one
decision cost 80 ms (security review L5). Real files have hundreds of lines."""
CACHE_TTL_S = 24 * 3600.0
UNAVAILABLE_RETRY_S = 60.0


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

    def __init__(
        self,
        fetch: RobotsFetch,
        retry_s: float = UNAVAILABLE_RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._retry_s = retry_s
        self._clock = clock
        self._rules: dict[str, RobotsRules] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._down_since: dict[str, float] = {}

    def _fresh(self, rules: RobotsRules | None) -> bool:
        if rules is None:
            return False
        ttl = self._retry_s if rules.state == "unavailable" else CACHE_TTL_S
        return self._clock() - rules.fetched_at < ttl

    def unavailable_for(self, origin: str) -> float:
        """Seconds since the origin's robots.txt became unavailable (0 while it is not)."""
        since = self._down_since.get(origin)
        return 0.0 if since is None else self._clock() - since

    def next_ask(self, origin: str) -> float:
        """Seconds until an unavailable robots.txt is asked again."""
        rules = self._rules.get(origin)
        if rules is None:
            return 0.0
        return max(0.0, rules.fetched_at + self._retry_s - self._clock())

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
            if rules.state == "unavailable":
                self._down_since.setdefault(origin, rules.fetched_at)
            else:
                self._down_since.pop(origin, None)
            return rules, True

    async def _load(self, origin: str) -> RobotsRules:
        now = self._clock()
        try:
            status, body = await self._fetch(origin + "/robots.txt")
        except FetchSkipped:
            return RobotsRules("allow-all", fetched_at=now)  # too large or not text: no rules
        except FetchError as exc:
            if exc.status is None and isinstance(exc, TransientFetchError | BlockedDestination):
                raise  # no server answered: the asking URL fails with why
            if exc.status is not None and (exc.status == 429 or exc.status >= 500):
                return RobotsRules("unavailable", fetched_at=now)
            # Other 4xx, or a redirect loop: RFC 9309 calls it unavailable, which allows all.
            return RobotsRules("allow-all", fetched_at=now)
        if 200 <= status < 300:
            text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
            return RobotsRules("parsed", Protego.parse(_bounded(text)), fetched_at=now)
        return RobotsRules("allow-all", fetched_at=now)


def _bounded(text: str) -> str:
    """The first `MAX_ROBOTS_LINES` lines, each cut at `MAX_ROBOTS_LINE` characters."""
    lines = text.splitlines()[:MAX_ROBOTS_LINES]
    return "\n".join(line[:MAX_ROBOTS_LINE] for line in lines)
