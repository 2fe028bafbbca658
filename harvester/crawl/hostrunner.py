"""One leased host: every job with URLs there, served round-robin through one rate controller.

The combined rate to the host never exceeds the lowest `requests_per_second` of the jobs active
on it, the operator's policy or the host's Crawl-delay; back-off from 429/503/latency applies
to all of them, since they share the controller. Fetched pages go to the CPU pool while the
host's request slot moves on to the next URL. The runner ends when the host has been idle for
a while (the worker then gives the lease back), when the worker stops, or at once when the
lease is lost (`lose()`): in-flight work is cancelled, its outcomes would be fenced anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from harvester import logs
from harvester.cpu import CpuPool
from harvester.crawl.attempt import FetchPolicy
from harvester.crawl.claims import Claims
from harvester.crawl.discovery import Deferred, Discovery
from harvester.crawl.fetcher import FetchResult
from harvester.crawl.frontier import Claimed
from harvester.crawl.hostkey import host_key
from harvester.crawl.jobcontext import JobContext
from harvester.crawl.outcome import Outcome
from harvester.crawl.pagework import Links, read_sitemap, work_page
from harvester.crawl.ratecontrol import DomainRateController
from harvester.crawl.recorder import MAX_BACKLOG, OutcomeRecorder
from harvester.errors import FetchError, FetchSkipped, LeaseLost, Redirected
from harvester.pipeline.process import Page, Processed

logger = logging.getLogger(__name__)

IDLE_RELEASE_S = 2.0
"""A host with no work for this long is given back, so its lease is free for whoever has some."""
_POLL_S = 1.0  # a safety net: commits wake the runner of each host they add URLs to
ACTIVE_S = 10.0
WAIT_SHOWN_S = 2.0
SITEMAP_BUDGET_S = 30.0
"""Parsing one sitemap (up to 50 MB of XML) may take this long; its process is killed after."""


@dataclass(frozen=True)
class HostPolicy:
    """An operator's overrides for a host (`/v1/hosts/{host}`): every job obeys them."""

    max_rps: float | None = None
    concurrency: int | None = None
    blocked: bool = False


@dataclass
class Shared:
    """What every host runner of a worker uses."""

    jobs: Mapping[str, JobContext]
    claims: Claims
    recorder: OutcomeRecorder
    cpu: CpuPool
    pipeline_slots: asyncio.Semaphore
    flush_soon: Callable[[], None]
    proven: Callable[[], bool]
    """Whether a recent heartbeat proves the worker still holds its leases."""
    in_pipeline: int = 0
    """Fetched pages not yet handed to the recorder (each holds its body in memory)."""

    @property
    def backlogged(self) -> bool:
        """True while so much fetched work waits that fetching should pause: the pipeline or
        the commits (catalog, store) fall behind, and every further page would wait in
        memory."""
        return self.recorder.buffered + self.in_pipeline >= MAX_BACKLOG


