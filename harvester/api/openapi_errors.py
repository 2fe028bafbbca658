"""Which errors each route declares in the OpenAPI document: those it can return, derived
from what the route takes (a key, an admin key, a body, path parameters) plus what it raises
itself (`raises(409)`), so the docs never list a 416 on `POST /v1/jobs` or a 401 on
`/healthz`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from harvester.api.deps import admin, reader
from harvester.api.schemas import ERROR_RESPONSES

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def raises(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route raises by itself, for its decorator's `responses`."""
    return {status: ERROR_RESPONSES[status] for status in statuses}


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _statuses(route: APIRoute) -> set[int]:
    calls = _calls(route.dependant)
    statuses = {422, 500}  # any route: an unknown query parameter, a bug
    statuses |= {503}  # the catalog (health asks it too) or the store is down
    if reader in calls or admin in calls:
        statuses |= {401}
    if admin in calls:
        statuses |= {403}
    methods = route.methods or set()
    if methods & _WRITES:
        statuses |= {429}  # per-key write allowance
    if route.dependant.body_params:
        statuses |= {400, 413}
    if route.dependant.path_params and methods != {"PUT"}:  # a PUT creates
        statuses |= {404}
    return statuses


def declare_errors(router: APIRouter) -> None:
    """Set the error responses of each of the router's routes, and give each a summary: the
    first sentence of its docstring, not its function's name (idempotent)."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            if not route.summary and route.description:
                first = route.description.split("\n\n")[0].replace("\n", " ")
                route.summary = first.split(". ")[0].split("; ")[0].rstrip(".")
            own = {s for s in route.responses if isinstance(s, int) and s >= 400}
            for status in sorted(_statuses(route) | own):
                route.responses.setdefault(status, ERROR_RESPONSES[status])
