"""robots.txt and sitemaps for one leased host: robots.txt is fetched once per origin and user
agent and shared by every job on the host; each job reads the origin's sitemaps once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from harvester.crawl.attempt import FetchPolicy
from harvester.crawl.jobcontext import JobContext
from harvester.crawl.outcome import Outcome
from harvester.crawl.pagework import Links
from harvester.crawl.robots import UNAVAILABLE_RETRY_S, RobotsCache
from harvester.crawl.urls import origin_of
from harvester.errors import FetchError

MAX_SITEMAPS = 50
"""Sitemaps read per origin (an index may name thousands)."""
MAX_JOB_SITEMAPS = 1_000
"""Sitemaps read per job by one worker: what a crawled site can make it fetch is bounded."""
ReadSitemap = Callable[[bytes, JobContext], Awaitable[tuple[list[str], Links, Counter[str]]]]
"""Parses a sitemap off the event loop (in the CPU pool) into its child sitemaps and the
job's screened page URLs; raises `TimeoutError` past its budget."""
OnUrls = Callable[[JobContext, Links, int, Counter[str]], None]


class Deferred(Exception):
    """The URL's robots.txt answers 5xx for now: try the URL again in `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"robots.txt unavailable; asking again in {delay:.1f} s")
        self.delay = delay


class Discovery:
    """Robots decisions and sitemap reading through the host's fetch policy."""

    def __init__(
        self,
        policy: FetchPolicy,
        same_host: Callable[[str], bool],
        on_crawl_delay: Callable[[str, float | None], None],
        on_urls: OnUrls,
        read_sitemap: ReadSitemap,
    ) -> None:
        self._read_sitemap = read_sitemap
        self._policy = policy
        self._on_urls = on_urls
        self._same_host = same_host
        self._on_crawl_delay = on_crawl_delay
        self._robots: dict[str, RobotsCache] = {}  # by user agent

    async def decision(self, job: JobContext, url: str, counters: Counter[str]) -> str:
        """`allowed`, `ignored`, `disallowed`, `unavailable` or `crawl-delay` (longer than the
        job will wait) for the job's user agent.
        While robots.txt answers 5xx and the job's patience lasts, raises `Deferred`; raises
        the `FetchError` that kept robots.txt from being fetched at all."""
        origin = origin_of(url)
        agent = job.spec.politeness.user_agent
        if not job.spec.politeness.respect_robots:
            await self._first_contact(job, origin, [], counters, lambda _url: True)
            return "ignored"
        cache = self._robots.get(agent)
        if cache is None:

            async def fetch(robots_url: str) -> tuple[int, bytes]:
                scratch = Outcome(0, self._policy.host)
                try:
                    result = await self._policy.fetch(job, robots_url, {}, scratch, aux=True)
                finally:
                    counters.update(scratch.counters)
                return result.status, result.body

            patience = job.spec.politeness.robots_patience_s
            retry_s = min(UNAVAILABLE_RETRY_S, max(0.5, patience / 4))
            cache = self._robots[agent] = RobotsCache(fetch, retry_s)
        rules, fetched_now = await cache.rules(origin)
        delay = rules.crawl_delay(agent)
        too_slow = delay is not None and delay > job.spec.politeness.max_crawl_delay_s
        if fetched_now:
            if not too_slow:
                self._on_crawl_delay(agent, delay)
            counters[f"robots/{rules.state}"] += 1
        if too_slow:
            return "crawl-delay"
        allowed = lambda sitemap: rules.decision(sitemap, agent) == "allowed"  # noqa: E731
        await self._first_contact(job, origin, rules.sitemaps(), counters, allowed)
        decision = rules.decision(url, agent)
        if decision == "unavailable" and (
            cache.unavailable_for(origin) < job.spec.politeness.robots_patience_s
        ):
            raise Deferred(cache.next_ask(origin))
        return decision

    async def _first_contact(
        self,
        job: JobContext,
        origin: str,
        sitemaps: list[str],
        counters: Counter[str],
        allowed: Callable[[str], bool],
    ) -> None:
        # Read inline, before the URL that made first contact is recorded: its outcome and the
        # sitemap's URLs commit together, so the job cannot look finished in between.
        if origin in job.contacted or not job.spec.scope.sitemaps:
            return
        job.contacted.add(origin)
        await self._read_sitemaps(job, [*sitemaps, origin + "/sitemap.xml"], counters, allowed)

    async def _read_sitemaps(
        self,
        job: JobContext,
        urls: Iterable[str],
        counters: Counter[str],
        allowed: Callable[[str], bool],
    ) -> None:
        """Sitemaps on this host that robots.txt allows (scope follows: the host is in it),
        within the origin's and the job's budgets."""
        todo = list(dict.fromkeys(urls))
        done: set[str] = set()
        while todo and len(done) < MAX_SITEMAPS:
            url = todo.pop(0)
            if url in done:
                continue
            done.add(url)
            if not self._same_host(url):
                counters["sitemap/other-host"] += 1  # another host's budget; not fetched here
                continue
            if not allowed(url):
                counters["sitemap/disallowed"] += 1
                continue
            if job.sitemaps_read >= MAX_JOB_SITEMAPS:
                counters["sitemap/over-budget"] += 1
                return
            job.sitemaps_read += 1
            scratch = Outcome(0, self._policy.host)
            try:
                result = await self._policy.fetch(job, url, {}, scratch, aux=True)
            except FetchError:
                counters["sitemap/failed"] += 1
                continue
            finally:
                counters.update(scratch.counters)
            try:
                children, pages, found = await self._read_sitemap(result.body, job)
            except TimeoutError:
                counters["sitemap/timeout"] += 1
                continue
            counters["sitemap/fetched"] += 1
            todo += [s for s in children if s not in done]
            self._on_urls(job, pages, 1, found)
