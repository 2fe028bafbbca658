"""The one way CPU-heavy work leaves the event loop: a process pool sized to the cores."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_ORPHAN_CHECK_S = 1.0


def _init_worker(parent: int, memory_mb: int | None) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    # Extraction is throughput work; the event loop (fetch timing, the API) is latency work
    # and must win the cores when both want them. SCHED_IDLE ranks below every nice level,
    # so this holds in a worker whose loop already runs at the lowest niceness (19).
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    # Import the heavy modules and load the language model before the first page arrives.
    from harvester.pipeline import language, process  # noqa: F401

    language.identify("warm up")
    if memory_mb is not None:
        # A page that needs more than this fails its own call (MemoryError), instead of the
        # OOM killer taking the largest process on the machine.
        grown = _address_space() + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (grown, grown))


def _address_space() -> int:
    """This process's virtual memory size in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _exit_with_parent(parent: int) -> None:
    # A SIGKILLed parent cannot stop its pool, and a worker holds both ends of its own call
    # queue, so it would never see EOF: it watches for being orphaned instead.
    while os.getppid() == parent:
        time.sleep(_ORPHAN_CHECK_S)
    os._exit(1)


class CpuPool:
    """Worker processes for extraction and signatures; `run` awaits one call.

    A worker that dies (the OOM killer, a crash in a C extension) breaks the whole executor;
    the pool replaces it and retries the call once, so one bad page costs that page only.
    With `memory_mb`, each worker may grow by that much beyond its start-up size.
    """

    def __init__(self, workers: int | None = None, memory_mb: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._memory_mb = memory_mb
        self._lock = threading.Lock()
        self._executor = self._start()
        self.replaced = 0
        """How many times a broken executor was replaced."""

    def _start(self) -> ProcessPoolExecutor:
        # spawn: forking a process that runs threads (catalog, event loop) is unsafe.
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(), self._memory_mb),
        )

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:  # the first caller to see it broken replaces it
                self._executor = self._start()
                self.replaced += 1
                broken.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a worker process; retried once on a fresh pool if the pool broke
        (then `BrokenProcessPool` is raised: the call itself is what kills workers)."""
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, fn, *args)
        except BrokenProcessPool:
            self._replace(executor)
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, fn, *args)
        except BrokenProcessPool:
            self._replace(executor)
            raise

    def warm(self) -> None:
        """Start every worker now (each imports the pipeline and loads the language model)
        instead of on first use, where start-up would compete with a running crawl."""
        futures = [self._executor.submit(os.getpid) for _ in range(self.workers)]
        for future in futures:
            future.result()

    def close(self) -> None:
        """Stop the workers (waits for calls in progress)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> CpuPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
