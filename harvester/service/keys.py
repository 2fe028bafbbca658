"""API keys: random tokens stored as sha256, with a scope (`read` or `admin`)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import ApiKey

Scope = Literal["read", "admin"]
_PREFIX = "hv_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(sessions: sessionmaker[Session], name: str, scope: Scope) -> tuple[str, str]:
    """A new key: returns (id, the key itself — shown once, never stored)."""
    key = _PREFIX + secrets.token_urlsafe(32)
    key_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(
            ApiKey(
                id=key_id,
                name=name,
                key_hash=_digest(key),
                scope=scope,
                created_at=datetime.now(UTC),
            )
        )
    return key_id, key


def register_key(sessions: sessionmaker[Session], key: str, name: str, scope: Scope) -> None:
    """Make a key chosen by the operator (HARVESTER_API_KEY) valid, idempotently."""
    digest = _digest(key)
    with sessions.begin() as session:
        if session.scalar(select(ApiKey.id).where(ApiKey.key_hash == digest)) is None:
            session.add(
                ApiKey(
                    id=str(uuid.uuid4()),
                    name=name,
                    key_hash=digest,
                    scope=scope,
                    created_at=datetime.now(UTC),
                )
            )


def scope_of(sessions: sessionmaker[Session], key: str) -> Scope | None:
    """The scope of a valid, unrevoked key, or None."""
    with sessions() as session:
        row = session.scalar(
            select(ApiKey.scope).where(ApiKey.key_hash == _digest(key), ApiKey.revoked_at.is_(None))
        )
    return row  # type: ignore[return-value]


def count_keys(sessions: sessionmaker[Session]) -> int:
    """How many unrevoked keys exist."""
    with sessions() as session:
        return (
            session.scalar(
                select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
            )
            or 0
        )


def bootstrap(sessions: sessionmaker[Session], configured: str | None) -> str | None:
    """Honour HARVESTER_API_KEY; with none configured and no key yet, create an admin key and
    return it (the caller prints it once)."""
    if configured:
        register_key(sessions, configured, "HARVESTER_API_KEY", "admin")
        return None
    if count_keys(sessions) == 0:
        return create_key(sessions, "bootstrap", "admin")[1]
    return None
