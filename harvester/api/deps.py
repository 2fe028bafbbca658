"""Request dependencies, declared once: the service state and the caller's key scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.errors import ApiError
from harvester.config import Settings
from harvester.service.keys import Scope, cached_scope, scope_of
from harvester.service.worker import Worker
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots


@dataclass
class Services:
    """What routes use, built once by `create_app`."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: BlobStore
    snapshots: Snapshots
    worker: Worker | None = None


# The dependencies are coroutines: FastAPI runs a plain function in its thread pool, and
# three thread hops per request cost more CPU than the route itself.
async def services(request: Request) -> Services:
    """The app's services."""
    found: Services = request.app.state.services
    return found


Svc = Annotated[Services, Depends(services)]


_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key (`harvester keys create`), sent as `Authorization: Bearer <key>`.",
)
"""Declares the scheme in the OpenAPI document (the docs' "Authorize" button); the check is
ours, so a missing or malformed key gets the API's own 401."""


async def _scope(
    svc: Svc, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> Scope:
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise ApiError(401, "unauthorized", "missing API key: send Authorization: Bearer <key>")
    known, scope = cached_scope(token)
    if not known:
        scope = await run_in_threadpool(scope_of, svc.sessions, token)
    if scope is None:
        raise ApiError(401, "unauthorized", "invalid API key")
    return scope


async def reader(scope: Annotated[Scope, Depends(_scope)]) -> Scope:
    """Any valid key."""
    return scope


async def admin(scope: Annotated[Scope, Depends(_scope)]) -> Scope:
    """A key with the admin scope."""
    if scope != "admin":
        raise ApiError(403, "forbidden", "this route needs a key with the admin scope")
    return scope


_DECLARED: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> Iterator[str]:
    yield from (param.alias for param in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _query_names(sub)


async def known_query(request: Request) -> None:
    """Refuse query parameters a route does not declare (422): a misspelt filter would
    otherwise be ignored and answer as if it had not been given."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    declared = _DECLARED.get(id(route))
    if declared is None:
        declared = _DECLARED[id(route)] = frozenset(_query_names(route.dependant))
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        raise ApiError(
            422,
            "validation_error",
            f"invalid request: unknown query parameter {', '.join(map(repr, unknown[:5]))}",
            [{"field": f"query.{name}", "message": "unknown query parameter"} for name in unknown],
        )


Reader = Annotated[Scope, Depends(reader)]
Admin = Annotated[Scope, Depends(admin)]
