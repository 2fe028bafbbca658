"""The outcome recorder: buffers each job's outcomes, staged pages and discovered URLs and
commits them together, per job, under the fence of the host leases they were fetched under.

A flush writes the job's pages as a staging part first, then one catalog transaction
(`frontier.commit`). A failed write keeps the batch (and its part) and is retried with
back-off, after checking that the failed attempt did not commit after all; a commit
refused because a host's lease moved drops that host's share of the batch (its new holder
fetches those URLs again) and commits the rest. A crash loses only what was not committed:
those URLs are still claimed, and go back to pending when their host is taken over.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from harvester.crawl.fetcher import FetchResult
from harvester.crawl.frontier import Batch, Fenced, commit, committed
from harvester.crawl.outcome import Outcome
from harvester.errors import StorageError
from harvester.pipeline.process import Processed
from harvester.staging import write_part
from harvester.store.blob import BlobStore

logger = logging.getLogger(__name__)

FLUSH_PAGES = 64
FLUSH_BYTES = 32 * 1024 * 1024
MAX_BACKLOG = 4 * FLUSH_PAGES
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)

InCatalog = Callable[..., Awaitable[Any]]


@dataclass
class _Staged:
    outcome: Outcome
    result: FetchResult
    depth: int
    processed: Processed


@dataclass
class _Pending:
    max_pages: int
    outcomes: list[Outcome] = field(default_factory=list)
    staged: list[_Staged] = field(default_factory=list)
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    page_bytes: int = 0

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.staged or self.new_rows or self.counters)

    def drop_hosts(self, hosts: set[str]) -> None:
        self.outcomes = [o for o in self.outcomes if o.host not in hosts]
        self.staged = [s for s in self.staged if s.outcome.host not in hosts]


class OutcomeRecorder:
    """Buffers and commits outcomes of every job a worker serves."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        holder: str,
        tokens: Callable[[], Mapping[str, int]],
        in_catalog: InCatalog,
        on_fenced: Callable[[set[str]], None],
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._holder = holder
        self._tokens = tokens
        self._in_catalog = in_catalog
        self._on_fenced = on_fenced
        self._buffers: dict[str, _Pending] = {}
        self._lock = asyncio.Lock()
        self._flushing = 0
        self.committed_pages = 0

    def _buffer(self, job_id: str, max_pages: int) -> _Pending:
        return self._buffers.setdefault(job_id, _Pending(max_pages))

    def record(self, job_id: str, max_pages: int, outcome: Outcome) -> None:
        """Buffer an outcome that stages nothing (not-modified, skipped, failed)."""
        self._buffer(job_id, max_pages).outcomes.append(outcome)

    def stage(
        self,
        job_id: str,
        max_pages: int,
        outcome: Outcome,
        result: FetchResult,
        depth: int,
        processed: Processed,
    ) -> bool:
        """Buffer a fetched page with the pipeline's verdict; True when a flush is due."""
        buffer = self._buffer(job_id, max_pages)
        buffer.staged.append(_Staged(outcome, result, depth, processed))
        buffer.page_bytes += len(result.body)
        return len(buffer.staged) >= FLUSH_PAGES or buffer.page_bytes > FLUSH_BYTES

    def discovered(self, job_id: str, max_pages: int, rows: list[dict[str, Any]]) -> None:
        """Buffer newly discovered URLs (committed with the outcome that found them)."""
        self._buffer(job_id, max_pages).new_rows += rows

    def count(self, job_id: str, max_pages: int, name: str, amount: int = 1) -> None:
        """A job counter that belongs to no single URL (robots, sitemaps)."""
        self._buffer(job_id, max_pages).counters[name] += amount

    @property
    def buffered(self) -> int:
        """Outcomes not yet committed, those of a flush under way included."""
        waiting = sum(len(b.outcomes) + len(b.staged) for b in self._buffers.values())
        return waiting + self._flushing

    async def flush(self) -> set[str]:
        """Commit every job's buffer; retries failed writes, never loses a batch it holds.
        Returns the hosts of the URLs it added to the frontier."""
        async with self._lock:
            buffers, self._buffers = self._buffers, {}
            hosts: set[str] = set()
            self._flushing = sum(len(b.outcomes) + len(b.staged) for b in buffers.values())
            try:
                for job_id, buffer in buffers.items():
                    hosts |= {row["host"] for row in buffer.new_rows}
                    size = len(buffer.outcomes) + len(buffer.staged)
                    await self._flush_job(job_id, buffer)
                    self._flushing -= size
            finally:
                self._flushing = 0
            return hosts

    async def _flush_job(self, job_id: str, buffer: _Pending) -> None:
        attempt = 0
        part = None  # written once; kept across retries until committed or fenced
        while buffer:
            try:
                if buffer.staged and part is None:
                    rows = [
                        staging_row(job_id, s.result, s.depth, s.processed) for s in buffer.staged
                    ]
                    path, size = await asyncio.to_thread(write_part, self._store, job_id, rows)
                    part = (path, len(rows), size)
                    for s in buffer.staged:
                        s.outcome.staging_part = path
                outcomes = buffer.outcomes + [s.outcome for s in buffer.staged]
                counters = Counter(buffer.counters)
                for outcome in outcomes:
                    counters.update(outcome.counters)
                batch = Batch([o.row() for o in outcomes], buffer.new_rows, part, counters)
                # A failed attempt may have committed after all (the connection dropped after
                # the COMMIT left): then committing again would count and stage it twice.
                if not (attempt and await self._in_catalog(committed, self._sessions, batch)):
                    await self._in_catalog(
                        commit,
                        self._sessions,
                        job_id,
                        self._holder,
                        dict(self._tokens()),
                        batch,
                        buffer.max_pages,
                    )
                self.committed_pages += len(outcomes)
                return
            except Fenced as exc:
                logger.warning("%s; dropping its outcomes", exc, extra={"job_id": job_id})
                await self._discard(part)
                part = None  # the rest of the pages go to a new part
                buffer.drop_hosts(exc.hosts)
                self._on_fenced(exc.hosts)
            except (SQLAlchemyError, StorageError) as exc:
                delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
                attempt += 1
                logger.warning(
                    "commit failed (%s); retrying in %.1f s", exc, delay, extra={"job_id": job_id}
                )
                await asyncio.sleep(delay)

    async def _discard(self, part: tuple[str, int, int] | None) -> None:
        if part is None:
            return
        try:
            await asyncio.to_thread(self._store.delete, part[0])
        except StorageError:
            logger.warning("could not delete uncommitted part %s", part[0])


def staging_row(
    job_id: str, result: FetchResult, depth: int, processed: Processed
) -> dict[str, object]:
    """A fetched page (with its depth and the pipeline's verdict) as a staging row."""
    row: dict[str, object] = {
        "job_id": job_id,
        "url": result.url,
        "final_url": result.final_url,
        "depth": depth,
        "status": result.status,
        "content_type": result.content_type,
        "etag": result.etag,
        "last_modified": result.last_modified,
        "fetched_at": result.fetched_at,
        "proxy": result.proxy,
        "encoding": result.encoding,
        "dropped": processed.dropped,
    }
    if processed.document is not None and processed.signature is not None:
        row |= processed.document.row()
        row["minhash"] = processed.signature.tolist()
    return row
