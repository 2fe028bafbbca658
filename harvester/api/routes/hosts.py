"""`/v1/hosts/{host}`: per-host policies (rate ceiling, concurrency, block) for every job."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query

from harvester.api.deps import Admin, Reader, Svc
from harvester.api.errors import ApiError
from harvester.api.schemas import HostIn, HostOut, Page
from harvester.service.hosts import clear_policy, get_host, list_hosts, set_policy

router = APIRouter(prefix="/v1/hosts", tags=["hosts"])
HostName = Annotated[str, Path(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.:\[\]-]{0,253}[A-Za-z0-9\]])?$")]


@router.get("")
def hosts(
    svc: Svc,
    _: Reader,
    policy: Annotated[bool, Query(description="Only hosts with a policy.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Page[HostOut]:
    """Hosts met by any job (or named by a policy), by name."""
    views, total = list_hosts(svc.sessions, with_policy=policy, limit=limit, offset=offset)
    return Page(
        items=[HostOut(**asdict(v)) for v in views], total=total, limit=limit, offset=offset
    )


@router.get("/{host}")
def host(host: HostName, svc: Svc, _: Reader) -> HostOut:
    """One host: its policy, the worker crawling it, its pending URLs."""
    view = get_host(svc.sessions, host.lower())
    if view is None:
        raise ApiError(404, "not_found", f"no host {host!r}")
    return HostOut(**asdict(view))


@router.put("/{host}")
def put_host(host: HostName, policy: HostIn, svc: Svc, _: Admin) -> HostOut:
    """Set the host's policy; the worker holding it applies it within a second."""
    view = set_policy(
        svc.sessions,
        host.lower(),
        max_rps=policy.max_rps,
        concurrency=policy.concurrency,
        blocked=policy.blocked,
        note=policy.note,
    )
    return HostOut(**asdict(view))


@router.delete("/{host}", status_code=204)
def delete_host_policy(host: HostName, svc: Svc, _: Admin) -> None:
    """Remove the host's policy (the jobs' own limits apply again)."""
    if not clear_policy(svc.sessions, host.lower()):
        raise ApiError(404, "not_found", f"no policy for host {host!r}")
