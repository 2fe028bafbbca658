"""Leases in the catalog, each with a fencing token that grows with every new holder.

- **Dataset leases**: one snapshot build per dataset at a time, across processes and machines.
- **Host leases**: one worker fetches from a host at a time; it renews them with its heartbeat.

Expiry is judged by the catalog's clock. A holder that stalled past its lease (GC pause,
SIGSTOP, lost network) finds its token outdated: every write made under a lease checks the
token in the same transaction, so a late holder can write nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from harvester.catalog.clock import db_now
from harvester.catalog.models import DatasetLease, FrontierEntry, Host, Job, WorkerRecord
from harvester.errors import LeaseLost, StorageError

logger = logging.getLogger(__name__)

TTL = timedelta(seconds=60)
_RENEW_S = 10.0
_POLL_S = 0.5
UNFINISHED_URL = ("pending", "claimed")


def _try_acquire(sessions: sessionmaker[Session], dataset: str, holder: str) -> int | None:
    now = datetime.now(UTC)
    try:
        with sessions.begin() as session:
            session.add(DatasetLease(dataset=dataset, holder=holder, expires_at=now + TTL, token=1))
        return 1
    except IntegrityError:
        pass
    with sessions.begin() as session:
        token = session.scalar(
            update(DatasetLease)
            .where(
                DatasetLease.dataset == dataset,
                or_(DatasetLease.expires_at < now, DatasetLease.holder == holder),
            )
            .values(holder=holder, expires_at=now + TTL, token=DatasetLease.token + 1)
            .returning(DatasetLease.token)
        )
    return token


@dataclass
class DatasetLeaseHandle:
    """A held dataset lease; `confirm()` right before a write proves it is still ours."""

    sessions: sessionmaker[Session]
    dataset: str
    holder: str
    token: int

    def confirm(self) -> None:
        """Extend the lease if it is still ours (same holder and token); else `LeaseLost`."""
        with self.sessions.begin() as session:
            result = session.execute(
                update(DatasetLease)
                .where(
                    DatasetLease.dataset == self.dataset,
                    DatasetLease.holder == self.holder,
                    DatasetLease.token == self.token,
                )
                .values(expires_at=datetime.now(UTC) + TTL)
            )
        if getattr(result, "rowcount", 0) != 1:
            raise LeaseLost(f"the lease on dataset {self.dataset!r} moved to another holder")


@contextlib.contextmanager
def dataset_lease(
    sessions: sessionmaker[Session], dataset: str, holder: str, wait_s: float = 3600.0
) -> Iterator[DatasetLeaseHandle]:
    """Hold the dataset's lease for the block, renewing it; waits while another holds it."""
    deadline = time.monotonic() + wait_s
    while (token := _try_acquire(sessions, dataset, holder)) is None:
        if time.monotonic() > deadline:
            raise StorageError(f"dataset {dataset!r} is locked by another build")
        time.sleep(_POLL_S)
    handle = DatasetLeaseHandle(sessions, dataset, holder, token)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(_RENEW_S):
            try:
                handle.confirm()
            except LeaseLost:
                return  # the commit's own confirm() will refuse
            except OperationalError:
                logger.warning("dataset lease renewal failed; retrying", exc_info=True)

    renewer = threading.Thread(target=renew, daemon=True, name=f"lease-{dataset}")
    renewer.start()
    try:
        yield handle
    finally:
        done.set()
        renewer.join()
        with sessions.begin() as session:
            session.execute(
                delete(DatasetLease).where(
                    DatasetLease.dataset == dataset,
                    DatasetLease.holder == holder,
                    DatasetLease.token == token,
                )
            )


@dataclass(frozen=True)
class HeldHost:
    """A host lease this worker holds, with the operator's policy for the host."""

    host: str
    token: int
    max_rps: float | None
    concurrency: int | None
    blocked: bool
    wait_s: float = 0.0
    """When taken: how long the politeness gap after the previous holder still runs."""


_HELD = (Host.host, Host.token, Host.max_rps, Host.concurrency, Host.blocked)


def _free(session: Session) -> ColumnElement[bool]:
    return or_(Host.holder.is_(None), Host.expires_at < db_now(session))


