"""Running the service roles (API, worker, scheduler) in one process or apart."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
import uvloop

from harvester.catalog.db import open_catalog
from harvester.config import Settings
from harvester.cpu import CpuPool
from harvester.errors import ConfigurationError
from harvester.logs import configure as configure_logs
from harvester.service.keys import bootstrap
from harvester.service.scheduler import Scheduler
from harvester.service.worker import Worker
from harvester.store.blob import BlobStore

logger = logging.getLogger(__name__)
WORKER_NICENESS = 19
SERVE_SWITCH_INTERVAL_S = 0.001


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
    store = BlobStore.from_settings(settings)
    stops: list[Callable[[], None]] = []
    tasks: list[asyncio.Task[None]] = []
    with contextlib.ExitStack() as stack:
        listening = stack.enter_context(_listen(host, port)) if api else None
        the_worker = None
        if worker:
            cpu = stack.enter_context(CpuPool(memory_mb=settings.pipeline_memory_mb))
            the_worker = Worker(sessions, store, settings, cpu)
            stops.append(the_worker.stop)
        server = None
        if api:
            # the API's dependencies are only needed by this role
            from harvester.api.app import create_app

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
        serving: Awaitable[None] | None = None
        if server is not None and listening is not None and worker:
            # The API gets a thread and an event loop of its own: the crawl's coroutines must
            # never delay an answer (one loop showed ~1 s of lag under a full-speed crawl).
            # Its threads still wait for the GIL behind the crawl's; a shorter switch interval
            # hands it over sooner (bench/api.py, one serve at 50 requests/s: p50/p90/p99
            # 15/35/210 ms at the default 5 ms, 12/28/174 ms at 1 ms).
            sys.setswitchinterval(SERVE_SWITCH_INTERVAL_S)
            api_thread = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="api"))
            serving = asyncio.wrap_future(
                api_thread.submit(uvloop.run, server.serve(sockets=[listening]))
            )
        elif server is not None and listening is not None:
            serving = server.serve(sockets=[listening])
        if the_worker is not None:
            # Crawling is throughput work; the API (the thread started above, or a process on
            # the same machine) answers people and scripts and must win the cores. Linux keeps
            # the nice value per thread: the API's thread keeps its own, and every thread
            # started from here on inherits this one (bench/api.py: p99 at 200 requests/s
            # went from 903 ms at niceness 5 to 87 ms at 19).
            os.nice(WORKER_NICENESS)
            await asyncio.to_thread(cpu.warm)
            tasks.append(_task(the_worker.run()))
        if scheduler:
            the_scheduler = Scheduler(sessions)
            stops.append(the_scheduler.stop)
            tasks.append(_task(the_scheduler.run()))
        # What start-up left (modules, classes, the app) lives as long as the process: frozen,
        # full collections no longer walk it (bench/scale.py, one polite worker: each paused
        # the loop that times requests 137 ms on average, 50 ms once frozen).
        gc.freeze()
        if serving is not None:
            await serving
            stop()
        await asyncio.gather(*tasks)


def _listen(host: str, port: int) -> socket.socket:
    """The API's socket, bound before anything starts: a port in use is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.create_task(coro)
