"""SQLAlchemy tables of the catalog. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""


class Job(Base):
    """A crawl job and its live counters."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    snapshot_version: Mapped[int | None] = mapped_column(Integer)
    schedule_id: Mapped[str | None] = mapped_column(String(36), index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(100))
    """The builder while `building` (a crawl has no owner: its hosts' holders work on it)."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    """Fencing token of the build claim: grows with each take-over."""
    lease_until: Mapped[float | None] = mapped_column(Float)
    """Catalog-clock epoch seconds until which the builder's claim holds."""
    admitted: Mapped[int] = mapped_column(Integer, default=0)
    """URLs admitted to the frontier: `limits.max_pages` is counted here, across workers."""
    local: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A job a `harvester crawl` process runs: service workers never take its URLs, its
    hosts or its build, also once that process is gone (the same command resumes it)."""


class FrontierEntry(Base):
    """One URL of one job: its place in the frontier, then its single recorded outcome."""

    __tablename__ = "frontier"
    __table_args__ = (
        Index("ix_frontier_job_url", "job_id", "url", unique=True),
        Index("ix_frontier_pending", "job_id", "state", "priority", "id"),
        Index("ix_frontier_host", "host", "state", "job_id"),
        Index("ix_frontier_url", "url"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    raw_url: Mapped[str] = mapped_column(Text)
    domain: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    """The politeness key (`harvester.crawl.hostkey`): whoever leases it fetches the URL."""
    depth: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(8))  # pending | claimed | done
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    robots: Mapped[str | None] = mapped_column(String(16))
    proxy: Mapped[str | None] = mapped_column(Text)
    final_url: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(255))
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(String(64))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    staging_part: Mapped[str | None] = mapped_column(Text)
    dropped: Mapped[str | None] = mapped_column(String(64))
    """Why the pipeline kept a fetched page out (`quality/too_short`, `pii/card`…)."""


class StagingPart(Base):
    """A committed staging Parquet file; files not listed here are orphans of a crash."""

    __tablename__ = "staging_parts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    rows: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """An API key, stored as its sha256; the key itself is shown once, when created."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))  # read | admin
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Schedule(Base):
    """A recurring refresh crawl: a cron expression and the job spec each run submits."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    """Why the schedule was paused by the scheduler (its stored spec no longer validates)."""


class ScheduleRun(Base):
    """One firing of a schedule; the unique (schedule, due time) makes it fire exactly once."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "due_at", name="uq_schedule_runs_due"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProxyPoolRecord(Base):
    """A named proxy pool (credentials included; never returned by the API)."""

    __tablename__ = "proxy_pools"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DatasetLease(Base):
    """Who builds a dataset's next snapshot right now (expires unless renewed)."""

    __tablename__ = "dataset_leases"

    dataset: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    """Fencing token: grows with each new holder; the manifest commit checks it."""


class Host(Base):
    """A politeness key: who holds its crawl lease, and the operator's policy for it."""

    __tablename__ = "hosts"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100), index=True)
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    """Fencing token: grows with every take; writes made under the lease check it."""
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    """Catalog-clock epoch seconds; an expired lease may be taken by any worker."""
    not_before: Mapped[float] = mapped_column(Float, default=0.0)
    """Catalog-clock epoch seconds before which the next holder sends nothing: the politeness
    gap after the previous holder's last request carries over a hand-over."""
    max_rps: Mapped[float | None] = mapped_column(Float)
    """Operator's rate ceiling for every job together."""
    concurrency: Mapped[int | None] = mapped_column(Integer)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    policy_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    waiting: Mapped[str | None] = mapped_column(String(200))
    """Why the holder sends nothing for now, e.g. `proxies cooling down until 05:12:30 UTC`
    (None while it fetches or nobody holds the host)."""


class WorkerRecord(Base):
    """A live worker process: its heartbeat tells the others how to share the hosts."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    alive_until: Mapped[float] = mapped_column(Float)
    """Catalog-clock epoch seconds."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
