"""What a job's followers see per host: its URLs by where they stand, and why hosts wait.

Read by `GET /v1/jobs/{id}` and `/v1/jobs/{id}/hosts`, and by `harvester crawl`'s live
display, so a local crawl and `harvester jobs submit --follow` show the same figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from harvester.catalog.models import FrontierEntry, Host


@dataclass(frozen=True)
class HostCounts:
    """One host's URLs of a job by where they stand, and why its holder waits, if it does."""

    host: str
    fetched: int
    """Fetched or found not modified (304)."""
    failed: int
    skipped: int
    pending: int
    """Not yet done: waiting for a worker, or claimed by one."""
    holder: str | None
    waiting: str | None


def host_counts(session: Session, job_id: str, limit: int = 50) -> list[HostCounts]:
    """A job's hosts, busiest first (pending, then fetched), at most `limit` of them."""
    rows = session.execute(
        select(FrontierEntry.host, FrontierEntry.state, FrontierEntry.outcome, func.count())
        .where(FrontierEntry.job_id == job_id)
        .group_by(FrontierEntry.host, FrontierEntry.state, FrontierEntry.outcome)
    ).all()
    counts: dict[str, Counter[str]] = {}
    for host, state, outcome, count in rows:
        kind = "pending" if state != "done" else outcome or "failed"
        counts.setdefault(host, Counter())["fetched" if kind == "not-modified" else kind] += count
    busiest = sorted(counts, key=lambda h: (-counts[h]["pending"], -counts[h]["fetched"], h))
    busiest = busiest[:limit]
    held = {
        row.host: row
        for row in session.execute(
            select(Host.host, Host.holder, Host.waiting).where(Host.host.in_(busiest))
        )
    }
    return [
        HostCounts(
            host,
            counts[host]["fetched"],
            counts[host]["failed"],
            counts[host]["skipped"],
            counts[host]["pending"],
            held[host].holder if host in held else None,
            held[host].waiting if host in held and held[host].holder else None,
        )
        for host in busiest
    ]


def waiting(session: Session, job_id: str, limit: int = 5) -> list[str]:
    """Why the job's hosts with URLs left wait, if any does (`host: proxies cooling down
    until 05:12:30 UTC`)."""
    left = (
        select(FrontierEntry.id)
        .where(
            FrontierEntry.host == Host.host,
            FrontierEntry.state.in_(("pending", "claimed")),
            FrontierEntry.job_id == job_id,
        )
        .limit(1)
    )
    rows = session.execute(
        select(Host.host, Host.waiting)
        .where(Host.waiting.is_not(None), Host.holder.is_not(None), exists(left))
        .order_by(Host.host)
        .limit(limit)
    ).all()
    return [f"{host}: {why}" for host, why in rows]
