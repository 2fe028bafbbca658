"""The crawl loop: claims URLs from the frontier, fetches them politely, records outcomes.

Wiring, in order, for each URL: robots.txt decision → (proxy choice → domain turn → global
slot → rate ceiling → fetch) under the retry policy → outcome. Each domain has its own
workers (at most `concurrency_per_domain`), so a slow domain only ever holds its own workers.
Each fetched page goes through the crawl-phase pipeline (extraction, quality, PII, MinHash) in
the CPU pool while the domain's worker moves on to its next URL. Outcomes, discovered links
and processed pages are buffered and committed together: the pages as a staging part first,
then one catalog transaction. A crash loses only that buffer and the pages still in the pool,
whose URLs are still unfinished in the catalog and are fetched again on resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import Job, StagingPart
from harvester.cpu import CpuPool
from harvester.crawl.fetcher import Fetcher, FetchResult
from harvester.crawl.frontier import Claimed, Frontier, set_job_state
from harvester.crawl.links import extract_links
from harvester.crawl.netguard import NetworkGuard
from harvester.crawl.proxies import Proxy, ProxyPool
from harvester.crawl.ratecontrol import DomainRateController
from harvester.crawl.retry import retrying
from harvester.crawl.robots import RobotsCache
from harvester.crawl.sitemaps import parse_sitemap
from harvester.crawl.staging import staging_prefix, write_part
from harvester.crawl.urls import domain_of, origin_of
from harvester.errors import (
    FetchError,
    FetchSkipped,
    PermanentFetchError,
    ProxyFailure,
    TransientFetchError,
)
from harvester.pipeline.process import Page, Processed, process_page
from harvester.spec import JobSpec
from harvester.stats import Stats
from harvester.store.blob import BlobStore

logger = logging.getLogger(__name__)

_CLAIM_BATCH = 256
_DOMAIN_WINDOW = 64  # claimed-but-unsent URLs kept in memory per domain
_MAX_SITEMAPS = 50
_FLUSH_BYTES = 32 * 1024 * 1024


@dataclass
class _Domain:
    name: str
    controller: DomainRateController
    slots: asyncio.Semaphore  # concurrent requests, shared by pages, robots.txt and sitemaps
    queue: deque[Claimed] = field(default_factory=deque)
    workers: int = 0
    fetched: int = 0
    first_fetch: float = 0.0
    last_fetch: float = 0.0


@dataclass
class _Buffer:
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    pages: list[tuple[FetchResult, int, dict[str, Any], Processed]] = field(default_factory=list)
    page_bytes: int = 0

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.new_rows or self.pages)


@dataclass(frozen=True)
class DomainProgress:
    """Live figures of one domain for progress displays."""

    domain: str
    fetched: int
    queued: int
    pages_per_s: float
    rate_limit: float


class Crawler:
    """Runs (or resumes) one crawl job to completion or until `stop()`."""

    def __init__(
        self,
        spec: JobSpec,
        job_id: str,
        sessions: sessionmaker[Session],
        store: BlobStore,
        *,
        guard: NetworkGuard,
        cpu: CpuPool,
        proxy_pool: ProxyPool | None = None,
        refresh_urls: Sequence[str] = (),
        flush_pages: int = 64,
        flush_interval_s: float = 0.5,
    ) -> None:
        self.spec = spec
        self.job_id = job_id
        self._sessions = sessions
        self._store = store
        self._pool = proxy_pool
        self._cpu = cpu
        self._refresh_urls = refresh_urls
        # Pages fetched but not yet through the pipeline: bounds memory when extraction
        # falls behind fetching, without making fetching wait while the pool keeps up.
        self._pipeline_slots = asyncio.Semaphore(cpu.workers * 16)
        self._flush_pages = flush_pages
        self._flush_interval = flush_interval_s
        self.stats = Stats(self._saved_stats())
        self.frontier = Frontier(sessions, job_id, spec, self.stats)
        self._fetcher = Fetcher(spec.limits, spec.politeness.user_agent, guard)
        self._robots = RobotsCache(self._fetch_robots)
        self._domains: dict[str, _Domain] = {}
        self._global = asyncio.Semaphore(spec.limits.global_concurrency)
        self._db = ThreadPoolExecutor(1, thread_name_prefix="catalog")
        self._buffer = _Buffer()
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._active = 0
        self._contacted: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # ---- lifecycle -------------------------------------------------------------------

    def _saved_stats(self) -> dict[str, int]:
        with self._sessions() as session:
            job = session.get(Job, self.job_id)
            return dict(job.stats or {}) if job else {}

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        # One catalog thread: SQLite wants a single writer, and the event loop never blocks
        # on a commit, so request timing stays exact.
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    @property
    def stopped(self) -> bool:
        """True once `stop()` was called: the job is unfinished and can be resumed."""
        return self._stopping

    def stop(self) -> None:
        """Stop claiming URLs; in-flight requests finish and every outcome is kept."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> Stats:
        """Crawl until the frontier is exhausted (or `stop()`); returns the job's counters."""
        seeds = await self._in_db(self.frontier.open, self._refresh_urls)
        if seeds:
            await self._in_db(self.frontier.commit, [], seeds, None, self.stats.as_dict())
        await self._in_db(self._drop_orphan_parts)
        await self._in_db(set_job_state, self._sessions, self.job_id, "running")
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            await self._feed()
            await self._drain()
        finally:
            flusher.cancel()
            await self.flush()
            await self._fetcher.aclose()
        final = "queued" if self._stopping else "building"
        await self._in_db(set_job_state, self._sessions, self.job_id, final)
        self._db.shutdown()
        return self.stats

    def _drop_orphan_parts(self) -> None:
        with self._sessions() as session:
            committed = set(
                session.scalars(select(StagingPart.path).where(StagingPart.job_id == self.job_id))
            )
        for path in self._store.list(staging_prefix(self.job_id)):
            if path not in committed:
                self._store.delete(path)  # written by a crashed run before its commit

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ---- scheduling ------------------------------------------------------------------

    def _domain(self, name: str) -> _Domain:
        domain = self._domains.get(name)
        if domain is None:
            politeness = self.spec.politeness
            domain = _Domain(
                name,
                DomainRateController(
                    politeness.requests_per_second,
                    max_retry_after=politeness.max_retry_after_s,
                    slow_response=politeness.slow_response_s,
                ),
                asyncio.Semaphore(politeness.concurrency_per_domain),
            )
            self._domains[name] = domain
        return domain

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _feed(self) -> None:
        while not self._stopping:
            queued = sum(len(d.queue) for d in self._domains.values())
            claimed: list[Claimed] = []
            if queued < _CLAIM_BATCH:
                full = [d.name for d in self._domains.values() if len(d.queue) >= _DOMAIN_WINDOW]
                claimed = await self._in_db(self.frontier.claim, _CLAIM_BATCH, full)
                for entry in claimed:
                    self._domain(entry.domain).queue.append(entry)
                for domain in {e.domain for e in claimed}:
                    self._start_workers(self._domains[domain])
            if not claimed and queued == 0 and self._active == 0 and not self._tasks:
                await self.flush()  # discovered links become claimable
                if not await self._in_db(self.frontier.unfinished):
                    return
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    def _start_workers(self, domain: _Domain) -> None:
        cap = self.spec.politeness.concurrency_per_domain
        while domain.workers < min(cap, len(domain.queue)):
            domain.workers += 1
            self._spawn(self._domain_worker(domain))

    async def _domain_worker(self, domain: _Domain) -> None:
        try:
            while domain.queue and not self._stopping:
                entry = domain.queue.popleft()
                self._active += 1
                try:
                    await self._crawl(domain, entry)
                except Exception as exc:  # a bug must cost one URL, never the worker
                    logger.exception(
                        "internal error", extra={"job_id": self.job_id, "url": entry.url}
                    )
                    self._record(
                        {
                            "id": entry.id,
                            "state": "done",
                            "outcome": "failed",
                            "reason": f"internal/{type(exc).__name__}",
                        }
                    )
                finally:
                    self._active -= 1
        finally:
            domain.workers -= 1
            self._wake.set()

    # ---- one URL ---------------------------------------------------------------------

    async def _crawl(self, domain: _Domain, entry: Claimed) -> None:
        outcome: dict[str, Any] = {"id": entry.id, "state": "done", "attempts": 0}
        robots = await self._robots_decision(entry.url)
        outcome["robots"] = robots
        if robots not in ("allowed", "ignored"):
            self._record(outcome | {"outcome": "skipped", "reason": f"robots/{robots}"})
            return
        headers = {}
        if entry.etag:
            headers["If-None-Match"] = entry.etag
        if entry.last_modified:
            headers["If-Modified-Since"] = entry.last_modified
        tried: set[str] = set()
        try:
            async for attempt in retrying(self.spec.retry, self.spec.politeness.max_retry_after_s):
                with attempt:
                    outcome["attempts"] += 1
                    if outcome["attempts"] > 1:
                        self.stats.inc("retry/count")
                    result = await self._attempt(entry.url, domain, tried, headers, None)
        except FetchSkipped as exc:
            self._record(
                outcome | {"outcome": "skipped", "reason": exc.reason, "status": exc.status}
            )
            return
        except FetchError as exc:
            self._record(
                outcome | {"outcome": "failed", "reason": exc.reason, "status": exc.status}
            )
            return
        outcome |= {
            "status": result.status,
            "proxy": result.proxy,
            "final_url": result.final_url,
            "content_type": result.content_type,
            "fetched_at": result.fetched_at,
            "etag": result.etag or entry.etag,
            "last_modified": result.last_modified or entry.last_modified,
        }
        now = time.monotonic()
        domain.first_fetch = domain.first_fetch or now
        domain.last_fetch = now
        domain.fetched += 1
        if result.not_modified:
            self._record(outcome | {"outcome": "not-modified"})
            return
        outcome |= {"outcome": "fetched", "bytes": len(result.body)}
        if entry.depth < self.spec.scope.max_depth:
            links = extract_links(result.text, result.final_url)
            self._buffer.new_rows += self.frontier.admit((u, entry.depth + 1) for u in links)
        self.stats.inc("fetch/outcome/fetched")
        await self._pipeline_slots.acquire()
        self._spawn(self._process(result, entry, outcome))

    async def _process(self, result: FetchResult, entry: Claimed, outcome: dict[str, Any]) -> None:
        """Run the pipeline on a fetched page in the CPU pool, then buffer it for staging."""
        page = Page(
            url=entry.url,
            domain=entry.domain,
            html=result.text,
            raw_sha256=hashlib.sha256(result.body).hexdigest(),
            fetched_at=result.fetched_at,
        )
        try:
            processed = await self._cpu.run(process_page, page, self.spec.pipeline)
        except Exception as exc:  # a broken page or worker costs this page only
            logger.exception("pipeline failed", extra={"job_id": self.job_id, "url": entry.url})
            processed = Processed(None, None, f"pipeline/{type(exc).__name__}")
            self.stats.inc(f"pipeline/error/{type(exc).__name__}")
        finally:
            self._pipeline_slots.release()
        for name, amount in processed.counters.items():
            self.stats.inc(name, amount)
        outcome["dropped"] = processed.dropped
        self._buffer.pages.append((result, entry.depth, outcome, processed))
        self._buffer.page_bytes += len(result.body)
        if len(self._buffer.pages) >= self._flush_pages or self._buffer.page_bytes > _FLUSH_BYTES:
            await self.flush()
        self._wake.set()

    def _record(self, outcome: dict[str, Any]) -> None:
        self.stats.inc(f"fetch/outcome/{outcome['outcome']}")
        if outcome["outcome"] in ("failed", "skipped"):
            self.stats.inc(f"fetch/{outcome['outcome']}/{outcome['reason']}")
        self._buffer.outcomes.append(outcome)

    async def _attempt(
        self,
        url: str,
        domain: _Domain,
        tried: set[str],
        headers: dict[str, str],
        content_types: list[str] | None,
    ) -> FetchResult:
        """One attempt through one proxy (or none), with every signal fed back."""
        proxy = await self._pool.acquire(domain.name, tried) if self._pool else None
        if proxy is not None:
            tried.add(proxy.url)
        await domain.controller.wait_turn()
        async with domain.slots, self._global:
            try:
                result = await self._fetcher.fetch(
                    url,
                    proxy=proxy,
                    headers=headers,
                    before_hop=self._before_hop,
                    hop_rejection=self._hop_rejection if content_types is None else None,
                    content_types=content_types,
                )
            except FetchError as exc:
                raise self._learn(domain, proxy, exc) from exc
        domain.controller.on_response(result.status, result.elapsed, None)
        self.stats.inc(f"fetch/status/{result.status}")
        marker = next((m for m in self.spec.ban_markers if m in result.text), None)
        if marker is not None:
            self.stats.inc("proxy/ban/marker" if proxy else "fetch/challenge")
            if proxy is None:
                raise PermanentFetchError("challenge", "challenge or captcha page")
            self._pool.report_ban(proxy, domain.name)  # type: ignore[union-attr]
            raise ProxyFailure("proxy/challenge", "challenge page through this proxy")
        if proxy is not None:
            self._pool.report_success(proxy, domain.name)  # type: ignore[union-attr]
        return result

    def _learn(self, domain: _Domain, proxy: Proxy | None, exc: FetchError) -> FetchError:
        """Feed a failure to the rate controller and the proxy pool; return what to raise."""
        if exc.status is not None:
            self.stats.inc(f"fetch/status/{exc.status}")
            retry_after = exc.retry_after if isinstance(exc, TransientFetchError) else None
            domain.controller.on_response(exc.status, 0.0, retry_after)
        elif isinstance(exc, TransientFetchError) and not isinstance(exc, ProxyFailure):
            domain.controller.on_error()
        if proxy is None or self._pool is None:
            return exc
        if exc.status == 407 or exc.reason.startswith("proxy/"):
            self.stats.inc("proxy/dead")
            self._pool.report_dead(proxy)
            return exc if isinstance(exc, ProxyFailure) else ProxyFailure(exc.reason, status=407)
        if exc.status in (403, 429):
            self.stats.inc(f"proxy/ban/{exc.status}")
            self._pool.report_ban(proxy, domain.name)
            return ProxyFailure(
                exc.reason, status=exc.status, retry_after=getattr(exc, "retry_after", None)
            )
        return exc

    async def _before_hop(self, url: str) -> Callable[[], None]:
        return await self._domain(domain_of(url)).controller.before_request()

    def _hop_rejection(self, url: str) -> str | None:
        return self.frontier.scope.rejection(url, 0)

    # ---- robots.txt and sitemaps -----------------------------------------------------

    async def _robots_decision(self, url: str) -> str:
        origin = origin_of(url)
        if not self.spec.politeness.respect_robots:
            self._first_contact(origin, [])
            return "ignored"
        rules, fetched_now = await self._robots.rules(origin)
        if fetched_now:
            delay = rules.crawl_delay(self.spec.politeness.user_agent)
            self._domain(domain_of(url)).controller.set_crawl_delay(delay)
            self.stats.inc(f"robots/{rules.state}")
            self._first_contact(origin, rules.sitemaps())
        return rules.decision(url, self.spec.politeness.user_agent)

    async def _fetch_aux(self, url: str) -> FetchResult:
        domain = self._domain(domain_of(url))
        async for attempt in retrying(self.spec.retry, self.spec.politeness.max_retry_after_s):
            with attempt:
                return await self._attempt(url, domain, set(), {}, [])
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _fetch_robots(self, url: str) -> tuple[int, bytes]:
        result = await self._fetch_aux(url)
        return result.status, result.body

    def _first_contact(self, origin: str, sitemaps: list[str]) -> None:
        if origin in self._contacted or not self.spec.scope.sitemaps:
            return
        self._contacted.add(origin)
        self._active += 1
        self._spawn(self._discover_sitemaps([*sitemaps, origin + "/sitemap.xml"]))

    async def _discover_sitemaps(self, urls: Iterable[str]) -> None:
        try:
            todo = list(dict.fromkeys(urls))
            done: set[str] = set()
            while todo and len(done) < _MAX_SITEMAPS and not self._stopping:
                url = todo.pop(0)
                if url in done:
                    continue
                done.add(url)
                try:
                    result = await self._fetch_aux(url)
                except FetchError:
                    self.stats.inc("sitemap/failed")
                    continue
                sitemap = parse_sitemap(result.body)
                self.stats.inc("sitemap/fetched")
                todo += [s for s in sitemap.sitemaps if s not in done]
                self._buffer.new_rows += self.frontier.admit((u, 1) for u in sitemap.pages)
        finally:
            self._active -= 1
            self._wake.set()

    # ---- committing ------------------------------------------------------------------

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            # Shielded: cancelling this loop at the end of a run must not abandon a flush
            # halfway, after it took the buffer and before its commit (outcomes were lost so).
            await asyncio.shield(self.flush())

    async def flush(self) -> None:
        """Commit buffered pages (staging part), outcomes and discovered URLs."""
        async with self._flush_lock:
            buffer, self._buffer = self._buffer, _Buffer()
            if not buffer:
                return
            part = None
            if buffer.pages:
                pages = [(result, depth, done) for result, depth, _, done in buffer.pages]
                path, size = await asyncio.to_thread(write_part, self._store, self.job_id, pages)
                part = (path, len(pages), size)
                for _, _, outcome, _ in buffer.pages:
                    outcome["staging_part"] = path
            outcomes = buffer.outcomes + [outcome for _, _, outcome, _ in buffer.pages]
            await self._in_db(
                self.frontier.commit, outcomes, buffer.new_rows, part, self.stats.as_dict()
            )
            self._wake.set()

    # ---- progress ----------------------------------------------------------------------

    def progress(self) -> list[DomainProgress]:
        """Per-domain live figures, busiest first."""
        rows = []
        for d in self._domains.values():
            span = d.last_fetch - d.first_fetch
            rate = (d.fetched - 1) / span if span > 0 else 0.0
            rows.append(DomainProgress(d.name, d.fetched, len(d.queue), rate, d.controller.rate))
        return sorted(rows, key=lambda r: -r.fetched)
