"""Proxy pools kept in the catalog (the API's `/v1/proxy-pools`), credentials included."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import ProxyPoolRecord
from harvester.crawl.proxies import PoolConfig


def save_pool(sessions: sessionmaker[Session], name: str, config: PoolConfig) -> None:
    """Create or replace a pool."""
    with sessions.begin() as session:
        record = session.get(ProxyPoolRecord, name)
        data = config.model_dump(mode="json")
        if record is None:
            session.add(ProxyPoolRecord(name=name, config=data, updated_at=datetime.now(UTC)))
        else:
            record.config, record.updated_at = data, datetime.now(UTC)


def load_pool(sessions: sessionmaker[Session], name: str) -> PoolConfig | None:
    """A pool's configuration, or None."""
    with sessions() as session:
        record = session.get(ProxyPoolRecord, name)
        return PoolConfig.model_validate(record.config) if record else None


def pool_names(sessions: sessionmaker[Session]) -> list[str]:
    """Names of every stored pool."""
    with sessions() as session:
        return list(session.scalars(select(ProxyPoolRecord.name).order_by(ProxyPoolRecord.name)))


def delete_pool(sessions: sessionmaker[Session], name: str) -> bool:
    """Remove a pool; False if there was none."""
    with sessions.begin() as session:
        record = session.get(ProxyPoolRecord, name)
        if record is None:
            return False
        session.delete(record)
        return True
