"""`/v1/keys`: API keys (admin only). A key is shown once, when created; only its hash is kept."""

from __future__ import annotations

from fastapi import APIRouter

from harvester.api.deps import Admin, Svc
from harvester.api.errors import ApiError
from harvester.api.schemas import KeyIn, KeyOut
from harvester.catalog.models import ApiKey
from harvester.service import keys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _out(row: ApiKey, key: str | None = None) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        scope=row.scope,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        key=key,
    )


@router.post("", status_code=201)
def create(body: KeyIn, svc: Svc, _: Admin) -> KeyOut:
    """A new key with the `read` or `admin` scope; the answer is the only time it is shown."""
    key_id, key = keys.create_key(svc.sessions, body.name, body.scope)
    with svc.sessions() as session:
        row = session.get(ApiKey, key_id)
        assert row is not None
        return _out(row, key)


@router.get("")
def list_keys(svc: Svc, _: Admin) -> list[KeyOut]:
    """Every key's record (never the key)."""
    return [_out(r) for r in keys.list_keys(svc.sessions)]


@router.delete("/{key_id}", status_code=204)
def revoke(key_id: str, svc: Svc, _: Admin) -> None:
    """Revoke a key: it stops working at once here, within seconds on other API processes."""
    if not keys.revoke_key(svc.sessions, key_id):
        raise ApiError(404, "not_found", f"no active key {key_id}")