class HostRunner:
    """Serves one host while this worker holds its lease."""

    def __init__(
        self, host: str, token: int, shared: Shared, policy: HostPolicy, wait_s: float = 0.0
    ) -> None:
        self.host = host
        self.token = token
        self._shared = shared
        self.policy = policy
        self.controller = DomainRateController(1.0)
        self.controller.hold_off(wait_s)
        self._fetch = FetchPolicy(host, self.controller, self._same_host, shared.proven)
        self._discovery = Discovery(
            self._fetch, self._same_host, self._crawl_delay, self._found, self._read_sitemap
        )
        self._queues: dict[str, deque[Claimed]] = {}
        self._order: deque[str] = deque()  # round-robin between jobs
        self._deferred: list[tuple[float, Claimed]] = []  # (when, URL): robots.txt was down
        self._delays: dict[str, float] = {}
        self._seen: dict[str, float] = {}  # job → when it last had URLs queued here
        self._job_rate = 1.0
        self._job_cap = 1
        self._concurrency = 1
        self._busy = 0
        self._tasks: dict[asyncio.Task[None], str] = {}  # in flight → its job
        self._changed = asyncio.Event()
        self._stopping = False
        self.lost = False
        self.fetched = 0
        self.first_fetch = 0.0
        self.last_fetch = 0.0

    def _same_host(self, url: str) -> bool:
        return host_key(url) == self.host

    # ---- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        """Stop dispatching; in-flight URLs finish and keep their outcomes."""
        self._stopping = True
        self._changed.set()

    def lose(self) -> None:
        """The lease moved: stop fetching now; nothing more is written under it."""
        self.lost = True
        self.abandon()

    def abandon(self) -> None:
        """Stop now, cancelling in-flight URLs (they go back to pending with the lease)."""
        self.stop()
        for task in self._tasks:
            task.cancel()

    def drop_job(self, job_id: str, grace_s: float) -> list[asyncio.Task[None]]:
        """The job ended (cancelled): its queued and deferred URLs are forgotten; in-flight
        ones may finish (and keep their outcomes) for `grace_s`, then are cancelled, so a URL
        in a long retry back-off never holds the host's slots for the other jobs. Returns
        those in-flight tasks."""
        self._queues.pop(job_id, None)
        self._deferred = [(when, e) for when, e in self._deferred if e.job_id != job_id]
        tasks = [task for task, job in self._tasks.items() if job == job_id]
        if tasks:
            asyncio.get_running_loop().call_later(grace_s, _cancel, tasks)
        return tasks

    def waiting(self) -> str | None:
        """Why this host sends nothing for a while although URLs wait here (shown in the
        progress of their jobs), or None: every proxy cooling down, a Retry-After, a
        Crawl-delay. Gaps shorter than `WAIT_SHOWN_S` are ordinary pacing and go unsaid."""
        if not (self.queued or self.in_flight):
            return None
        here = {job for job, queue in self._queues.items() if queue} | set(self._tasks.values())
        jobs = [self._shared.jobs[job] for job in here if job in self._shared.jobs]
        # Waiting for proxies only while every job here goes through a cooling pool.
        proxies = min(
            (job.proxy_pool.blocked_for(self.host) if job.proxy_pool else 0.0 for job in jobs),
            default=0.0,
        )
        if proxies >= WAIT_SHOWN_S:
            return f"proxies cooling down until {_clock_in(proxies)}"
        paused, reason = self.controller.paused()
        if paused >= WAIT_SHOWN_S:
            return f"{reason} until {_clock_in(paused)}"
        delay = max(self._delays.values(), default=0.0)
        if delay >= WAIT_SHOWN_S and 1 / self.controller.ceiling <= delay * 1.000001:
            return f"Crawl-delay {delay:g} s"
        return None

    def wake(self) -> None:
        """New URLs may be pending here."""
        self._changed.set()

    @property
    def queued(self) -> int:
        """Claimed URLs not yet dispatched."""
        return sum(len(q) for q in self._queues.values())

    @property
    def in_flight(self) -> int:
        """URLs being fetched or in the pipeline."""
        return len(self._tasks)

    async def run(self) -> None:
        """Dispatch until idle, stopped or lost; then wait for (or cancel) in-flight work."""
        idle_since: float | None = None
        try:
            while not self._stopping:
                entry = self._next()
                if entry is None:
                    try:
                        refilled = await self._refill()
                    except SQLAlchemyError as exc:
                        # The catalog is unreachable for now: try again after a pause, for
                        # as long as a heartbeat still proves the lease is ours.
                        if not self._shared.proven():
                            raise LeaseLost(f"cannot prove the lease on {self.host}") from exc
                        logger.warning("claim on %s failed: %s", self.host, exc)
                        await asyncio.sleep(_POLL_S)
                        continue
                    if refilled:
                        idle_since = None
                        continue
                    # Out of work here: the links that lead on may be waiting in a buffer.
                    self._shared.flush_soon()
                    if not self._tasks and not self._deferred:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > IDLE_RELEASE_S:
                            return
                    await self._wait()
                    continue
                idle_since = None
                while (
                    self._busy >= self._concurrency or self._shared.backlogged
                ) and not self._stopping:
                    await self._wait()
                job = self._shared.jobs.get(entry.job_id)
                if job is None or self._stopping:
                    continue  # the job ended (cancelled): its URL stays claimed, unneeded
                self._busy += 1
                self._spawn(self._crawl(job, entry), job.job_id)
        except LeaseLost:
            self.lose()
        finally:
            if self.lost:
                for task in list(self._tasks):
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait(self) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), _POLL_S)

    def _spawn(self, coro: Awaitable[None], job_id: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks[task] = job_id

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.pop(t, None)
            self._changed.set()

        task.add_done_callback(done)

    # ---- scheduling --------------------------------------------------------------------

    def _next(self) -> Claimed | None:
        if self._deferred:
            now = time.monotonic()
            for entry in [e for when, e in self._deferred if when <= now]:
                self._queue(entry)
            self._deferred = [(when, e) for when, e in self._deferred if when > now]
        for _ in range(len(self._order)):
            job_id = self._order[0]
            self._order.rotate(-1)
            queue = self._queues.get(job_id)
            if queue:
                return queue.popleft()
        return None

    async def _refill(self) -> bool:
        if not self._shared.jobs:
            return False
        entries = await self._shared.claims.claim(
            self.host, self.token, max(4, 2 * self._concurrency)
        )
        for entry in entries:
            self._queue(entry)
        self._retune()
        return bool(entries)

    def _queue(self, entry: Claimed) -> None:
        if entry.job_id not in self._queues:
            self._queues[entry.job_id] = deque()
            self._order.append(entry.job_id)
        self._queues[entry.job_id].append(entry)

    def _retune(self) -> None:
        """The budget of the jobs active here: the lowest rate and concurrency of them all,
        the operator's policy and Crawl-delay."""
        jobs, now = self._shared.jobs, time.monotonic()
        for job_id, queue in self._queues.items():
            if queue:
                self._seen[job_id] = now
        # A job stays active a while after its last URL here: its next links may be in the
        # pipeline, and the host must not speed up to the faster job's rate meanwhile.
        active = [jobs[j] for j, t in self._seen.items() if now - t < ACTIVE_S and j in jobs]
        if active:
            self._job_rate = min(j.spec.politeness.requests_per_second for j in active)
            self._job_cap = min(j.spec.politeness.concurrency_per_domain for j in active)
        rates = [self._job_rate, *(1 / d for d in self._delays.values() if d > 0)]
        caps = [self._job_cap]
        if self.policy.max_rps is not None:
            rates.append(self.policy.max_rps)
        if self.policy.concurrency is not None:
            caps.append(self.policy.concurrency)
        self.controller.set_ceiling(min(rates))
        self._concurrency = min(caps)

    def set_policy(self, policy: HostPolicy) -> None:
        """The operator changed the host's policy: it applies from the next request."""
        if policy != self.policy:
            self.policy = policy
            self._retune()

    def _crawl_delay(self, agent: str, delay: float | None) -> None:
        if delay:
            self._delays[agent] = delay
            self._retune()

    async def _read_sitemap(
        self, body: bytes, job: JobContext
    ) -> tuple[list[str], Links, Counter[str]]:
        limit, screening = job.spec.limits.max_pages, job.admission.screening
        return await self._shared.cpu.run(
            read_sitemap, body, limit, screening, kill_after=SITEMAP_BUDGET_S
        )

    def _found(self, job: JobContext, screened: Links, depth: int, counters: Counter[str]) -> None:
        """URLs discovered here (links, sitemaps, redirects), screened with `counters` of
        those refused, go to the job's frontier with the outcome that found them."""
        rows = job.admission.rows(screened, depth)
        recorder, max_pages = self._shared.recorder, job.spec.limits.max_pages
        recorder.discovered(job.job_id, max_pages, rows)
        for name, amount in counters.items():
            recorder.count(job.job_id, max_pages, name, amount)

    # ---- one URL -----------------------------------------------------------------------

    async def _crawl(self, job: JobContext, entry: Claimed) -> None:
        # This task's own context: whatever is logged while crawling the URL names it.
        logs.JOB_ID.set(job.job_id)
        logs.URL.set(entry.url)
        outcome = Outcome(entry.id, self.host)
        result = None
        try:
            result = await self._fetch_entry(job, entry, outcome)
        except LeaseLost:
            self.lose()  # its URL goes back to pending with the lease
            return
        except Deferred as exc:
            # Still claimed: it waits here, or goes back to pending with the lease.
            self._deferred.append((time.monotonic() + exc.delay, entry))
            self._shared.recorder.count(job.job_id, job.spec.limits.max_pages, "robots/deferred")
            return
        except Exception as exc:  # a bug must cost one URL, never the host
            logger.exception("internal error", extra={"job_id": job.job_id, "url": entry.url})
            outcome.finish("failed", f"internal/{type(exc).__name__}")
        finally:
            self._busy -= 1
            self._changed.set()
        recorder, max_pages = self._shared.recorder, job.spec.limits.max_pages
        if result is None:
            recorder.record(job.job_id, max_pages, outcome)
            return
        self.fetched += 1
        self.last_fetch = time.monotonic()
        self.first_fetch = self.first_fetch or self.last_fetch
        self._shared.in_pipeline += 1
        try:
            await self._process(job, entry, outcome, result)
        except Exception as exc:  # a bug must cost one URL, never the host
            logger.exception("internal error", extra={"job_id": job.job_id, "url": entry.url})
            failed = Outcome(entry.id, self.host)
            failed.finish("failed", f"internal/{type(exc).__name__}")
            recorder.record(job.job_id, max_pages, failed)
        finally:
            self._shared.in_pipeline -= 1

    async def _fetch_entry(
        self, job: JobContext, entry: Claimed, outcome: Outcome
    ) -> FetchResult | None:
        """The fetch of one URL; None when its outcome is already final (skip or failure)."""
        try:
            outcome.robots = await self._discovery.decision(job, entry.url, outcome.counters)
        except FetchError as exc:  # robots.txt could not be fetched: nor could the URL be
            outcome.finish("failed", exc.reason, exc.status)
            return None
        if outcome.robots not in ("allowed", "ignored"):
            outcome.finish("skipped", f"robots/{outcome.robots}")
            return None
        headers = {}
        if entry.etag:
            headers["If-None-Match"] = entry.etag
        if entry.last_modified:
            headers["If-Modified-Since"] = entry.last_modified
        try:
            result = await self._fetch.fetch(
                job,
                entry.url,
                headers,
                outcome,
                robots=lambda hop: self._discovery.decision(job, hop, outcome.counters),
            )
        except Redirected as exc:
            refused: Counter[str] = Counter()
            target = job.admission.screening([exc.target], entry.depth, refused)
            self._found(job, target, entry.depth, refused)
            outcome.finish("skipped", exc.reason, exc.status)
            return None
        except FetchSkipped as exc:
            outcome.finish("skipped", exc.reason, exc.status)
            return None
        except FetchError as exc:
            outcome.finish("failed", exc.reason, exc.status)
            return None
        outcome.status = result.status
        outcome.proxy = result.proxy
        outcome.final_url = result.final_url
        outcome.content_type = result.content_type
        outcome.fetched_at = result.fetched_at
        # A 304 confirms the validators that were sent; a 200 brings its own, or none: an old
        # ETag must never outlive the document it stood for.
        carried = result.not_modified
        outcome.etag = result.etag or (entry.etag if carried else None)
        outcome.last_modified = result.last_modified or (entry.last_modified if carried else None)
        if result.not_modified:
            outcome.finish("not-modified", status=result.status)
            return None
        outcome.bytes = len(result.body)
        return result

    async def _process(
        self, job: JobContext, entry: Claimed, outcome: Outcome, result: FetchResult
    ) -> None:
        """The pipeline in the CPU pool, then the page and its links to the recorder."""
        page = Page(
            url=entry.url,
            domain=entry.domain,
            html=result.text,
            raw_sha256=hashlib.sha256(result.body).hexdigest(),
            fetched_at=result.fetched_at,
        )
        follow = result.final_url if entry.depth < job.spec.scope.max_depth else None
        links: Links = []
        found: Counter[str] = Counter()
        async with self._shared.pipeline_slots:
            try:
                processed, links, found = await self._shared.cpu.run(
                    work_page,
                    page,
                    job.spec.pipeline,
                    follow,
                    job.admission.screening,
                    entry.depth + 1,
                    kill_after=job.spec.pipeline.extract.time_budget_s,
                )
            except TimeoutError:  # the pool killed the page's process: it would do it again
                processed = Processed(None, None, "pipeline/timeout", {"pipeline/timeout": 1})
            except Exception as exc:  # a broken page or worker costs this page only
                logger.exception("pipeline failed", extra={"job_id": job.job_id, "url": entry.url})
                # Failed, not fetched-and-dropped: nothing is staged, so a refresh keeps the
                # page's document from the parent snapshot instead of losing it.
                outcome.finish("failed", f"pipeline/{type(exc).__name__}")
                self._shared.recorder.record(job.job_id, job.spec.limits.max_pages, outcome)
                return
        outcome.counters.update(processed.counters)
        outcome.dropped = processed.dropped
        outcome.finish("fetched", status=result.status)
        recorder, max_pages = self._shared.recorder, job.spec.limits.max_pages
        if links or found:
            self._found(job, links, entry.depth + 1, found)
        if recorder.stage(job.job_id, max_pages, outcome, result, entry.depth, processed):
            self._shared.flush_soon()


def _clock_in(seconds: float) -> str:
    """The UTC time of day `seconds` from now."""
    return f"{datetime.now(UTC) + timedelta(seconds=seconds):%H:%M:%S} UTC"


def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
