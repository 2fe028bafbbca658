"""The persisted frontier: admission (canonical form, scope, URL length), claims of a leased
host's URLs, and the fenced transaction that records outcomes with the links they found.

The seen-set is the unique (job, URL) index: any number of workers may discover the same URL
and insert it; one insert wins. `limits.max_pages` is counted on the job row in the same
transaction, so the cap holds across workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.leases import check_hosts
from harvester.catalog.models import FrontierEntry, Host, Job, StagingPart
from harvester.crawl.hostkey import HostKey, host_key
from harvester.crawl.scope import ScopeRules
from harvester.crawl.urls import InvalidURL, canonicalize, domain_of
from harvester.errors import LeaseLost
from harvester.spec import JobSpec

MAX_URL_LENGTH = 2048
"""Longer URLs are rejected (counted): session tokens and traps, and btree keys have limits."""
_SEEN_CACHE = 200_000


class Fenced(LeaseLost):
    """A commit touched hosts whose lease this worker lost; nothing was written."""

    def __init__(self, hosts: set[str]) -> None:
        super().__init__(f"lost the lease on {len(hosts)} host(s): {sorted(hosts)[:3]}")
        self.hosts = hosts


@dataclass(frozen=True)
class Claimed:
    """A frontier entry handed to a host's runner."""

    id: int
    job_id: str
    url: str
    domain: str
    host: str
    depth: int
    etag: str | None = None
    last_modified: str | None = None


class Screening:
    """The stateless part of admission: canonical form, URL length, scope. Picklable, so the
    CPU pool applies it next to the parse that yields the URLs (a page with 100,000 links or
    a 50 MB sitemap costs the pool, not the event loop)."""

    def __init__(self, spec: JobSpec) -> None:
        self._spec = spec
        self.scope = ScopeRules(spec.scope, [str(s) for s in spec.seeds])
        self._tracking = (
            tuple(spec.scope.tracking_params) if spec.scope.strip_tracking_params else ()
        )

    def __reduce__(self) -> tuple[type[Screening], tuple[JobSpec]]:
        return Screening, (self._spec,)  # compiled patterns do not pickle; the spec does

    def __call__(
        self, raws: Iterable[str], depth: int, counters: Counter[str], *, seeds: bool = False
    ) -> list[tuple[str, str]]:
        """(canonical, raw) of the URLs that are valid, short enough and in scope, each once;
        the others counted by the rule they break."""
        kept: dict[str, str] = {}
        for raw in raws:
            try:
                url = canonicalize(raw, self._tracking)
            except InvalidURL:
                counters["frontier/rejected/invalid"] += 1
                continue
            if url in kept:
                continue
            if len(url) > MAX_URL_LENGTH:
                counters["frontier/rejected/too_long"] += 1
                continue
            rule = None if seeds else self.scope.rejection(url, depth)
            if rule is not None:
                counters[f"frontier/rejected/{rule}"] += 1
                continue
            kept[url] = raw
        return list(kept.items())


class Admission:
    """Which discovered URLs of one job may enter its frontier: screened (`Screening`), then
    the ones this process has not offered yet; the catalog's unique index and page count
    decide the rest when they are inserted."""

    def __init__(self, job_id: str, spec: JobSpec, key: HostKey = host_key) -> None:
        self.job_id = job_id
        self._spec = spec
        self._key = key
        self.screening = Screening(spec)
        self._sent: set[str] = set()  # URLs this process already offered: skip resending

    def seeds(self, known: Sequence[str], counters: Counter[str]) -> list[dict[str, Any]]:
        """A fresh job's rows: the seeds, then `known` URLs (the documents of the dataset's
        latest snapshot, revalidated by a refresh) at depth 1."""
        seeds = self.screening((str(seed) for seed in self._spec.seeds), 0, counters, seeds=True)
        return self.rows(seeds, 0) + self.admit(known, 1, counters)

    def admit(
        self, urls: Iterable[str], depth: int, counters: Counter[str]
    ) -> list[dict[str, Any]]:
        """Rows for the raw `urls` found at `depth` that are new here and in scope."""
        return self.rows(self.screening(urls, depth, counters), depth)

    def rows(self, screened: Iterable[tuple[str, str]], depth: int) -> list[dict[str, Any]]:
        """Rows for screened (canonical, raw) URLs this process has not offered yet."""
        rows: list[dict[str, Any]] = []
        for url, raw in screened:
            if url in self._sent:
                continue
            if len(self._sent) < _SEEN_CACHE:
                self._sent.add(url)
            rows.append(
                {
                    "job_id": self.job_id,
                    "url": url,
                    "raw_url": raw[:MAX_URL_LENGTH],
                    "domain": domain_of(url),
                    "host": self._key(url),
                    "depth": depth,
                    "priority": depth,
                    "state": "pending",
                    "attempts": 0,
                }
            )
        return rows


