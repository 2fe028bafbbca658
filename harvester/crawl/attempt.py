"""One URL's fetch under the retry policy: proxy choice, the host's turn, the job's slot, the
fetch, and every signal fed back to the host's rate controller and the job's proxy pool."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from harvester.crawl.fetcher import FetchResult
from harvester.crawl.jobcontext import JobContext
from harvester.crawl.outcome import Outcome
from harvester.crawl.proxies import Proxy, ProxyPool
from harvester.crawl.ratecontrol import DomainRateController
from harvester.crawl.retry import retrying
from harvester.errors import (
    FetchError,
    FetchSkipped,
    LeaseLost,
    PermanentFetchError,
    ProxyFailure,
    TransientFetchError,
)
from harvester.spec import CHALLENGE_MAX_CHARS

Robots = Callable[[str], Awaitable[str]]
"""A URL's robots decision: `allowed`, `ignored`, `disallowed` or `unavailable`."""


class FetchPolicy:
    """Fetches for one leased host: every request to it passes its one rate controller."""

    def __init__(
        self,
        host: str,
        controller: DomainRateController,
        same_host: Callable[[str], bool],
        proven: Callable[[], bool],
    ) -> None:
        self.host = host
        self.controller = controller
        self._same_host = same_host
        self._proven = proven

    async def fetch(
        self,
        job: JobContext,
        url: str,
        headers: dict[str, str],
        outcome: Outcome,
        *,
        aux: bool = False,
        robots: Robots | None = None,
    ) -> FetchResult:
        """Fetch with retries (counted on `outcome`), or raise the last `FetchError`. `aux`
        fetches (robots.txt, sitemaps) take any content type. `robots` judges every redirect
        target on this host before it is requested (the URL itself was judged already)."""
        tried: set[str] = set()
        forbidden: list[Proxy] = []  # proxies that got a 403 for this URL
        counters = outcome.counters
        async for attempt in retrying(job.spec.retry, job.spec.politeness.max_retry_after_s):
            with attempt:
                outcome.attempts += 1
                if outcome.attempts > 1:
                    counters["retry/count"] += 1
                return await self._attempt(
                    job, url, tried, forbidden, headers, counters, aux, robots
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(
        self,
        job: JobContext,
        url: str,
        tried: set[str],
        forbidden: list[Proxy],
        headers: dict[str, str],
        counters: Counter[str],
        aux: bool,
        robots: Robots | None,
    ) -> FetchResult:
        pool = job.proxy_pool
        proxy = await pool.acquire(self.host, tried) if pool else None
        if proxy is not None:
            tried.add(proxy.url)

        held = 0

        async def turn(hop: str) -> Callable[[], None]:
            # The host's turn first, then the job's slot: a request waiting for its turn
            # holds no slot, and its waiting never counts against its time limit.
            nonlocal held
            if robots is not None and hop != url:
                decision = await robots(hop)
                if decision not in ("allowed", "ignored"):
                    raise FetchSkipped(f"robots/{decision}", f"redirect to {hop}: {decision}")
            sent = await self.controller.before_request()
            if not self._proven():  # checked last thing before the request leaves
                sent()
                raise LeaseLost(f"no heartbeat proves the lease on {self.host} any more")
            if not held:  # one slot for the whole redirect chain
                try:
                    await job.slots.acquire()
                except BaseException:
                    sent()
                    raise
                held = 1
            return sent

        try:
            result = await job.fetcher.fetch(
                url,
                proxy=proxy,
                headers=headers,
                before_hop=turn,
                hop_rejection=None if aux else self._hop_rejection(job),
                same_host=self._same_host,
                content_types=[] if aux else None,
            )
        except FetchError as exc:
            raise self._feed_back_failure(job, proxy, exc, counters, forbidden) from exc
        finally:
            if held:
                job.slots.release()
        self.controller.on_response(result.status, result.elapsed, None)
        counters[f"fetch/status/{result.status}"] += 1
        if len(result.text) <= CHALLENGE_MAX_CHARS and any(
            marker in result.text for marker in job.spec.ban_markers
        ):
            counters["proxy/ban/marker" if proxy else "fetch/challenge"] += 1
            if proxy is None or pool is None:
                raise PermanentFetchError("challenge", "challenge or captcha page")
            pool.report_ban(proxy, self.host)
            raise ProxyFailure("proxy/challenge", "challenge page through this proxy")
        if proxy is not None and pool is not None:
            for suspect in forbidden:  # the URL is not forbidden: those proxies are banned
                counters["proxy/ban/403"] += 1
                pool.report_ban(suspect, self.host)
            forbidden.clear()
            pool.report_success(proxy, self.host)
        return result

    @staticmethod
    def _hop_rejection(job: JobContext) -> Callable[[str], str | None]:
        return lambda url: job.admission.screening.scope.rejection(url, 0)

    def _feed_back_failure(
        self,
        job: JobContext,
        proxy: Proxy | None,
        exc: FetchError,
        counters: Counter[str],
        forbidden: list[Proxy],
    ) -> FetchError:
        """Feed a failure to the rate controller and the proxy pool; return what to raise."""
        if exc.status is not None:
            counters[f"fetch/status/{exc.status}"] += 1
            retry_after = exc.retry_after if isinstance(exc, TransientFetchError) else None
            self.controller.on_response(exc.status, 0.0, retry_after)
        elif isinstance(exc, TransientFetchError) and not isinstance(exc, ProxyFailure):
            self.controller.on_error()
        pool = job.proxy_pool
        if proxy is None or pool is None:
            return exc
        if exc.status == 407 or isinstance(exc, ProxyFailure):
            counters["proxy/dead"] += 1
            pool.report_dead(proxy)
            return exc if isinstance(exc, ProxyFailure) else ProxyFailure(exc.reason, status=407)
        if exc.status == 403:
            return self._forbidden(pool, proxy, exc, counters, forbidden)
        if exc.status == 429:
            counters["proxy/ban/429"] += 1
            pool.report_ban(proxy, self.host)
            return ProxyFailure(
                exc.reason, status=exc.status, retry_after=getattr(exc, "retry_after", None)
            )
        return exc

    def _forbidden(
        self,
        pool: ProxyPool,
        proxy: Proxy,
        exc: FetchError,
        counters: Counter[str],
        forbidden: list[Proxy],
    ) -> FetchError:
        """A 403 through a proxy bans it only on a second signal: the same proxy refused
        twice, or another proxy then gets the page (see `_attempt`). Refused through two
        different proxies, the URL itself is forbidden: final, and no proxy is blamed."""
        if any(p is not proxy for p in forbidden):
            forbidden.clear()
            return exc
        if proxy in forbidden:
            forbidden.remove(proxy)
            counters["proxy/ban/403"] += 1
            pool.report_ban(proxy, self.host)
        else:
            forbidden.append(proxy)
        return ProxyFailure(exc.reason, status=403)
