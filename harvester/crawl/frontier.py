"""The persisted frontier: admission (canonical form, scope, seen-set, page cap), claims and
the transaction that records outcomes together with the links they discovered."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import FrontierEntry, Job, StagingPart
from harvester.crawl.scope import ScopeRules
from harvester.crawl.urls import InvalidURL, canonicalize, domain_of
from harvester.spec import JobSpec
from harvester.stats import Stats

RESUMABLE_STATES = ("queued", "running", "building")


@dataclass(frozen=True)
class Claimed:
    """A frontier entry handed to the crawl loop."""

    id: int
    url: str
    domain: str
    depth: int
    etag: str | None = None
    last_modified: str | None = None


def create_job(
    sessions: sessionmaker[Session],
    spec: JobSpec,
    state: str = "queued",
    schedule_id: str | None = None,
) -> str:
    """Insert a job row for `spec`; returns its id."""
    job_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(
            Job(
                id=job_id,
                dataset=spec.dataset,
                spec=spec.model_dump(mode="json"),
                spec_hash=spec.fingerprint(),
                state=state,
                created_at=datetime.now(UTC),
                stats={},
                schedule_id=schedule_id,
            )
        )
    return job_id


def find_resumable(sessions: sessionmaker[Session], spec: JobSpec) -> str | None:
    """The newest unfinished job with exactly this spec, if any (a killed crawl to resume)."""
    with sessions() as session:
        return session.scalar(
            select(Job.id)
            .where(
                Job.dataset == spec.dataset,
                Job.spec_hash == spec.fingerprint(),
                Job.state.in_(RESUMABLE_STATES),
                Job.worker.is_(None),  # jobs of the service's workers are theirs to resume
            )
            .order_by(Job.created_at.desc())
            .limit(1)
        )


def set_job_state(
    sessions: sessionmaker[Session], job_id: str, state: str, error: str | None = None
) -> None:
    """Move a job to `state`, stamping start and finish times."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"state": state, "error": error}
    if state == "running":
        values["started_at"] = now
    if state in ("succeeded", "failed", "cancelled"):
        values["finished_at"] = now
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


