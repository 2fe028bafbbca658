"""Running the service roles (API, worker, scheduler) in one process or apart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn

from harvester.catalog.db import open_catalog
from harvester.config import Settings
from harvester.cpu import CpuPool
from harvester.logs import configure as configure_logs
from harvester.service.keys import bootstrap
from harvester.service.scheduler import Scheduler
from harvester.service.worker import Worker
from harvester.store.blob import BlobStore

logger = logging.getLogger(__name__)
WORKER_NICENESS = 5


async def run_roles(
    settings: Settings,
    *,
    api: bool,
    worker: bool,
    scheduler: bool,
    host: str = "127.0.0.1",
    port: int = 8000,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the chosen roles until SIGINT/SIGTERM, then stop them cleanly: the API stops
    accepting, the worker lets in-flight requests finish and releases its job, the scheduler
    finishes its tick."""
    configure_logs(settings.log_format)
    sessions = open_catalog(settings.database_url)
    store = BlobStore.from_url(settings.storage_url, settings.s3_endpoint)
    stops: list[Callable[[], None]] = []
    tasks: list[asyncio.Task[None]] = []
    with contextlib.ExitStack() as stack:
        the_worker = None
        if worker:
            if not api:
                # Crawling is throughput work; an API process on the same machine answers
                # people and scripts, and must win the cores when both want them.
                os.nice(WORKER_NICENESS)
            cpu = stack.enter_context(CpuPool())
            await asyncio.to_thread(cpu.warm)
            the_worker = Worker(sessions, store, settings, cpu)
            stops.append(the_worker.stop)
            tasks.append(_task(the_worker.run()))
        if scheduler:
            the_scheduler = Scheduler(sessions)
            stops.append(the_scheduler.stop)
            tasks.append(_task(the_scheduler.run()))
        server = None
        if api:
            from api import create_app  # the API's dependencies are only needed by this role

            key = bootstrap(
                sessions, settings.api_key.get_secret_value() if settings.api_key else None
            )
            if key:
                announce(f"admin API key (shown once, store it now): {key}")
            app = create_app(settings, sessions=sessions, worker=the_worker)
            server = uvicorn.Server(
                uvicorn.Config(app, host=host, port=port, log_config=None, log_level="info")
            )
            stops.append(lambda: setattr(server, "should_exit", True))
            announce(f"API on http://{host}:{port}/ (OpenAPI at /docs)")

        def stop(*_: object) -> None:
            for fn in stops:
                fn()

        # uvicorn restores these after it stops and re-raises the signal it caught into them.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        if server is not None:
            if tasks:
                # The API gets an event loop of its own: the crawl's coroutines must never
                # delay an answer (one loop showed ~1 s of lag under a full-speed crawl).
                await asyncio.to_thread(asyncio.run, server.serve())
            else:
                await server.serve()
            stop()
        await asyncio.gather(*tasks)


def _task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.create_task(coro)
