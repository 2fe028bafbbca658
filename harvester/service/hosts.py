"""Host policies: an operator's per-host overrides (rate ceiling, concurrency, block), the
knobs Heritrix and StormCrawler give operators, obeyed by every job and worker.

A policy lives on the host's lease row, so the worker holding the host reads it with each
heartbeat and applies it from the next request. Blocking a host ends its unfinished URLs as
`skipped policy/blocked` (URLs found later are admitted that way), so no job waits for it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.clock import db_now
from harvester.catalog.models import FrontierEntry, Host
from harvester.crawl.frontier import merge_counters


@dataclass(frozen=True)
class HostView:
    """A host as operators see it: its policy and who crawls it now."""

    host: str
    max_rps: float | None
    concurrency: int | None
    blocked: bool
    note: str | None
    policy_updated_at: datetime | None
    holder: str | None
    """The worker holding its lease, if the lease is live."""
    pending: int


def _view(session: Session, host: str) -> HostView | None:
    row = session.execute(
        select(Host, (Host.expires_at > db_now(session)).label("live")).where(Host.host == host)
    ).one_or_none()
    if row is None:
        return None
    record, live = row
    pending = session.scalar(
        select(func.count())
        .select_from(FrontierEntry)
        .where(FrontierEntry.host == host, FrontierEntry.state == "pending")
    )
    return HostView(
        record.host,
        record.max_rps,
        record.concurrency,
        record.blocked,
        record.note,
        record.policy_updated_at,
        record.holder if live else None,
        int(pending or 0),
    )


def get_host(sessions: sessionmaker[Session], host: str) -> HostView | None:
    """One host, or None if no job ever met it and no policy names it."""
    with sessions() as session:
        return _view(session, host)


def list_hosts(
    sessions: sessionmaker[Session], *, with_policy: bool, limit: int, offset: int
) -> tuple[list[HostView], int]:
    """Hosts by name (only those with a policy, if asked), and how many there are."""
    query = select(Host.host)
    if with_policy:
        query = query.where(Host.policy_updated_at.is_not(None))
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        names = session.scalars(query.order_by(Host.host).limit(limit).offset(offset)).all()
        views = [v for name in names if (v := _view(session, name)) is not None]
    return views, int(total)


def set_policy(
    sessions: sessionmaker[Session],
    host: str,
    *,
    max_rps: float | None,
    concurrency: int | None,
    blocked: bool,
    note: str | None,
) -> HostView:
    """Create or replace a host's policy; a block skips its unfinished URLs at once."""
    values = {
        "max_rps": max_rps,
        "concurrency": concurrency,
        "blocked": blocked,
        "note": note,
        "policy_updated_at": datetime.now(UTC),
    }
    with sessions.begin() as session:
        if session.get(Host, host) is None:
            session.add(Host(host=host, token=0, expires_at=0.0, **values))
            session.flush()
        else:
            session.execute(update(Host).where(Host.host == host).values(**values))
        if blocked:
            _skip_blocked(session, host)
    view = get_host(sessions, host)
    assert view is not None
    return view


def clear_policy(sessions: sessionmaker[Session], host: str) -> bool:
    """Remove a host's policy; False if it had none."""
    with sessions.begin() as session:
        result = session.execute(
            update(Host)
            .where(Host.host == host, Host.policy_updated_at.is_not(None))
            .values(
                max_rps=None, concurrency=None, blocked=False, note=None, policy_updated_at=None
            )
        )
    return getattr(result, "rowcount", 0) == 1


def _skip_blocked(session: Session, host: str) -> None:
    jobs = Counter(
        session.scalars(
            select(FrontierEntry.job_id).where(
                FrontierEntry.host == host, FrontierEntry.state == "pending"
            )
        )
    )
    session.execute(
        update(FrontierEntry)
        .where(FrontierEntry.host == host, FrontierEntry.state == "pending")
        .values(state="done", outcome="skipped", reason="policy/blocked")
    )
    for job_id, skipped in jobs.items():
        merge_counters(
            session,
            job_id,
            {"fetch/outcome/skipped": skipped, "fetch/skipped/policy/blocked": skipped},
        )
