"""`create_app(settings)`: the FastAPI application over one catalog and blob store."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.orm import Session, sessionmaker

from harvester.api import errors
from harvester.api.bodyguard import BodyGuard
from harvester.api.deps import Services, known_query
from harvester.api.openapi_errors import declare_errors
from harvester.api.routes import datasets, health, hosts, jobs, keys, proxy_pools, schedules
from harvester.catalog.db import open_catalog
from harvester.config import Settings
from harvester.service.worker import Worker
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots


def create_app(
    settings: Settings,
    *,
    sessions: sessionmaker[Session] | None = None,
    worker: Worker | None = None,
) -> FastAPI:
    """The API; `worker` (in `harvester serve`) lets it show live proxy health."""
    store = BlobStore.from_settings(settings)
    app = FastAPIOffline(  # Swagger UI and ReDoc served from the package: /docs works offline
        title="Harvester",
        version="0.1.0",
        description="Crawl jobs, dataset snapshots, schedules and proxy pools. "
        "Send `Authorization: Bearer <key>` on every route but /healthz.",
    )
    app.state.services = Services(
        settings=settings,
        sessions=sessions or open_catalog(settings.database_url),
        store=store,
        snapshots=Snapshots(store),
        worker=worker,
    )
    errors.install(app)
    app.add_middleware(
        BodyGuard,
        sessions=app.state.services.sessions,
        writes_per_minute=settings.api_writes_per_minute,
    )
    for module in (health, jobs, datasets, schedules, hosts, proxy_pools, keys):
        declare_errors(module.router)
        app.include_router(module.router, dependencies=[Depends(known_query)])
    return app