class HostLeases:
    """The host leases of one worker: take, renew and give back, each a short transaction."""

    def __init__(self, sessions: sessionmaker[Session], holder: str, ttl_s: float) -> None:
        self._sessions = sessions
        self.holder = holder
        self.ttl_s = ttl_s

    def _postgres(self, session: Session) -> bool:
        return session.get_bind().dialect.name == "postgresql"

    def heartbeat(
        self, held: Sequence[str], waiting: Mapping[str, str | None] | None = None
    ) -> tuple[dict[str, HeldHost], int]:
        """Extend this worker's leases and record why hosts wait (`waiting`: only the hosts
        whose reason changed); returns the leases still held (with their current policy) and
        the number of live workers (this one included)."""
        with self._sessions.begin() as session:
            now = db_now(session)
            alive = now + self.ttl_s
            for host, why in (waiting or {}).items():
                session.execute(
                    update(Host)
                    .where(Host.host == host, Host.holder == self.holder)
                    .values(waiting=why)
                )
            renewed = session.execute(
                update(Host)
                .where(Host.holder == self.holder, Host.host.in_(list(held)))
                .values(expires_at=alive)
                .returning(*_HELD)
            ).all()
            updated = session.execute(
                update(WorkerRecord)
                .where(WorkerRecord.name == self.holder)
                .values(alive_until=alive)
            )
            if getattr(updated, "rowcount", 0) == 0:
                session.execute(
                    insert(WorkerRecord).values(
                        name=self.holder, alive_until=alive, started_at=datetime.now(UTC)
                    )
                )
            workers = session.scalar(
                select(func.count()).select_from(WorkerRecord).where(WorkerRecord.alive_until > now)
            )
        return {r.host: HeldHost(*r) for r in renewed}, max(int(workers or 1), 1)

    def demand(self, jobs: Sequence[str] | None) -> int:
        """Hosts with unfinished URLs of running jobs, whoever holds them."""
        with self._sessions() as session:
            query = select(func.count()).select_from(Host).where(self._has_work(jobs))
            return int(session.scalar(query) or 0)

    def _has_work(self, jobs: Sequence[str] | None) -> ColumnElement[bool]:
        work = (
            select(FrontierEntry.id)
            .join(Job, Job.id == FrontierEntry.job_id)
            .where(
                FrontierEntry.host == Host.host,
                FrontierEntry.state.in_(UNFINISHED_URL),
                Job.state == "running",
                Job.cancel_requested.is_(False),
            )
        )
        if jobs is not None:
            work = work.where(FrontierEntry.job_id.in_(list(jobs)))
        else:  # a service worker takes no host for the URLs of a `harvester crawl` process
            work = work.where(Job.local.is_(False))
        return and_(Host.blocked.is_(False), exists(work))

    def acquire(self, want: int, jobs: Sequence[str] | None = None) -> list[HeldHost]:
        """Take up to `want` free hosts that have work; their previous holder's in-flight
        URLs go back to pending."""
        if want <= 0:
            return []
        with self._sessions.begin() as session:
            query = (
                select(Host.host)
                .where(_free(session), self._has_work(jobs))
                .order_by(Host.expires_at, Host.host)
                .limit(want)
            )
            if self._postgres(session):
                query = query.with_for_update(skip_locked=True)
            free = session.scalars(query).all()
            if not free:
                return []
            # Set-based: one statement for all the hosts, as a worker starting on a job with
            # hundreds of hosts takes them all at once.
            rows = session.execute(
                update(Host)
                .where(Host.host.in_(free), _free(session))  # SQLite: none taken meanwhile
                .values(
                    holder=self.holder,
                    token=Host.token + 1,
                    expires_at=db_now(session) + self.ttl_s,
                    waiting=None,
                )
                .returning(*_HELD, Host.not_before - db_now(session))
            ).all()
            if rows:
                session.execute(
                    update(FrontierEntry)
                    .where(
                        FrontierEntry.host.in_([row.host for row in rows]),
                        FrontierEntry.state == "claimed",
                    )
                    .values(state="pending")
                )
            taken = [
                HeldHost(
                    row.host,
                    row.token,
                    row.max_rps,
                    row.concurrency,
                    row.blocked,
                    wait_s=max(0.0, float(row[-1])),
                )
                for row in rows
            ]
        return taken

    def release(self, host: str, token: int, gap_s: float = 0.0) -> None:
        """Give a host back: its claimed-but-unsent URLs return to pending, and the next holder
        waits `gap_s` (what is left of the politeness gap after the last request)."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Host)
                .where(Host.host == host, Host.holder == self.holder, Host.token == token)
                .values(
                    holder=None,
                    expires_at=0.0,
                    not_before=db_now(session) + gap_s,
                    waiting=None,
                )
            )
            if getattr(result, "rowcount", 0) == 1:
                session.execute(
                    update(FrontierEntry)
                    .where(FrontierEntry.host == host, FrontierEntry.state == "claimed")
                    .values(state="pending")
                )

    def retire(self) -> None:
        """This worker is stopping: forget its heartbeat row."""
        with self._sessions.begin() as session:
            session.execute(delete(WorkerRecord).where(WorkerRecord.name == self.holder))


def check_hosts(session: Session, holder: str, hosts: dict[str, int]) -> set[str]:
    """Inside a writing transaction: the hosts of `hosts` (host → token) this holder no
    longer holds. On PostgreSQL the rows stay share-locked until the commit, so no take-over
    can slip between this check and the write."""
    if not hosts:
        return set()
    query = select(Host.host, Host.holder, Host.token).where(Host.host.in_(list(hosts)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    current = {r.host: (r.holder, r.token) for r in session.execute(query)}
    return {h for h, t in hosts.items() if current.get(h) != (holder, t)}
