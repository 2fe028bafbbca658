"""API keys: random tokens stored as sha256, with a scope (`read` or `admin`)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import ApiKey

Scope = Literal["read", "admin"]
_PREFIX = "hv_"
CACHE_S = 5.0
"""How long a key's scope is remembered: every request needs it, and a catalog round trip
per request caps what the API can serve. A revocation through this process applies at once;
other API processes see it within this time."""
_cache: dict[str, tuple[Scope | None, float]] = {}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(sessions: sessionmaker[Session], name: str, scope: Scope) -> tuple[str, str]:
    """A new key: returns (id, the key itself — shown once, never stored)."""
    _cache.clear()
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
    """Make a key chosen by the operator (HARVESTER_API_KEY) valid, idempotently; the keys
    registered under the same name before it are revoked (the setting was rotated). A key
    revoked through the API stays revoked."""
    _cache.clear()
    digest = _digest(key)
    with sessions.begin() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.name == name, ApiKey.key_hash != digest, ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
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


def cached_scope(key: str) -> tuple[bool, Scope | None]:
    """(True, the key's scope or None) if the cache knows the key, else (False, None); never
    touches the catalog, so an event loop can ask."""
    cached = _cache.get(_digest(key))
    if cached is not None and cached[1] > time.monotonic():
        return True, cached[0]
    return False, None


def scope_of(sessions: sessionmaker[Session], key: str) -> Scope | None:
    """The scope of a valid, unrevoked key, or None."""
    known, cached = cached_scope(key)
    if known:
        return cached
    digest, now = _digest(key), time.monotonic()
    with sessions() as session:
        scope: Scope | None = session.scalar(
            select(ApiKey.scope).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        )
    if len(_cache) > 10_000:  # bounded, also against floods of wrong keys
        _cache.clear()
    _cache[digest] = (scope, now + CACHE_S)
    return scope


def list_keys(sessions: sessionmaker[Session]) -> list[ApiKey]:
    """Every key's record, oldest first (never the key itself)."""
    with sessions() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(sessions: sessionmaker[Session], key_id: str) -> bool:
    """Revoke a key; False if there is no active key with this id."""
    with sessions.begin() as session:
        row = session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = datetime.now(UTC)
    _cache.clear()
    return True


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