class Frontier:
    """The URLs of one job. Admission is decided in memory; rows are written by `commit`."""

    def __init__(
        self, sessions: sessionmaker[Session], job_id: str, spec: JobSpec, stats: Stats
    ) -> None:
        self._sessions = sessions
        self.job_id = job_id
        self._spec = spec
        self._stats = stats
        self.scope = ScopeRules(spec.scope, [str(s) for s in spec.seeds])
        self._tracking = (
            tuple(spec.scope.tracking_params) if spec.scope.strip_tracking_params else ()
        )
        self._seen: set[str] = set()

    def canonical(self, url: str) -> str:
        """The canonical form used for the seen-set and scope checks."""
        return canonicalize(url, self._tracking)

    def open(self, known: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Load the seen-set, return claimed-but-unfinished entries to pending, and return the
        rows to insert if this is a fresh job: the seeds, then `known` URLs (the documents of
        the dataset's latest snapshot, revalidated by a refresh) at depth 1."""
        with self._sessions.begin() as session:
            session.execute(
                update(FrontierEntry)
                .where(FrontierEntry.job_id == self.job_id, FrontierEntry.state == "claimed")
                .values(state="pending")
            )
            self._seen = set(
                session.scalars(
                    select(FrontierEntry.url).where(FrontierEntry.job_id == self.job_id)
                )
            )
        if self._seen:
            return []
        rows = self.admit(((str(seed), 0) for seed in self._spec.seeds), seeds=True)
        return rows + self.admit((url, 1) for url in known)

    def admit(
        self, candidates: Iterable[tuple[str, int]], *, seeds: bool = False
    ) -> list[dict[str, Any]]:
        """Rows for the candidates (raw URL, depth) that are new, in scope and within the cap."""
        rows: list[dict[str, Any]] = []
        for raw, depth in candidates:
            try:
                url = self.canonical(raw)
            except InvalidURL:
                self._stats.inc("frontier/rejected/invalid")
                continue
            if url in self._seen:
                continue
            rule = None if seeds else self.scope.rejection(url, depth)
            if rule is not None:
                self._stats.inc(f"frontier/rejected/{rule}")
                continue
            if len(self._seen) >= self._spec.limits.max_pages:
                self._stats.inc("frontier/rejected/max_pages")
                continue
            self._seen.add(url)
            self._stats.inc("frontier/discovered")
            rows.append(
                {
                    "job_id": self.job_id,
                    "url": url,
                    "raw_url": raw[:8192],
                    "domain": domain_of(url),
                    "depth": depth,
                    "priority": depth,
                    "state": "pending",
                    "attempts": 0,
                }
            )
        return rows

    def claim(self, limit: int, exclude_domains: Sequence[str]) -> list[Claimed]:
        """Mark up to `limit` pending entries claimed (shallowest first) and return them with
        the validators earlier crawls of the dataset recorded, for conditional requests."""
        with self._sessions.begin() as session:
            query = (
                select(
                    FrontierEntry.id, FrontierEntry.url, FrontierEntry.domain, FrontierEntry.depth
                )
                .where(FrontierEntry.job_id == self.job_id, FrontierEntry.state == "pending")
                .order_by(FrontierEntry.priority, FrontierEntry.id)
                .limit(limit)
            )
            if exclude_domains:
                query = query.where(FrontierEntry.domain.not_in(list(exclude_domains)))
            rows = session.execute(query).all()
            if not rows:
                return []
            session.execute(
                update(FrontierEntry)
                .where(FrontierEntry.id.in_([r.id for r in rows]))
                .values(state="claimed")
            )
            validators = (
                self._validators(session, [r.url for r in rows])
                if self._spec.conditional_requests
                else {}
            )
        # Seeds are always fetched in full: their links are how a refresh finds new pages.
        return [
            Claimed(
                r.id,
                r.url,
                r.domain,
                r.depth,
                *(validators.get(r.url, (None, None)) if r.depth > 0 else (None, None)),
            )
            for r in rows
        ]

    def _validators(
        self, session: Session, urls: list[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        rows = session.execute(
            select(FrontierEntry.url, FrontierEntry.etag, FrontierEntry.last_modified)
            .join(Job, Job.id == FrontierEntry.job_id)
            .where(
                Job.dataset == self._spec.dataset,
                Job.id != self.job_id,
                FrontierEntry.url.in_(urls),
                FrontierEntry.outcome == "fetched",
                # A page the pipeline dropped is fetched in full again, so a refresh retries it.
                FrontierEntry.dropped.is_(None),
                # Only a job whose snapshot was committed holds the documents a 304 keeps.
                Job.snapshot_version.is_not(None),
            )
            .order_by(FrontierEntry.fetched_at)
        ).all()
        return {r.url: (r.etag, r.last_modified) for r in rows if r.etag or r.last_modified}

    def commit(
        self,
        outcomes: Sequence[dict[str, Any]],
        new_rows: Sequence[dict[str, Any]],
        part: tuple[str, int, int] | None,
        stats: dict[str, int],
    ) -> None:
        """One transaction: the staging part (path, rows, bytes), the outcomes, the newly
        discovered URLs and the job's counters. A crash before it leaves the URLs pending."""
        with self._sessions.begin() as session:
            if part is not None:
                path, rows, size = part
                session.add(
                    StagingPart(
                        job_id=self.job_id,
                        path=path,
                        rows=rows,
                        bytes=size,
                        created_at=datetime.now(UTC),
                    )
                )
            if new_rows:
                session.execute(insert(FrontierEntry), list(new_rows))
            if outcomes:
                session.execute(update(FrontierEntry), list(outcomes))
            session.execute(update(Job).where(Job.id == self.job_id).values(stats=stats))

    def unfinished(self) -> int:
        """Entries without an outcome (pending or claimed)."""
        with self._sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(FrontierEntry)
                    .where(FrontierEntry.job_id == self.job_id, FrontierEntry.state != "done")
                )
                or 0
            )