def _locked(session: Session, column: Any, job_id: str) -> Any:
    """`column` of the job's row, locked until the commit so concurrent workers add to it.
    FOR NO KEY UPDATE, not FOR UPDATE: a commit's inserts (staging part, frontier rows)
    already hold a key-share lock on the row through their foreign keys, which FOR UPDATE
    conflicts with, so two workers committing at once deadlocked (each waiting for the
    other's key share; seen in bench/scale.py with 4 workers)."""
    return session.scalar(select(column).where(Job.id == job_id).with_for_update(key_share=True))


def _insert_ignoring_conflicts(session: Session, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert(model).on_conflict_do_nothing()
    return sqlite_insert(model).on_conflict_do_nothing()


def insert_urls(
    session: Session,
    job_id: str,
    rows: Sequence[dict[str, Any]],
    max_pages: int,
    counters: Counter[str],
) -> None:
    """Insert new frontier rows within the job's page cap (the job row is locked), counted.
    Known URLs are skipped by the unique index; URLs of blocked hosts enter as skipped."""
    blocked = set(
        session.scalars(
            select(Host.host).where(Host.blocked, Host.host.in_({r["host"] for r in rows}))
        )
    )
    if blocked:
        skip = {"state": "done", "outcome": "skipped", "reason": "policy/blocked"}
        unset = {"outcome": None, "reason": None}  # one shape for every row of the insert
        rows = [unset | r | (skip if r["host"] in blocked else {}) for r in rows]
    admitted = _locked(session, Job.admitted, job_id)
    room = max_pages - int(admitted or 0)
    inserted, start = 0, 0
    while room > 0 and start < len(rows):
        chunk = list(rows[start : start + room])
        start += len(chunk)
        done = session.execute(
            _insert_ignoring_conflicts(session, FrontierEntry).returning(
                FrontierEntry.id, FrontierEntry.state
            ),
            chunk,
        ).all()
        inserted += len(done)
        room -= len(done)
        skipped = sum(1 for row in done if row.state == "done")
        if skipped:
            counters["fetch/outcome/skipped"] += skipped
            counters["fetch/skipped/policy/blocked"] += skipped
    if inserted:
        hosts = sorted({row["host"] for row in rows})
        session.execute(_insert_ignoring_conflicts(session, Host), [{"host": h} for h in hosts])
        session.execute(
            update(Job).where(Job.id == job_id).values(admitted=Job.admitted + inserted)
        )
    counters["frontier/discovered"] += inserted
    if start < len(rows):
        counters["frontier/rejected/max_pages"] += len(rows) - start


def merge_counters(session: Session, job_id: str, counters: Mapping[str, int]) -> None:
    """Add counters to the job's (row-locked, so concurrent workers add, never overwrite)."""
    if not counters:
        return
    stats = _locked(session, Job.stats, job_id)
    merged = Counter(stats or {})
    merged.update(counters)
    session.execute(update(Job).where(Job.id == job_id).values(stats=dict(sorted(merged.items()))))


@dataclass(frozen=True)
class JobRef:
    """What a claim needs to know of a job: its dataset and whether to revalidate."""

    dataset: str
    conditional: bool


def claim(
    sessions: sessionmaker[Session],
    holder: str,
    hosts: Mapping[str, tuple[int, int]],
    jobs: Mapping[str, JobRef],
) -> tuple[dict[str, list[Claimed]], set[str]]:
    """Claim pending URLs of held hosts in one transaction: for each host (→ its lease token
    and how many per job), up to that many URLs of each job in `jobs` (shallowest first),
    with the validators earlier crawls of the dataset recorded. Returns the claims by host,
    and the hosts whose lease moved (`check_hosts`): nothing is claimed there."""
    claimed: dict[str, list[Claimed]] = {host: [] for host in hosts}
    with sessions.begin() as session:
        lost = check_hosts(session, holder, {h: token for h, (token, _) in sorted(hosts.items())})
        wanted = {h: n for h, (_, n) in hosts.items() if h not in lost}
        if not wanted or not jobs:
            return claimed, lost
        rank = (
            func.row_number()
            .over(
                partition_by=(FrontierEntry.host, FrontierEntry.job_id),
                order_by=(FrontierEntry.priority, FrontierEntry.id),
            )
            .label("rank")
        )
        ranked = (
            select(
                FrontierEntry.id,
                FrontierEntry.job_id,
                FrontierEntry.url,
                FrontierEntry.domain,
                FrontierEntry.host,
                FrontierEntry.depth,
                rank,
            )
            .where(
                FrontierEntry.host.in_(list(wanted)),
                FrontierEntry.state == "pending",
                FrontierEntry.job_id.in_(list(jobs)),
            )
            .subquery()
        )
        rows = sorted(
            (
                r
                for r in session.execute(
                    select(ranked).where(ranked.c.rank <= max(wanted.values()))
                )
                if r.rank <= wanted[r.host]
            ),
            key=lambda r: (r.job_id, r.rank),
        )
        if not rows:
            return claimed, lost
        session.execute(
            update(FrontierEntry)
            .where(FrontierEntry.id.in_([r.id for r in rows]))
            .values(state="claimed")
        )
        by_job: dict[str, list[Any]] = {}
        for r in rows:
            by_job.setdefault(r.job_id, []).append(r)
        for job_id, job_rows in sorted(by_job.items()):
            ref = jobs[job_id]
            validators = (
                _validators(session, ref.dataset, job_id, [r.url for r in job_rows])
                if ref.conditional
                else {}
            )
            for r in job_rows:
                # Seeds are always fetched in full: their links are how a refresh finds new
                # pages.
                known = validators.get(r.url, (None, None)) if r.depth > 0 else (None, None)
                claimed[r.host].append(
                    Claimed(r.id, job_id, r.url, r.domain, r.host, r.depth, *known)
                )
    return claimed, lost


def _validators(
    session: Session, dataset: str, job_id: str, urls: list[str]
) -> dict[str, tuple[str | None, str | None]]:
    """The validators to revalidate `urls` with: those of each URL's newest outcome in an
    earlier job of the dataset whose snapshot was committed, and only if that outcome put
    the page's document there (fetched and kept, or not modified). After a 404 or a drop the
    snapshot holds no document a 304 could keep, and a 200 without an ETag retires the old
    one: the page is fetched in full."""
    rows = session.execute(
        select(
            FrontierEntry.url,
            FrontierEntry.outcome,
            FrontierEntry.dropped,
            FrontierEntry.etag,
            FrontierEntry.last_modified,
        )
        .join(Job, Job.id == FrontierEntry.job_id)
        .where(
            Job.dataset == dataset,
            Job.id != job_id,
            FrontierEntry.url.in_(urls),
            FrontierEntry.state == "done",
            Job.snapshot_version.is_not(None),
        )
        .order_by(Job.snapshot_version, FrontierEntry.id)
    ).all()
    newest = {r.url: r for r in rows}  # ascending: the last row of a URL is its newest
    return {
        url: (r.etag, r.last_modified)
        for url, r in newest.items()
        if r.outcome in ("fetched", "not-modified")
        and r.dropped is None
        and (r.etag or r.last_modified)
    }


@dataclass
class Batch:
    """What one job's flush commits in one transaction."""

    outcomes: list[dict[str, Any]]
    """Frontier updates by id (each with `host`, the lease it was fetched under)."""
    new_rows: list[dict[str, Any]]
    part: tuple[str, int, int] | None
    """The staging part (path, rows, bytes) holding this batch's pages."""
    counters: Counter[str]


def commit(
    sessions: sessionmaker[Session],
    job_id: str,
    holder: str,
    tokens: Mapping[str, int],
    batch: Batch,
    max_pages: int,
) -> None:
    """One transaction: the staging part, the outcomes, the newly discovered URLs and the
    job's counters, after checking that every host of the outcomes is still leased to this
    worker with the same token (`Fenced` otherwise, and nothing is written)."""
    hosts = {o["host"] for o in batch.outcomes}
    with sessions.begin() as session:
        lost = check_hosts(session, holder, {h: tokens.get(h, -1) for h in sorted(hosts)})
        if lost:
            raise Fenced(lost)
        counters = Counter(batch.counters)
        if batch.part is not None:
            path, rows, size = batch.part
            session.add(
                StagingPart(
                    job_id=job_id, path=path, rows=rows, bytes=size, created_at=datetime.now(UTC)
                )
            )
        if batch.new_rows:
            insert_urls(session, job_id, batch.new_rows, max_pages, counters)
        if batch.outcomes:
            session.execute(
                update(FrontierEntry),
                [{k: v for k, v in o.items() if k != "host"} for o in batch.outcomes],
            )
        merge_counters(session, job_id, +counters)


def committed(sessions: sessionmaker[Session], batch: Batch) -> bool:
    """Whether `batch` is in the catalog already: a commit whose answer was lost may have
    gone through. A commit is all or nothing, so its staging part (or its first outcome)
    tells."""
    with sessions() as session:
        if batch.part is not None:
            path = batch.part[0]
            return (
                session.scalar(select(StagingPart.id).where(StagingPart.path == path)) is not None
            )
        if batch.outcomes:
            first = batch.outcomes[0]["id"]
            return (
                session.scalar(select(FrontierEntry.state).where(FrontierEntry.id == first))
                == "done"
            )
    return False


def unfinished(sessions: sessionmaker[Session], job_id: str) -> int:
    """Entries without an outcome (pending or claimed)."""
    with sessions() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(FrontierEntry)
                .where(FrontierEntry.job_id == job_id, FrontierEntry.state != "done")
            )
            or 0
        )
